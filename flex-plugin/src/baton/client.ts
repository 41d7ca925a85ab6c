import type { Names, Transfer, TransferOptions, TransferRequest } from './types';

/** What went wrong with a call to Baton: an HTTP answer, no answer at all, or no answer in time. */
export type FailureKind = 'http' | 'network' | 'timeout';

export class BatonError extends Error {
  constructor(
    readonly kind: FailureKind,
    /** Baton's `error.code` (`notes_disabled`, …), or `network` / `timeout`, or `http_502` for an answer without one. */
    readonly code: string,
    message: string,
    readonly status: number | null = null,
    readonly field: string | null = null,
    /** Seconds, from a 429's `Retry-After`. */
    readonly retryAfterS: number | null = null,
  ) {
    super(message);
    this.name = 'BatonError';
  }
}

/** When Baton has no `GET /v1/transfer-options` (an older deployment): notes on, summary off, as Baton's defaults. */
export const DEFAULT_OPTIONS: TransferOptions = {
  transfers_enabled: true,
  notes_enabled: true,
  summary_enabled: false,
  notes_max_length: 1000,
  workflows: [],
  source: 'defaults',
};

export interface BatonClientOptions {
  /** Baton's origin, e.g. https://my-baton.herokuapp.com (FLEX_APP_BATON_URL). */
  baseUrl: string;
  /** The agent's Flex token, read at each call: Flex refreshes it. */
  getToken: () => string | undefined;
  fetch?: typeof fetch;
  /** A call that has not answered by then is abandoned as a timeout (Baton answers in milliseconds). */
  timeoutMs?: number;
}

type Json = Record<string, unknown>;

/**
 * Baton's agent API, called with the agent's own Flex token. Every failure is a BatonError; nothing
 * else is thrown, so a Baton that is down, slow or misconfigured is one clear case for the caller.
 */
export class BatonClient {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;

  constructor(private readonly options: BatonClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** The administrator's switches; Baton's defaults when this Baton does not serve them (404). */
  async transferOptions(): Promise<TransferOptions> {
    try {
      const body = await this.call<Json>('GET', '/v1/transfer-options');
      return {
        transfers_enabled: body.transfers_enabled !== false,
        notes_enabled: body.notes_enabled !== false,
        summary_enabled: body.summary_enabled === true,
        notes_max_length: typeof body.notes_max_length === 'number' ? body.notes_max_length : DEFAULT_OPTIONS.notes_max_length,
        workflows: Array.isArray(body.workflows) ? (body.workflows as TransferOptions['workflows']) : [],
        source: 'baton',
      };
    } catch (error) {
      if (error instanceof BatonError && error.status === 404) return DEFAULT_OPTIONS;
      throw error;
    }
  }

  /** `GET /v1/names`: TaskRouter's friendly names of these workers, queues and workflows (Baton caches them). */
  async names(sids: string[]): Promise<Names> {
    const query = sids.map((sid) => `sid=${encodeURIComponent(sid)}`).join('&');
    const body = await this.call<{ names?: Names }>('GET', `/v1/names?${query}`);
    return body.names ?? {};
  }

  /** `POST /v1/transfers`: the same key returns the same transfer, so a retry never starts a second one. */
  createTransfer(request: TransferRequest, idempotencyKey: string): Promise<Transfer> {
    return this.call('POST', '/v1/transfers', request, { 'Idempotency-Key': idempotencyKey });
  }

  getTransfer(id: string): Promise<Transfer> {
    return this.call('GET', `/v1/transfers/${encodeURIComponent(id)}`);
  }

  async transfersOfTask(taskSid: string): Promise<Transfer[]> {
    const body = await this.call<{ transfers: Transfer[] }>('GET', `/v1/transfers?task_sid=${encodeURIComponent(taskSid)}`);
    return body.transfers ?? [];
  }

  cancelTransfer(id: string): Promise<Transfer> {
    return this.call('POST', `/v1/transfers/${encodeURIComponent(id)}/cancel`);
  }

  leaveTransfer(id: string): Promise<Transfer> {
    return this.call('POST', `/v1/transfers/${encodeURIComponent(id)}/leave`);
  }

  private async call<T>(method: string, path: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<T> {
    const token = this.options.getToken();
    if (!token) {
      throw new BatonError('http', 'missing_token', 'Flex has no token for this session yet', 401);
    }
    const headers: Record<string, string> = { Authorization: `Bearer ${token}`, ...extraHeaders };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const controller = typeof AbortController === 'undefined' ? null : new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller?.abort();
    }, this.timeoutMs);
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.baseUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller?.signal,
        // No cookie is involved: the token is the credential.
        credentials: 'omit',
      });
    } catch (error) {
      if (timedOut) throw new BatonError('timeout', 'timeout', `Baton did not answer within ${this.timeoutMs / 1000} s`);
      throw new BatonError('network', 'network', `Baton could not be reached: ${(error as Error)?.message ?? error}`);
    } finally {
      clearTimeout(timer);
    }
    const payload = await response.json().catch(() => null) as Json | null;
    if (response.ok) return payload as T;
    const problem = (payload?.error ?? {}) as { code?: string; message?: string; field?: string };
    throw new BatonError(
      'http',
      problem.code ?? `http_${response.status}`,
      problem.message ?? `Baton answered ${response.status}`,
      response.status,
      problem.field ?? null,
      retryAfter(response.headers.get('Retry-After')),
    );
  }
}

/** `Retry-After` in seconds: a number of seconds or an HTTP date. */
export function retryAfter(value: string | null, now: number = Date.now()): number | null {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}

/** A fresh Idempotency-Key: one per click of Transfer. */
export function newIdempotencyKey(): string {
  const cryptoApi = typeof globalThis.crypto === 'undefined' ? undefined : globalThis.crypto;
  if (cryptoApi?.randomUUID) return cryptoApi.randomUUID();
  const bytes = new Uint8Array(16);
  if (cryptoApi?.getRandomValues) cryptoApi.getRandomValues(bytes);
  else for (let i = 0; i < 16; i += 1) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
