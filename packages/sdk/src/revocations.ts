/**
 * Follows the issuer's revocations so a verifier can refuse a revoked token without a
 * network call per request.
 *
 * Rules it enforces:
 * - the first sync pages through `GET <issuer>/v1/revocations` until `hasMore` is false;
 *   until it has succeeded once the follower is not {@link RevocationFollower.synced} and the
 *   verifier fails closed (`verifier_unavailable`);
 * - `mode: 'poll'` then re-reads the feed from the cursor every `pollIntervalMs`;
 * - `mode: 'stream'` reads `GET <issuer>/v1/events` (server-sent events), reconnects with
 *   exponential backoff and `Last-Event-ID`, and after every (re)connect re-reads the feed
 *   from the cursor, so events published while disconnected are not lost (the feed is the
 *   source of truth, the stream only makes it fast). A stream silent for `idleTimeoutMs`
 *   (no event, no `: keep-alive`) is treated as dead and reconnected;
 * - the follower is {@link RevocationFollower.fresh} while less than `maxStalenessMs` has
 *   passed since its last contact with the issuer: the last feed read that reached its end
 *   (counted from when its last page was asked for, empty polls included), or the last bytes
 *   of a connected stream after its gap-fill (events and `: keep-alive` alike). A failed
 *   request is no contact. Fresh again as soon as contact returns;
 * - revocations are kept in a Map keyed by `targetKey`, holding the latest cut-off; an entry
 *   is dropped once `relevantUntil` has passed (every token it could kill has expired);
 * - a lookup costs one Map read per candidate key of the token (at most 9): this is the hot path.
 */
import { setTimeout as delay } from 'node:timers/promises';
import * as z from 'zod';
import { VerificationError } from './errors.ts';
import type { RevokedTarget } from './errors.ts';
import { assertSigningOptions, createAwsSigner } from './aws-sigv4.ts';
import type { AwsSigningOptions } from './aws-sigv4.ts';
import { assertFetchableUrl, assertKnownKeys, defaultFetch, integerOption } from './lib/fetch.ts';
import type { Clock, Fetch } from './lib/fetch.ts';
import { createSseParser } from './lib/sse.ts';
import type { SseEvent } from './lib/sse.ts';

export type RevocationTargetType = RevokedTarget['type'];

/** One entry of the revocation feed (and the `detail.revocation` of a revocation event). */
export interface Revocation {
  readonly id: string;
  readonly seq: number;
  readonly targetType: RevocationTargetType;
  /** `credential:<jti>`, `lane:<lane>`, `identity:<id>`, `tenant:<t>`, `tool:<tool>[@<identity>]`, `key:<kid>`. */
  readonly targetKey: string;
  readonly target?: unknown;
  /** ISO-8601 with milliseconds: every token of the target issued at or before it is dead. */
  readonly cutoff: string;
  /** ISO-8601: after this no live token can be affected, so the entry can be forgotten. */
  readonly relevantUntil: string;
  readonly actor?: unknown;
  readonly reason?: unknown;
  readonly requestId?: unknown;
}

/** The claims a revocation lookup reads. */
export interface RevocationSubject {
  readonly jti: string;
  readonly sub: string;
  readonly lane: string;
  readonly iat: number;
  readonly tenant?: unknown;
}

