/**
 * The key layout of the single table (the item table in `table.ts`): every item key the store
 * writes, in one place, so no aggregate module invents its own.
 */
import type { PrincipalKeyKind } from '../../domain/model.ts';

export type Key = { readonly PK: string; readonly SK: string };

/** The partition of the revocation feed. */
export const REVOCATIONS = 'REVOCATION';

/** Zero-padded so that string order of sort keys is numeric order. */
export const pad = (n: number, width: number) => String(n).padStart(width, '0');

/** Every item key of the single-table layout, in one place. */
export const keys = {
  tool: (id: string): Key => ({ PK: `TOOL#${id}`, SK: 'TOOL' }),
  role: (id: string, version: number): Key => ({ PK: `ROLE#${id}`, SK: `V#${pad(version, 10)}` }),
  identity: (id: string): Key => ({ PK: `IDENTITY#${id}`, SK: 'IDENTITY' }),
  grant: (identity: string, grantId: string): Key => ({ PK: `IDENTITY#${identity}`, SK: `GRANT#${grantId}` }),
  principal: (id: string): Key => ({ PK: `PRINCIPAL#${id}`, SK: 'PRINCIPAL' }),
  /** Which key of a kind a principal holds: the pointer that lets a new key replace the old one. */
  keyRef: (principalId: string, kind: PrincipalKeyKind): Key => ({ PK: `PRINCIPAL#${principalId}`, SK: `KEYREF#${kind}` }),
  /** The key itself, carrying a copy of its principal: authentication is one GetItem. */
  principalKey: (kind: PrincipalKeyKind, value: string): Key => ({ PK: `KEY#${kind}#${value}`, SK: 'KEY' }),
  credential: (credentialId: string): Key => ({ PK: `CRED#${credentialId}`, SK: 'DECISION' }),
  deniedDecision: (id: string): Key => ({ PK: `DECISION#${id}`, SK: 'DECISION' }),
  revocationCounter: { PK: 'COUNTER', SK: 'REVOCATION' } as Key,
  revocation: (seq: number): Key => ({ PK: REVOCATIONS, SK: pad(seq, 16) }),
  block: (targetKey: string): Key => ({ PK: 'BLOCK', SK: targetKey }),
  quota: (bucket: string): Key => ({ PK: `QUOTA#${bucket}`, SK: 'QUOTA' }),
  /** One counter per bucket and window, beside the bucket's policy; the window start in ms, 16 digits. */
  /** By length and start: a bucket whose window length changes starts fresh counters, never shares one. */
  quotaWindow: (bucket: string, window: { startMs: number; seconds: number }): Key => ({ PK: `QUOTA#${bucket}`, SK: `W#${pad(window.seconds, 8)}#${pad(window.startMs, 16)}` }),
  /** The pointer to a provider's current secret version (the secret itself is in the vault). */
  upstreamSecretRef: (provider: string): Key => ({ PK: `UPSTREAM#${provider}`, SK: 'SECRETREF' }),
  /** A refresh token by the SHA-256 of the token, never the token itself. */
  refreshToken: (hash: string): Key => ({ PK: `REFRESH#${hash}`, SK: 'REFRESH' }),
};
