import React from 'react';

/** Keeps a fault of the plugin inside its own box: the rest of Flex's task canvas goes on working. */
export class ErrorBoundary extends React.Component<{ label: string }, { failed: boolean }> {
  state = { failed: false };

  static getDerivedStateFromError(): { failed: boolean } {
    return { failed: true };
  }

  componentDidCatch(error: unknown): void {
    // eslint-disable-next-line no-console
    console.error(`Baton plugin: ${this.props.label} failed`, error);
  }

  render(): React.ReactNode {
    return this.state.failed ? null : this.props.children;
  }
}
