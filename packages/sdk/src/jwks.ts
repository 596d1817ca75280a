/**
 * JWKS cache for the issuer's ES256 keys.
 *
 * Rules it enforces:
 * - keys are fetched once and kept for `ttlMs` (default 10 min); concurrent misses share one fetch;
 * - an unknown `kid` triggers at most one refetch per `coolDownMs` (default 30 s): until the
 *   cool-down since the last fetch has passed, an unknown `kid` is refused at once
 *   (the "penalty box" of aws-jwt-verify), so a flood of forged kids cannot turn the verifier
 *   into a JWKS request amplifier. The issuer publishes a staged key longer than this
 *   cool-down before signing with it (docs/domain.md#credentials), and the `Signing Key Rotated` event drops
 *   the cool-down ({@link JwksCache.invalidate});
 * - only `kty: EC`, `crv: P-256` keys with `alg` ES256 (or absent) and `use` sig (or absent)
 *   are kept: an allow-list, so a P-384 or RSA key with a matching `kid` is never used;
 * - a fetch that fails is `verifier_unavailable`: a token we cannot check is not accepted.
 */
import type { webcrypto } from 'node:crypto';
import * as z from 'zod';
import { VerificationError } from './errors.ts';
import { decodeBase64url } from './lib/encoding.ts';
import { assertFetchableUrl, assertKnownKeys, defaultFetch, integerOption } from './lib/fetch.ts';
import type { Clock, Fetch } from './lib/fetch.ts';

export interface JwksCacheOptions {
  /** Where the issuer publishes its keys (`<issuer>/.well-known/jwks.json`). */
  readonly jwksUri: string;
  /** @default globalThis.fetch */
  readonly fetch?: Fetch;
  /** @default Date.now */
  readonly clock?: Clock;
  /** How long a fetched key set is trusted before it is fetched again. @default 600_000 */
  readonly ttlMs?: number;
  /** Minimum time between two fetches caused by an unknown `kid`. @default 30_000 */
  readonly coolDownMs?: number;
  /** Timeout of one JWKS request. @default 5_000 */
  readonly timeoutMs?: number;
}

export interface JwksCache {
  /** The verification key for `kid`; throws `unknown_key` or `verifier_unavailable`. */
  getKey(kid: string): Promise<CryptoKey>;
  /** Forgets the cool-down and refetches in the background (a key was rotated). */
  invalidate(): void;
}

type CryptoKey = webcrypto.CryptoKey;

const OPTION_KEYS = ['jwksUri', 'fetch', 'clock', 'ttlMs', 'coolDownMs', 'timeoutMs'] as const;
const MAX_JWKS_CHARS = 256 * 1024;
/** After a failed fetch, callers within this window get the failure without a new request. */
const FAILURE_BACKOFF_MS = 1_000;

// Tolerant reader: unknown members are ignored (the issuer may add some), known ones are typed.
const jwkSchema = z.object({
  kty: z.string(),
  crv: z.string().optional(),
  x: z.string().optional(),
  y: z.string().optional(),
  kid: z.string().optional(),
  alg: z.string().optional(),
  use: z.string().optional(),
});
const jwksSchema = z.object({ keys: z.array(z.unknown()).max(100) });

/**
 * Creates a JWKS cache. Create it once, outside the request handler.
 *
 * @example
 * ```ts
 * const jwks = createJwksCache({ jwksUri: 'https://issuer.example/.well-known/jwks.json' });
 * const key = await jwks.getKey(header.kid);
 * ```
 */
export function createJwksCache(options: JwksCacheOptions): JwksCache {
  assertKnownKeys('createJwksCache', options, OPTION_KEYS);
  const jwksUri = assertFetchableUrl('jwksUri', options.jwksUri).href;
  const fetch = options.fetch ?? defaultFetch;
  const clock = options.clock ?? Date.now;
  const ttlMs = integerOption('ttlMs', options.ttlMs, 600_000, 1_000, 86_400_000);
  const coolDownMs = integerOption('coolDownMs', options.coolDownMs, 30_000, 0, 3_600_000);
  const timeoutMs = integerOption('timeoutMs', options.timeoutMs, 5_000, 100, 60_000);

  let keys = new Map<string, CryptoKey>();
  let fetchedAt = Number.NEGATIVE_INFINITY;
  let failure: { at: number; error: VerificationError } | undefined;
  let inflight: Promise<void> | undefined;

  function refresh(): Promise<void> {
    inflight ??= load().finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  async function load(): Promise<void> {
    try {
      const response = await fetch(jwksUri, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'error',
      });
      if (!response.ok) throw new Error(`JWKS answered HTTP ${response.status}`);
      const text = await response.text();
      if (text.length > MAX_JWKS_CHARS) throw new Error('JWKS document too large');
      keys = await importKeys(jwksSchema.parse(JSON.parse(text)).keys);
      fetchedAt = clock();
      failure = undefined;
    } catch (cause) {
      const error = new VerificationError('verifier_unavailable', 'signing keys could not be fetched', {}, { cause });
      failure = { at: clock(), error };
      throw error;
    }
  }

  return {
    async getKey(kid: string): Promise<CryptoKey> {
      const now = clock();
      if (now - fetchedAt < ttlMs) {
        const key = keys.get(kid);
        if (key) return key;
        // Penalty box: an unknown kid within the cool-down is refused without a request.
        if (now - fetchedAt < coolDownMs) throw unknownKey(kid);
      }
      if (!inflight && failure && now - failure.at < FAILURE_BACKOFF_MS) throw failure.error;
      await refresh();
      const key = keys.get(kid);
      if (key) return key;
      throw unknownKey(kid);
    },
    invalidate(): void {
      fetchedAt = Math.min(fetchedAt, clock() - coolDownMs);
      failure = undefined;
      // Background refresh; a failure is recorded in `failure` and surfaces on the next miss.
      refresh().catch(() => undefined);
    },
  };
}

function unknownKey(kid: string): VerificationError {
  return new VerificationError('unknown_key', 'the token was signed with a key this verifier does not know', {
    actual: kid,
  });
}

async function importKeys(entries: readonly unknown[]): Promise<Map<string, CryptoKey>> {
  const seen = new Set<string>();
  const duplicate = new Set<string>();
  const candidates: { kid: string; x: string; y: string }[] = [];
  for (const entry of entries) {
    const jwk = jwkSchema.safeParse(entry);
    if (!jwk.success) continue;
    const { kty, crv, x, y, kid, alg, use } = jwk.data;
    if (kty !== 'EC' || crv !== 'P-256' || !kid || !x || !y) continue;
    if ((alg !== undefined && alg !== 'ES256') || (use !== undefined && use !== 'sig')) continue;
    if (decodeBase64url(x)?.length !== 32 || decodeBase64url(y)?.length !== 32) continue;
    if (seen.has(kid)) duplicate.add(kid);
    seen.add(kid);
    candidates.push({ kid, x, y });
  }
  const imported = await Promise.all(
    candidates
      // Two keys under one kid are ambiguous: use neither.
      .filter(({ kid }) => !duplicate.has(kid))
      .map(async ({ kid, x, y }) => {
        try {
          const key = await crypto.subtle.importKey(
            'jwk',
            { kty: 'EC', crv: 'P-256', x, y },
            { name: 'ECDSA', namedCurve: 'P-256' },
            false,
            ['verify'],
          );
          return [kid, key] as const;
        } catch {
          // Not a point on the curve: skip it like any other unusable key.
          return undefined;
        }
      }),
  );
  return new Map(imported.filter((entry) => entry !== undefined));
}
