/**
 * The shapes of Baton's agent API (README "The agent API", app/schemas.py) and of the new task's
 * `transfer` attribute (docs/contracts.md §2.2), as the plugin reads them. Fields Baton leaves empty come as null.
 */

export type TransferStatus = 'requested' | 'routing' | 'offered' | 'accepted' | 'completed' | 'failed' | 'canceled';
export type TransferMode = 'cold' | 'warm';
export type TargetType = 'worker' | 'queue' | 'workflow';

/** Friendly names of the sids an answer mentions (`WK…` → "Carol"); a sid missing here is shown as the sid. */
export type Names = Record<string, string>;

export interface TimelineEntry {
  at: string;
  state: TransferStatus;
  /** "requested", "offered", "offer rejected", "offer timeout", "re-routing to queue", "accepted", … */
  event: string;
  worker_sid?: string;
  reservation_sid?: string;
  reason?: string;
  code?: number;
}

/** A transfer as `POST /v1/transfers`, `GET /v1/transfers/{id}` and `GET /v1/transfers?task_sid=` serve it. */
export interface Transfer {
  id: string;
  status: TransferStatus;
  mode: TransferMode;
  /** The task transferred (the sender's). */
  task_sid: string;
  from_worker_sid: string;
  /** The target asked for: `WK…`, `WQ…` or `WW…`. */
  to: string;
  target_type: TargetType;
  /** The route in force now: a rejected agent transfer moves to "queue". */
  route?: TargetType | null;
  queue_sid?: string | null;
  new_task_sid?: string | null;
  accepted_worker_sid?: string | null;
  attempt?: number | null;
  notes?: string | null;
  summary_requested?: boolean | null;
  failure?: { reason: string | null; code: number | null } | null;
  created_at?: string | null;
  updated_at?: string | null;
  timeline: TimelineEntry[];
  /** The names Baton knows of the sids above (TaskRouter's friendly names); a sid missing here is shown as the sid. */
  names?: Names;
}

export const ACTIVE_STATUSES: readonly TransferStatus[] = ['requested', 'routing', 'offered', 'accepted'];
export const FINAL_STATUSES: readonly TransferStatus[] = ['completed', 'failed', 'canceled'];

export const isFinal = (transfer: Transfer): boolean => FINAL_STATUSES.includes(transfer.status);

export interface WorkflowOption {
  sid: string;
  name: string;
}

/** `GET /v1/transfer-options`: the administrator's switches, read-only, for any agent. */
export interface TransferOptions {
  transfers_enabled: boolean;
  notes_enabled: boolean;
  summary_enabled: boolean;
  notes_max_length: number;
  /** Workflows an agent may transfer to, by name ([] when TaskRouter could not list them just now: Baton sends null). */
  workflows: WorkflowOption[];
  /** "baton" when Baton answered, "defaults" when the plugin had to assume them. */
  source: 'baton' | 'defaults';
}

export interface TransferRequest {
  task_sid: string;
  to: string;
  mode: TransferMode;
  notes: string | null;
  summary: boolean;
}

export interface ContextMessage {
  role: 'customer' | 'agent' | 'system' | string;
  at: string | null;
  body: string;
}

/** The `transfer` attribute of the task Baton creates for the receiving agent (docs/contracts.md §2.2). */
export interface TransferAttribute {
  id: string;
  mode: TransferMode;
  from_worker_sid: string;
  from_task_sid: string;
  attempt?: number;
  notes?: string | null;
  summary?: string | null;
  context?: {
    messages?: ContextMessage[];
    message_count?: number;
    earlier_transfers?: number;
    subject?: string;
  } | null;
  previous_transfer_id?: string | null;
  earlier_transfers?: number;
  /** The sender's friendly name, as TaskRouter had it when the transfer started. */
  from_worker_name?: string | null;
}
