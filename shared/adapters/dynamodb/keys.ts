/**
 * The keys of every item of the single table (the layout table.ts documents), in one place:
 * the store writes with them, and the readers of raw items (the stream publisher, the
 * signing-key registry) recognise items by them instead of repeating the prefixes.
 */
import type { PrincipalKeyKind } from '../../domain/model.ts';
import { PARTITION_KEY, SORT_KEY } from './table.ts';

export type ItemKey = { readonly PK: string; readonly SK: string };

/** Partition of the revocation feed; its sort keys are the sequence, `REVOCATION_SEQ_DIGITS` digits. */
export const REVOCATION_PARTITION = 'REVOCATION';
export const REVOCATION_SEQ_DIGITS = 16;
/** Partition of the issuance blocks, one item per target key. */
export const BLOCK_PARTITION = 'BLOCK';
/** Partition of the signing-key registry, one item per alias (signing-key-registry.ts). */
export const SIGNING_KEY_REGISTRY_PARTITION = 'SIGNING_KEYS';
const IDENTITY_PREFIX = 'IDENTITY#';
const GRANT_PREFIX = 'GRANT#';
const UPSTREAM_PREFIX = 'UPSTREAM#';
const SECRET_REF_SORT_KEY = 'SECRETREF';

/** Zero-padded so that string order of sort keys is numeric order. */
export const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/** Every item key of the single-table layout. */
export const keys = {
  tool: (id: string): ItemKey => ({ PK: `TOOL#${id}`, SK: 'TOOL' }),
  role: (id: string, version: number): ItemKey => ({ PK: `ROLE#${id}`, SK: `V#${pad(version, 10)}` }),
  identity: (id: string): ItemKey => ({ PK: `${IDENTITY_PREFIX}${id}`, SK: 'IDENTITY' }),
  grant: (identity: string, grantId: string): ItemKey => ({ PK: `${IDENTITY_PREFIX}${identity}`, SK: `${GRANT_PREFIX}${grantId}` }),
  /** The sort-key prefix of the grants of one identity (a Query beside the identity item). */
  grantPrefix: GRANT_PREFIX,
  principal: (id: string): ItemKey => ({ PK: `PRINCIPAL#${id}`, SK: 'PRINCIPAL' }),
  /** Which key of a kind a principal holds: the pointer that lets a new key replace the old one. */
  keyRef: (principalId: string, kind: PrincipalKeyKind): ItemKey => ({ PK: `PRINCIPAL#${principalId}`, SK: `KEYREF#${kind}` }),
  /** The key itself, carrying a copy of its principal: authentication is one GetItem. */
  principalKey: (kind: PrincipalKeyKind, value: string): ItemKey => ({ PK: `KEY#${kind}#${value}`, SK: 'KEY' }),
  credential: (credentialId: string): ItemKey => ({ PK: `CRED#${credentialId}`, SK: 'DECISION' }),
  deniedDecision: (id: string): ItemKey => ({ PK: `DECISION#${id}`, SK: 'DECISION' }),
  revocationCounter: { PK: 'COUNTER', SK: REVOCATION_PARTITION } as ItemKey,
  revocation: (seq: number): ItemKey => ({ PK: REVOCATION_PARTITION, SK: pad(seq, REVOCATION_SEQ_DIGITS) }),
  block: (targetKey: string): ItemKey => ({ PK: BLOCK_PARTITION, SK: targetKey }),
  quota: (bucket: string): ItemKey => ({ PK: `QUOTA#${bucket}`, SK: 'QUOTA' }),
  /** One counter per bucket and window, beside the bucket's policy; the window start in ms, 16 digits. */
  /** By length and start: a bucket whose window length changes starts fresh counters, never shares one. */
  quotaWindow: (bucket: string, window: { startMs: number; seconds: number }): ItemKey => ({ PK: `QUOTA#${bucket}`, SK: `W#${pad(window.seconds, 8)}#${pad(window.startMs, 16)}` }),
  /** The pointer to a provider's current secret version (the secret itself is in the vault). */
  upstreamSecretRef: (provider: string): ItemKey => ({ PK: `${UPSTREAM_PREFIX}${provider}`, SK: SECRET_REF_SORT_KEY }),
  /** A refresh token by the SHA-256 of the token, never the token itself. */
  refreshToken: (hash: string): ItemKey => ({ PK: `REFRESH#${hash}`, SK: 'REFRESH' }),
  /** The keys of one signing-key family to publish, by alias. */
  signingKeyRegistry: (alias: string): ItemKey => ({ PK: SIGNING_KEY_REGISTRY_PARTITION, SK: alias }),
};

/** The items whose changes can become events (docs/events.md), told apart by their key alone. */
export type EventSourceItem = 'revocation' | 'block' | 'grant' | 'upstreamSecretRef';

const REVOCATION_SORT_KEY = new RegExp(`^\\d{${REVOCATION_SEQ_DIGITS}}$`);

/** Which event-bearing item a key belongs to, or undefined for every other item. */
export function eventSourceItemOf(key: ItemKey): EventSourceItem | undefined {
  if (key.PK === REVOCATION_PARTITION && REVOCATION_SORT_KEY.test(key.SK)) return 'revocation';
  if (key.PK === BLOCK_PARTITION) return 'block';
  if (key.PK.startsWith(IDENTITY_PREFIX) && key.SK.startsWith(GRANT_PREFIX)) return 'grant';
  if (key.PK.startsWith(UPSTREAM_PREFIX) && key.SK === SECRET_REF_SORT_KEY) return 'upstreamSecretRef';
  return undefined;
}

/**
 * The same recognition as Lambda event-filter patterns on a stream record's `Keys` (the filter
 * syntax has `prefix` and exact strings, no digit match: a revocation is its partition).
 */
export const EVENT_SOURCE_KEY_PATTERNS = {
  revocation: { [PARTITION_KEY]: { S: [REVOCATION_PARTITION] } },
  block: { [PARTITION_KEY]: { S: [BLOCK_PARTITION] } },
  grant: { [PARTITION_KEY]: { S: [{ prefix: IDENTITY_PREFIX }] }, [SORT_KEY]: { S: [{ prefix: GRANT_PREFIX }] } },
  upstreamSecretRef: { [PARTITION_KEY]: { S: [{ prefix: UPSTREAM_PREFIX }] }, [SORT_KEY]: { S: [SECRET_REF_SORT_KEY] } },
} as const satisfies Record<EventSourceItem, unknown>;
