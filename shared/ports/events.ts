/** Events (docs/events.md): EventBridge on AWS, the in-process bus on the embedded default. */

/** docs/events.md: source `lanyard`, a detail type and a detail that never carries a secret. */
export interface LanyardEvent {
  readonly id: string;
  readonly source: 'lanyard';
  readonly detailType: string;
  readonly time: string;
  readonly detail: Readonly<Record<string, unknown>>;
}

export interface EventPublisher {
  publish(events: readonly LanyardEvent[]): Promise<void>;
}

/** Live events for subscribers (the embedded default's SSE stream), replayed after `lastEventId` when it is still buffered. */
export interface EventStream {
  subscribe(listener: (event: LanyardEvent) => void, lastEventId?: string): () => void;
}

