/**
 * Upstream secrets of the broker (issue 6): an admin sets a provider's secret; nothing ever
 * shows it again. The secret goes into the vault (Secrets Manager on AWS, an encrypted file
 * on the embedded default); the store keeps only a pointer to its version.
 *
 * Rules this module enforces:
 * - The provider is a tool with an `upstream` section: an unknown tool is `not_found`, a tool
 *   without one is `invalid_request` on `provider`.
 * - The secret is 1 to {@link MAX_SECRET_LENGTH} printable ASCII characters with no leading or
 *   trailing space. It is presented in an HTTP header (or a query parameter), so CR, LF, NUL
 *   and every other control character are refused: header injection is impossible by
 *   construction. An allow-list, not a deny-list. A refusal never quotes it.
 * - Order: vault version → pointer (the committed pointer write is what publishes
 *   `Upstream Secret Rotated`, docs/events.md) → `secret_rotated` audit record → policy cache
 *   dropped. A refused request writes nothing; a failed vault write leaves the pointer where
 *   it was; a failed pointer write leaves an unused vault version behind, which is harmless.
 * - Rotation needs no agent to act. The broker reads the pointer through the policy view, so a
 *   new version reaches new requests on every issuer instance within the policy cache TTL
 *   (`takesEffectWithinMs`); requests that began before the rotation may present the previous
 *   version until `overlapUntil`.
 *
 * @example
 * ```ts
 * const { version, takesEffectWithinMs } = await setUpstreamSecret(runtime, {
 *   provider: 'stripe', secret, reason: 'quarterly rotation', actor: 'oncall', requestId,
 * });
 * ```
 */
import * as z from 'zod';
import { TOOL_ID, type DecisionRecord, type UpstreamSecretRef } from '../domain/model.ts';
import { failClosed, invalidRequest, isLanyardError, issuerUnavailable, notFound } from '../domain/errors.ts';
import type { DecisionLog } from '../audit/decision-log.ts';
import type { PolicyView } from '../policy/policy-view.ts';
import type { Clock, PolicyStore, SecretPointerStore, SecretVault } from '../ports/index.ts';

/** What a secret rotation uses: the provider's tool, its pointer, the vault the secret goes to, and the audit. */
export interface UpstreamSecretDeps {
  readonly store: Pick<PolicyStore, 'getTool'> & Pick<SecretPointerStore, 'getUpstreamSecretRef' | 'putUpstreamSecretRef'>;
  /** Absent where no vault is configured: a rotation then fails closed. */
  readonly vault?: SecretVault;
  readonly decisions: Pick<DecisionLog, 'append'>;
  /** Invalidated so this process presents the new version at once; its TTL bounds the others. */
  readonly policy: Pick<PolicyView, 'invalidate' | 'ttlMs'>;
  readonly clock: Clock;
}

/** What the upstream listing reads: the tools and every secret pointer. */
export interface ListUpstreamsDeps {
  readonly store: Pick<PolicyStore, 'listTools'> & Pick<SecretPointerStore, 'listUpstreamSecretRefs'>;
}

export const MAX_SECRET_LENGTH = 8192;
/** How long requests begun before a rotation may still present the previous version, unless the admin says otherwise. */
export const DEFAULT_OVERLAP_SECONDS = 60;
export const MAX_OVERLAP_SECONDS = 3600;
/** Rotations of one provider racing from other processes: how often the pointer write is retried. */
const MAX_POINTER_ATTEMPTS = 5;

const SECRET_RULE = `a secret is 1 to ${MAX_SECRET_LENGTH} printable ASCII characters, with no control characters (CR, LF, NUL, tab …) and no leading or trailing space: it is sent in an HTTP header`;

/** Visible ASCII, with inner spaces allowed: nothing a header or query parameter could be split or trimmed on. */
const HEADER_SAFE = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

/**
 * The secret as the admin API takes it. Every message is fixed text: zod never gets the chance
 * to quote the value in an error (`parseWith` puts the message on the wire).
 */
export const UpstreamSecretSchema = z
  .string({ error: SECRET_RULE })
  .min(1, { error: SECRET_RULE })
  .max(MAX_SECRET_LENGTH, { error: SECRET_RULE })
  .regex(HEADER_SAFE, { error: SECRET_RULE });

export const OverlapSecondsSchema = z.number().int().min(0).max(MAX_OVERLAP_SECONDS);

export interface SetUpstreamSecretInput {
  readonly provider: string;
  /** Never logged, stored in the clear, returned or quoted. */
  readonly secret: string;
  readonly reason: string;
  readonly actor: string;
  readonly requestId: string;
  /** @default 60 (0 to 3600) */
  readonly overlapSeconds?: number;
}

/** What a rotation answers: version ids and times, never the secret. */
export interface SetUpstreamSecretResult {
  readonly provider: string;
  readonly version: string;
  readonly previousVersion?: string;
  readonly rotatedAt: string;
  readonly overlapUntil: string;
  /** The bound on how long until new broker requests on every instance present the new version (the policy cache TTL). */
  readonly takesEffectWithinMs: number;
}

