import type * as Flex from '@twilio/flex-ui';

import type { NotificationKind, TransferService } from '../transfers/TransferService';

type Payload = { task?: Flex.ITask; sid?: string; targetSid?: string; options?: { mode?: string; targetName?: string } };
type Abort = () => void;

/** The task an action is about: its payload's task, or the task of its sid. */
function taskOf(flex: typeof Flex, payload: Payload): Flex.ITask | undefined {
  if (payload?.task) return payload.task;
  return payload?.sid ? flex.TaskHelper.getTaskByTaskSid(payload.sid) : undefined;
}

/** A messaging task (chat, SMS, WhatsApp, email over Conversations): Baton's; voice stays Flex's. */
export function isMessagingTask(flex: typeof Flex, task: Flex.ITask | undefined): task is Flex.ITask {
  try {
    return Boolean(task) && flex.TaskHelper.isCBMTask(task as Flex.ITask);
  } catch {
    return false;
  }
}

/**
 * Take over Flex's transfer of messaging tasks, and keep the sender from ending a task whose
 * transfer is pending:
 * - beforeTransferTask: for a messaging task, abort Flex's transfer and open Baton's form for the
 *   target picked in the directory (voice goes on to Flex's own transfer, untouched);
 * - beforeWrapupTask, beforeCompleteTask: abort while the task's transfer is pending or accepted
 *   and not yet handed over, and say why;
 * - afterCompleteTask: forget the task.
 * A listener never throws into Flex: a fault of the plugin leaves Flex's action to run as usual.
 */
export function registerActions(flex: typeof Flex, service: TransferService, notify: (kind: NotificationKind, message: string) => void): void {
  flex.Actions.addListener('beforeTransferTask', (payload: Payload, abort: Abort) => {
    const task = taskOf(flex, payload);
    if (!isMessagingTask(flex, task) || !payload.targetSid) return;
    abort();
    try {
      const mode = String(payload.options?.mode ?? '').toUpperCase() === 'WARM' ? 'warm' : 'cold';
      if (payload.options?.targetName) service.names.remember({ [payload.targetSid]: payload.options.targetName });
      service.openForm(task.taskSid, payload.targetSid, mode);
    } catch (error) {
      notify('error', `The transfer form could not open: ${(error as Error)?.message ?? error}. The customer is still yours.`);
    }
    flex.Actions.invokeAction('HideDirectory').catch(() => undefined);
  });

  const holdWhilePending = (payload: Payload, abort: Abort): void => {
    try {
      const task = taskOf(flex, payload);
      if (!isMessagingTask(flex, task)) return;
      const reason = service.blockReason(task.taskSid);
      if (reason) {
        abort();
        notify('blocked', reason);
      }
    } catch (error) {
      // eslint-disable-next-line no-console
      console.error('Baton plugin: could not check for a pending transfer', error);
    }
  };
  flex.Actions.addListener('beforeWrapupTask', holdWhilePending);
  flex.Actions.addListener('beforeCompleteTask', holdWhilePending);

  flex.Actions.addListener('afterCompleteTask', (payload: Payload) => {
    const sid = payload?.task?.taskSid ?? payload?.sid;
    if (sid) service.forget(sid);
  });
}
