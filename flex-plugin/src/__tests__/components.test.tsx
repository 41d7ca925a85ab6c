import React from 'react';
import { act, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { axe } from 'jest-axe';
import { Theme } from '@twilio-paste/core/theme';

import { BatonClient } from '../baton/client';
import { BatonTaskPanel } from '../components/BatonTaskPanel';
import { TransferCard } from '../components/TransferCard';
import { WorkflowsTab } from '../components/WorkflowsTab';
import { BatonProvider } from '../transfers/context';
import { TransferService } from '../transfers/TransferService';
import { FakeBaton, OPTIONS, SIDS, entry, error, reroutedToCarol, transfer } from '../testing/fixtures';

function setup(options: object = OPTIONS) {
  const baton = new FakeBaton().always('GET /v1/transfer-options', { status: 200, body: options }).always('GET /v1/transfers?task_sid=', { status: 200, body: { transfers: [] } });
  const client = new BatonClient({ baseUrl: 'https://baton.test', getToken: () => 'flex-token', fetch: baton.fetch as unknown as typeof fetch });
  const notify = jest.fn();
  const service = new TransferService({ client, notify, pollMs: 60_000 });
  const ui = (children: React.ReactNode) =>
    render(
      <Theme.Provider theme="default">
        <BatonProvider service={service}>{children}</BatonProvider>
      </Theme.Provider>,
    );
  return { baton, service, notify, ui };
}

const task = { taskSid: SIDS.task, attributes: { conversationSid: 'CH1' } };

afterEach(() => jest.useRealTimers());

describe('TransferForm', () => {
  it('counts the notes live against Baton limit and sends cold or warm with the summary', async () => {
    const user = userEvent.setup({ delay: null });
    const { baton, service, ui } = setup({ ...OPTIONS, notes_max_length: 20 });
    baton.answer('POST /v1/transfers', { status: 202, body: transfer({ mode: 'warm' }) });
    ui(<BatonTaskPanel task={task} />);
    act(() => service.openForm(SIDS.task, SIDS.bob));
    const dialog = await screen.findByRole('dialog', { name: 'Transfer to the selected agent' });
    const notes = await within(dialog).findByLabelText('Notes for the next agent');
    expect(within(dialog).getByText('0 / 20 characters')).toBeInTheDocument();
    await user.type(notes, 'Order 4417');
    await waitFor(() => expect(within(dialog).getByText('10 / 20 characters')).toBeInTheDocument());
    await user.type(notes, ' never arrived, refund');
    await waitFor(() => expect(within(dialog).getByText(/32 \/ 20 characters: 12 too many/)).toBeInTheDocument());
    expect(within(dialog).getByRole('button', { name: 'Transfer' })).toBeDisabled();
    await user.clear(notes);
    await user.type(notes, 'Order 4417');
    await user.click(within(dialog).getByLabelText('Warm'));
    await user.click(within(dialog).getByRole('switch'));
    await user.click(within(dialog).getByRole('button', { name: 'Transfer' }));
    await waitFor(() => expect(baton.callsTo('POST /v1/transfers')).toHaveLength(1));
    expect(baton.callsTo('POST /v1/transfers')[0].body).toEqual({ task_sid: SIDS.task, to: SIDS.bob, mode: 'warm', notes: 'Order 4417', summary: true });
    await waitFor(() => expect(screen.queryByRole('dialog')).not.toBeInTheDocument());
    service.dispose();
  });

  it('shows neither notes nor the summary switch when the administrator turned them off', async () => {
    const user = userEvent.setup({ delay: null });
    const { service, ui } = setup({ ...OPTIONS, notes_enabled: false, summary_enabled: false });
    ui(<BatonTaskPanel task={task} />);
    act(() => service.openForm(SIDS.task, SIDS.support));
    const dialog = await screen.findByRole('dialog', { name: 'Transfer to the selected queue' });
    await within(dialog).findByRole('group', { name: 'Transfer type' });
    expect(within(dialog).queryByLabelText('Notes for the next agent')).not.toBeInTheDocument();
    expect(within(dialog).queryByRole('switch')).not.toBeInTheDocument();
  });

  it('explains a failure and offers Retry with the same key', async () => {
    const user = userEvent.setup({ delay: null });
    const { baton, service, ui } = setup();
    baton.answer('POST /v1/transfers', error(503, 'unavailable')).answer('POST /v1/transfers', { status: 202, body: transfer() });
    ui(<BatonTaskPanel task={task} />);
    act(() => service.openForm(SIDS.task, SIDS.bob));
    const dialog = await screen.findByRole('dialog');
    await within(dialog).findByRole('group', { name: 'Transfer type' });
    await user.click(within(dialog).getByRole('button', { name: 'Transfer' }));
    expect(await within(dialog).findByText(/Baton is briefly unavailable/)).toBeInTheDocument();
    expect(await axe(document.body)).toHaveNoViolations();
    await user.click(within(dialog).getByRole('button', { name: 'Retry' }));
    await waitFor(() => expect(baton.callsTo('POST /v1/transfers')).toHaveLength(2));
    const [first, second] = baton.callsTo('POST /v1/transfers');
    expect(second.headers['Idempotency-Key']).toBe(first.headers['Idempotency-Key']);
    service.dispose();
  });

  it('has no accessibility violations', async () => {
    const user = userEvent.setup({ delay: null });
    const { service, ui } = setup();
    ui(<BatonTaskPanel task={task} />);
    act(() => service.openForm(SIDS.task, SIDS.bob));
    const dialog = await screen.findByRole('dialog');
    await within(dialog).findByLabelText('Notes for the next agent');
    expect(await axe(document.body)).toHaveNoViolations();
  });
});

describe('TransferBanner', () => {
  async function pendingWith(body: object, ui: ReturnType<typeof setup>) {
    ui.baton.answer('POST /v1/transfers', { status: 202, body });
    ui.ui(<BatonTaskPanel task={task} />);
    act(() => ui.service.openForm(SIDS.task, SIDS.bob));
    await act(async () => {
      await ui.service.submit(SIDS.task, { mode: 'cold', notes: '', summary: false });
    });
    return screen.getByRole('region', { name: 'Transfer status' });
  }

  it('shows the re-route and cancels the transfer', async () => {
    const user = userEvent.setup({ delay: null });
    const context = setup();
    const banner = await pendingWith(reroutedToCarol(), context);
    expect(within(banner).getByRole('status')).toHaveTextContent('Bob declined — offered to the Support queue');
    expect(within(banner).getByRole('status')).toHaveTextContent('Now offered to Carol');
    expect(await axe(banner)).toHaveNoViolations();
    context.baton.answer('POST /v1/transfers/', { status: 202, body: reroutedToCarol() });
    await user.click(within(banner).getByRole('button', { name: 'Cancel transfer' }));
    await waitFor(() => expect(within(banner).getByRole('status')).toHaveTextContent('Canceling the transfer…'));
    expect(context.baton.callsTo('POST /v1/transfers/')[0].url).toMatch(/\/cancel$/);
    context.service.dispose();
  });

  it('offers Leave once a warm transfer is accepted', async () => {
    const user = userEvent.setup({ delay: null });
    const context = setup();
    const banner = await pendingWith(transfer({ mode: 'warm', status: 'accepted', accepted_worker_sid: SIDS.carol }), context);
    expect(within(banner).getByRole('status')).toHaveTextContent('Carol accepted: you are both in the conversation');
    expect(within(banner).queryByRole('button', { name: 'Cancel transfer' })).not.toBeInTheDocument();
    context.baton.answer('POST /v1/transfers/', { status: 202, body: transfer({ mode: 'warm', status: 'accepted', accepted_worker_sid: SIDS.carol }) });
    await user.click(within(banner).getByRole('button', { name: 'Leave conversation' }));
    await waitFor(() => expect(within(banner).getByRole('status')).toHaveTextContent('Leaving the conversation…'));
    context.service.dispose();
  });

  it('tells the sender the customer is still theirs after a failure, and can be dismissed', async () => {
    const user = userEvent.setup({ delay: null });
    const context = setup();
    const failed = transfer({ status: 'failed', failure: { reason: 'no agent accepted after 5 offers', code: null }, timeline: [entry('max attempts reached', 'failed')] });
    const banner = await pendingWith(failed, context);
    expect(within(banner).getByRole('status')).toHaveTextContent('No one accepted: the customer is still yours');
    await user.click(within(banner).getByRole('button', { name: 'Dismiss' }));
    expect(screen.queryByRole('region', { name: 'Transfer status' })).not.toBeInTheDocument();
  });
});

describe('TransferCard', () => {
  const received = {
    id: 'tr_1',
    mode: 'warm' as const,
    from_worker_sid: SIDS.alice,
    from_task_sid: SIDS.task,
    attempt: 2,
    notes: 'Wants a refund for order 4417. Card [redacted].',
    summary: 'Customer says order 4417 never arrived.',
    previous_transfer_id: 'tr_0',
    earlier_transfers: 1,
    context: {
      messages: [
        { role: 'customer', at: '2026-12-03T10:20:00Z', body: 'Hi, my order 4417 never arrived.' },
        { role: 'agent', at: '2026-12-03T10:21:00Z', body: 'Sorry to hear that, let me check.' },
      ],
      message_count: 14,
      earlier_transfers: 1,
      subject: 'Order 4417',
    },
  };

  it('shows who sent it, the notes, the summary, the earlier transfers and the context', async () => {
    const user = userEvent.setup({ delay: null });
    render(<Theme.Provider theme="default"><TransferCard transfer={{ ...received, from_worker_name: 'Alice' }} receivedAt="2026-12-03T10:25:00Z" /></Theme.Provider>);
    const card = screen.getByRole('region', { name: 'Transfer details' });
    expect(within(card).getByRole('heading', { name: 'Transferred by Alice' })).toBeInTheDocument();
    expect(within(card).getByText('Warm: they are still in the conversation')).toBeInTheDocument();
    expect(within(card).getByText(received.notes)).toBeInTheDocument();
    expect(within(card).getByText(received.summary)).toBeInTheDocument();
    expect(within(card).getByText(/transferred 1 time before this one \(the last: tr_0\)/)).toBeInTheDocument();
    await user.click(within(card).getByRole('button', { name: 'Conversation so far (last 2 of 14 messages)' }));
    await waitFor(() => expect(within(card).getByText('Hi, my order 4417 never arrived.')).toBeVisible());
    expect(within(card).getByText('Subject: Order 4417')).toBeVisible();
  });

  it('shows the sender sid when no name is known', () => {
    render(<TransferCard transfer={received} />);
    expect(screen.getByRole('heading', { name: `Transferred by ${SIDS.alice}` })).toBeInTheDocument();
  });

  it('has no accessibility violations', async () => {
    const user = userEvent.setup({ delay: null });
    const { container } = render(<Theme.Provider theme="default"><TransferCard transfer={received} receivedAt="2026-12-03T10:25:00Z" /></Theme.Provider>);
    expect(await axe(container)).toHaveNoViolations();
  });
});

describe('WorkflowsTab', () => {
  it('lists the workflows Baton offers, filters them, and hands the chosen one to Flex transfer', async () => {
    const user = userEvent.setup({ delay: null });
    const { ui } = setup({ ...OPTIONS, workflows: [{ sid: SIDS.billingDesk, name: 'Billing desk' }, { sid: 'WW' + '9'.repeat(32), name: 'VIP' }] });
    const choose = jest.fn();
    const { container } = ui(<WorkflowsTab onChoose={choose} />);
    await screen.findByRole('list', { name: 'Workflows' });
    expect(await axe(container)).toHaveNoViolations();
    await user.type(screen.getByLabelText('Search workflows'), 'bill');
    expect(screen.queryByText('VIP')).not.toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Transfer to Billing desk' }));
    expect(choose).toHaveBeenCalledWith({ sid: SIDS.billingDesk, name: 'Billing desk' });
  });

  it('says when Baton lists no workflow', async () => {
    const user = userEvent.setup({ delay: null });
    const { ui } = setup({ transfers_enabled: true, notes_enabled: true, summary_enabled: false, notes_max_length: 1000 });
    ui(<WorkflowsTab onChoose={jest.fn()} />);
    expect(await screen.findByText('No workflows to transfer to.')).toBeInTheDocument();
  });
});
