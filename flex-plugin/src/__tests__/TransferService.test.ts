import { BatonClient } from '../baton/client';
import { TransferService, POLL_MS, STALE_AFTER_MS } from '../transfers/TransferService';
import { FakeBaton, OPTIONS, SIDS, entry, error, reroutedToCarol, transfer } from '../testing/fixtures';

const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i += 1) {
    // eslint-disable-next-line no-await-in-loop
    await Promise.resolve();
  }
};

function setup(baton: FakeBaton = new FakeBaton()) {
  baton.always('GET /v1/transfer-options', { status: 200, body: OPTIONS });
  const notify = jest.fn();
  const client = new BatonClient({ baseUrl: 'https://baton.test', getToken: () => 'flex-token', fetch: baton.fetch as unknown as typeof fetch });
  const service = new TransferService({ client, notify });
  return { baton, notify, service };
}

const choice = { mode: 'cold' as const, notes: 'Order 4417 never arrived', summary: true };

afterEach(() => jest.useRealTimers());

describe('TransferService: starting a transfer', () => {
  it('opens the form with the administrator switches and sends the chosen transfer', async () => {
    const { baton, service } = setup();
    baton.answer('POST /v1/transfers', { status: 202, body: transfer() });
    service.openForm(SIDS.task, SIDS.bob, 'warm');
    await flush();
    expect(service.view(SIDS.task)).toMatchObject({ draft: { targetSid: SIDS.bob, mode: 'warm' }, options: { ...OPTIONS, source: 'baton' } });
    await service.submit(SIDS.task, { ...choice, mode: 'warm' });
    expect(baton.callsTo('POST /v1/transfers')[0].body).toEqual({ task_sid: SIDS.task, to: SIDS.bob, mode: 'warm', notes: choice.notes, summary: true });
    expect(service.view(SIDS.task)).toMatchObject({ draft: null, transfer: { id: transfer().id }, error: null });
    service.dispose();
  });

  it("asks Baton for the name of a target Flex's directory gave only by sid, once", async () => {
    const { baton, service } = setup();
    baton.answer('GET /v1/names', { status: 200, body: { names: { [SIDS.bob]: 'Bob' } } });
    const seen: (string | undefined)[] = [];
    service.subscribe(() => seen.push(service.names.known(SIDS.bob) ? service.names.name(SIDS.bob) : undefined));
    service.openForm(SIDS.task, SIDS.bob);
    await flush();
    expect(baton.callsTo('GET /v1/names').map((call) => new URL(call.url).search)).toEqual([`?sid=${SIDS.bob}`]);
    expect(seen[seen.length - 1]).toBe('Bob');
    service.closeForm(SIDS.task);
    service.openForm(SIDS.task, SIDS.bob);
    await flush();
    expect(baton.callsTo('GET /v1/names')).toHaveLength(1);
    service.dispose();
  });

  it('keeps the sid in the form when Baton cannot name the target', async () => {
    const { baton, service } = setup();
    baton.answer('GET /v1/names', error(503, 'unavailable'));
    service.openForm(SIDS.task, SIDS.carol);
    await flush();
    expect(service.names.name(SIDS.carol)).toBe(SIDS.carol);
    expect(service.view(SIDS.task).draft).toEqual({ targetSid: SIDS.carol, mode: 'cold' });
    service.dispose();
  });

  it('makes one Idempotency-Key per click and reuses it on Retry', async () => {
    const { baton, service } = setup();
    baton
      .answer('POST /v1/transfers', error(503, 'unavailable'))
      .answer('POST /v1/transfers', new TypeError('Failed to fetch'))
      .answer('POST /v1/transfers', error(503, 'unavailable'))
      .answer('POST /v1/transfers', { status: 202, body: transfer() });
    service.openForm(SIDS.task, SIDS.bob);
    await service.submit(SIDS.task, choice);
    expect(service.view(SIDS.task).error).toMatchObject({ code: 'unavailable', next: 'retry' });
    await service.retry(SIDS.task);
    expect(service.view(SIDS.task).error).toMatchObject({ code: 'network' });
    await service.submit(SIDS.task, choice);
    await service.retry(SIDS.task);
    const keys = baton.callsTo('POST /v1/transfers').map((call) => call.headers['Idempotency-Key']);
    expect(keys[0]).toBe(keys[1]);
    expect(keys[2]).not.toBe(keys[0]);
    expect(keys[3]).toBe(keys[2]);
    expect(service.view(SIDS.task).transfer?.id).toBe(transfer().id);
    service.dispose();
  });

  it('offers no Retry for a refusal that a retry cannot change', async () => {
    const { baton, service } = setup();
    baton.answer('POST /v1/transfers', error(403, 'not_your_task'));
    service.openForm(SIDS.task, SIDS.bob);
    await service.submit(SIDS.task, choice);
    expect(service.view(SIDS.task)).toMatchObject({ error: { code: 'not_your_task', next: 'none' }, lastClick: null });
  });

  it('waits out a 429 before Retry', async () => {
    jest.useFakeTimers('modern');
    const { baton, service } = setup();
    baton.answer('POST /v1/transfers', error(429, 'rate_limited', 'slow down', { 'Retry-After': '3' }));
    service.openForm(SIDS.task, SIDS.bob);
    await service.submit(SIDS.task, choice);
    await service.retry(SIDS.task);
    expect(baton.callsTo('POST /v1/transfers')).toHaveLength(1);
    jest.setSystemTime(Date.now() + 3_000);
    baton.answer('POST /v1/transfers', { status: 202, body: transfer() });
    await service.retry(SIDS.task);
    expect(baton.callsTo('POST /v1/transfers')).toHaveLength(2);
    service.dispose();
  });

  it('reads the switches again after a 422 notes_disabled, so the form stops offering notes', async () => {
    const { baton, service } = setup(new FakeBaton().answer('GET /v1/transfer-options', { status: 200, body: OPTIONS }).answer('GET /v1/transfer-options', { status: 200, body: { ...OPTIONS, notes_enabled: false } }));
    baton.answer('POST /v1/transfers', { status: 422, body: { error: { code: 'notes_disabled', message: 'off', field: 'notes' } } });
    service.openForm(SIDS.task, SIDS.bob);
    await flush();
    await service.submit(SIDS.task, choice);
    await flush();
    expect(service.view(SIDS.task)).toMatchObject({ error: { code: 'notes_disabled', next: 'fix' }, options: { notes_enabled: false } });
  });

  it('follows the transfer already under way after a 409', async () => {
    const { baton, notify, service } = setup();
    baton
      .answer('POST /v1/transfers', error(409, 'transfer_in_progress'))
      .answer('GET /v1/transfers?task_sid=', { status: 200, body: { transfers: [transfer({ status: 'failed' }), reroutedToCarol({ id: 'tr_live' })] } })
      .always('GET /v1/transfers/', { status: 200, body: reroutedToCarol({ id: 'tr_live' }) });
    service.openForm(SIDS.task, SIDS.bob);
    await service.submit(SIDS.task, choice);
    expect(service.view(SIDS.task)).toMatchObject({ draft: null, error: null, transfer: { id: 'tr_live' } });
    expect(notify).toHaveBeenCalledWith('blocked', expect.stringContaining('already under way'));
    service.dispose();
  });

  it('assumes notes on and summary off when the switches cannot be read', async () => {
    const baton = new FakeBaton().answer('GET /v1/transfer-options', new TypeError('Failed to fetch'));
    const client = new BatonClient({ baseUrl: 'https://baton.test', getToken: () => 'flex-token', fetch: baton.fetch as unknown as typeof fetch });
    const service = new TransferService({ client, notify: jest.fn() });
    service.openForm(SIDS.task, SIDS.bob);
    await flush();
    expect(service.view(SIDS.task).options).toMatchObject({ notes_enabled: true, summary_enabled: false, source: 'defaults' });
    expect(service.view(SIDS.task).optionsNote).toContain('could not be read');
  });
});

