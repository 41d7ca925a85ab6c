/**
 * The browser test's page: one agent's Flex, reduced to a messaging task with the plugin installed
 * by its real entry point (BatonPlugin.init) into the fake Flex. `window.harness.boot(...)` starts
 * it for the sender (the task, a directory with agents and queues plus the plugin's Workflows tab,
 * and Wrap up) or for the receiver (the task Baton created, as TaskRouter gave it).
 */
import React, { useState } from 'react';
import ReactDOM from 'react-dom';
import { Box } from '@twilio-paste/core/box';
import { Button } from '@twilio-paste/core/button';
import { Heading } from '@twilio-paste/core/heading';
import { Text } from '@twilio-paste/core/text';
import { Theme } from '@twilio-paste/core/theme';
import type * as Flex from '@twilio/flex-ui';

import BatonPlugin from '../src/BatonPlugin';
import * as FakeFlex from './fakeFlex';

interface Target {
  sid: string;
  name: string;
}

interface Boot {
  role: 'sender' | 'receiver';
  agent: string;
  token: string;
  batonUrl: string;
  task: { taskSid: string; attributes: Record<string, unknown>; dateCreated?: string; customer?: string };
  agents?: Target[];
  queues?: Target[];
}

declare global {
  interface Window {
    harnessBatonUrl?: string;
    harness: { boot: (config: Boot) => void; performed: string[] };
  }
}

const flex = FakeFlex as unknown as typeof Flex;

const Directory: React.FC<{ config: Boot; onClose: () => void }> = ({ config, onClose }) => {
  const [tab, setTab] = useState('Agents');
  const task = FakeFlex.TaskHelper.getTaskByTaskSid(config.task.taskSid);
  const transfer = (target: Target): void => {
    // What Flex's own directory does when an agent clicks a row's transfer button.
    void flex.Actions.invokeAction('TransferTask', { task, targetSid: target.sid, options: { mode: 'COLD' } });
  };
  const pluginTabs = FakeFlex.WorkerDirectory.Tabs.Content.added.filter(({ options }) => !options.if || options.if({ task }));
  const labels = ['Agents', 'Queues', ...pluginTabs.map(({ element }) => element.props.label as string)];
  const rows = tab === 'Agents' ? config.agents ?? [] : tab === 'Queues' ? config.queues ?? [] : null;
  return (
    <Box as="section" aria-label="Transfer directory" borderStyle="solid" borderWidth="borderWidth10" borderColor="colorBorderWeak" borderRadius="borderRadius20" margin="space40" padding="space40">
      <Box display="flex" columnGap="space30" role="tablist" aria-label="Directory tabs">
        {labels.map((label) => (
          <Button key={label} role="tab" aria-selected={tab === label} variant={tab === label ? 'primary' : 'secondary'} size="small" onClick={() => setTab(label)}>
            {label}
          </Button>
        ))}
        <Button variant="link" size="small" onClick={onClose}>
          Close directory
        </Button>
      </Box>
      <Box role="tabpanel" aria-label={tab} marginTop="space40">
        {rows
          ? rows.map((target) => (
            <Box key={target.sid} display="flex" justifyContent="space-between" alignItems="center" paddingY="space20">
              <Text as="span">{target.name}</Text>
              <Button variant="secondary" size="small" aria-label={`Transfer to ${target.name}`} onClick={() => transfer(target)}>
                Transfer
              </Button>
            </Box>
          ))
          : (
            <FakeFlex.TaskContext.Provider value={{ task }}>
              {pluginTabs.find(({ element }) => element.props.label === tab)?.element}
            </FakeFlex.TaskContext.Provider>
          )}
      </Box>
    </Box>
  );
};

const AgentDesk: React.FC<{ config: Boot }> = ({ config }) => {
  FakeFlex.useFlexChanges();
  const [directory, setDirectory] = useState(false);
  const [outcome, setOutcome] = useState('');
  const task = FakeFlex.TaskHelper.getTaskByTaskSid(config.task.taskSid);
  FakeFlex.Actions.registerAction('HideDirectory', async () => setDirectory(false));
  const wrapUp = async (): Promise<void> => {
    const before = FakeFlex.performed.length;
    await flex.Actions.invokeAction('WrapupTask', { task });
    setOutcome(FakeFlex.performed.length > before ? 'Flex wrapped the task up.' : 'Flex did not wrap the task up.');
  };
  return (
    <Box padding="space50" maxWidth="size80">
      <Heading as="h1" variant="heading30">
        {config.agent} — Flex ({config.role === 'sender' ? 'the sending agent' : 'the receiving agent'})
      </Heading>
      <Box as="ul" aria-label="Notifications" margin="space0" padding="space0" data-testid="notifications">
        {FakeFlex.shownNotifications.map((notification, index) => (
          // eslint-disable-next-line react/no-array-index-key
          <Box as="li" key={index} listStyleType="none" padding="space30" marginBottom="space20" borderRadius="borderRadius20" data-type={notification.type}
            backgroundColor={{ success: 'colorBackgroundSuccessWeakest', error: 'colorBackgroundErrorWeakest', warning: 'colorBackgroundWarningWeakest', information: 'colorBackgroundNeutralWeakest' }[notification.type] as 'colorBackgroundSuccessWeakest'}>
            <Text as="span">{notification.text}</Text>
          </Box>
        ))}
      </Box>
      <Box as="main" borderStyle="solid" borderWidth="borderWidth10" borderColor="colorBorderWeak" borderRadius="borderRadius30" marginTop="space40">
        <Box display="flex" justifyContent="space-between" alignItems="center" padding="space40" backgroundColor="colorBackground">
          <Heading as="h2" variant="heading40" marginBottom="space0">
            Chat with {config.task.customer ?? 'the customer'}
          </Heading>
          {config.role === 'sender' && (
            <Box display="flex" columnGap="space30">
              <Button variant="secondary" size="small" onClick={() => setDirectory(true)}>Transfer</Button>
              <Button variant="destructive_secondary" size="small" onClick={() => void wrapUp()}>Wrap up</Button>
            </Box>
          )}
        </Box>
        {FakeFlex.TaskCanvas.Content.render({ task })}
        {directory && <Directory config={config} onClose={() => setDirectory(false)} />}
        <Box padding="space40">
          <Text as="p" color="colorTextWeak">(Flex's transcript and message input are here.)</Text>
          {outcome && <Text as="p" data-testid="wrapup-outcome">{outcome}</Text>}
        </Box>
      </Box>
    </Box>
  );
};

window.harness = {
  performed: FakeFlex.performed,
  boot(config: Boot) {
    window.harnessBatonUrl = config.batonUrl;
    const manager = FakeFlex.Manager.getInstance();
    manager.user = { token: config.token, identity: config.agent.toLowerCase(), roles: ['agent'] };
    FakeFlex.addTask({ ...config.task, taskChannelUniqueName: 'chat', dateCreated: config.task.dateCreated ? new Date(config.task.dateCreated) : new Date() });
    new BatonPlugin().init(flex, manager as unknown as Flex.Manager);
    ReactDOM.render(
      <Theme.Provider theme="default">
        <AgentDesk config={config} />
      </Theme.Provider>,
      document.getElementById('root'),
    );
  },
};
