import type * as Flex from '@twilio/flex-ui';

import type { NotificationKind } from '../transfers/TransferService';

/** Flex notification ids, one per kind of news about a transfer. */
export const NOTIFICATION_IDS: Record<NotificationKind, string> = {
  accepted: 'BatonTransferAccepted',
  rerouted: 'BatonTransferRerouted',
  failed: 'BatonTransferFailed',
  canceled: 'BatonTransferCanceled',
  error: 'BatonTransferError',
  blocked: 'BatonTransferBlocked',
};

const TYPES: Record<NotificationKind, 'success' | 'information' | 'warning' | 'error'> = {
  accepted: 'success',
  rerouted: 'warning',
  failed: 'error',
  canceled: 'information',
  error: 'error',
  blocked: 'warning',
};

/** Register the notifications (their text is a template of manager.strings, `{{message}}`, as Flex's own are). */
export function registerNotifications(flex: typeof Flex, manager: Flex.Manager): void {
  (Object.keys(NOTIFICATION_IDS) as NotificationKind[]).forEach((kind) => {
    const id = NOTIFICATION_IDS[kind];
    (manager.strings as unknown as Record<string, string>)[id] = '{{message}}';
    flex.Notifications.registerNotification({
      id,
      content: id,
      type: flex.NotificationType[TYPES[kind]],
      closeButton: true,
      // A failure stays until the agent has read it; the rest fade after Flex's usual 8 s.
      timeout: kind === 'failed' ? 0 : 8000,
    });
  });
}

export function notifier(flex: typeof Flex): (kind: NotificationKind, message: string) => void {
  return (kind, message) => {
    try {
      flex.Notifications.showNotification(NOTIFICATION_IDS[kind], { message });
    } catch (error) {
      // eslint-disable-next-line no-console
      console.error('Baton plugin: a notification could not be shown', error);
    }
  };
}
