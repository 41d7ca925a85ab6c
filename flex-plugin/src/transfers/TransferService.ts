import { BatonClient, BatonError, DEFAULT_OPTIONS, newIdempotencyKey } from '../baton/client';
import { NameBook, noticesBetween, type NoticeKind } from '../baton/describe';
import { explain, type AgentMessage } from '../baton/messages';
import { isFinal, type Transfer, type TransferMode, type TransferOptions, type TransferRequest } from '../baton/types';

/**
 * How often a pending transfer is read again (`GET /v1/transfers/{id}`). Baton has no push channel
 * to the browser; an offer lasts 30 s by default (offer_timeout_s), and a rejection is re-routed in
 * milliseconds, so 2 s shows each step to the sender while it matters, for one cheap Redis read a
 * poll (GETs are not rate-limited; the token check is cached by Baton).
 */
export const POLL_MS = 2_000;
/** Once accepted, a warm transfer can last as long as the agents talk: read it less often. */
export const ACCEPTED_POLL_MS = 5_000;
/** After failures, polls back off up to this, or to a 429's Retry-After. */
export const MAX_BACKOFF_MS = 30_000;
/**
 * Wrap-up and complete are blocked while a transfer is pending, but only while Baton answers: after
 * this long without an answer, a Baton that is down must not keep an agent from ending their task.
 */
export const STALE_AFTER_MS = 60_000;
/** The administrator's switches are read again when the form opens and they are older than this. */
export const OPTIONS_TTL_MS = 30_000;

export type NotificationKind = NoticeKind | 'error' | 'blocked';

export interface Draft {
  targetSid: string;
  mode: TransferMode;
}

/** What one task's transfer looks like to the sender, for the form and the banner. */
export interface TaskTransferView {
  taskSid: string;
  /** The transfer form is open, for this target. */
  draft: Draft | null;
  options: TransferOptions | null;
  /** Why `options` are assumed rather than read. */
  optionsNote: string | null;
  submitting: boolean;
  /** Why the last Transfer (or Retry) click failed. */
  error: AgentMessage | null;
  /** The last click: Retry sends exactly this again, with its Idempotency-Key. */
  lastClick: { key: string; request: TransferRequest } | null;
  /** No retry before this time (ms), after a 429. */
  retryNotBefore: number | null;
  transfer: Transfer | null;
  busy: 'cancel' | 'leave' | null;
  /** Cancel or leave was accepted by Baton and is being carried out. */
  requested: 'cancel' | 'leave' | null;
  actionError: AgentMessage | null;
  /** Polling is failing: the banner says so. */
  followError: AgentMessage | null;
  lastHeardAt: number | null;
}

export interface TransferServiceOptions {
  client: BatonClient;
  notify: (kind: NotificationKind, message: string) => void;
  names?: NameBook;
  now?: () => number;
  pollMs?: number;
  acceptedPollMs?: number;
  staleAfterMs?: number;
}

const emptyView = (taskSid: string): TaskTransferView => ({
  taskSid, draft: null, options: null, optionsNote: null, submitting: false, error: null, lastClick: null,
  retryNotBefore: null, transfer: null, busy: null, requested: null, actionError: null, followError: null, lastHeardAt: null,
});

const ACTIVE = (transfer: Transfer | null): transfer is Transfer => Boolean(transfer && !isFinal(transfer));

/**
 * The sender's side of Baton transfers, per task: the form, the request with its Idempotency-Key,
 * the pending transfer followed by polling, cancel and leave, the notifications of each step, and
 * whether Flex's wrap-up and complete must wait. It holds no Flex object: the plugin and the
 * browser test's page both drive it.
 */
export class TransferService {
  readonly names: NameBook;
  private readonly views = new Map<string, TaskTransferView>();
  private readonly listeners = new Set<() => void>();
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly failures = new Map<string, number>();
  private readonly recovered = new Set<string>();
  private optionsCache: { at: number; value: TransferOptions; note: string | null } | null = null;
  private readonly now: () => number;
  private readonly pollMs: number;
  private readonly acceptedPollMs: number;
  private readonly staleAfterMs: number;

  constructor(private readonly options: TransferServiceOptions) {
    this.names = options.names ?? new NameBook();
    this.now = options.now ?? Date.now;
    this.pollMs = options.pollMs ?? POLL_MS;
    this.acceptedPollMs = options.acceptedPollMs ?? ACCEPTED_POLL_MS;
    this.staleAfterMs = options.staleAfterMs ?? STALE_AFTER_MS;
  }

  get client(): BatonClient {
    return this.options.client;
  }

