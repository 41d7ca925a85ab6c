/**
 * The few parts of Flex UI the plugin touches, for the browser test's page (Flex itself cannot run
 * without a Twilio account): the actions framework with before/after listeners and abort, TaskHelper,
 * notifications shown in the page, the task canvas's and the directory's content stores, Tab and
 * withTaskContext. Bundled in place of @twilio/flex-ui by harness/build.js.
 */
import React, { createContext, useContext, useEffect, useState } from 'react';

type Listener = (payload: any, abort: () => void) => unknown;
const listeners = new Map<string, Listener[]>();
const implementations = new Map<string, (payload: any) => Promise<unknown>>();
export const performed: string[] = [];
const changed = new Set<() => void>();
const emit = (): void => changed.forEach((listener) => listener());

/** Re-render when an action ran or a notification was shown. */
export function useFlexChanges(): number {
  const [version, setVersion] = useState(0);
  useEffect(() => {
    const listener = (): void => setVersion((v) => v + 1);
    changed.add(listener);
    return () => {
      changed.delete(listener);
    };
  }, []);
  return version;
}

export const Actions = {
  addListener(event: string, listener: Listener): void {
    listeners.set(event, [...(listeners.get(event) ?? []), listener]);
  },
  registerAction(name: string, implementation: (payload: any) => Promise<unknown>): void {
    implementations.set(name, implementation);
  },
  async invokeAction(name: string, payload: any = {}): Promise<unknown> {
    let aborted = false;
    for (const listener of listeners.get(`before${name}`) ?? []) {
      // eslint-disable-next-line no-await-in-loop
      await listener(payload, () => {
        aborted = true;
      });
    }
    if (aborted) return undefined;
    const result = await (implementations.get(name) ?? (async () => undefined))(payload);
    performed.push(name);
    for (const listener of listeners.get(`after${name}`) ?? []) {
      // eslint-disable-next-line no-await-in-loop
      await listener(payload, () => undefined);
    }
    emit();
    return result;
  },
};

const tasks = new Map<string, any>();
export const TaskHelper = {
  isCBMTask: (task: any): boolean => Boolean(task?.attributes?.conversationSid),
  getTaskByTaskSid: (sid: string): any => tasks.get(sid),
};
export function addTask(task: any): void {
  tasks.set(task.taskSid, task);
}

export enum NotificationType {
  information = 'information',
  success = 'success',
  warning = 'warning',
  error = 'error',
}

const registered = new Map<string, any>();
export const shownNotifications: Array<{ id: string; type: string; text: string }> = [];
export const Notifications = {
  registerNotification(notification: any): void {
    registered.set(notification.id, notification);
  },
  showNotification(id: string, context: Record<string, string> = {}): unknown {
    const notification = registered.get(id);
    const template: string = Manager.getInstance().strings[notification.content] ?? notification.content;
    const text = template.replace(/{{\s*(\w+)\s*}}/g, (_, key) => context[key] ?? '');
    shownNotifications.push({ id, type: notification.type, text });
    emit();
    return notification;
  },
};

class ContentStore {
  readonly added: Array<{ element: React.ReactElement; options: any }> = [];

  add(element: React.ReactElement, options: any = {}): void {
    this.added.push({ element, options });
  }

  remove(): void {}

  /** What Flex would render for these props: the content whose `if` holds, in sort order. */
  render(props: Record<string, unknown>): React.ReactNode {
    return this.added
      .filter(({ options }) => !options.if || options.if(props))
      .sort((a, b) => (a.options.sortOrder ?? 0) - (b.options.sortOrder ?? 0))
      .map(({ element }) => React.cloneElement(element, props));
  }
}

export const TaskCanvas = { Content: new ContentStore() };
export const WorkerDirectory = { Tabs: { Content: new ContentStore() } };

export const Tab: React.FC<{ label: string }> = ({ children }) => <>{children}</>;

export const TaskContext = createContext<{ task?: any }>({});
export function withTaskContext<P>(Component: React.ComponentType<P & { task?: any }>): React.FC<P> {
  return (props: P) => <Component {...props} task={useContext(TaskContext).task} />;
}

export class Manager {
  private static instance = new Manager();

  user = { token: '', identity: '', roles: ['agent'] };

  strings: Record<string, string> = {};

  store = { getState: () => ({}) };

  static getInstance(): Manager {
    return Manager.instance;
  }
}
