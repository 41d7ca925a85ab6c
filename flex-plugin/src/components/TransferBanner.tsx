import React from 'react';
import { Box } from '@twilio-paste/core/box';
import { Button } from '@twilio-paste/core/button';
import { Stack } from '@twilio-paste/core/stack';
import { Text } from '@twilio-paste/core/text';

import { describeTransfer, type Tone } from '../baton/describe';
import { isFinal } from '../baton/types';
import { useTaskTransfer } from '../transfers/context';

const COLORS: Record<Tone, { background: 'colorBackgroundNeutralWeakest' | 'colorBackgroundWarningWeakest' | 'colorBackgroundSuccessWeakest' | 'colorBackgroundErrorWeakest'; border: 'colorBorderNeutralWeak' | 'colorBorderWarningWeak' | 'colorBorderSuccessWeak' | 'colorBorderErrorWeak' }> = {
  neutral: { background: 'colorBackgroundNeutralWeakest', border: 'colorBorderNeutralWeak' },
  warning: { background: 'colorBackgroundWarningWeakest', border: 'colorBorderWarningWeak' },
  success: { background: 'colorBackgroundSuccessWeakest', border: 'colorBorderSuccessWeak' },
  error: { background: 'colorBackgroundErrorWeakest', border: 'colorBorderErrorWeak' },
};

/**
 * The sender's banner in the task while a transfer is under way: who it waits for, a decline and
 * where it went next, the outcome; Cancel while pending, Leave once a warm transfer is accepted.
 */
export const TransferBanner: React.FC<{ taskSid: string }> = ({ taskSid }) => {
  const [view, service] = useTaskTransfer(taskSid);
  const { transfer, busy, requested, actionError, followError } = view;
  if (!transfer) return null;
  const { tone, headline, detail } = describeTransfer(transfer, service.names);
  const pending = ['requested', 'routing', 'offered'].includes(transfer.status);
  const canLeave = transfer.status === 'accepted' && transfer.mode === 'warm';
  const stale = service.isStale(taskSid);
  return (
    <Box
      as="section"
      aria-label="Transfer status"
      data-testid="baton-transfer-banner"
      data-status={transfer.status}
      backgroundColor={COLORS[tone].background}
      borderColor={COLORS[tone].border}
      borderStyle="solid"
      borderWidth="borderWidth10"
      borderRadius="borderRadius20"
      padding="space40"
      marginX="space40"
      marginY="space30"
    >
      <Box display="flex" justifyContent="space-between" alignItems="center" columnGap="space40" flexWrap="wrap">
        <Box role="status" aria-live="polite" minWidth="size20">
          <Text as="p" fontWeight="fontWeightSemibold">
            {requested === 'cancel' && pending ? 'Canceling the transfer…' : requested === 'leave' && canLeave ? 'Leaving the conversation…' : headline}
          </Text>
          {detail && (
            <Text as="p" color="colorTextWeak" fontSize="fontSize20">
              {detail}
            </Text>
          )}
        </Box>
        <Stack orientation="horizontal" spacing="space30">
          {pending && requested !== 'cancel' && (
            <Button variant="secondary" size="small" loading={busy === 'cancel'} onClick={() => void service.cancel(taskSid)}>
              Cancel transfer
            </Button>
          )}
          {canLeave && requested !== 'leave' && (
            <Button variant="primary" size="small" loading={busy === 'leave'} onClick={() => void service.leave(taskSid)}>
              Leave conversation
            </Button>
          )}
          {isFinal(transfer) && (
            <Button variant="secondary" size="small" onClick={() => service.dismiss(taskSid)}>
              Dismiss
            </Button>
          )}
        </Stack>
      </Box>
      {actionError && (
        <Text as="p" role="alert" color="colorTextError" fontSize="fontSize20" marginTop="space30">
          {actionError.title}. {actionError.detail}
        </Text>
      )}
      {followError && !isFinal(transfer) && (
        <Text as="p" color="colorTextWarning" fontSize="fontSize20" marginTop="space30">
          {followError.title}: still trying.{' '}
          {stale ? 'Ending the task is allowed again, but Baton may still hand the customer over.' : 'What you see may be a few seconds old.'}
        </Text>
      )}
    </Box>
  );
};