// Rotations of one provider from this process run one after another, so each names the one
// before it as `previousVersion`.
const rotations = new Map<string, Promise<unknown>>();

export async function setUpstreamSecret(runtime: UpstreamSecretDeps, input: SetUpstreamSecretInput): Promise<SetUpstreamSecretResult> {
  if (!UpstreamSecretSchema.safeParse(input.secret).success) throw invalidRequest('secret', SECRET_RULE);
  const overlapSeconds = input.overlapSeconds ?? DEFAULT_OVERLAP_SECONDS;
  if (!OverlapSecondsSchema.safeParse(overlapSeconds).success) {
    throw invalidRequest('overlapSeconds', `overlapSeconds is a whole number of seconds from 0 to ${MAX_OVERLAP_SECONDS}`);
  }
  if (!TOOL_ID.test(input.provider)) throw invalidRequest('provider', 'a provider is a tool id: lower-case letters, digits, ., _ and -');
  const vault = runtime.vault;
  // No vault, no secret: the issuer fails closed rather than keeping one somewhere else.
  if (!vault) throw issuerUnavailable(new Error('no secret vault is configured on this issuer'));

  const queued = (rotations.get(input.provider) ?? Promise.resolve()).then(() => rotate(runtime, vault, input, overlapSeconds));
  rotations.set(
    input.provider,
    queued.catch(() => undefined),
  );
  return queued;
}

async function rotate(
  runtime: UpstreamSecretDeps,
  vault: SecretVault,
  input: SetUpstreamSecretInput,
  overlapSeconds: number,
): Promise<SetUpstreamSecretResult> {
  const { provider } = input;
  const tool = await guarded(runtime.store.getTool(provider));
  if (!tool) throw notFound(`tool ${provider}`);
  if (!tool.upstream) throw invalidRequest('provider', `tool ${provider} has no upstream: only a tool behind the broker has a secret`);
  const { version } = await guarded(vault.putSecret(provider, input.secret));
  const now = runtime.clock.now();
  const rotatedAt = new Date(now).toISOString();
  const overlapUntil = new Date(now + overlapSeconds * 1000).toISOString();
  // The pointer moves from the version it was read at, or not at all: a rotation by another
  // issuer process in between makes this one read again, so `previousVersion` is always true.
  let previous: UpstreamSecretRef | undefined;
  let ref: UpstreamSecretRef;
  for (let attempt = 1; ; attempt += 1) {
    previous = await guarded(runtime.store.getUpstreamSecretRef(provider));
    ref = {
      provider,
      version,
      ...(previous && { previousVersion: previous.version }),
      rotatedAt,
      overlapUntil,
      actor: input.actor,
      reason: input.reason,
      requestId: input.requestId,
    };
    try {
      await guarded(runtime.store.putUpstreamSecretRef(ref, { expectVersion: previous?.version ?? null }));
      break;
    } catch (error) {
      if (!(isLanyardError(error) && error.code === 'conflict') || attempt === MAX_POINTER_ATTEMPTS) throw error;
    }
  }
  await guarded(runtime.decisions.append(secretRotatedRecord(ref)));
  runtime.policy.invalidate();
  return {
    provider,
    version,
    ...(previous && { previousVersion: previous.version }),
    rotatedAt,
    overlapUntil,
    takesEffectWithinMs: runtime.policy.ttlMs,
  };
}

/** The audit record of an upstream secret rotation (`secret_rotated`), found by `tool`: the version ids, who, why, never the secret. */
export function secretRotatedRecord(ref: UpstreamSecretRef): DecisionRecord {
  return {
    id: `secret_rotated_${ref.requestId}_${ref.provider}`,
    requestId: ref.requestId,
    at: ref.rotatedAt,
    decision: 'secret_rotated',
    reason: ref.reason,
    actor: ref.actor,
    principal: ref.actor,
    tool: ref.provider,
    secretVersion: ref.version,
    actionsRequested: [],
    actionsGranted: [],
  };
}

/** One provider as an admin sees it: where it is and whether its secret is set, never the secret. */
export interface UpstreamSummary {
  readonly provider: string;
  readonly baseUrl: string;
  readonly secretSet: boolean;
  readonly version?: string;
  readonly rotatedAt?: string;
}

export async function listUpstreams(runtime: ListUpstreamsDeps): Promise<UpstreamSummary[]> {
  const [tools, refs] = await guarded(Promise.all([runtime.store.listTools(), runtime.store.listUpstreamSecretRefs()]));
  const byProvider = new Map(refs.map((r) => [r.provider, r]));
  return tools
    .sort((a, b) => a.id.localeCompare(b.id))
    .flatMap((tool) => {
      if (!tool.upstream) return [];
      const ref = byProvider.get(tool.id);
      return [{ provider: tool.id, baseUrl: tool.upstream.baseUrl, secretSet: ref !== undefined, ...(ref && { version: ref.version, rotatedAt: ref.rotatedAt }) }];
    });
}

/** A failed dependency fails closed (503, the cause kept for the log); typed refusals pass as they are. */
async function guarded<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (error) {
    throw failClosed(error);
  }
}
