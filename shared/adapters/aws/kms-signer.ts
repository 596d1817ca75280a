/**
 * The AWS signer (docs/domain.md#credentials): ES256 with KMS keys of spec `ECC_NIST_P256`. KMS hashes the
 * message itself (`MessageType: 'RAW'`) and answers with a DER signature, which is turned into
 * the 64-byte JWS `r ‖ s` (RFC 7518 §3.4), low-S (KMS answers with either form). A key's `kid` is the RFC 7638 thumbprint of its
 * public key, so it is the same in every container and never depends on a key id or an alias.
 *
 * Caches (each with a stated lifetime; concurrent misses share one fetch): a public key never changes for a KMS key, so it is kept for the life
 * of the container; an alias can move (rotation), so what it points at is trusted for
 * `publicKeyCacheTtlMs`. Concurrent misses share one `GetPublicKey`.
 */
import { GetPublicKeyCommand, SignCommand, type KMSClient } from '@aws-sdk/client-kms';
import { calculateJwkThumbprint } from 'jose';
import { failClosed, LanyardError } from '../../domain/errors.ts';
import { systemClock, type Clock, type PublicJwk, type Signer } from '../../ports/index.ts';
import { derToEs256Signature, spkiToJwk } from './der.ts';

/** KMS `Sign` takes at most 4096 bytes with `MessageType: 'RAW'`. */
export const KMS_MAX_MESSAGE_BYTES = 4096;

/** @default for `publicKeyCacheTtlMs`; key rotation keeps a retired key published at least this long too. */
export const DEFAULT_PUBLIC_KEY_CACHE_TTL_MS = 60_000;

const KEY_SPEC = 'ECC_NIST_P256';
const KEY_USAGE = 'SIGN_VERIFY';
const SIGNING_ALGORITHM = 'ECDSA_SHA_256';

export interface KmsSignerOptions {
  /** Created once by the caller, at module scope. */
  readonly client: KMSClient;
  /** The key that signs: a key id, key ARN, alias name (`alias/lanyard-signing`) or alias ARN. */
  readonly activeKeyId: string;
  /**
   * Other keys whose public halves stay in the JWKS: staged keys (published before they sign)
   * and retired keys (until their last token has expired). A function is called at most once
   * per `publicKeyCacheTtlMs`, so the set can follow rotation without a redeploy.
   * @default []
   */
  readonly publishedKeyIds?: readonly string[] | (() => Promise<readonly string[]>);
  /** How long an alias (and a `publishedKeyIds` function's answer) is trusted. @default 60_000 */
  readonly publicKeyCacheTtlMs?: number;
  /** @default systemClock */
  readonly clock?: Clock;
}

interface KmsKey {
  /** The key ARN KMS answered with: signing uses it, never the alias, so `kid` and key agree. */
  readonly keyArn: string;
  readonly jwk: PublicJwk;
}

interface Cached<T> {
  readonly value: Promise<T>;
  readonly expiresAt: number;
}

/**
 * @example
 * ```ts
 * const signer = new KmsSigner({ client: new KMSClient({}), activeKeyId: 'alias/lanyard-signing' });
 * await signer.warmUp(); // at cold start: a wrong key spec fails here, loudly
 * const { token } = await signAccessToken(signer, claims);
 * ```
 */
export class KmsSigner implements Signer {
  readonly #client: KMSClient;
  readonly #activeKeyId: string;
  readonly #publishedKeyIds: () => Promise<readonly string[]>;
  readonly #ttlMs: number;
  readonly #clock: Clock;
  /** Reference (id, ARN or alias) → key; references that are not aliases never expire. */
  readonly #byRef = new Map<string, Cached<KmsKey>>();
  /** Every key seen in this container, by ARN: a public key never changes. */
  readonly #byArn = new Map<string, KmsKey>();
  #published: Cached<readonly string[]> | undefined;

