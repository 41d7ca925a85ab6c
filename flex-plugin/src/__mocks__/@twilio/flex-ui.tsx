/**
 * @twilio/flex-ui mocked at the boundaries the plugin uses, with Flex's behaviour where it matters:
 * - Actions: before-listeners run first and may abort(); an aborted action neither runs nor calls
 *   its after-listeners; replaceAction wraps the original. What ran is recorded in `performed`.
 * - TaskHelper: messaging (CBM) tasks are those with a conversationSid; tasks are found by sid.
 * - Notifications: registered and shown notifications are recorded.
 * - TaskCanvas / WorkerDirectory.Tabs: content added is recorded with its options.
 * - Manager: a user with a token, strings, and a store.
 */
import React, { createContext, useContext } from 'react';

type Listener = (payload: any, abort: () => void) => unknown;
type Implementation = (payload: any) => Promise<unknown>;

const listeners = new Map<string, Listener[]>();
const implementations = new Map<string, Implementation>();
export const performed: Array<{ name: string; payload: any }> = [];

const implementationOf = (name: string): Implementation => implementations.get(name) ?? (async () => undefined);

export const Actions = {
  addListener: jest.fn((event: string, listener: Listener) => {
    listeners.set(event, [...(listeners.get(event) ?? []), listener]);
  }),
  registerAction: jest.fn((name: string, implementation: Implementation) => {
    implementations.set(name, implementation);
  }),
  replaceAction: jest.fn((name: string, replacement: (payload: any, original: Implementation) => Promise<unknown>) => {
    const original = implementationOf(name);
    implementations.set(name, (payload) => replacement(payload, original));
  }),
  invokeAction: jest.fn(async (name: string, payload: any = {}) => {
    let aborted = false;
    const abort = (): void => {
      aborted = true;
    };
    for (const listener of listeners.get(`before${name}`) ?? []) {
      // eslint-disable-next-line no-await-in-loop
      await listener(payload, abort);
    }
    if (aborted) return undefined;
    const result = await implementationOf(name)(payload);
    performed.push({ name, payload });
    for (const listener of listeners.get(`after${name}`) ?? []) {
      // eslint-disable-next-line no-await-in-loop
      await listener(payload, abort);
    }
    return result;
  }),
};

const tasks = new Map<string, any>();

export const TaskHelper = {
  isCBMTask: jest.fn((task: any) => Boolean(task?.attributes?.conversationSid)),
  getTaskByTaskSid: jest.fn((sid: string) => tasks.get(sid)),
};

export enum NotificationType {
  information = 'information',
  success = 'success',
  warning = 'warning',
  error = 'error',
}

export const Notifications = {
  registeredNotifications: new Map<string, any>(),
  shown: [] as Array<{ id: string; context: any }>,
  registerNotification: jest.fn((notification: any) => {
    Notifications.registeredNotifications.set(notification.id, notification);
  }),
  showNotification: jest.fn((id: string, context?: any) => {
    Notifications.shown.push({ id, context });
    return { id, context };
  }),
};

class ContentStore {
  added: Array<{ element: React.ReactElement; options: any }> = [];

  add = jest.fn((element: React.ReactElement, options?: any) => {
    this.added.push({ element, options: options ?? {} });
  });

  remove = jest.fn();
}

export const TaskCanvas = { Content: new ContentStore() };
export const WorkerDirectory = { Tabs: { Content: new ContentStore() } };

export const Tab: React.FC<{ label: string }> = ({ children }) => <>{children}</>;

export const TaskContext = createContext<{ task?: any }>({});

export function withTaskContext<P>(Component: React.ComponentType<P & { task?: any }>): React.FC<P> {
  return (props: P) => {
    const { task } = useContext(TaskContext);
    return <Component {...props} task={task} />;
  };
}

export class Manager {
  static instance = new Manager();

  user = { token: 'flex-token-of-alice', identity: 'alice', roles: ['agent'] };

  strings: Record<string, string> = {};

  store = { getState: () => ({ flex: { session: { ssoTokenPayload: { token: 'sso-token' } } } }) };

  static getInstance(): Manager {
    return Manager.instance;
  }
}

/** Back to a Flex with no listener, task, notification or content: call in beforeEach. */
export function __reset(): void {
  listeners.clear();
  implementations.clear();
  performed.length = 0;
  tasks.clear();
  Notifications.registeredNotifications.clear();
  Notifications.shown.length = 0;
  TaskCanvas.Content.added.length = 0;
  WorkerDirectory.Tabs.Content.added.length = 0;
  Manager.instance = new Manager();
  jest.clearAllMocks();
}

/** A task Flex knows (TaskHelper.getTaskByTaskSid finds it). */
export function __addTask(task: any): any {
  tasks.set(task.taskSid, task);
  return task;
}
