import React from 'react';
import { Badge } from '@twilio-paste/core/badge';
import { Box } from '@twilio-paste/core/box';
import { Card } from '@twilio-paste/core/card';
import { Disclosure, DisclosureContent, DisclosureHeading } from '@twilio-paste/core/disclosure';
import { Heading } from '@twilio-paste/core/heading';
import { Text } from '@twilio-paste/core/text';

import { NameBook } from '../baton/describe';
import type { ContextMessage, TransferAttribute } from '../baton/types';

const ROLES: Record<string, string> = { customer: 'Customer', agent: 'Agent', system: 'System' };

export function formatTime(value: string | Date | null | undefined): string | null {
  if (!value) return null;
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return null;
  return date.toLocaleString([], { hour: '2-digit', minute: '2-digit', day: 'numeric', month: 'short' });
}

/** The task's `transfer` attribute, when Baton made this task (docs/contracts.md §2.2); null for any other task. */
export function transferOf(attributes: unknown): TransferAttribute | null {
  const transfer = (attributes as { transfer?: TransferAttribute } | null)?.transfer;
  return transfer && typeof transfer === 'object' && typeof transfer.id === 'string' ? transfer : null;
}

const Section: React.FC<{ title: string }> = ({ title, children }) => (
  <Box marginTop="space40">
    <Heading as="h4" variant="heading60" marginBottom="space0">
      {title}
    </Heading>
    {children}
  </Box>
);

const Message: React.FC<{ message: ContextMessage }> = ({ message }) => (
  <Box as="li" marginBottom="space30" listStyleType="none">
    <Text as="span" fontWeight="fontWeightSemibold" fontSize="fontSize20">
      {ROLES[message.role] ?? message.role}
    </Text>
    {message.at && (
      <Text as="span" color="colorTextWeak" fontSize="fontSize20">
        {' '}
        · {formatTime(message.at)}
      </Text>
    )}
    <Text as="p" whiteSpace="pre-wrap" fontSize="fontSize30">
      {message.body}
    </Text>
  </Box>
);

/**
 * The receiving agent's card: who transferred the conversation and when, the notes, the summary,
 * the earlier transfers and the context excerpt, read from the task's `transfer` attribute as Baton
 * stored it (redacted), with no request of its own. Rendered in Flex's task canvas only: it is never
 * a conversation message, which the customer would receive.
 */
export const TransferCard: React.FC<{ transfer: TransferAttribute; receivedAt?: Date | string | null; names?: NameBook }> = ({ transfer, receivedAt, names }) => {
  const book = names ?? new NameBook();
  const from = transfer.from_worker_name || book.name(transfer.from_worker_sid);
  const when = formatTime(receivedAt ?? null);
  const messages = transfer.context?.messages ?? [];
  const total = transfer.context?.message_count;
  const earlier = transfer.earlier_transfers ?? transfer.context?.earlier_transfers ?? 0;
  return (
    <Box marginX="space40" marginY="space30" data-testid="baton-transfer-card">
      <Card padding="space50">
        <Box as="section" aria-label="Transfer details">
          <Box display="flex" alignItems="center" columnGap="space30" flexWrap="wrap">
            <Heading as="h3" variant="heading50" marginBottom="space0">
              Transferred by {from}
            </Heading>
            <Badge as="span" variant={transfer.mode === 'warm' ? 'new' : 'neutral'}>
              {transfer.mode === 'warm' ? 'Warm: they are still in the conversation' : 'Cold'}
            </Badge>
          </Box>
          <Text as="p" color="colorTextWeak" fontSize="fontSize20">
            {when ? `Received ${when}` : 'Received by transfer'}
          </Text>
          <Section title="Notes">
            <Text as="p" whiteSpace="pre-wrap" data-testid="baton-transfer-notes">
              {transfer.notes || 'No notes.'}
            </Text>
          </Section>
          {transfer.summary && (
            <Section title="Summary">
              <Text as="p" whiteSpace="pre-wrap" data-testid="baton-transfer-summary">
                {transfer.summary}
              </Text>
            </Section>
          )}
          {earlier > 0 && (
            <Section title="Earlier transfers">
              <Text as="p">
                This conversation was transferred {earlier} time{earlier > 1 ? 's' : ''} before this one
                {transfer.previous_transfer_id ? ` (the last: ${transfer.previous_transfer_id})` : ''}.
              </Text>
            </Section>
          )}
          {(messages.length > 0 || transfer.context?.subject) && (
            <Box marginTop="space40">
              <Disclosure variant="default">
                <DisclosureHeading as="h4" variant="heading60">
                  Conversation so far{messages.length ? ` (last ${messages.length}${total ? ` of ${total}` : ''} messages)` : ''}
                </DisclosureHeading>
                <DisclosureContent>
                  {transfer.context?.subject && (
                    <Text as="p" fontWeight="fontWeightSemibold">
                      Subject: {transfer.context.subject}
                    </Text>
                  )}
                  <Box as="ul" margin="space0" padding="space0">
                    {messages.map((message, index) => (
                      <Message key={`${message.at}-${index}`} message={message} />
                    ))}
                  </Box>
                </DisclosureContent>
              </Disclosure>
            </Box>
          )}
        </Box>
      </Card>
    </Box>
  );
};
