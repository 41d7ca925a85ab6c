import React from 'react';
import type * as Flex from '@twilio/flex-ui';
import { FlexPlugin } from '@twilio/flex-plugin';

import { BatonClient } from './baton/client';
import type { WorkflowOption } from './baton/types';
import { BatonTaskPanel, type PanelTask } from './components/BatonTaskPanel';
import { ErrorBoundary } from './components/ErrorBoundary';
import { WorkflowsTab } from './components/WorkflowsTab';
import { batonUrl } from './config';
import { isMessagingTask, registerActions } from './flex/actions';
import { notifier, registerNotifications } from './flex/notifications';
import { BatonProvider } from './transfers/context';
import { TransferService } from './transfers/TransferService';

const PLUGIN_NAME = 'BatonPlugin';

/** The agent's Flex token: Baton validates it with Twilio and acts as that agent. */
export function tokenOf(manager: Flex.Manager): string | undefined {
  const state = manager.store?.getState?.() as { flex?: { session?: { ssoTokenPayload?: { token?: string } } } } | undefined;
  return manager.user?.token ?? state?.flex?.session?.ssoTokenPayload?.token;
}

/**
 * Wire Baton into Flex: the actions, the notifications, the task canvas's transfer box (the
 * receiver's card, the sender's banner and form) and the directory's Workflows tab.
 */
export function installBaton(flex: typeof Flex, manager: Flex.Manager, baseUrl: string): TransferService {
  registerNotifications(flex, manager);
  const notify = notifier(flex);
  const client = new BatonClient({ baseUrl, getToken: () => tokenOf(manager) });
  const service = new TransferService({ client, notify });
  registerActions(flex, service, notify);

  const TaskBox: React.FC<{ task?: PanelTask }> = ({ task }) => (
    <BatonProvider service={service}>
      <BatonTaskPanel task={task} />
    </BatonProvider>
  );
  // Between the task's header and its tabs: seen whichever tab is open and on every messaging
  // channel (chat, SMS, WhatsApp, email), and rendered by Flex only, never sent to the customer.
  flex.TaskCanvas.Content.add(<TaskBox key="baton-transfer" />, {
    sortOrder: 1,
    if: (props: { task?: Flex.ITask }) => isMessagingTask(flex, props.task),
  });

  const Workflows = flex.withTaskContext(({ task }: { task?: Flex.ITask }) => {
    const choose = (workflow: WorkflowOption): void => {
      flex.Actions.invokeAction('TransferTask', {
        task,
        targetSid: workflow.sid,
        options: { mode: 'COLD', targetName: workflow.name },
      }).catch(() => undefined);
    };
    return (
      <ErrorBoundary label="the Workflows tab">
        <BatonProvider service={service}>
          <WorkflowsTab onChoose={choose} />
        </BatonProvider>
      </ErrorBoundary>
    );
  });
  flex.WorkerDirectory.Tabs.Content.add(
    <flex.Tab key="baton-workflows" label="Workflows">
      <Workflows />
    </flex.Tab>,
    { sortOrder: 2, if: (props: { task?: Flex.ITask }) => isMessagingTask(flex, props.task) },
  );
  return service;
}

export default class BatonPlugin extends FlexPlugin {
  constructor() {
    super(PLUGIN_NAME);
  }

  /** Called by Flex once, with the Flex UI API and the Manager. */
  init(flex: typeof Flex, manager: Flex.Manager): void {
    const url = batonUrl();
    if (!url) {
      // eslint-disable-next-line no-console
      console.error('Baton plugin: FLEX_APP_BATON_URL is not set in the plugin\'s .env; messaging transfers stay with Flex.');
      return;
    }
    installBaton(flex, manager, url);
  }
}
