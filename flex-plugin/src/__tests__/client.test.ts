import { BatonClient, BatonError, DEFAULT_OPTIONS, newIdempotencyKey, retryAfter } from '../baton/client';
import { FakeBaton, OPTIONS, SIDS, error, transfer } from '../testing/fixtures';

const request = { task_sid: SIDS.task, to: SIDS.bob, mode: 'cold' as const, notes: 'Order 4417', summary: false };

function client(baton: FakeBaton, token: string | null = 'flex-token', timeoutMs = 10_000): BatonClient {
  return new BatonClient({ baseUrl: 'https://baton.test/', getToken: () => token ?? undefined, fetch: baton.fetch as unknown as typeof fetch, timeoutMs });
}

async function failure(promise: Promise<unknown>): Promise<BatonError> {
  try {
    await promise;
  } catch (caught) {
    expect(caught).toBeInstanceOf(BatonError);
    return caught as BatonError;
  }
  throw new Error('expected a BatonError');
}

describe('BatonClient', () => {
  it('posts a transfer with the agent token, the Idempotency-Key and a JSON body', async () => {
    const baton = new FakeBaton().answer('POST /v1/transfers', { status: 202, body: transfer() });
    const answer = await client(baton).createTransfer(request, 'key-1');
    expect(answer.id).toBe(transfer().id);
    const [call] = baton.calls;
    expect(call.url).toBe('https://baton.test/v1/transfers');
    expect(call.headers).toMatchObject({ Authorization: 'Bearer flex-token', 'Idempotency-Key': 'key-1', 'Content-Type': 'application/json' });
    expect(call.body).toEqual(request);
  });

  it('turns an error answer into a BatonError with its code, field and status', async () => {
    const baton = new FakeBaton().answer('POST /v1/transfers', { status: 422, body: { error: { code: 'notes_disabled', message: 'Transfer notes are turned off', field: 'notes' } } });
    const caught = await failure(client(baton).createTransfer(request, 'key-1'));
    expect(caught).toMatchObject({ kind: 'http', status: 422, code: 'notes_disabled', field: 'notes' });
  });

  it('reads Retry-After from a 429', async () => {
    const baton = new FakeBaton().answer('POST /v1/transfers', error(429, 'rate_limited', 'Too many', { 'Retry-After': '7' }));
    const caught = await failure(client(baton).createTransfer(request, 'key-1'));
    expect(caught).toMatchObject({ code: 'rate_limited', retryAfterS: 7 });
  });

  it('names an answer without Baton error JSON by its status', async () => {
    const baton = new FakeBaton().answer('GET /v1/transfers/', { status: 502 });
    const caught = await failure(client(baton).getTransfer('tr_1'));
    expect(caught).toMatchObject({ kind: 'http', status: 502, code: 'http_502' });
  });

  it('reports a Baton that cannot be reached as a network failure', async () => {
    const baton = new FakeBaton().answer('GET /v1/transfers/', new TypeError('Failed to fetch'));
    const caught = await failure(client(baton).getTransfer('tr_1'));
    expect(caught).toMatchObject({ kind: 'network', code: 'network', status: null });
  });

  it('abandons a call that does not answer in time as a timeout', async () => {
    const baton = new FakeBaton().answer('GET /v1/transfers/', 'hang');
    const caught = await failure(client(baton, 'flex-token', 20).getTransfer('tr_1'));
    expect(caught).toMatchObject({ kind: 'timeout', code: 'timeout' });
  });

  it('refuses to call Baton without a Flex token', async () => {
    const baton = new FakeBaton();
    const caught = await failure(client(baton, null).getTransfer('tr_1'));
    expect(caught).toMatchObject({ code: 'missing_token', status: 401 });
    expect(baton.calls).toHaveLength(0);
  });

  it('asks for the names of several sids in one call', async () => {
    const baton = new FakeBaton().answer('GET /v1/names', { status: 200, body: { names: { [SIDS.bob]: 'Bob' } } });
    await expect(client(baton).names([SIDS.bob, SIDS.support])).resolves.toEqual({ [SIDS.bob]: 'Bob' });
    expect(new URL(baton.calls[0].url).searchParams.getAll('sid')).toEqual([SIDS.bob, SIDS.support]);
  });

  it('reads the transfer options, workflows included', async () => {
    const baton = new FakeBaton().answer('GET /v1/transfer-options', { status: 200, body: OPTIONS });
    await expect(client(baton).transferOptions()).resolves.toEqual({ ...OPTIONS, source: 'baton' });
  });

  it('assumes notes on and summary off when Baton has no transfer options (404)', async () => {
    const baton = new FakeBaton().answer('GET /v1/transfer-options', error(404, 'not_found'));
    await expect(client(baton).transferOptions()).resolves.toEqual(DEFAULT_OPTIONS);
    expect(DEFAULT_OPTIONS).toMatchObject({ notes_enabled: true, summary_enabled: false, notes_max_length: 1000 });
  });

  it('lists a task transfers and encodes the sid in the query', async () => {
    const baton = new FakeBaton().answer('GET /v1/transfers?task_sid=', { status: 200, body: { transfers: [transfer()] } });
    await expect(client(baton).transfersOfTask(SIDS.task)).resolves.toHaveLength(1);
    expect(baton.calls[0].url).toBe(`https://baton.test/v1/transfers?task_sid=${SIDS.task}`);
  });
});

describe('retryAfter and newIdempotencyKey', () => {
  it('reads Retry-After as seconds or as an HTTP date', () => {
    expect(retryAfter('3')).toBe(3);
    expect(retryAfter(new Date(10_000).toUTCString(), 0)).toBe(10);
    expect(retryAfter(null)).toBeNull();
    expect(retryAfter('soon')).toBeNull();
  });

  it('makes a new version 4 UUID each time', () => {
    const keys = new Set(Array.from({ length: 50 }, () => newIdempotencyKey()));
    expect(keys.size).toBe(50);
    keys.forEach((key) => expect(key).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/));
  });
});
