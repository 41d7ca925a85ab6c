import type { Names, TimelineEntry, Transfer } from './types';

/**
 * Names seen in Baton's answers during this session (and given by the workflows list), so that a
 * sid shown to a person is a name wherever the plugin has ever been told it.
 */
export class NameBook {
  private readonly names = new Map<string, string>();

  remember(names: Names | undefined | null): void {
    if (!names) return;
    Object.entries(names).forEach(([sid, name]) => {
      if (typeof name === 'string' && name.trim()) this.names.set(sid, name);
    });
  }

  /** The friendly name of a sid, or the sid itself. */
  name(sid: string | null | undefined, names?: Names | null): string {
    if (!sid) return 'someone';
    return names?.[sid] ?? this.names.get(sid) ?? sid;
  }

  known(sid: string, names?: Names | null): boolean {
    return Boolean(names?.[sid] ?? this.names.get(sid));
  }
}

/** "Carol", "the Support queue", "the Billing desk workflow", or for an unknown sid "queue WQ…". */
export function targetPhrase(sid: string | null | undefined, book: NameBook, names?: Names | null): string {
  if (!sid) return 'a queue';
  const kind = sid.startsWith('WQ') ? 'queue' : sid.startsWith('WW') ? 'workflow' : null;
  if (!kind) return book.name(sid, names);
  return book.known(sid, names) ? `the ${book.name(sid, names)} ${kind}` : `${kind} ${sid}`;
}

export type Tone = 'neutral' | 'warning' | 'success' | 'error';

export interface Description {
  tone: Tone;
  headline: string;
  detail?: string;
}

const DECLINES = new Set(['offer rejected', 'offer timeout']);
const NO_ONE_ACCEPTED = new Set(['max attempts reached', 'transfer timeout', 'workflow timeout']);

const lastEntry = (transfer: Transfer, match: (entry: TimelineEntry) => boolean): TimelineEntry | undefined =>
  [...(transfer.timeline ?? [])].reverse().find(match);

const declines = (transfer: Transfer): TimelineEntry[] => (transfer.timeline ?? []).filter((entry) => DECLINES.has(entry.event));

/** Where the transfer is being offered now: the target agent, or the queue or workflow it moved to. */
function currentRoute(transfer: Transfer, book: NameBook): string {
  const names = transfer.names;
  if ((transfer.route ?? transfer.target_type) === 'queue') return targetPhrase(transfer.queue_sid ?? transfer.to, book, names);
  return targetPhrase(transfer.to, book, names);
}

function declineLine(transfer: Transfer, decline: TimelineEntry, book: NameBook): string {
  const who = book.name(decline.worker_sid, transfer.names);
  const verb = decline.event === 'offer timeout' ? 'did not answer' : 'declined';
  const next = (transfer.route ?? transfer.target_type) === 'workflow'
    ? `${targetPhrase(transfer.to, book, transfer.names)} routes it on`
    : `offered to ${currentRoute(transfer, book)}`;
  return `${who} ${verb} — ${next}`;
}

