import React from 'react';
import { render, screen } from '@testing-library/react';
import type * as Flex from '@twilio/flex-ui';

import * as FlexMock from '../__mocks__/@twilio/flex-ui';
import BatonPlugin, { installBaton, tokenOf } from '../BatonPlugin';
import { BatonClient } from '../baton/client';
import { NOTIFICATION_IDS, notifier, registerNotifications } from '../flex/notifications';
import { registerActions } from '../flex/actions';
import { TransferService } from '../transfers/TransferService';
import { FakeBaton, OPTIONS, SIDS, transfer } from '../testing/fixtures';

const flex = FlexMock as unknown as typeof Flex;
const manager = () => FlexMock.Manager.getInstance() as unknown as Flex.Manager;

const chatTask = () => FlexMock.__addTask({ taskSid: SIDS.task, taskChannelUniqueName: 'chat', attributes: { conversationSid: 'CH1' } });
const voiceTask = () => FlexMock.__addTask({ taskSid: SIDS.voiceTask, taskChannelUniqueName: 'voice', attributes: { call_sid: 'CA1' } });

function withService(baton = new FakeBaton()) {
  baton.always('GET /v1/transfer-options', { status: 200, body: OPTIONS });
  const client = new BatonClient({ baseUrl: 'https://baton.test', getToken: () => tokenOf(manager()), fetch: baton.fetch as unknown as typeof fetch });
  registerNotifications(flex, manager());
  const notify = notifier(flex);
  const service = new TransferService({ client, notify });
  registerActions(flex, service, notify);
  return { baton, service };
}

beforeEach(() => FlexMock.__reset());

describe('the actions: Flex transfer, wrap-up and complete', () => {
  it('aborts Flex transfer of a messaging task and opens Baton form for the chosen target', async () => {
    const { service } = withService();
    const task = chatTask();
    await flex.Actions.invokeAction('TransferTask', { task, targetSid: SIDS.bob, options: { mode: 'WARM' } });
    expect(FlexMock.performed.map((action) => action.name)).not.toContain('TransferTask');
    expect(service.view(SIDS.task).draft).toEqual({ targetSid: SIDS.bob, mode: 'warm' });
    expect(FlexMock.performed.map((action) => action.name)).toContain('HideDirectory');
  });

  it('leaves the transfer of a voice task to Flex', async () => {
    const { service, baton } = withService();
    const task = voiceTask();
    await flex.Actions.invokeAction('TransferTask', { task, targetSid: SIDS.bob, options: { mode: 'COLD' } });
    expect(FlexMock.performed).toEqual([{ name: 'TransferTask', payload: { task, targetSid: SIDS.bob, options: { mode: 'COLD' } } }]);
    expect(service.view(SIDS.voiceTask).draft).toBeNull();
    expect(baton.calls).toHaveLength(0);
  });

  it('finds the task of a payload that names only its sid', async () => {
    const { service } = withService();
    chatTask();
    await flex.Actions.invokeAction('TransferTask', { sid: SIDS.task, targetSid: SIDS.support });
    expect(service.view(SIDS.task).draft).toEqual({ targetSid: SIDS.support, mode: 'cold' });
  });

  it('blocks wrap-up and complete while a transfer is pending, with a notification, and lets them run after', async () => {
    const baton = new FakeBaton().answer('POST /v1/transfers', { status: 202, body: transfer() });
    const { service } = withService(baton);
    const task = chatTask();
    service.openForm(SIDS.task, SIDS.bob);
    await service.submit(SIDS.task, { mode: 'cold', notes: '', summary: false });
    await flex.Actions.invokeAction('WrapupTask', { task });
    await flex.Actions.invokeAction('CompleteTask', { task });
    expect(FlexMock.performed).toEqual([]);
    expect(FlexMock.Notifications.shown.map((shown) => shown.id)).toEqual([NOTIFICATION_IDS.blocked, NOTIFICATION_IDS.blocked]);
    expect(FlexMock.Notifications.shown[0].context.message).toContain('A transfer of this conversation is pending');

    service.forget(SIDS.task);
    await flex.Actions.invokeAction('CompleteTask', { task });
    expect(FlexMock.performed.map((action) => action.name)).toEqual(['CompleteTask']);
    service.dispose();
  });

  it('forgets a task once Flex has completed it (after-listener)', async () => {
    const { service } = withService();
    const task = chatTask();
    service.openForm(SIDS.task, SIDS.bob);
    await flex.Actions.invokeAction('CompleteTask', { task });
    expect(service.view(SIDS.task).draft).toBeNull();
  });

  it('never blocks a voice task', async () => {
    withService();
    const task = voiceTask();
    await flex.Actions.invokeAction('WrapupTask', { task });
    expect(FlexMock.performed.map((action) => action.name)).toEqual(['WrapupTask']);
  });
});