export interface RevocationFollowerOptions {
  /** Issuer URL; the feed and the stream are found under it. */
  readonly issuer: string;
  /** Verifier key, sent as `Authorization: Bearer <apiKey>`. Exactly one of `apiKey` and `aws`. */
  readonly apiKey?: string;
  /**
   * A deployed stack: each feed request is signed with SigV4 for `execute-api` as the caller's
   * IAM role (aws-sigv4.ts; `{}` for the defaults), which must be bound to a verifier principal.
   * Needs `mode: 'poll'`: a stack on AWS has no event stream.
   */
  readonly aws?: AwsSigningOptions;
  readonly mode: 'stream' | 'poll';
  /** Poll period (`mode: 'poll'`). @default 5_000 */
  readonly pollIntervalMs?: number;
  /** @default `<issuer>/v1/revocations` */
  readonly feedUrl?: string;
  /** @default `<issuer>/v1/events` */
  readonly eventsUrl?: string;
  /** Page size asked of the feed. @default 500 */
  readonly pageLimit?: number;
  /** Timeout of one feed request. @default 5_000 */
  readonly timeoutMs?: number;
  /** A stream that sends nothing (not even `: keep-alive`) for this long is reconnected. @default 90_000 */
  readonly idleTimeoutMs?: number;
  /** First reconnect / retry delay, doubled on each failure. @default 250 */
  readonly minRetryDelayMs?: number;
  /** @default 30_000 */
  readonly maxRetryDelayMs?: number;
  /**
   * Without contact with the issuer for this long the follower is no longer `fresh`: a
   * revocation made meanwhile may be missing. At least 30 s (two keep-alives of the embedded
   * issuer's stream) and at least twice `pollIntervalMs`. @default 120_000
   */
  readonly maxStalenessMs?: number;
  /** @default globalThis.fetch */
  readonly fetch?: Fetch;
  /** @default Date.now */
  readonly clock?: Clock;
  /** Called on `Signing Key Rotated` (the verifier drops its JWKS cool-down). */
  readonly onKeyRotated?: () => void;
  /** Called with every failure the follower recovers from by retrying. @default console.warn */
  readonly onError?: (error: Error) => void;
}

export interface RevocationFollower {
  /** True once the feed has been read to the end at least once. */
  readonly synced: boolean;
  /** When (on the follower's clock) the issuer was last in contact; undefined before the first sync. */
  readonly lastContactAt: number | undefined;
  /** True while synced and less than `maxStalenessMs` has passed since the last contact. */
  readonly fresh: boolean;
  /**
   * Starts following (idempotent) and resolves once the first sync is done. Rejects with
   * `verifier_unavailable` when the sync attempt under way fails; the follower keeps retrying.
   */
  ready(): Promise<void>;
  /** The revocation that kills this token, if any. */
  isRevoked(claims: RevocationSubject, header: { readonly kid: string }): RevokedTarget | undefined;
  /** Records a revocation (idempotent; keeps the latest cut-off per target). */
  apply(revocation: Revocation): void;
  /** Stops polling / closes the stream. */
  close(): void;
}

const OPTION_KEYS = [
  'issuer', 'apiKey', 'aws', 'mode', 'pollIntervalMs', 'feedUrl', 'eventsUrl', 'pageLimit', 'timeoutMs',
  'idleTimeoutMs', 'minRetryDelayMs', 'maxRetryDelayMs', 'maxStalenessMs', 'fetch', 'clock', 'onKeyRotated', 'onError',
] as const;

const TARGET_TYPES = ['credential', 'lane', 'identity', 'tenant', 'tool', 'key'] as const;

/**
 * The event detail types the follower acts on (docs/events.md). The SDK imports nothing of the
 * issuer, so this is a copy of the issuer's; test/sdk/event-types.test.ts checks it against
 * shared/domain/events.ts so the two cannot drift.
 */
export const REVOCATION_EVENTS: ReadonlySet<string> = new Set([
  'Credential Revoked',
  'Lane Revoked',
  'Identity Revoked',
  'Tenant Revoked',
  'Tool Disabled',
  'Signing Key Revoked',
]);
/** The event after which the verifier drops its JWKS cool-down. */
export const KEY_ROTATED_EVENT = 'Signing Key Rotated';

const MAX_PAGES_PER_SYNC = 10_000;
const SWEEP_INTERVAL_MS = 60_000;

// Tolerant readers: the issuer may add members; the ones we rely on are checked.
const revocationSchema = z.object({
  id: z.string(),
  seq: z.number(),
  targetType: z.enum(TARGET_TYPES),
  targetKey: z.string().min(1),
  target: z.unknown().optional(),
  cutoff: z.string(),
  relevantUntil: z.string(),
  actor: z.unknown().optional(),
  reason: z.unknown().optional(),
  requestId: z.unknown().optional(),
});
const pageSchema = z.object({
  revocations: z.array(z.unknown()),
  cursor: z.string(),
  hasMore: z.boolean(),
});
const eventSchema = z.object({
  id: z.string().optional(),
  detailType: z.string(),
  detail: z.unknown().optional(),
});
const revocationDetailSchema = z.object({ revocation: z.unknown() });

interface Entry {
  readonly target: RevokedTarget;
  /** Cut-off, in whole seconds (floor). */
  readonly cutoffSeconds: number;
  readonly relevantUntilMs: number;
}

