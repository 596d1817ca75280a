/**
 * The embedded default's stand-in for DynamoDB Streams. The SQLite store has no change stream, so:
 *
 * - revocation events come from tailing the committed revocation feed (the same reader as
 *   `GET /v1/revocations`), in sequence order, each exactly once: the tail's position is the
 *   last revocation event in `events.log`, so a restart resumes rather than repeats, and a
 *   revocation committed just before a crash is published on the next start;
 * - reinstatements, grant changes and upstream secret rotations are reported by the store
 *   wrapper only after the write has committed, with the item as it was and as it is.
 *
 * Either way a failed write has no event and every committed one has its event.
 */
import { eventsFromChange, type StoreChange } from '../../domain/events.ts';
import type { Grant, Reinstatement, UpstreamSecretRef } from '../../domain/model.ts';
import type { Clock, Store } from '../../ports/index.ts';
import { settledPrefix } from '../../revocation/revocation-feed.ts';
import type { Log } from '../../ports/log.ts';
import { describeError } from '../../ports/log.ts';
import type { LocalEventBus } from './event-bus.ts';

const TAIL_PAGE = 100;

export interface ChangeFeedOptions {
  readonly store: Store;
  readonly bus: LocalEventBus;
  readonly clock: Clock;
  readonly log: Log;
  /** Safety net for gaps settling and writes by another process. @default 1000 */
  readonly pollMs?: number;
}

export class LocalChangeFeed {
  readonly #store: Store;
  readonly #bus: LocalEventBus;
  readonly #clock: Clock;
  readonly #log: Log;
  readonly #pollMs: number;
  #lastSeq = 0;
  #running: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: ChangeFeedOptions) {
    this.#store = options.store;
    this.#bus = options.bus;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#pollMs = options.pollMs ?? 1_000;
  }

  /** Resumes after the last revocation event in the log, publishes what was missed, then follows. */
  async start(): Promise<void> {
    for (const event of await this.#bus.readLog()) {
      const seq = (event.detail as { revocation?: { seq?: unknown } }).revocation?.seq;
      if (typeof seq === 'number' && seq > this.#lastSeq) this.#lastSeq = seq;
    }
    await this.kick();
    this.#timer = setInterval(() => void this.kick(), this.#pollMs);
    this.#timer.unref();
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  /** Publishes every newly committed revocation; concurrent kicks collapse into one more pass. */
  kick(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#drain().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #drain(): Promise<void> {
    do {
      this.#again = false;
      try {
        for (;;) {
          const rows = await this.#store.listRevocations(this.#lastSeq, TAIL_PAGE);
          // Every settled entry is published, live or not: the event log is history, the feed is the live set.
          const settled = settledPrefix(rows, this.#lastSeq, this.#clock.now());
          if (settled.length > 0) {
            await this.#bus.publish(settled.flatMap((revocation) => eventsFromChange({ entity: 'revocation', newImage: revocation })));
            this.#lastSeq = settled.at(-1)!.seq;
          }
          // A gap still in flight stops the pass; the next tick picks it up once it settles.
          if (settled.length < rows.length || rows.length < TAIL_PAGE) break;
        }
      } catch (error) {
        this.#log.error('revocation tail failed; retrying on the next tick', { error: describeError(error) });
        return;
      }
    } while (this.#again);
  }

  async #emit(change: StoreChange): Promise<void> {
    try {
      await this.#bus.publish(eventsFromChange(change));
    } catch (error) {
      this.#log.error('event publication failed', { error: describeError(error) });
    }
  }

  /** The store as handlers see it: every event-bearing write reports its committed change. */
  wrap(store: Store): Store {
    const kick = () => this.kick();
    const emit = (change: StoreChange) => this.#emit(change);
    const overrides: Partial<Store> = {
      async appendRevocation(revocation) {
        const stored = await store.appendRevocation(revocation);
        await kick();
        return stored;
      },
      async reinstateBlock(targetKey: string, reinstatement: Reinstatement) {
        const lifted = await store.reinstateBlock(targetKey, reinstatement);
        if (lifted) {
          await emit({
            entity: 'block',
            oldImage: lifted,
            newImage: {
              ...lifted,
              reinstatedAt: reinstatement.at,
              reinstatedBy: reinstatement.actor,
              reinstateReason: reinstatement.reason,
              reinstateRequestId: reinstatement.requestId,
            },
          });
        }
        return lifted;
      },
      async putGrant(grant: Grant) {
        const before = (await store.listGrants(grant.identity)).find((g) => g.id === grant.id);
        await store.putGrant(grant);
        await emit({ entity: 'grant', newImage: grant, ...(before && { oldImage: before }) });
      },
      async deleteGrant(identity: string, grantId: string) {
        const before = (await store.listGrants(identity)).find((g) => g.id === grantId);
        await store.deleteGrant(identity, grantId);
        if (before) await emit({ entity: 'grant', oldImage: before });
      },
      async putUpstreamSecretRef(ref: UpstreamSecretRef, options?: { readonly expectVersion?: string | null }) {
        const before = await store.getUpstreamSecretRef(ref.provider);
        await store.putUpstreamSecretRef(ref, options);
        await emit({ entity: 'upstreamSecret', newImage: ref, ...(before && { oldImage: before }) });
      },
    };
    return new Proxy(store, {
      get(target, property, receiver) {
        if (Object.hasOwn(overrides, property)) return overrides[property as keyof Store];
        const value: unknown = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }
}