describe('the plugin', () => {
  it('registers Baton notifications with Flex, their text in manager.strings', () => {
    registerNotifications(flex, manager());
    expect([...FlexMock.Notifications.registeredNotifications.keys()]).toEqual(Object.values(NOTIFICATION_IDS));
    expect(FlexMock.Notifications.registeredNotifications.get(NOTIFICATION_IDS.failed)).toMatchObject({ type: 'error', timeout: 0 });
    expect((manager().strings as unknown as Record<string, string>)[NOTIFICATION_IDS.accepted]).toBe('{{message}}');
  });

  it('calls Baton with the agent Flex token from the manager', () => {
    expect(tokenOf(manager())).toBe('flex-token-of-alice');
    const withoutUser = { store: manager().store } as unknown as Flex.Manager;
    expect(tokenOf(withoutUser)).toBe('sso-token');
  });

  it('adds its box to messaging tasks canvas and a Workflows tab to their transfer directory', () => {
    installBaton(flex, manager(), 'https://baton.test');
    const [box] = FlexMock.TaskCanvas.Content.added;
    const [tab] = FlexMock.WorkerDirectory.Tabs.Content.added;
    expect(box.element.key).toBe('baton-transfer');
    expect(box.options.if({ task: chatTask() })).toBe(true);
    expect(box.options.if({ task: voiceTask() })).toBe(false);
    expect(tab.element.props.label).toBe('Workflows');
    expect(tab.options.if({ task: voiceTask() })).toBe(false);
    expect(FlexMock.Actions.addListener.mock.calls.map(([name]) => name)).toEqual(['beforeTransferTask', 'beforeWrapupTask', 'beforeCompleteTask', 'afterCompleteTask']);
  });

  it('renders the receiver card from the task attributes in the added box, with no request', () => {
    const fetchSpy = jest.fn();
    (global as unknown as { fetch: unknown }).fetch = fetchSpy;
    installBaton(flex, manager(), 'https://baton.test');
    const [box] = FlexMock.TaskCanvas.Content.added;
    const task = { taskSid: SIDS.newTask, attributes: { conversationSid: 'CH1', transfer: { id: 'tr_1', mode: 'cold', from_worker_sid: SIDS.alice, from_task_sid: SIDS.task, notes: 'Refund order 4417' } } };
    render(React.cloneElement(box.element, { task }));
    expect(screen.getByText('Refund order 4417')).toBeInTheDocument();
    // Only the sender-side recovery asks Baton anything, and only about this task's own transfers.
    expect(fetchSpy.mock.calls.every(([url]) => String(url).includes(`task_sid=${SIDS.newTask}`))).toBe(true);
  });

  it('leaves Flex alone when FLEX_APP_BATON_URL is not set', () => {
    const error = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    delete process.env.FLEX_APP_BATON_URL;
    new BatonPlugin().init(flex, manager());
    expect(FlexMock.Actions.addListener).not.toHaveBeenCalled();
    expect(FlexMock.TaskCanvas.Content.add).not.toHaveBeenCalled();
    expect(error).toHaveBeenCalledWith(expect.stringContaining('FLEX_APP_BATON_URL'));
    error.mockRestore();
  });

  it('installs itself when FLEX_APP_BATON_URL is set', () => {
    process.env.FLEX_APP_BATON_URL = 'https://baton.test/';
    new BatonPlugin().init(flex, manager());
    expect(FlexMock.TaskCanvas.Content.add).toHaveBeenCalledTimes(1);
    delete process.env.FLEX_APP_BATON_URL;
  });
});
