/** Sids, transfers and a scripted Baton for the unit tests. */
import type { TimelineEntry, Transfer } from '../baton/types';

const sid = (prefix: string, digit: string): string => `${prefix}${digit.repeat(32)}`;

export const SIDS = {
  alice: sid('WK', 'a'),
  bob: sid('WK', 'b'),
  carol: sid('WK', 'c'),
  support: sid('WQ', '1'),
  billingDesk: sid('WW', '2'),
  task: sid('WT', '3'),
  newTask: sid('WT', '4'),
  voiceTask: sid('WT', '5'),
};

export const NAMES = { [SIDS.alice]: 'Alice', [SIDS.bob]: 'Bob', [SIDS.carol]: 'Carol', [SIDS.support]: 'Support', [SIDS.billingDesk]: 'Billing desk' };

export function entry(event: string, state: TimelineEntry['state'], details: Partial<TimelineEntry> = {}): TimelineEntry {
  return { at: '2026-12-03T10:25:00.000Z', event, state, ...details };
}

/** A cold transfer from Alice to Bob, as Baton answers it just after the request. */
export function transfer(changes: Partial<Transfer> = {}): Transfer {
  return {
    id: 'tr_0123456789abcdef0123456789abcdef',
    status: 'requested',
    mode: 'cold',
    task_sid: SIDS.task,
    from_worker_sid: SIDS.alice,
    to: SIDS.bob,
    target_type: 'worker',
    route: 'worker',
    queue_sid: null,
    new_task_sid: null,
    accepted_worker_sid: null,
    attempt: 0,
    notes: null,
    summary_requested: false,
    failure: null,
    timeline: [entry('requested', 'requested')],
    names: NAMES,
    ...changes,
  };
}

/** The same transfer after Bob declined and Carol, in the Support queue, was offered it. */
export function reroutedToCarol(changes: Partial<Transfer> = {}): Transfer {
  return transfer({
    status: 'offered',
    route: 'queue',
    queue_sid: SIDS.support,
    attempt: 2,
    timeline: [
      entry('requested', 'requested'),
      entry('offered', 'offered', { worker_sid: SIDS.bob }),
      entry('offer rejected', 'offered', { worker_sid: SIDS.bob }),
      entry('re-routing to queue', 'routing'),
      entry('offered', 'offered', { worker_sid: SIDS.carol }),
    ],
    ...changes,
  });
}

export interface Call {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

type Answer = { status: number; body?: unknown; headers?: Record<string, string> } | Error | 'hang';

/** A Baton behind `fetch`: answers are queued per "METHOD path-prefix"; every call is recorded. */
export class FakeBaton {
  readonly calls: Call[] = [];
  private readonly answers = new Map<string, Answer[]>();
  private readonly defaults = new Map<string, Answer>();

  /** Queue one answer for the next call to `METHOD /path` (a prefix of the path and query). */
  answer(route: string, answer: Answer): this {
    this.answers.set(route, [...(this.answers.get(route) ?? []), answer]);
    return this;
  }

  /** The answer once the queued ones are used up. */
  always(route: string, answer: Answer): this {
    this.defaults.set(route, answer);
    return this;
  }

  callsTo(route: string): Call[] {
    const [method, path] = route.split(' ');
    return this.calls.filter((call) => call.method === method && new URL(call.url).pathname.startsWith(path));
  }

  fetch = jest.fn(async (input: string, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input);
    const method = init.method ?? 'GET';
    this.calls.push({ method, url: input, headers: { ...(init.headers as Record<string, string>) }, body: init.body ? JSON.parse(String(init.body)) : undefined });
    const matches = (route: string): boolean => {
      const [m, p] = route.split(' ');
      return m === method && `${url.pathname}${url.search}`.startsWith(p);
    };
    // The most specific route first: "POST /v1/transfers/" (cancel, leave) before "POST /v1/transfers".
    const bySpecificity = (a: string, b: string): number => b.length - a.length;
    const queuedKey = Array.from(this.answers.keys()).filter((route) => matches(route) && this.answers.get(route)!.length).sort(bySpecificity)[0];
    const defaultKey = Array.from(this.defaults.keys()).filter(matches).sort(bySpecificity)[0];
    const answer = queuedKey ? this.answers.get(queuedKey)!.shift()! : defaultKey ? this.defaults.get(defaultKey) : undefined;
    if (!answer) throw new Error(`FakeBaton: no answer for ${method} ${url.pathname}`);
    if (answer === 'hang') {
      return new Promise((_, reject) => init.signal?.addEventListener('abort', () => reject(new Error('aborted'))));
    }
    if (answer instanceof Error) throw answer;
    const headers = new Map(Object.entries(answer.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    return {
      ok: answer.status >= 200 && answer.status < 300,
      status: answer.status,
      headers: { get: (name: string) => headers.get(name.toLowerCase()) ?? null },
      json: async () => {
        if (answer.body === undefined) throw new SyntaxError('no body');
        return answer.body;
      },
    } as unknown as Response;
  });
}

export const error = (status: number, code: string, message = code, headers?: Record<string, string>) => ({
  status,
  body: { error: { code, message } },
  headers,
});

export const OPTIONS = { transfers_enabled: true, notes_enabled: true, summary_enabled: true, notes_max_length: 1000, workflows: [{ sid: SIDS.billingDesk, name: 'Billing desk' }] };
