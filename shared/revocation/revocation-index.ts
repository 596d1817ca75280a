/**
 * The live revocations, held in memory for introspection: a map from target key to the
 * latest cut-off, refreshed from the feed at most every `ttlMs` (and at once after a revoke
 * through this instance, which invalidates the policy view and this index together).
 */
import { TtlCache } from '../lib/cache.ts';
import type { DecisionRecord } from '../domain/model.ts';
import type { Clock, RevocationStore } from '../ports/index.ts';

export class RevocationIndex {
  readonly #store: Pick<RevocationStore, 'listRevocations'>;
  readonly #clock: Clock;
  readonly #cache: TtlCache<'all', ReadonlyMap<string, { cutoff: number; type: string }>>;

  constructor(options: { store: Pick<RevocationStore, 'listRevocations'>; clock: Clock; ttlMs?: number }) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#cache = new TtlCache({ ttlMs: options.ttlMs ?? 1_000, clock: options.clock });
  }

  invalidate(): void {
    this.#cache.clear();
  }

  /** The target that kills this issued credential, if any. Its issue time is the record's: a JWT's `iat` (whole seconds), an STS session's millisecond. */
  async revokedBy(credential: DecisionRecord): Promise<{ type: string; key: string } | undefined> {
    const index = await this.#cache.get('all', () => this.#load());
    const issued = Date.parse(credential.issuedAt ?? credential.at);
    for (const key of candidateKeys(credential)) {
      const hit = index.get(key);
      if (hit && issued <= hit.cutoff) return { type: hit.type, key };
    }
    return undefined;
  }

  /**
   * The latest cut-off, in milliseconds, on any target that covers a credential with these
   * coordinates (its lane, identity and class, tenant, tool, key), or undefined: what a
   * credential about to be issued for them must be issued after.
   */
  async latestCutoff(subject: RevocationSubject): Promise<number | undefined> {
    const index = await this.#cache.get('all', () => this.#load());
    let latest: number | undefined;
    for (const key of candidateKeys(subject)) {
      const cutoff = index.get(key)?.cutoff;
      if (cutoff !== undefined && (latest === undefined || cutoff > latest)) latest = cutoff;
    }
    return latest;
  }

  async #load(): Promise<ReadonlyMap<string, { cutoff: number; type: string }>> {
    const now = this.#clock.now();
    const map = new Map<string, { cutoff: number; type: string }>();
    let after = 0;
    for (;;) {
      const page = await this.#store.listRevocations(after, 1000);
      for (const r of page) {
        if (Date.parse(r.relevantUntil) <= now) continue;
        const cutoff = Date.parse(r.cutoff);
        const seen = map.get(r.targetKey);
        if (!seen || seen.cutoff < cutoff) map.set(r.targetKey, { cutoff, type: r.targetType });
      }
      if (page.length < 1000) return map;
      after = page.at(-1)!.seq;
    }
  }
}

/** What decides which targets cover a credential. */
export type RevocationSubject = Pick<DecisionRecord, 'id' | 'credentialId' | 'identity' | 'lane' | 'tenant' | 'tool' | 'kid'>;

/** Every target key that covers a credential: itself, its lane, identity (and class), tenant, tool and key. */
export function candidateKeys(credential: RevocationSubject): string[] {
  const identity = credential.identity ?? '';
  const hash = identity.indexOf('#');
  const identityClass = hash === -1 ? undefined : identity.slice(0, hash);
  const keys = [`credential:${credential.credentialId ?? credential.id}`, `lane:${credential.lane ?? ''}`, `identity:${identity}`];
  if (identityClass) keys.push(`identity:${identityClass}`);
  if (credential.tenant && credential.tenant !== '*') keys.push(`tenant:${credential.tenant}`);
  if (credential.tool) {
    keys.push(`tool:${credential.tool}`, `tool:${credential.tool}@${identity}`);
    if (identityClass) keys.push(`tool:${credential.tool}@${identityClass}`);
  }
  if (credential.kid) keys.push(`key:${credential.kid}`);
  return keys;
}
