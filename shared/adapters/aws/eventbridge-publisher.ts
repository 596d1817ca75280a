/**
 * Events on a custom EventBridge bus (docs/events.md). `PutEvents` takes at most 10 entries and
 * 256 KB a call and can fail per entry (`FailedEntryCount`, `Entries[i].ErrorCode`): only the
 * failed entries are sent again, with exponential backoff and full jitter, up to `maxAttempts`.
 * A call that fails as a whole counts as a failure of each of its entries.
 *
 * Entry size is computed the way EventBridge documents it ("Calculating PutEvents event entry
 * size"): 14 bytes for `Time`, plus the UTF-8 bytes of `Source`, `DetailType` and `Detail`.
 * Errors name event ids and error codes only: a detail never leaves through an error message.
 *
 * `PutEvents` takes no id (EventBridge assigns its own to each entry; PutEventsRequestEntry in
 * the EventBridge API reference), so the Lanyard id goes in the detail as `eventId`, the field
 * consumers deduplicate retried deliveries on. `eventsFromChange` already puts it there; any
 * other producer's event gets it here.
 */
import { PutEventsCommand, type EventBridgeClient, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { LanyardError } from '../../domain/errors.ts';
import type { EventPublisher, LanyardEvent } from '../../ports/index.ts';

export const PUT_EVENTS_MAX_ENTRIES = 10;
/** Both one entry and one whole `PutEvents` request. */
export const PUT_EVENTS_MAX_BYTES = 256 * 1024;

export interface EventBridgePublisherOptions {
  /** Created once by the caller, at module scope. */
  readonly client: EventBridgeClient;
  /** Name or ARN of the custom bus. */
  readonly busName: string;
  /** Tries per entry, the first included. @default 3 */
  readonly maxAttempts?: number;
  /** First backoff ceiling; doubles each retry. @default 100 */
  readonly baseDelayMs?: number;
  /** @default setTimeout-based sleep; tests pass one that does not wait. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** @default Math.random */
  readonly random?: () => number;
}

interface Pending {
  readonly event: LanyardEvent;
  readonly entry: PutEventsRequestEntry;
  readonly bytes: number;
  /** The last error code EventBridge (or the SDK) gave for this entry. */
  lastError?: string;
}

const encoder = new TextEncoder();

/**
 * @example
 * ```ts
 * const publisher = new EventBridgePublisher({ client: new EventBridgeClient({}), busName: 'lanyard' });
 * await publisher.publish([{ id, source: 'lanyard', detailType: 'Lane Revoked', time, detail }]);
 * ```
 */
export class EventBridgePublisher implements EventPublisher {
  readonly #client: EventBridgeClient;
  readonly #busName: string;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;

  constructor(options: EventBridgePublisherOptions) {
    const { client, busName, maxAttempts = 3, baseDelayMs = 100 } = options;
    if (!client) throw new Error('EventBridgePublisher: an EventBridgeClient is required');
    if (typeof busName !== 'string' || busName.trim() === '') throw new Error('EventBridgePublisher: busName is required');
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw new Error(`EventBridgePublisher: maxAttempts must be a positive integer, got ${maxAttempts}`);
    }
    if (!Number.isFinite(baseDelayMs) || baseDelayMs < 0) throw new Error('EventBridgePublisher: baseDelayMs must be ≥ 0');
    this.#client = client;
    this.#busName = busName;
    this.#maxAttempts = maxAttempts;
    this.#baseDelayMs = baseDelayMs;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#random = options.random ?? Math.random;
  }

  /** Resolves when every event is on the bus; otherwise throws listing the ids that are not. */
  async publish(events: readonly LanyardEvent[]): Promise<void> {
    // Every entry is checked before any is sent: an entry EventBridge can never take is a bug.
    let pending = events.map((event) => this.#toPending(event));
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > 1) await this.#sleep(this.#backoffMs(attempt - 1));
      const failed: Pending[] = [];
      for (const chunk of chunks(pending)) failed.push(...(await this.#put(chunk)));
      pending = failed;
      if (pending.length > 0 && attempt >= this.#maxAttempts) {
        const ids = pending.map((item) => item.event.id);
        const codes = [...new Set(pending.map((item) => item.lastError ?? 'unknown'))].sort();
        throw new LanyardError(
          'issuer_unavailable',
          `${ids.length} event(s) not published to ${this.#busName} after ${attempt} attempts (${codes.join(', ')}): ${ids.join(', ')}`,
          { context: { eventIds: ids, errorCodes: codes }, retryAfter: 1 },
        );
      }
    }
  }

  /** Sends one chunk; returns the entries that failed. */
  async #put(chunk: readonly Pending[]): Promise<Pending[]> {
    let output;
    try {
      output = await this.#client.send(new PutEventsCommand({ Entries: chunk.map((item) => item.entry) }));
    } catch (error) {
      const name = (error as { name?: unknown } | undefined)?.name;
      const code = typeof name === 'string' ? name : 'Error';
      for (const item of chunk) item.lastError = code;
      return [...chunk];
    }
    if (!output.FailedEntryCount) return [];
    // Results are in request order (PutEvents API reference).
    return chunk.filter((item, index) => {
      const result = output.Entries?.[index];
      if (result?.EventId && !result.ErrorCode) return false;
      item.lastError = result?.ErrorCode ?? 'NoResult';
      return true;
    });
  }

  #toPending(event: LanyardEvent): Pending {
    if (event.source !== 'lanyard') throw new Error(`event ${event.id} has source ${String(event.source)}; only lanyard is published`);
    const time = new Date(event.time);
    if (Number.isNaN(time.getTime())) throw new Error(`event ${event.id} has no valid time`);
    const detail = JSON.stringify({ ...event.detail, eventId: event.id });
    const bytes = 14 + encoder.encode(event.source).length + encoder.encode(event.detailType).length + encoder.encode(detail).length;
    if (bytes > PUT_EVENTS_MAX_BYTES) {
      throw new LanyardError('request_too_large', `event ${event.id} is ${bytes} bytes; EventBridge takes at most ${PUT_EVENTS_MAX_BYTES}`, {
        context: { eventId: event.id, maxBytes: PUT_EVENTS_MAX_BYTES },
      });
    }
    return {
      event,
      bytes,
      entry: { Source: event.source, DetailType: event.detailType, Detail: detail, Time: time, EventBusName: this.#busName },
    };
  }

  #backoffMs(retry: number): number {
    return Math.floor(this.#random() * this.#baseDelayMs * 2 ** (retry - 1));
  }
}

/** At most 10 entries and 256 KB per chunk, in order. */
function chunks(items: readonly Pending[]): Pending[][] {
  const out: Pending[][] = [];
  let current: Pending[] = [];
  let size = 0;
  for (const item of items) {
    if (current.length === PUT_EVENTS_MAX_ENTRIES || (current.length > 0 && size + item.bytes > PUT_EVENTS_MAX_BYTES)) {
      out.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += item.bytes;
  }
  if (current.length > 0) out.push(current);
  return out;
}
