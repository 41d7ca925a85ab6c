import { BatonError } from './client';

/** What the agent is told about a failed call, and what they can do next. */
export interface AgentMessage {
  title: string;
  detail: string;
  /**
   * "retry": the same request may be sent again (same Idempotency-Key);
   * "wait": the same, once `retryAfterS` has passed; "fix": the request must change; "none": nothing to retry.
   */
  next: 'retry' | 'wait' | 'fix' | 'none';
  retryAfterS?: number;
  /** The error code, for the log and for tests. */
  code: string;
}

export type CallPurpose = 'start' | 'cancel' | 'leave' | 'follow';

const STILL_YOURS = 'The customer is still yours.';

/** The agent's message for any failure of a call to Baton: every code of the API, and no answer at all. */
export function explain(error: unknown, purpose: CallPurpose): AgentMessage {
  if (!(error instanceof BatonError)) {
    return { title: 'Something went wrong', detail: `${String((error as Error)?.message ?? error)}. ${STILL_YOURS}`, next: 'retry', code: 'unexpected' };
  }
  const code = error.code;
  const what = { start: 'The transfer was not started', cancel: 'The transfer was not canceled', leave: 'You have not left yet', follow: 'Baton is not answering' }[purpose];
  switch (code) {
    case 'network':
      return { title: `${what}: Baton cannot be reached`, detail: `Check your connection, then retry. ${purpose === 'start' ? STILL_YOURS + ' A retry never starts a second transfer.' : ''}`.trim(), next: 'retry', code };
    case 'timeout':
      return { title: `${what}: Baton did not answer in time`, detail: `Retry: the same request is sent again and never starts a second transfer. ${STILL_YOURS}`, next: 'retry', code };
    case 'missing_token':
    case 'invalid_token':
      return { title: `${what}: Baton could not verify your Flex session`, detail: 'Your Flex session may have expired. Retry; if it fails again, reload Flex and sign in.', next: 'retry', code };
    case 'not_your_task':
      return { title: `${what}: this conversation is not assigned to you`, detail: 'Only the agent who holds the conversation, or a supervisor, can transfer it.', next: 'none', code };
    case 'not_your_transfer':
      return { title: `${what}: this transfer is not yours`, detail: 'Only its sender or a supervisor can act on it.', next: 'none', code };
    case 'task_not_found':
      return { title: `${what}: this task no longer exists`, detail: 'The conversation may have ended already.', next: 'none', code };
    case 'transfer_not_found':
      return { title: `${what}: Baton does not know this transfer`, detail: 'It may have expired from Baton\'s records.', next: 'none', code };
    case 'task_not_assigned':
      return { title: `${what}: no agent holds this conversation`, detail: 'Accept the task first.', next: 'none', code };
    case 'transfer_in_progress':
      return { title: 'A transfer of this conversation is already under way', detail: 'Follow it in the banner, or cancel it before starting another.', next: 'none', code };
    case 'already_accepted':
      return { title: 'Too late to cancel: the transfer was already accepted', detail: 'The other agent has the conversation.', next: 'none', code };
    case 'already_finished':
      return { title: 'The transfer has already ended', detail: STILL_YOURS, next: 'none', code };
    case 'not_warm':
      return { title: 'Nothing to leave: this is a cold transfer', detail: 'You leave by yourself once the other agent accepts.', next: 'none', code };
    case 'not_accepted':
      return { title: 'You can leave only once the other agent has accepted', detail: 'Wait for the acceptance, or cancel the transfer.', next: 'none', code };
    case 'transfers_disabled':
      return { title: `${what}: transfers are turned off`, detail: `An administrator has turned Baton's transfers off. ${STILL_YOURS}`, next: 'none', code };
    case 'notes_disabled':
      return { title: `${what}: notes are turned off`, detail: 'An administrator has turned transfer notes off. Remove the notes and send again.', next: 'fix', code };
    case 'summary_disabled':
      return { title: `${what}: summaries are turned off`, detail: 'An administrator has turned transfer summaries off. Send it without a summary.', next: 'fix', code };
    case 'idempotency_key_reused':
      return { title: `${what}: the request changed after it was first sent`, detail: 'Click Transfer to send it as a new request.', next: 'fix', code };
    case 'invalid_request':
    case 'invalid_json':
      return { title: `${what}: Baton refused the request`, detail: `${error.message}.`, next: 'fix', code };
    case 'rate_limited': {
      const after = error.retryAfterS ?? 5;
      return { title: `${what}: too many requests`, detail: `Baton asks to wait ${after} s before trying again. ${purpose === 'start' ? STILL_YOURS : ''}`.trim(), next: 'wait', retryAfterS: after, code };
    }
    case 'unavailable':
      return { title: `${what}: Baton is briefly unavailable`, detail: `Retry in a moment: the same request is sent again and never starts a second transfer. ${STILL_YOURS}`, next: 'retry', code };
    default:
      if (error.status !== null && error.status >= 500) {
        return { title: `${what}: Baton had a problem (${error.status})`, detail: `Retry in a moment. ${STILL_YOURS}`, next: 'retry', code };
      }
      return { title: `${what} (${error.status ?? 'no answer'})`, detail: error.message, next: error.status === null ? 'retry' : 'none', code };
  }
}