describe('TransferService: a pending transfer', () => {
  async function pending(baton: FakeBaton) {
    jest.useFakeTimers('modern');
    const context = setup(baton);
    baton.answer('POST /v1/transfers', { status: 202, body: transfer() });
    context.service.openForm(SIDS.task, SIDS.bob);
    await context.service.submit(SIDS.task, choice);
    return context;
  }

  const tick = async (ms: number = POLL_MS): Promise<void> => {
    jest.advanceTimersByTime(ms);
    await flush();
  };

  it(`polls every ${POLL_MS} ms and notifies the re-route, then the acceptance, then stops`, async () => {
    const baton = new FakeBaton()
      .answer('GET /v1/transfers/', { status: 200, body: transfer({ status: 'offered', timeline: [entry('offered', 'offered', { worker_sid: SIDS.bob })] }) })
      .answer('GET /v1/transfers/', { status: 200, body: reroutedToCarol() })
      .answer('GET /v1/transfers/', { status: 200, body: transfer({ status: 'completed', accepted_worker_sid: SIDS.carol }) });
    const { notify, service } = await pending(baton);
    await tick(POLL_MS - 1);
    expect(baton.callsTo('GET /v1/transfers/')).toHaveLength(0);
    await tick(1);
    await tick();
    expect(notify).toHaveBeenLastCalledWith('rerouted', 'Bob declined — offered to the Support queue');
    await tick();
    expect(notify).toHaveBeenLastCalledWith('accepted', 'Transferred to Carol.');
    await tick(POLL_MS * 5);
    expect(baton.callsTo('GET /v1/transfers/')).toHaveLength(3);
    service.dispose();
  });

  it('blocks wrap-up while pending, and while an accepted warm transfer waits for Leave', async () => {
    const baton = new FakeBaton().answer('GET /v1/transfers/', { status: 200, body: transfer({ status: 'accepted', mode: 'warm', accepted_worker_sid: SIDS.carol }) });
    const { service } = await pending(baton);
    expect(service.blockReason(SIDS.task)).toContain('pending');
    await tick();
    expect(service.blockReason(SIDS.task)).toContain('use Leave');
    baton.answer('POST /v1/transfers/', { status: 202, body: transfer({ status: 'accepted', mode: 'warm', accepted_worker_sid: SIDS.carol }) });
    baton.always('GET /v1/transfers/', { status: 200, body: transfer({ status: 'completed', mode: 'warm', accepted_worker_sid: SIDS.carol }) });
    await service.leave(SIDS.task);
    expect(baton.callsTo('POST /v1/transfers/')[0].url).toMatch(/\/leave$/);
    await flush();
    expect(service.view(SIDS.task).transfer?.status).toBe('completed');
    expect(service.blockReason(SIDS.task)).toBeNull();
    service.dispose();
  });

  it('cancels on request and says so', async () => {
    const baton = new FakeBaton()
      .answer('POST /v1/transfers/', { status: 202, body: reroutedToCarol() })
      .always('GET /v1/transfers/', { status: 200, body: transfer({ status: 'canceled', timeline: [entry('canceled', 'canceled', { worker_sid: SIDS.alice })] }) });
    const { notify, service } = await pending(baton);
    await service.cancel(SIDS.task);
    await flush();
    expect(baton.callsTo('POST /v1/transfers/')[0].url).toMatch(/\/cancel$/);
    expect(notify).toHaveBeenLastCalledWith('canceled', 'Transfer canceled: the customer is still yours.');
    expect(service.blockReason(SIDS.task)).toBeNull();
    service.dispose();
  });

  it('says it is too late to cancel an accepted transfer', async () => {
    const baton = new FakeBaton()
      .answer('POST /v1/transfers/', error(409, 'already_accepted'))
      .always('GET /v1/transfers/', { status: 200, body: transfer({ status: 'completed', accepted_worker_sid: SIDS.carol }) });
    const { service } = await pending(baton);
    await service.cancel(SIDS.task);
    expect(service.view(SIDS.task).actionError?.title).toContain('Too late to cancel');
    service.dispose();
  });

  it('keeps polling with back-off while Baton is down, and lets the agent end the task once Baton has been silent too long', async () => {
    const baton = new FakeBaton().always('GET /v1/transfers/', new TypeError('Failed to fetch'));
    const { service } = await pending(baton);
    await tick();
    expect(service.view(SIDS.task).followError?.code).toBe('network');
    expect(service.blockReason(SIDS.task)).not.toBeNull();
    await tick(2 * POLL_MS);
    await tick(4 * POLL_MS);
    expect(baton.callsTo('GET /v1/transfers/')).toHaveLength(3);
    jest.setSystemTime(Date.now() + STALE_AFTER_MS);
    expect(service.isStale(SIDS.task)).toBe(true);
    expect(service.blockReason(SIDS.task)).toBeNull();
    service.dispose();
  });

  it('refuses a second transfer of a task whose transfer is pending', async () => {
    const { notify, service } = await pending(new FakeBaton());
    service.openForm(SIDS.task, SIDS.carol);
    expect(service.view(SIDS.task).draft).toBeNull();
    expect(notify).toHaveBeenCalledWith('blocked', expect.stringContaining('pending'));
    service.dispose();
  });
});

describe('TransferService: recovering after a reload', () => {
  it('finds the pending transfer of a task once, and ignores a Baton that is down', async () => {
    const baton = new FakeBaton().answer('GET /v1/transfers?task_sid=', new TypeError('Failed to fetch'));
    const { service } = setup(baton);
    await service.recover(SIDS.task);
    await service.recover(SIDS.task);
    expect(baton.callsTo('GET /v1/transfers')).toHaveLength(1);
    expect(service.view(SIDS.task).transfer).toBeNull();
  });

  it('does not take a transfer to this task for one from it', async () => {
    const baton = new FakeBaton().answer('GET /v1/transfers?task_sid=', { status: 200, body: { transfers: [reroutedToCarol({ task_sid: SIDS.voiceTask, new_task_sid: SIDS.task })] } });
    const { service } = setup(baton);
    await service.recover(SIDS.task);
    expect(service.view(SIDS.task).transfer).toBeNull();
  });
});
