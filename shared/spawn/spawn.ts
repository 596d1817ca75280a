/**
 * Spawn an agent instance (docs/domain.md#instances, docs/http.md#post-v1spawn).
 *
 * Rules, in order (the first failure wins, and is recorded):
 * - the caller is an orchestrator (checked by the handler, before the body is read) and the
 *   class is in its `spawns` (`forbidden`);
 * - the class identity exists (`not_granted`), is active and not revoked (`identity_revoked`);
 * - the instance `<class>/<env>#<random id>` is created active, expiring at
 *   `maxLifetimeSeconds`, with the class's owner and purpose. It holds no grants of its own:
 *   the issuance decision reads the class's grants, and a block on the class covers it;
 * - each requested credential goes through the full issuance decision as the instance. If one
 *   is refused, the instance is suspended (so nothing more can be issued for it), no refresh
 *   token exists, and the refusal names which credential (`credentials[i]`);
 * - last, a refresh token bound to the instance (and never outliving it) is minted.
 */
import { randomBytes } from 'node:crypto';
import * as z from 'zod';
import { ENVIRONMENT_ID, type Identity, type Principal } from '../domain/model.ts';
import { LanyardError, failClosed, forbidden, notGranted } from '../domain/errors.ts';
import { issueCredential, recordDenial, type IssueDeps, type IssuedCredential } from '../issuance/issue-credential.ts';
import { mintRefreshToken, type MintRefreshTokenDeps } from './refresh-tokens.ts';
import type { PolicyStore } from '../ports/index.ts';
import type { IssuerConfig } from '../ports/services.ts';
import { CredentialRequestSchema } from '../domain/schemas.ts';

export const MIN_LIFETIME_SECONDS = 60;
export const MAX_LIFETIME_SECONDS = 86_400;
export const MAX_SPAWN_CREDENTIALS = 10;

/** `agent-class/environment`, never an instance: instances do not spawn instances. */
const CLASS_ID = new RegExp(`^[a-z0-9][a-z0-9_.-]{0,62}/${ENVIRONMENT_ID.source.slice(1, -1)}$`);

export const SpawnRequestSchema = z
  .object({
    identity: z.string().regex(CLASS_ID, 'an agent class: <class>/<environment>'),
    maxLifetimeSeconds: z.number().int().min(MIN_LIFETIME_SECONDS).max(MAX_LIFETIME_SECONDS),
    credentials: z.array(CredentialRequestSchema).min(1).max(MAX_SPAWN_CREDENTIALS),
  })
  .strict();

export type SpawnRequest = z.infer<typeof SpawnRequestSchema>;

export interface SpawnResult {
  readonly instance: { readonly identity: string; readonly expiresAt: string };
  readonly credentials: readonly IssuedCredential[];
  readonly refreshToken: string;
}

/**
 * What a spawn uses: everything an issuance does (each credential is issued as the instance),
 * the instance record written, and a refresh token minted.
 */
export interface SpawnDeps extends Omit<IssueDeps, 'issuer'>, MintRefreshTokenDeps {
  /** `issuer` of the credentials issued. */
  readonly config: Pick<IssuerConfig, 'issuer'>;
  readonly store: Pick<PolicyStore, 'putIdentity'> & MintRefreshTokenDeps['store'];
}

export async function spawnInstance(runtime: SpawnDeps, ctx: { requestId: string; principal: Principal }, request: SpawnRequest): Promise<SpawnResult> {
  const now = runtime.clock.now();
  const classId = request.identity;
  const about = { requestId: ctx.requestId, at: new Date(now).toISOString(), principal: ctx.principal.id, identity: classId };
  let agentClass: Identity;
  try {
    agentClass = await requireSpawnableClass(runtime, ctx.principal, classId);
  } catch (error) {
    const refusal = failClosed(error);
    await recordDenial(runtime.decisions, about, refusal);
    throw refusal;
  }

  const instanceId = randomBytes(12).toString('base64url');
  const at = new Date(now).toISOString();
  const instance: Identity = {
    id: `${classId}#${instanceId}`,
    agentClass: agentClass.agentClass,
    environment: agentClass.environment,
    instance: instanceId,
    owner: agentClass.owner,
    purpose: agentClass.purpose,
    status: 'active',
    expiresAt: new Date(now + request.maxLifetimeSeconds * 1000).toISOString(),
    createdAt: at,
    updatedAt: at,
  };
  await runtime.store.putIdentity(instance).catch((error: unknown) => {
    throw failClosed(error);
  });

  const deps = { ...runtime, issuer: runtime.config.issuer };
  const credentials: IssuedCredential[] = [];
  for (const [index, credential] of request.credentials.entries()) {
    try {
      credentials.push(await issueCredential(deps, { requestId: ctx.requestId, principal: ctx.principal, identity: instance.id }, credential));
    } catch (error) {
      // Credentials minted so far were never handed out; the suspended instance can get no more.
      await runtime.store.putIdentity({ ...instance, status: 'suspended', updatedAt: new Date(runtime.clock.now()).toISOString() }).catch(() => undefined);
      runtime.policy.invalidate();
      throw atIndex(failClosed(error), index);
    }
  }

  const refreshToken = await mintRefreshToken(runtime, { instance: instance.id, principal: ctx.principal.id, expiresAt: instance.expiresAt! }).catch(
    (error: unknown) => {
      throw failClosed(error);
    },
  );
  return { instance: { identity: instance.id, expiresAt: instance.expiresAt! }, credentials, refreshToken };
}

async function requireSpawnableClass(runtime: Pick<SpawnDeps, 'policy'>, principal: Principal, classId: string): Promise<Identity> {
  if (!(principal.spawns ?? []).includes(classId)) throw forbidden(`principal ${principal.id} may not spawn instances of ${classId}`);
  const [view, blocks] = await Promise.all([runtime.policy.identity(classId), runtime.policy.blocks()]);
  if (!view) throw notGranted(`identity ${classId} is not known to this issuer`);
  const block = blocks.get(`identity:${classId}`);
  if (block) throw new LanyardError('identity_revoked', `identity ${classId} was revoked: ${block.reason}`, { context: { since: block.since } });
  if (view.identity.status !== 'active') throw new LanyardError('identity_revoked', `identity ${classId} is ${view.identity.status}`);
  return view.identity;
}

/** The same refusal, naming which requested credential it is about (`credentials[2].ttlSeconds`). */
function atIndex(error: LanyardError, index: number): LanyardError {
  if (error.status >= 500) return error;
  const field = typeof error.context.field === 'string' ? `credentials[${index}].${error.context.field}` : `credentials[${index}]`;
  return new LanyardError(error.code, error.message, {
    context: { ...error.context, field },
    cause: error,
    ...(error.retryAfter !== undefined && { retryAfter: error.retryAfter }),
  });
}
