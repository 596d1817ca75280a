/**
 * A small TTL cache whose concurrent misses share one load. Entries live
 * `ttlMs`; a failed load is not cached, so the next caller tries again.
 */
import type { Clock } from '../ports/index.ts';

interface Entry<V> {
  readonly value: Promise<V>;
  readonly expiresAt: number;
}

export class TtlCache<K, V> {
  readonly #entries = new Map<K, Entry<V>>();
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #clock: Clock;

  constructor(options: { ttlMs: number; maxEntries?: number; clock: Clock }) {
    this.#ttlMs = options.ttlMs;
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#clock = options.clock;
  }

  get(key: K, load: () => Promise<V>): Promise<V> {
    const now = this.#clock.now();
    const hit = this.#entries.get(key);
    if (hit && hit.expiresAt > now) return hit.value;
    if (this.#entries.size >= this.#maxEntries) this.#evictOne(now);
    const value = load();
    this.#entries.set(key, { value, expiresAt: now + this.#ttlMs });
    value.catch(() => {
      if (this.#entries.get(key)?.value === value) this.#entries.delete(key);
    });
    return value;
  }

  /** Whether `get` would answer from the cache now, without loading. */
  has(key: K): boolean {
    const hit = this.#entries.get(key);
    return hit !== undefined && hit.expiresAt > this.#clock.now();
  }

  /** Caches a value read elsewhere (a batch of several keys), for `ttlMs` from now. */
  set(key: K, value: V): void {
    const now = this.#clock.now();
    if (!this.#entries.has(key) && this.#entries.size >= this.#maxEntries) this.#evictOne(now);
    this.#entries.set(key, { value: Promise.resolve(value), expiresAt: now + this.#ttlMs });
  }

  clear(): void {
    this.#entries.clear();
  }

  #evictOne(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) {
        this.#entries.delete(key);
        return;
      }
    }
    // Map iteration order is insertion order: the oldest entry goes.
    const oldest = this.#entries.keys().next();
    if (!oldest.done) this.#entries.delete(oldest.value);
  }
}
