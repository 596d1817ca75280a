/**
 * The embedded default's event bus (docs/events.md): events are appended to `<dataDir>/events.log`
 * (JSON lines, 0600), kept in a bounded buffer for `Last-Event-ID` replay, and pushed to live
 * subscribers (the server-sent event stream at `GET /v1/events`).
 */
import { appendFile, readFile } from 'node:fs/promises';
import type { EventPublisher, LanyardEvent } from '../../ports/index.ts';

export type EventListener = (event: LanyardEvent) => void;

export class LocalEventBus implements EventPublisher {
  readonly #logFile: string | undefined;
  readonly #buffer: LanyardEvent[] = [];
  readonly #bufferSize: number;
  readonly #listeners = new Set<EventListener>();
  #writes: Promise<void> = Promise.resolve();

  constructor(options: { logFile?: string; bufferSize?: number } = {}) {
    this.#logFile = options.logFile;
    this.#bufferSize = options.bufferSize ?? 1_000;
  }

  /** Events already in the log file (oldest first), e.g. to resume the revocation tail after a restart. */
  async readLog(): Promise<LanyardEvent[]> {
    if (!this.#logFile) return [];
    let text: string;
    try {
      text = await readFile(this.#logFile, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const events: LanyardEvent[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        events.push(JSON.parse(line) as LanyardEvent);
      } catch {
        // A torn last line from a crash is skipped; the tail republishes from committed state.
      }
    }
    this.#buffer.push(...events.slice(-this.#bufferSize));
    return events;
  }

  async publish(events: readonly LanyardEvent[]): Promise<void> {
    if (events.length === 0) return;
    const lines = events.map((e) => `${JSON.stringify(e)}\n`).join('');
    // Appends are chained so the file keeps publish order.
    const logFile = this.#logFile;
    const write = this.#writes.then(() => (logFile ? appendFile(logFile, lines, { mode: 0o600 }) : undefined));
    this.#writes = write.catch(() => undefined);
    await write;
    for (const event of events) {
      this.#buffer.push(event);
      if (this.#buffer.length > this.#bufferSize) this.#buffer.shift();
      for (const listener of this.#listeners) listener(event);
    }
  }

  /** Replays buffered events after `lastEventId` (when it is still buffered), then follows live ones. */
  subscribe(listener: EventListener, lastEventId?: string): () => void {
    if (lastEventId !== undefined) {
      const index = this.#buffer.findIndex((e) => e.id === lastEventId);
      if (index !== -1) for (const event of this.#buffer.slice(index + 1)) listener(event);
    }
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get subscriberCount(): number {
    return this.#listeners.size;
  }
}