  constructor(options: KmsSignerOptions) {
    const { client, activeKeyId, publishedKeyIds = [], publicKeyCacheTtlMs = DEFAULT_PUBLIC_KEY_CACHE_TTL_MS } = options;
    // Configuration mistakes throw at start-up, not on a request.
    if (typeof activeKeyId !== 'string' || activeKeyId.trim() === '') {
      throw new Error('KmsSigner: activeKeyId must name a KMS key (id, ARN or alias)');
    }
    if (!Number.isFinite(publicKeyCacheTtlMs) || publicKeyCacheTtlMs <= 0) {
      throw new Error(`KmsSigner: publicKeyCacheTtlMs must be a positive number of milliseconds, got ${publicKeyCacheTtlMs}`);
    }
    if (Array.isArray(publishedKeyIds) && publishedKeyIds.some((id) => typeof id !== 'string' || id.trim() === '')) {
      throw new Error('KmsSigner: publishedKeyIds must be non-empty key ids, ARNs or aliases');
    }
    this.#client = client;
    this.#activeKeyId = activeKeyId;
    const list = publishedKeyIds;
    this.#publishedKeyIds = typeof list === 'function' ? list : () => Promise.resolve(list);
    this.#ttlMs = publicKeyCacheTtlMs;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Loads and checks every configured key (`all`, the default) or only the active one
   * (`active`: what signing needs, one GetPublicKey of the alias and no read of the published
   * list). Call it once at cold start: a key of the wrong spec or usage, a missing key or
   * missing permission throws here with the original error.
   */
  async warmUp(keys: 'all' | 'active' = 'all'): Promise<void> {
    if (keys === 'active') await this.#key(this.#activeKeyId);
    else await this.#allKeys();
  }

  async activeKid(): Promise<string> {
    try {
      return (await this.#key(this.#activeKeyId)).jwk.kid;
    } catch (error) {
      throw failClosed(error);
    }
  }

  async sign(kid: string, signingInput: Uint8Array): Promise<Uint8Array> {
    if (signingInput.length > KMS_MAX_MESSAGE_BYTES) {
      throw new LanyardError(
        'request_too_large',
        `the token to sign is ${signingInput.length} bytes; KMS signs at most ${KMS_MAX_MESSAGE_BYTES}`,
        { context: { maxBytes: KMS_MAX_MESSAGE_BYTES } },
      );
    }
    try {
      const key = await this.#keyByKid(kid);
      const output = await this.#client.send(
        new SignCommand({ KeyId: key.keyArn, Message: signingInput, MessageType: 'RAW', SigningAlgorithm: SIGNING_ALGORITHM }),
      );
      if (!output.Signature) throw new Error(`KMS Sign with ${key.keyArn} returned no signature`);
      return derToEs256Signature(output.Signature);
    } catch (error) {
      throw failClosed(error);
    }
  }

  async publicJwks(): Promise<PublicJwk[]> {
    try {
      const byKid = new Map<string, PublicJwk>();
      for (const key of await this.#allKeys()) byKid.set(key.jwk.kid, key.jwk);
      return [...byKid.values()];
    } catch (error) {
      throw failClosed(error);
    }
  }

  async #allKeys(): Promise<KmsKey[]> {
    const refs = [this.#activeKeyId, ...(await this.#publishedRefs())];
    return Promise.all([...new Set(refs)].map((ref) => this.#key(ref)));
  }

  /**
   * The key for a `kid`: first among keys this container has already seen (so a token whose
   * `kid` was read just before the alias moved is still signed by that key), then after a
   * fresh look at the configured keys.
   */
  async #keyByKid(kid: string): Promise<KmsKey> {
    const seen = [...this.#byArn.values()].find((key) => key.jwk.kid === kid);
    if (seen) return seen;
    const found = (await this.#allKeys()).find((key) => key.jwk.kid === kid);
    if (!found) throw new Error(`no configured KMS key has kid ${kid}`);
    return found;
  }

  #publishedRefs(): Promise<readonly string[]> {
    const now = this.#clock.now();
    if (this.#published && now < this.#published.expiresAt) return this.#published.value;
    const entry: Cached<readonly string[]> = { value: this.#publishedKeyIds(), expiresAt: now + this.#ttlMs };
    this.#published = entry;
    // A failed fetch is not cached: the next call asks again.
    entry.value.catch(() => {
      if (this.#published === entry) this.#published = undefined;
    });
    return entry.value;
  }

  #key(ref: string): Promise<KmsKey> {
    const now = this.#clock.now();
    const cached = this.#byRef.get(ref);
    if (cached && now < cached.expiresAt) return cached.value;
    const entry: Cached<KmsKey> = {
      value: this.#fetchKey(ref),
      expiresAt: isAlias(ref) ? now + this.#ttlMs : Number.POSITIVE_INFINITY,
    };
    this.#byRef.set(ref, entry);
    entry.value.catch(() => {
      if (this.#byRef.get(ref) === entry) this.#byRef.delete(ref);
    });
    return entry.value;
  }

  async #fetchKey(ref: string): Promise<KmsKey> {
    const output = await this.#client.send(new GetPublicKeyCommand({ KeyId: ref }));
    const keyArn = output.KeyId;
    if (!keyArn || !output.PublicKey) throw new Error(`KMS GetPublicKey for ${ref} returned no key`);
    const known = this.#byArn.get(keyArn);
    if (known) return known;
    if (output.KeySpec !== KEY_SPEC || output.KeyUsage !== KEY_USAGE || !output.SigningAlgorithms?.includes(SIGNING_ALGORITHM)) {
      throw new Error(
        `KMS key ${ref} (${keyArn}) is ${output.KeySpec ?? '?'} for ${output.KeyUsage ?? '?'}; ` +
          `Lanyard signs ES256 and needs a ${KEY_SPEC} key for ${KEY_USAGE} with ${SIGNING_ALGORITHM}`,
      );
    }
    const publicJwk = spkiToJwk(output.PublicKey);
    const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
    const key: KmsKey = { keyArn, jwk: { ...publicJwk, kid, alg: 'ES256', use: 'sig' } };
    this.#byArn.set(keyArn, key);
    return key;
  }
}

function isAlias(ref: string): boolean {
  return ref.startsWith('alias/') || /^arn:aws[a-z-]*:kms:[^:]*:\d{12}:alias\//.test(ref);
}
