import { BatonError } from '../baton/client';
import { explain } from '../baton/messages';

const http = (status: number, code: string, retryAfterS: number | null = null) => new BatonError('http', code, `Baton says ${code}`, status, null, retryAfterS);

describe('explain', () => {
  it.each([
    ['401 invalid_token', http(401, 'invalid_token'), 'Baton could not verify your Flex session', 'retry'],
    ['401 missing_token', http(401, 'missing_token'), 'Baton could not verify your Flex session', 'retry'],
    ['403 not_your_task', http(403, 'not_your_task'), 'this conversation is not assigned to you', 'none'],
    ['404 task_not_found', http(404, 'task_not_found'), 'this task no longer exists', 'none'],
    ['409 transfer_in_progress', http(409, 'transfer_in_progress'), 'already under way', 'none'],
    ['409 already_accepted', http(409, 'already_accepted'), 'Too late to cancel', 'none'],
    ['422 transfers_disabled', http(422, 'transfers_disabled'), 'transfers are turned off', 'none'],
    ['422 notes_disabled', http(422, 'notes_disabled'), 'notes are turned off', 'fix'],
    ['422 summary_disabled', http(422, 'summary_disabled'), 'summaries are turned off', 'fix'],
    ['400 invalid_request', http(400, 'invalid_request'), 'Baton refused the request', 'fix'],
    ['422 idempotency_key_reused', http(422, 'idempotency_key_reused'), 'the request changed after it was first sent', 'fix'],
    ['503 unavailable', http(503, 'unavailable'), 'Baton is briefly unavailable', 'retry'],
    ['502 http_502', http(502, 'http_502'), 'Baton had a problem (502)', 'retry'],
    ['no answer', new BatonError('network', 'network', 'Failed to fetch'), 'Baton cannot be reached', 'retry'],
    ['a timeout', new BatonError('timeout', 'timeout', 'no answer'), 'Baton did not answer in time', 'retry'],
  ])('gives the agent a clear message for %s', (_label, error, title, next) => {
    const message = explain(error, 'start');
    expect(message.title).toContain(title);
    expect(message.next).toBe(next);
    expect(message.detail.length).toBeGreaterThan(10);
  });

  it('tells the agent how long a 429 asks to wait', () => {
    const message = explain(http(429, 'rate_limited', 12), 'start');
    expect(message).toMatchObject({ next: 'wait', retryAfterS: 12 });
    expect(message.detail).toContain('12 s');
  });

  it('says the customer is still theirs when a transfer could not start', () => {
    expect(explain(http(503, 'unavailable'), 'start').detail).toContain('The customer is still yours');
    expect(explain(new BatonError('network', 'network', 'x'), 'start').detail).toContain('never starts a second transfer');
  });
});