/** The pending banner's words for the sender, at any step of the transfer. */
export function describeTransfer(transfer: Transfer, book: NameBook): Description {
  const names = transfer.names;
  const target = targetPhrase(transfer.to, book, names);
  const accepted = book.name(transfer.accepted_worker_sid, names);
  const decline = lastEntry(transfer, (entry) => DECLINES.has(entry.event));
  const offer = lastEntry(transfer, (entry) => entry.event === 'offered');
  const offeredAfterDecline = offer && (!decline || transfer.timeline.indexOf(offer) > transfer.timeline.indexOf(decline));
  const attempt = transfer.attempt ? ` (offer ${transfer.attempt})` : '';
  switch (transfer.status) {
    case 'requested':
      return { tone: 'neutral', headline: `Starting the transfer to ${target}…`, detail: 'The customer stays with you until someone accepts.' };
    case 'routing':
    case 'offered': {
      const detail = transfer.status === 'offered' && offer && offeredAfterDecline
        ? `Now offered to ${book.name(offer.worker_sid, names)}${attempt}. The customer stays with you until someone accepts.`
        : 'The customer stays with you until someone accepts.';
      if (decline) return { tone: 'warning', headline: declineLine(transfer, decline, book), detail };
      if (transfer.target_type === 'worker' && (transfer.route ?? 'worker') === 'queue') {
        return { tone: 'warning', headline: `${target} is not available — offered to ${currentRoute(transfer, book)}`, detail };
      }
      if (transfer.target_type === 'worker') return { tone: 'neutral', headline: `Waiting for ${target}…`, detail };
      return { tone: 'neutral', headline: `Waiting for an agent in ${target}…`, detail };
    }
    case 'accepted':
      return transfer.mode === 'warm'
        ? { tone: 'success', headline: `${accepted} accepted: you are both in the conversation`, detail: `Leave when you are ready; the customer stays with ${accepted}.` }
        : { tone: 'success', headline: `${accepted} accepted — handing the conversation over…` };
    case 'completed':
      return transfer.accepted_worker_sid
        ? { tone: 'success', headline: `Transferred to ${accepted}`, detail: transfer.mode === 'warm' ? 'You have left the conversation.' : undefined }
        : { tone: 'success', headline: `Handed to ${currentRoute(transfer, book)}`, detail: 'The next available agent there gets the conversation.' };
    case 'failed': {
      const end = lastEntry(transfer, (entry) => entry.state === 'failed');
      const reason = transfer.failure?.reason ?? end?.reason ?? 'unknown reason';
      return NO_ONE_ACCEPTED.has(end?.event ?? '')
        ? { tone: 'error', headline: 'No one accepted: the customer is still yours', detail: `Reason: ${reason}.` }
        : { tone: 'error', headline: 'The transfer failed: the customer is still yours', detail: `Reason: ${reason}.` };
    }
    case 'canceled': {
      const end = lastEntry(transfer, (entry) => entry.state === 'canceled');
      return end?.reason
        ? { tone: 'neutral', headline: 'Transfer canceled', detail: `${end.reason[0].toUpperCase()}${end.reason.slice(1)}.` }
        : { tone: 'neutral', headline: 'Transfer canceled: the customer is still yours' };
    }
    default:
      return { tone: 'neutral', headline: `Transfer ${transfer.status}` };
  }
}

export type NoticeKind = 'accepted' | 'rerouted' | 'failed' | 'canceled';

export interface Notice {
  kind: NoticeKind;
  message: string;
}

/** The Flex notifications that the move from `previous` to `next` deserves (none for a transfer seen for the first time as it is). */
export function noticesBetween(previous: Transfer | undefined, next: Transfer, book: NameBook): Notice[] {
  const notices: Notice[] = [];
  const names = next.names;
  if (previous?.status === next.status && declines(previous).length === declines(next).length) return notices;
  const newDeclines = declines(next).length - (previous ? declines(previous).length : 0);
  if (newDeclines > 0 && (next.status === 'routing' || next.status === 'offered')) {
    notices.push({ kind: 'rerouted', message: declineLine(next, declines(next)[declines(next).length - 1], book) });
  }
  if (previous?.status === next.status) return notices;
  const who = book.name(next.accepted_worker_sid, names);
  const wasAccepted = previous?.status === 'accepted';
  if (next.status === 'accepted') {
    notices.push({
      kind: 'accepted',
      message: next.mode === 'warm' ? `${who} accepted your warm transfer: leave the conversation when you are ready.` : `${who} accepted the conversation.`,
    });
  } else if (next.status === 'completed' && !wasAccepted) {
    notices.push({ kind: 'accepted', message: `${describeTransfer(next, book).headline}.` });
  } else if (next.status === 'failed') {
    const { headline, detail } = describeTransfer(next, book);
    notices.push({ kind: 'failed', message: `${headline}. ${detail ?? ''}`.trim() });
  } else if (next.status === 'canceled') {
    const { headline, detail } = describeTransfer(next, book);
    notices.push({ kind: 'canceled', message: `${headline}. ${detail ?? ''}`.trim() });
  }
  return notices;
}
