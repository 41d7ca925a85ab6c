import React, { useEffect, useState } from 'react';
import { Box } from '@twilio-paste/core/box';
import { Button } from '@twilio-paste/core/button';
import { Input } from '@twilio-paste/core/input';
import { Label } from '@twilio-paste/core/label';
import { Spinner } from '@twilio-paste/core/spinner';
import { Text } from '@twilio-paste/core/text';
import { useUID } from '@twilio-paste/core/uid-library';

import type { TransferOptions, WorkflowOption } from '../baton/types';
import { useBaton } from '../transfers/context';

/**
 * A tab of Flex's transfer directory listing the workflows an agent may transfer a messaging task
 * to (Baton's `WW…` targets, from `GET /v1/transfer-options`). Choosing one goes through Flex's own
 * TransferTask action, as the directory's agents and queues do.
 */
export const WorkflowsTab: React.FC<{ onChoose: (workflow: WorkflowOption) => void }> = ({ onChoose }) => {
  const service = useBaton();
  const [options, setOptions] = useState<TransferOptions | null>(null);
  const [query, setQuery] = useState('');
  const searchId = useUID();
  useEffect(() => {
    let live = true;
    void service.loadOptions().then(({ value }) => live && setOptions(value));
    return () => {
      live = false;
    };
  }, [service]);

  if (!options) {
    return (
      <Box padding="space50">
        <Spinner decorative={false} title="Loading workflows" />
      </Box>
    );
  }
  if (!options.transfers_enabled) {
    return <Box padding="space50"><Text as="p">Transfers are turned off by an administrator.</Text></Box>;
  }
  const shown = options.workflows.filter((workflow) => workflow.name.toLowerCase().includes(query.trim().toLowerCase()));
  return (
    <Box padding="space50">
      <Label htmlFor={searchId}>Search workflows</Label>
      <Input id={searchId} type="search" value={query} onChange={(event) => setQuery(event.target.value)} />
      {options.workflows.length === 0 ? (
        <Text as="p" marginTop="space50">No workflows to transfer to.</Text>
      ) : (
        <Box as="ul" margin="space0" padding="space0" marginTop="space50" aria-label="Workflows">
          {shown.map((workflow) => (
            <Box
              as="li"
              key={workflow.sid}
              listStyleType="none"
              display="flex"
              alignItems="center"
              justifyContent="space-between"
              paddingY="space30"
              borderBottomStyle="solid"
              borderBottomWidth="borderWidth10"
              borderBottomColor="colorBorderWeaker"
            >
              <Text as="span">{workflow.name}</Text>
              <Button variant="secondary" size="small" aria-label={`Transfer to ${workflow.name}`} onClick={() => onChoose(workflow)}>
                Transfer
              </Button>
            </Box>
          ))}
          {shown.length === 0 && <Text as="p">No workflow matches “{query}”.</Text>}
        </Box>
      )}
    </Box>
  );
};
