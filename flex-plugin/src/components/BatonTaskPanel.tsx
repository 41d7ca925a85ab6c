import React, { useEffect } from 'react';

import { useBaton } from '../transfers/context';
import { ErrorBoundary } from './ErrorBoundary';
import { TransferBanner } from './TransferBanner';
import { TransferCard, transferOf } from './TransferCard';
import { TransferForm } from './TransferForm';

/** The part of a task that Flex gives a CBM task's canvas (ITask, reduced to what the plugin reads). */
export interface PanelTask {
  taskSid: string;
  attributes?: unknown;
  dateCreated?: Date | string | null;
}

const Panel: React.FC<{ task: PanelTask }> = ({ task }) => {
  const service = useBaton();
  useEffect(() => {
    // After a reload of Flex, a transfer already under way comes back into view.
    void service.recover(task.taskSid);
  }, [service, task.taskSid]);
  const received = transferOf(task.attributes);
  return (
    <>
      {received && <TransferCard transfer={received} receivedAt={task.dateCreated} names={service.names} />}
      <TransferBanner taskSid={task.taskSid} />
      <TransferForm taskSid={task.taskSid} />
    </>
  );
};

/** Baton's box in a messaging task's canvas: the receiver's card, the sender's banner and form. */
export const BatonTaskPanel: React.FC<{ task?: PanelTask }> = ({ task }) =>
  task?.taskSid ? (
    <ErrorBoundary label="the transfer panel">
      <Panel task={task} />
    </ErrorBoundary>
  ) : null;
