import React, { useEffect, useState } from 'react';
import { Box } from '@twilio-paste/core/box';
import { Button } from '@twilio-paste/core/button';
import { Callout, CalloutHeading, CalloutText } from '@twilio-paste/core/callout';
import { HelpText } from '@twilio-paste/core/help-text';
import { Label } from '@twilio-paste/core/label';
import { Modal, ModalBody, ModalFooter, ModalFooterActions, ModalHeader, ModalHeading } from '@twilio-paste/core/modal';
import { Radio, RadioGroup } from '@twilio-paste/core/radio-group';
import { Spinner } from '@twilio-paste/core/spinner';
import { Stack } from '@twilio-paste/core/stack';
import { Switch, SwitchContainer } from '@twilio-paste/core/switch';
import { Text } from '@twilio-paste/core/text';
import { TextArea } from '@twilio-paste/core/textarea';
import { useUID } from '@twilio-paste/core/uid-library';

import { targetPhrase } from '../baton/describe';
import type { TransferMode } from '../baton/types';
import { useTaskTransfer, useTick } from '../transfers/context';

/**
 * The transfer form, opened when the agent picks a target in Flex's directory (or the Workflows
 * tab): cold or warm, notes with a live count against Baton's limit, the summary switch; each shown
 * only when the administrator's switches allow it. Transfer makes a new Idempotency-Key; Retry
 * resends the same request with the same key.
 */
export const TransferForm: React.FC<{ taskSid: string }> = ({ taskSid }) => {
  const [view, service] = useTaskTransfer(taskSid);
  const { draft, options, optionsNote, submitting, error, lastClick, retryNotBefore } = view;
  const [mode, setMode] = useState<TransferMode>('cold');
  const [notes, setNotes] = useState('');
  const [summary, setSummary] = useState(false);
  const headingId = useUID();
  const notesId = useUID();
  const countId = useUID();
  const now = useTick(retryNotBefore !== null);
  const draftKey = draft ? `${draft.targetSid}:${draft.mode}` : null;

  useEffect(() => {
    // A new form for each target chosen.
    if (draft) {
      setMode(draft.mode);
      setNotes('');
      setSummary(false);
    }
  }, [draftKey]); // eslint-disable-line react-hooks/exhaustive-deps

  if (!draft) return null;
  // Flex's directory passes the target's sid only: its name when Baton or the Workflows tab told it.
  const named = service.names.known(draft.targetSid);
  const kind = draft.targetSid.startsWith('WQ') ? 'queue' : draft.targetSid.startsWith('WW') ? 'workflow' : 'agent';
  const target = named ? targetPhrase(draft.targetSid, service.names) : `the selected ${kind}`;
  const max = options?.notes_max_length ?? 1000;
  const notesAllowed = options?.notes_enabled ?? false;
  const summaryAllowed = options?.summary_enabled ?? false;
  const tooLong = notesAllowed && notes.length > max;
  const disabled = !options || !options.transfers_enabled;
  const waitS = retryNotBefore !== null ? Math.max(0, Math.ceil((retryNotBefore - now) / 1000)) : 0;

  const submit = (): void => {
    void service.submit(taskSid, { mode, notes: notesAllowed ? notes : '', summary: summaryAllowed && summary });
  };

  return (
    <Modal ariaLabelledby={headingId} isOpen onDismiss={() => service.closeForm(taskSid)} size="default">
      <ModalHeader>
        <ModalHeading as="h3" id={headingId}>
          Transfer to {target}
        </ModalHeading>
      </ModalHeader>
      <ModalBody>
        {!named && (
          <Text as="p" color="colorTextWeak" fontSize="fontSize20" marginBottom="space40">
            {kind[0].toUpperCase()}{kind.slice(1)} {draft.targetSid}
          </Text>
        )}
        {!options ? (
          <Box display="flex" columnGap="space30" alignItems="center">
            <Spinner decorative={false} title="Loading" /> Reading Baton's settings…
          </Box>
        ) : (
          <Stack orientation="vertical" spacing="space60">
            {optionsNote && (
              <Callout variant="neutral">
                <CalloutText>{optionsNote}</CalloutText>
              </Callout>
            )}
            {!options.transfers_enabled && (
              <Callout variant="error">
                <CalloutHeading as="h4">Transfers are turned off</CalloutHeading>
                <CalloutText>An administrator has turned Baton's transfers off. The customer stays with you.</CalloutText>
              </Callout>
            )}
            <RadioGroup
              name={`baton-mode-${taskSid}`}
              legend="Transfer type"
              value={mode}
              onChange={(value) => setMode(value as TransferMode)}
              disabled={disabled}
            >
              <Radio id={`${headingId}-cold`} value="cold" helpText="You leave the conversation as soon as they accept.">
                Cold
              </Radio>
              <Radio id={`${headingId}-warm`} value="warm" helpText="They join you; you leave when you are ready.">
                Warm
              </Radio>
            </RadioGroup>
            {notesAllowed && (
              <Box>
                <Label htmlFor={notesId}>Notes for the next agent</Label>
                <TextArea
                  id={notesId}
                  name="notes"
                  value={notes}
                  onChange={(event) => setNotes(event.target.value)}
                  aria-describedby={countId}
                  hasError={tooLong}
                  disabled={disabled}
                  placeholder="What they need to know: never shown to the customer"
                />
                <HelpText id={countId} variant={tooLong ? 'error' : 'default'}>
                  {notes.length} / {max} characters{tooLong ? `: ${notes.length - max} too many` : ''}
                </HelpText>
              </Box>
            )}
            {summaryAllowed && (
              <SwitchContainer label="Add a summary of the conversation" helpText="Baton writes it for the next agent." disabled={disabled}>
                <Switch on={summary} onClick={() => setSummary(!summary)} disabled={disabled} />
              </SwitchContainer>
            )}
            {error && (
              <Callout variant="error">
                <CalloutHeading as="h4">{error.title}</CalloutHeading>
                <CalloutText>{error.detail}</CalloutText>
                {lastClick && (
                  <Box marginTop="space40">
                    <Button variant="secondary" size="small" onClick={() => void service.retry(taskSid)} disabled={waitS > 0 || submitting}>
                      {waitS > 0 ? `Retry in ${waitS} s` : 'Retry'}
                    </Button>
                  </Box>
                )}
              </Callout>
            )}
          </Stack>
        )}
      </ModalBody>
      <ModalFooter>
        <ModalFooterActions>
          <Button variant="secondary" onClick={() => service.closeForm(taskSid)}>
            Close
          </Button>
          <Button variant="primary" onClick={submit} loading={submitting} disabled={disabled || tooLong}>
            Transfer
          </Button>
        </ModalFooterActions>
      </ModalFooter>
    </Modal>
  );
};
