/**
 * The spawn and refresh-token use cases, called directly on the real local services (in-memory
 * dynalite, the file signer) with the test policy applied: what is stored, what is refused and
 * recorded, and how a refresh token is spent, once.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openLocalServices, type LocalServices } from '../../../shared/bootstrap/local/runtime.ts';
import type { Principal } from '../../../shared/domain/model.ts';
import { silentLog } from '../../../shared/ports/log.ts';
import { applyPolicy } from '../../../shared/policy/policy-file.ts';
import {
  authenticateRefreshToken,
  hashRefreshToken,
  mintRefreshToken,
  REUSE_ACTOR,
  REUSE_GRACE_SECONDS,
  rotateRefreshToken,
} from '../../../shared/spawn/refresh-tokens.ts';
import { spawnInstance } from '../../../shared/spawn/spawn.ts';
import { rejection } from '../../helpers/errors.ts';
import { testPolicy } from '../../helpers/issuer.ts';

const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);
const CLASS = 'support-triage/prod';
const READ = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };

describe('Use cases: spawnInstance and the refresh tokens', () => {
  let runtime: LocalServices;
  let dataDir: string;
  let now = T0;
  let orchestrator: Principal;
  let agent: Principal;
  let request = 0;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lanyard-spawn-'));
    runtime = await openLocalServices({ dataDir, issuer: 'http://127.0.0.1:1', inMemory: true, clock: { now: () => now }, log: silentLog });
    await applyPolicy(runtime.store, testPolicy(), new Date(now).toISOString());
    orchestrator = (await runtime.store.getPrincipal('fleet-scheduler'))!;
    agent = (await runtime.store.getPrincipal('triage-worker-1'))!;
  });
  afterAll(async () => {
    await runtime.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  beforeEach(() => {
    now += 3_600_000;
    request += 1;
  });

  const ctx = (principal: Principal = orchestrator) => ({ requestId: `req-spawn-${request}`, principal });
  const denialsOf = async (identity: string) =>
    (await runtime.store.queryDecisions({ by: 'identity', value: identity, limit: 100 })).items.filter((r) => r.decision === 'denied');

  describe('spawnInstance', () => {
    it('stores an active instance of the class, issues its credentials as the instance, and mints a refresh token for it', async () => {
      // Act
      const result = await spawnInstance(runtime, ctx(), { identity: CLASS, maxLifetimeSeconds: 600, credentials: [READ] });

      // Assess
      const instance = result.instance.identity;
      expect(instance).toMatch(/^support-triage\/prod#[A-Za-z0-9_-]{16}$/);
      expect(result.instance.expiresAt).toBe(new Date(now + 600_000).toISOString());
      expect(await runtime.store.getIdentity(instance)).toMatchObject({ status: 'active', owner: 'team-support', expiresAt: result.instance.expiresAt });
      expect(result.credentials.map((c) => c.lane)).toEqual([`${instance}:tickets:read:acme`]);
      const record = await runtime.store.getCredential(result.credentials[0]!.credentialId);
      expect(record).toMatchObject({ decision: 'issued', identity: instance, principal: 'fleet-scheduler' });
      const token = await runtime.store.getRefreshToken(hashRefreshToken(result.refreshToken));
      expect(token).toMatchObject({ instance, principal: 'fleet-scheduler', expiresAt: result.instance.expiresAt });
      expect(token?.spentAt).toBeUndefined();
    });

    it('refuses a class the caller may not spawn with forbidden, records the refusal and stores no instance', async () => {
      // Prepare
      const before = (await runtime.store.listIdentities()).length;

      // Act
      const error = await rejection(spawnInstance(runtime, ctx(agent), { identity: CLASS, maxLifetimeSeconds: 600, credentials: [READ] }));

      // Assess
      expect(error.code).toBe('forbidden');
      expect((await runtime.store.listIdentities()).length).toBe(before);
      expect((await denialsOf(CLASS)).some((r) => r.requestId === `req-spawn-${request}` && r.principal === 'triage-worker-1')).toBe(true);
    });

    it('suspends the instance and names the credential when one of them is refused, with no refresh token', async () => {
      // Act: the second credential asks for a tenant the class's grant does not reach.
      const error = await rejection(
        spawnInstance(runtime, ctx(), { identity: CLASS, maxLifetimeSeconds: 600, credentials: [READ, { ...READ, tenant: 'initech' }] }),
      );

      // Assess
      expect(error.code).toBe('not_granted');
      expect(error.context.field).toMatch(/^credentials\[1\]/);
      const instances = (await runtime.store.listIdentities()).filter((i) => i.id.startsWith(`${CLASS}#`) && i.createdAt === new Date(now).toISOString());
      expect(instances.map((i) => i.status)).toEqual(['suspended']);
    });
  });

  describe('authenticateRefreshToken and rotateRefreshToken', () => {
    /** A fresh instance of the class and its refresh token, minted as spawn does. */
    const instanceWithToken = async () => {
      const { instance, refreshToken } = await spawnInstance(runtime, ctx(), { identity: CLASS, maxLifetimeSeconds: 7200, credentials: [READ] });
      return { instance: instance.identity, token: refreshToken };
    };

    it('authenticates a minted token as its instance, with the orchestrator as principal, without spending it', async () => {
      // Prepare
      const { instance, token } = await instanceWithToken();

      // Act
      const session = await authenticateRefreshToken(runtime, token, 'req-auth');

      // Assess
      expect(session.instance).toBe(instance);
      expect(session.principal.id).toBe('fleet-scheduler');
      expect((await runtime.store.getRefreshToken(hashRefreshToken(token)))?.spentAt).toBeUndefined();
    });

    it('spends the presented token on rotation and answers a successor that authenticates in its place', async () => {
      // Prepare
      const { instance, token } = await instanceWithToken();
      const session = await authenticateRefreshToken(runtime, token, 'req-auth');

      // Act
      const next = await rotateRefreshToken(runtime, session, 'req-rotate');

      // Assess
      const spent = await runtime.store.getRefreshToken(hashRefreshToken(token));
      expect(spent).toMatchObject({ spentAt: new Date(now).toISOString(), replacedBy: hashRefreshToken(next) });
      expect((await authenticateRefreshToken(runtime, next, 'req-auth-2')).instance).toBe(instance);
    });

    it('revokes the whole instance when a spent token comes back after the grace', async () => {
      // Prepare
      const { instance, token } = await instanceWithToken();
      await rotateRefreshToken(runtime, await authenticateRefreshToken(runtime, token, 'req-auth'), 'req-rotate');
      now += (REUSE_GRACE_SECONDS + 1) * 1000;

      // Act
      const error = await rejection(authenticateRefreshToken(runtime, token, 'req-reuse'));

      // Assess
      expect(error.code).toBe('unauthenticated');
      const blocks = await runtime.store.listBlocks();
      expect(blocks).toContainEqual(expect.objectContaining({ targetKey: `identity:${instance}`, actor: REUSE_ACTOR }));
      expect((await denialsOf(instance)).map((r) => r.requestId)).toContain('req-reuse');
    });

    it('refuses a token that was never minted as unauthenticated', async () => {
      // Act
      const error = await rejection(authenticateRefreshToken(runtime, `lr_${'A'.repeat(43)}`, 'req-unknown'));

      // Assess
      expect(error.code).toBe('unauthenticated');
    });

    it('refuses a genuine token of an instance that has expired with identity_revoked', async () => {
      // Prepare: minted directly, bound to an instance that is already over.
      const token = await mintRefreshToken(runtime, { instance: `${CLASS}#expired0000000001`, principal: 'fleet-scheduler', expiresAt: new Date(now - 1).toISOString() });

      // Act
      const error = await rejection(authenticateRefreshToken(runtime, token, 'req-expired'));

      // Assess
      expect(error.code).toBe('identity_revoked');
    });
  });
});
