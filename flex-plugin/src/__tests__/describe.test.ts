import { NameBook, describeTransfer, noticesBetween } from '../baton/describe';
import { NAMES, SIDS, entry, reroutedToCarol, transfer } from '../testing/fixtures';

const book = () => new NameBook();

describe('describeTransfer', () => {
  it('waits for the agent asked for, by name', () => {
    expect(describeTransfer(transfer({ status: 'offered', attempt: 1 }), book()).headline).toBe('Waiting for Bob…');
  });

  it('says who declined and where the transfer went next', () => {
    const { tone, headline, detail } = describeTransfer(reroutedToCarol(), book());
    expect(tone).toBe('warning');
    expect(headline).toBe('Bob declined — offered to the Support queue');
    expect(detail).toContain('Now offered to Carol');
  });

  it('tells a timed-out offer from a declined one', () => {
    const timedOut = reroutedToCarol({ timeline: [entry('offer timeout', 'routing', { worker_sid: SIDS.bob })], status: 'routing' });
    expect(describeTransfer(timedOut, book()).headline).toBe('Bob did not answer — offered to the Support queue');
  });

  it('shows sids when Baton sends no names', () => {
    const { headline } = describeTransfer(reroutedToCarol({ names: undefined }), book());
    expect(headline).toBe(`${SIDS.bob} declined — offered to queue ${SIDS.support}`);
  });

  it('uses names learnt earlier in the session when an answer has none', () => {
    const names = book();
    names.remember(NAMES);
    expect(describeTransfer(transfer({ names: undefined, status: 'offered' }), names).headline).toBe('Waiting for Bob…');
  });

  it('invites the sender of an accepted warm transfer to leave', () => {
    const accepted = transfer({ mode: 'warm', status: 'accepted', accepted_worker_sid: SIDS.carol });
    expect(describeTransfer(accepted, book())).toMatchObject({ tone: 'success', headline: 'Carol accepted: you are both in the conversation' });
  });

  it('says the customer is still the sender after no one accepted', () => {
    const failed = transfer({
      status: 'failed',
      failure: { reason: 'no agent accepted after 5 offers', code: null },
      timeline: [entry('max attempts reached', 'failed', { reason: 'no agent accepted after 5 offers' })],
    });
    expect(describeTransfer(failed, book())).toEqual({ tone: 'error', headline: 'No one accepted: the customer is still yours', detail: 'Reason: no agent accepted after 5 offers.' });
  });

  it('names a workflow target', () => {
    expect(describeTransfer(transfer({ to: SIDS.billingDesk, target_type: 'workflow', route: 'workflow', status: 'routing' }), book()).headline)
      .toBe('Waiting for an agent in the Billing desk workflow…');
  });
});

describe('noticesBetween', () => {
  it('announces a re-route once', () => {
    const before = transfer({ status: 'offered', timeline: [entry('offered', 'offered', { worker_sid: SIDS.bob })] });
    const after = reroutedToCarol();
    expect(noticesBetween(before, after, book())).toEqual([{ kind: 'rerouted', message: 'Bob declined — offered to the Support queue' }]);
    expect(noticesBetween(after, after, book())).toEqual([]);
  });

  it('announces acceptance, failure with its reason, and cancellation', () => {
    const pending = reroutedToCarol();
    expect(noticesBetween(pending, transfer({ status: 'accepted', accepted_worker_sid: SIDS.carol }), book()))
      .toEqual([{ kind: 'accepted', message: 'Carol accepted the conversation.' }]);
    const failed = noticesBetween(pending, transfer({ status: 'failed', failure: { reason: 'not accepted within 600 s', code: null }, timeline: [entry('transfer timeout', 'failed')] }), book());
    expect(failed).toEqual([{ kind: 'failed', message: 'No one accepted: the customer is still yours. Reason: not accepted within 600 s.' }]);
    expect(noticesBetween(pending, transfer({ status: 'canceled', timeline: [entry('canceled', 'canceled', { worker_sid: SIDS.alice })] }), book()))
      .toEqual([{ kind: 'canceled', message: 'Transfer canceled: the customer is still yours.' }]);
  });

  it('announces nothing for a transfer seen for the first time as it starts', () => {
    expect(noticesBetween(undefined, transfer(), book())).toEqual([]);
  });
});