  view(taskSid: string): TaskTransferView {
    return this.views.get(taskSid) ?? emptyView(taskSid);
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Open the form for a target chosen in the directory; refused while a transfer of the task is pending. */
  openForm(taskSid: string, targetSid: string, mode: TransferMode = 'cold'): void {
    const reason = this.blockReason(taskSid);
    if (reason) {
      this.options.notify('blocked', reason);
      return;
    }
    this.update(taskSid, { draft: { targetSid, mode }, error: null, lastClick: null, retryNotBefore: null });
    void this.loadOptions().then(({ value, note }) => this.update(taskSid, { options: value, optionsNote: note }));
    if (!this.names.known(targetSid)) void this.learnName(taskSid, targetSid);
  }

  /** Flex's directory gives the form the target's sid only: Baton names it. Without an answer the form shows the sid. */
  private async learnName(taskSid: string, sid: string): Promise<void> {
    try {
      this.names.remember(await this.client.names([sid]));
    } catch {
      return;
    }
    if (this.view(taskSid).draft?.targetSid === sid) this.update(taskSid, {});
  }

  closeForm(taskSid: string): void {
    this.update(taskSid, { draft: null, error: null, lastClick: null, retryNotBefore: null });
  }

  /** The administrator's switches (cached briefly); Baton's defaults when they cannot be read. */
  async loadOptions(force = false): Promise<{ value: TransferOptions; note: string | null }> {
    if (!force && this.optionsCache && this.now() - this.optionsCache.at < OPTIONS_TTL_MS) return this.optionsCache;
    let value: TransferOptions;
    let note: string | null = null;
    try {
      value = await this.client.transferOptions();
      this.names.remember(Object.fromEntries(value.workflows.map((workflow) => [workflow.sid, workflow.name])));
    } catch (error) {
      value = DEFAULT_OPTIONS;
      note = `Baton's settings could not be read (${explain(error, 'follow').code}): notes are assumed on and the summary off.`;
    }
    this.optionsCache = { at: this.now(), value, note };
    return this.optionsCache;
  }

  /** A click of Transfer: a new Idempotency-Key, kept for Retry. */
  submit(taskSid: string, choice: { mode: TransferMode; notes: string; summary: boolean }): Promise<void> {
    const { draft } = this.view(taskSid);
    if (!draft || this.view(taskSid).submitting) return Promise.resolve();
    const request: TransferRequest = {
      task_sid: taskSid,
      to: draft.targetSid,
      mode: choice.mode,
      notes: choice.notes.trim() ? choice.notes : null,
      summary: choice.summary,
    };
    return this.send(taskSid, { key: newIdempotencyKey(), request });
  }

  /** Retry: the last click's request again, with the same Idempotency-Key (Baton answers with the same transfer). */
  retry(taskSid: string): Promise<void> {
    const { lastClick, submitting, retryNotBefore } = this.view(taskSid);
    if (!lastClick || submitting || (retryNotBefore !== null && this.now() < retryNotBefore)) return Promise.resolve();
    return this.send(taskSid, lastClick);
  }

  private async send(taskSid: string, click: { key: string; request: TransferRequest }): Promise<void> {
    this.update(taskSid, { submitting: true, lastClick: click, error: null, retryNotBefore: null });
    try {
      const transfer = await this.client.createTransfer(click.request, click.key);
      this.names.remember(transfer.names);
      this.update(taskSid, {
        submitting: false, draft: null, lastClick: null, transfer, lastHeardAt: this.now(),
        requested: null, actionError: null, followError: null,
      });
      this.follow(taskSid, transfer, undefined);
    } catch (error) {
      if (error instanceof BatonError && error.code === 'transfer_in_progress' && (await this.adopt(taskSid))) {
        this.update(taskSid, { submitting: false, draft: null, lastClick: null });
        this.options.notify('blocked', 'A transfer of this conversation was already under way: the banner follows it.');
        return;
      }
      const message = explain(error, 'start');
      if (message.code === 'notes_disabled' || message.code === 'summary_disabled' || message.code === 'transfers_disabled') {
        // The switches changed since the form opened: read them again, so the form shows what is allowed.
        void this.loadOptions(true).then(({ value, note }) => this.update(taskSid, { options: value, optionsNote: note }));
      }
      this.update(taskSid, {
        submitting: false,
        error: message,
        retryNotBefore: message.retryAfterS ? this.now() + message.retryAfterS * 1000 : null,
        // Only a failure that Baton may not have seen, or asks to wait out, keeps its key for Retry.
        lastClick: message.next === 'retry' || message.next === 'wait' ? click : null,
      });
    }
  }

  /** Follow the transfer of a task already under way (after a reload of Flex, or a 409), once per task. */
  async recover(taskSid: string): Promise<void> {
    if (this.recovered.has(taskSid) || this.view(taskSid).transfer) return;
    this.recovered.add(taskSid);
    try {
      await this.adopt(taskSid);
    } catch {
      // Nothing to show: Baton may be down, and Flex must go on as if the plugin were not there.
    }
  }

  private async adopt(taskSid: string): Promise<boolean> {
    const transfers = await this.client.transfersOfTask(taskSid);
    const current = [...transfers].reverse().find((transfer) => transfer.task_sid === taskSid && !isFinal(transfer));
    if (!current) return false;
    this.names.remember(current.names);
    this.update(taskSid, { transfer: current, lastHeardAt: this.now(), followError: null });
    this.schedule(taskSid, current);
    return true;
  }

  /** Ask Baton to cancel the pending transfer: the sender keeps the customer. */
  async cancel(taskSid: string): Promise<void> {
    await this.act(taskSid, 'cancel', (id) => this.client.cancelTransfer(id));
  }

  /** The sender of an accepted warm transfer leaves the conversation. */
  async leave(taskSid: string): Promise<void> {
    await this.act(taskSid, 'leave', (id) => this.client.leaveTransfer(id));
  }

  private async act(taskSid: string, what: 'cancel' | 'leave', call: (id: string) => Promise<Transfer>): Promise<void> {
    const { transfer, busy } = this.view(taskSid);
    if (!transfer || busy) return;
    this.update(taskSid, { busy: what, actionError: null });
    try {
      const answer = await call(transfer.id);
      this.names.remember(answer.names);
      this.update(taskSid, { busy: null, requested: what, lastHeardAt: this.now() });
      this.apply(taskSid, answer);
      this.poll(taskSid);
    } catch (error) {
      this.update(taskSid, { busy: null, actionError: explain(error, what) });
      if (error instanceof BatonError && error.status === 409) this.poll(taskSid);
    }
  }

  /** Clear a finished transfer from the banner. */
  dismiss(taskSid: string): void {
    const { transfer } = this.view(taskSid);
    if (transfer && isFinal(transfer)) this.update(taskSid, { transfer: null, requested: null, actionError: null, followError: null });
  }

  /** Forget a task that Flex has completed. */
  forget(taskSid: string): void {
    this.stop(taskSid);
    this.views.delete(taskSid);
    this.emit();
  }

  /**
   * Why Flex must not wrap up, complete or transfer the task now, or null. While a transfer is being
   * started, pending, or accepted and not yet handed over, ending the task would strand the customer.
   */
  blockReason(taskSid: string): string | null {
    const view = this.view(taskSid);
    if (view.submitting) return 'A transfer of this conversation is being started: wait for Baton\'s answer.';
    const transfer = view.transfer;
    if (!ACTIVE(transfer)) return null;
    if (this.isStale(taskSid)) return null;
    const who = this.names.name(transfer.accepted_worker_sid, transfer.names);
    if (transfer.status === 'accepted' && transfer.mode === 'warm') {
      return `${who} accepted your warm transfer: use Leave in the transfer banner to hand the conversation over.`;
    }
    if (transfer.status === 'accepted') return `${who} accepted: Baton is handing the conversation over.`;
    return 'A transfer of this conversation is pending: wait until someone accepts, or cancel it first. The customer stays with you until then.';
  }

  /** Baton has not answered about this task's transfer for a while. */
  isStale(taskSid: string): boolean {
    const { lastHeardAt } = this.view(taskSid);
    return lastHeardAt !== null && this.now() - lastHeardAt >= this.staleAfterMs;
  }

  dispose(): void {
    this.timers.forEach((timer) => clearTimeout(timer));
    this.timers.clear();
    this.listeners.clear();
  }

  private follow(taskSid: string, next: Transfer, previous: Transfer | undefined): void {
    noticesBetween(previous, next, this.names).forEach((notice) => this.options.notify(notice.kind, notice.message));
    this.schedule(taskSid, next);
  }

  private apply(taskSid: string, next: Transfer): void {
    const previous = this.view(taskSid).transfer ?? undefined;
    this.names.remember(next.names);
    this.update(taskSid, { transfer: next, lastHeardAt: this.now(), followError: null });
    noticesBetween(previous, next, this.names).forEach((notice) => this.options.notify(notice.kind, notice.message));
    if (isFinal(next)) this.update(taskSid, { requested: null });
  }

  private schedule(taskSid: string, transfer: Transfer, delay?: number): void {
    this.stop(taskSid);
    if (isFinal(transfer)) return;
    const wait = delay ?? (transfer.status === 'accepted' ? this.acceptedPollMs : this.pollMs);
    this.timers.set(taskSid, setTimeout(() => this.poll(taskSid), wait));
  }

  private stop(taskSid: string): void {
    const timer = this.timers.get(taskSid);
    if (timer !== undefined) clearTimeout(timer);
    this.timers.delete(taskSid);
  }

  private poll(taskSid: string): void {
    const { transfer } = this.view(taskSid);
    if (!transfer) return;
    this.stop(taskSid);
    this.client.getTransfer(transfer.id).then(
      (next) => {
        this.failures.delete(taskSid);
        if (!this.views.has(taskSid)) return;
        this.apply(taskSid, next);
        this.schedule(taskSid, next);
      },
      (error) => {
        if (!this.views.has(taskSid)) return;
        const failures = (this.failures.get(taskSid) ?? 0) + 1;
        this.failures.set(taskSid, failures);
        const message = explain(error, 'follow');
        this.update(taskSid, { followError: message });
        if (message.next === 'none') return; // 403/404: Baton will not tell more; the banner says why.
        const backoff = Math.min(this.pollMs * 2 ** failures, MAX_BACKOFF_MS);
        this.schedule(taskSid, transfer, Math.max(backoff, (message.retryAfterS ?? 0) * 1000));
      },
    );
  }

  private update(taskSid: string, changes: Partial<TaskTransferView>): void {
    this.views.set(taskSid, { ...this.view(taskSid), ...changes });
    this.emit();
  }

  private emit(): void {
    this.listeners.forEach((listener) => listener());
  }
}
