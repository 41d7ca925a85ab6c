import React, { createContext, useContext, useEffect, useState } from 'react';

import type { TaskTransferView, TransferService } from './TransferService';

const BatonContext = createContext<TransferService | null>(null);

export const BatonProvider: React.FC<{ service: TransferService }> = ({ service, children }) => (
  <BatonContext.Provider value={service}>{children}</BatonContext.Provider>
);

export function useBaton(): TransferService {
  const service = useContext(BatonContext);
  if (!service) throw new Error('Baton components must be rendered inside <BatonProvider>');
  return service;
}

/** One task's transfer, re-rendered whenever the service changes it. */
export function useTaskTransfer(taskSid: string): [TaskTransferView, TransferService] {
  const service = useBaton();
  const [view, setView] = useState(() => service.view(taskSid));
  useEffect(() => {
    setView(service.view(taskSid));
    return service.subscribe(() => setView(service.view(taskSid)));
  }, [service, taskSid]);
  return [view, service];
}

/** Re-render once a second while `active`: countdowns (Retry-After) and "last heard" ages. */
export function useTick(active: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!active) return undefined;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [active]);
  return now;
}