/**
 * Creates a revocation follower. Create it once, outside the request handler; the verifier
 * built by `createVerifier` makes one for you.
 *
 * @example
 * ```ts
 * const follower = createRevocationFollower({ issuer, apiKey, mode: 'stream' });
 * await follower.ready();
 * const target = follower.isRevoked(claims, header); // { type: 'lane', key: 'lane:…' } | undefined
 * ```
 */
export function createRevocationFollower(options: RevocationFollowerOptions): RevocationFollower {
  assertKnownKeys('createRevocationFollower', options, OPTION_KEYS);
  if (options.mode !== 'stream' && options.mode !== 'poll') {
    throw new TypeError('revocations.mode must be "stream", "poll" or "off"');
  }
  const withKey = typeof options.apiKey === 'string' && options.apiKey !== '';
  if (withKey === (options.aws !== undefined)) {
    throw new TypeError('revocations needs exactly one of apiKey (a verifier key) and aws (SigV4 as an IAM role) to read the revocation feed');
  }
  if (options.aws !== undefined) {
    if (options.mode !== 'poll') throw new TypeError('revocations.aws needs mode "poll": a stack on AWS has no event stream');
    assertSigningOptions(options.aws, 'revocations.aws', options.feedUrl ?? options.issuer);
  }
  const signer = options.aws === undefined ? undefined : createAwsSigner(options.aws);
  const issuer = options.issuer.replace(/\/+$/, '');
  const feedUrl = assertFetchableUrl('revocations.feedUrl', options.feedUrl ?? `${issuer}/v1/revocations`);
  const eventsUrl = assertFetchableUrl('revocations.eventsUrl', options.eventsUrl ?? `${issuer}/v1/events`).href;
  const mode = options.mode;
  /** A bearer, or the SigV4 signature of this very request. */
  const authorized = async (url: string, headers: Record<string, string>): Promise<Record<string, string>> =>
    signer === undefined ? { ...headers, authorization: `Bearer ${options.apiKey!}` } : signer.sign({ method: 'GET', url, headers });
  const fetch = options.fetch ?? defaultFetch;
  const clock = options.clock ?? Date.now;
  const pollIntervalMs = integerOption('revocations.pollIntervalMs', options.pollIntervalMs, 5_000, 100, 300_000);
  const pageLimit = integerOption('revocations.pageLimit', options.pageLimit, 500, 1, 10_000);
  const timeoutMs = integerOption('revocations.timeoutMs', options.timeoutMs, 5_000, 100, 60_000);
  const maxStalenessMs = integerOption('revocations.maxStalenessMs', options.maxStalenessMs, 120_000, 30_000, 3_600_000);
  if (mode === 'poll' && maxStalenessMs < 2 * pollIntervalMs) {
    // Otherwise one slow poll would make a healthy follower stale.
    throw new TypeError('revocations.maxStalenessMs must be at least twice pollIntervalMs');
  }
  const idleTimeoutMs = integerOption('revocations.idleTimeoutMs', options.idleTimeoutMs, 90_000, 100, 3_600_000);
  const minRetryDelayMs = integerOption('revocations.minRetryDelayMs', options.minRetryDelayMs, 250, 1, 60_000);
  const maxRetryDelayMs = integerOption('revocations.maxRetryDelayMs', options.maxRetryDelayMs, 30_000, minRetryDelayMs, 3_600_000);
  const onKeyRotated = options.onKeyRotated ?? (() => undefined);
  // The default log names the cause too (`… failed: revocation feed answered HTTP 403`): the wrapper alone says nothing actionable.
  const onError = options.onError ?? ((error: Error) => console.warn(`[lanyard] revocation follower: ${error.message}${error.cause instanceof Error ? `: ${error.cause.message}` : ''}`));

  const entries = new Map<string, Entry>();
  const lifetime = new AbortController();
  let nextSweepAt = 0;
  let cursor: string | undefined;
  let lastEventId: string | undefined;
  let synced = false;
  let lastContactAt: number | undefined;
  let started = false;
  let attempt: Promise<void> | undefined;
  let retryDelayMs = minRetryDelayMs;

  function apply(revocation: Revocation): void {
    if (!TARGET_TYPES.includes(revocation.targetType) || !revocation.targetKey.startsWith(`${revocation.targetType}:`)) {
      throw new TypeError(`revocation ${revocation.id}: targetKey does not match targetType`);
    }
    const cutoffMs = Date.parse(revocation.cutoff);
    const relevantUntilMs = Date.parse(revocation.relevantUntil);
    if (Number.isNaN(cutoffMs) || Number.isNaN(relevantUntilMs)) {
      throw new TypeError(`revocation ${revocation.id}: cutoff and relevantUntil must be ISO-8601 dates`);
    }
    if (relevantUntilMs <= clock()) return;
    const cutoffSeconds = Math.floor(cutoffMs / 1000);
    const previous = entries.get(revocation.targetKey);
    entries.set(revocation.targetKey, {
      target: { type: revocation.targetType, key: revocation.targetKey },
      cutoffSeconds: Math.max(cutoffSeconds, previous?.cutoffSeconds ?? cutoffSeconds),
      relevantUntilMs: Math.max(relevantUntilMs, previous?.relevantUntilMs ?? relevantUntilMs),
    });
  }

  function applyUnknown(value: unknown): void {
    try {
      apply(revocationSchema.parse(value));
    } catch (error) {
      // One unreadable entry must not stop the others from being applied.
      onError(new Error('skipped an unreadable revocation', { cause: error }));
    }
  }

  function sweep(now: number): void {
    nextSweepAt = now + SWEEP_INTERVAL_MS;
    for (const [key, entry] of entries) if (entry.relevantUntilMs <= now) entries.delete(key);
  }

  async function syncFeed(): Promise<void> {
    for (let page = 0; page < MAX_PAGES_PER_SYNC; page += 1) {
      const url = new URL(feedUrl);
      url.searchParams.set('limit', String(pageLimit));
      if (cursor !== undefined) url.searchParams.set('after', cursor);
      const askedAt = clock();
      const response = await fetch(url.href, {
        headers: await authorized(url.href, { accept: 'application/json' }),
        signal: AbortSignal.any([lifetime.signal, AbortSignal.timeout(timeoutMs)]),
        redirect: 'error',
      });
      if (!response.ok) throw new Error(`revocation feed answered HTTP ${response.status}`);
      const body = pageSchema.parse(await response.json());
      for (const revocation of body.revocations) applyUnknown(revocation);
      cursor = body.cursor;
      if (!body.hasMore) {
        // Read to the end: every revocation published before this page was asked for is known.
        lastContactAt = askedAt;
        sweep(clock());
        return;
      }
    }
    throw new Error('revocation feed did not end');
  }

  function onEvent(event: SseEvent): void {
    lastEventId = event.id;
    let parsed;
    try {
      parsed = eventSchema.parse(JSON.parse(event.data));
    } catch (error) {
      onError(new Error('skipped an unreadable event', { cause: error }));
      return;
    }
    if (REVOCATION_EVENTS.has(parsed.detailType)) {
      const detail = revocationDetailSchema.safeParse(parsed.detail);
      if (detail.success) applyUnknown(detail.data.revocation);
      else onError(new Error(`skipped a "${parsed.detailType}" event without a revocation`));
    } else if (parsed.detailType === KEY_ROTATED_EVENT) {
      onKeyRotated();
    }
    // Anything else (`Target Reinstated`, `Grant Changed`, future types) is not ours to act on:
    // reinstating a target never revives tokens issued before its cut-off.
  }

  async function streamOnce(): Promise<void> {
    const connection = new AbortController();
    const signal = AbortSignal.any([lifetime.signal, connection.signal]);
    const headers: Record<string, string> = { accept: 'text/event-stream', 'cache-control': 'no-store' };
    if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
    let idle: NodeJS.Timeout | undefined;
    const armIdle = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => connection.abort(new Error('event stream idle')), idleTimeoutMs);
      idle.unref();
    };
    try {
      armIdle();
      const response = await fetch(eventsUrl, { headers: await authorized(eventsUrl, headers), signal, redirect: 'error' });
      if (!response.ok || !response.body) throw new Error(`event stream answered HTTP ${response.status}`);
      // Connected: read the feed from the cursor to fill the gap since the last sync.
      await syncFeed();
      retryDelayMs = minRetryDelayMs;
      const parser = createSseParser(onEvent, lastEventId);
      const decoder = new TextDecoder();
      // `Response.body` is typed loosely in @types/node; it is a byte stream.
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) throw new Error('event stream ended');
        armIdle();
        // The stream is live and in order: what was published before these bytes has arrived.
        lastContactAt = clock();
        parser.push(decoder.decode(value, { stream: true }));
      }
    } finally {
      clearTimeout(idle);
      connection.abort();
    }
  }

  async function pause(): Promise<void> {
    const ms = retryDelayMs;
    retryDelayMs = Math.min(retryDelayMs * 2, maxRetryDelayMs);
    // Jitter so a fleet of verifiers does not reconnect in lock-step after an issuer restart.
    await delay(ms / 2 + Math.random() * (ms / 2), undefined, { signal: lifetime.signal, ref: false });
  }

  async function run(): Promise<void> {
    while (!synced) {
      attempt = syncFeed();
      try {
        await attempt;
        synced = true;
        retryDelayMs = minRetryDelayMs;
      } catch (error) {
        if (lifetime.signal.aborted) return;
        onError(new Error('revocation feed sync failed', { cause: error }));
        await pause();
      }
    }
    for (;;) {
      try {
        if (mode === 'poll') {
          await delay(pollIntervalMs, undefined, { signal: lifetime.signal, ref: false });
          await syncFeed();
        } else {
          await streamOnce();
        }
      } catch (error) {
        if (lifetime.signal.aborted) return;
        onError(new Error(mode === 'poll' ? 'revocation feed poll failed' : 'revocation event stream failed', { cause: error }));
        if (mode === 'stream') await pause();
      }
    }
  }

  function start(): void {
    if (started) return;
    started = true;
    run().catch((error: unknown) => {
      // pause() rejects with an AbortError once closed; anything else is a bug worth seeing.
      if (!lifetime.signal.aborted) onError(new Error('revocation follower stopped', { cause: error }));
    });
  }

  return {
    get synced(): boolean {
      return synced;
    },
    get lastContactAt(): number | undefined {
      return lastContactAt;
    },
    get fresh(): boolean {
      return synced && lastContactAt !== undefined && clock() - lastContactAt < maxStalenessMs;
    },
    async ready(): Promise<void> {
      start();
      if (synced) return;
      try {
        await attempt;
      } catch (cause) {
        throw new VerificationError('verifier_unavailable', 'revocations could not be synchronised', {}, { cause });
      }
      if (!synced) throw new VerificationError('verifier_unavailable', 'revocations are not synchronised yet');
    },
    isRevoked(claims: RevocationSubject, header: { readonly kid: string }): RevokedTarget | undefined {
      if (entries.size === 0) return undefined;
      const now = clock();
      if (now >= nextSweepAt) sweep(now);
      // Conservative: the cut-off is compared in whole seconds because `iat` has one-second
      // resolution, so a token issued in the same second as the cut-off counts as revoked
      // even if it was minted a few milliseconds after it.
      const iat = Math.floor(claims.iat);
      const check = (key: string): RevokedTarget | undefined => {
        const entry = entries.get(key);
        return entry !== undefined && iat <= entry.cutoffSeconds && now < entry.relevantUntilMs ? entry.target : undefined;
      };
      const { sub, lane } = claims;
      const hash = sub.indexOf('#');
      // Revoking a class identity (`support-triage/prod`) covers its instances (`…#inst1`).
      const identityClass = hash === -1 ? undefined : sub.slice(0, hash);
      const toolStart = lane.indexOf(':') + 1;
      const toolEnd = lane.indexOf(':', toolStart);
      const tool = toolStart > 0 && toolEnd > toolStart ? lane.slice(toolStart, toolEnd) : undefined;
      return (
        check(`credential:${claims.jti}`) ??
        check(`lane:${lane}`) ??
        check(`identity:${sub}`) ??
        (identityClass === undefined ? undefined : check(`identity:${identityClass}`)) ??
        (typeof claims.tenant === 'string' ? check(`tenant:${claims.tenant}`) : undefined) ??
        (tool === undefined
          ? undefined
          : (check(`tool:${tool}`) ??
            check(`tool:${tool}@${sub}`) ??
            (identityClass === undefined ? undefined : check(`tool:${tool}@${identityClass}`)))) ??
        check(`key:${header.kid}`)
      );
    },
    apply,
    close(): void {
      lifetime.abort();
    },
  };
}
