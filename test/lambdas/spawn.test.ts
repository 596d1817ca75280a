import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startDevServer } from '../../shared/bootstrap/local/server.ts';
import type { LanyardEvent } from '../../shared/ports/index.ts';
import { hashRefreshToken, REUSE_GRACE_SECONDS } from '../../shared/spawn/refresh-tokens.ts';
import { silentLog } from '../../shared/ports/log.ts';
import { storeFailingAfterCommit } from '../helpers/faults.ts';
import { KEYS, startTestIssuer, type TestIssuer } from '../helpers/issuer.ts';

const READ = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };
const SPAWN = { identity: 'support-triage/prod', maxLifetimeSeconds: 600, credentials: [READ] };

describe('Handler: POST /v1/spawn', () => {
  let issuer: TestIssuer;
  const events: LanyardEvent[] = [];

  beforeAll(async () => {
    issuer = await startTestIssuer();
    issuer.runtime.events.subscribe((event) => events.push(event));
  });
  afterAll(() => issuer.stop());
  afterEach(() => {
    vi.useRealTimers();
  });

  const spawn = (body: unknown = SPAWN, key: string = KEYS.orchestrator) => issuer.post('/v1/spawn', body, key);
  const refresh = (token: string, body: unknown = READ) => issuer.post('/v1/credentials', body, token);
  /** Moves the issuer's clock (only `Date` is faked, so sockets and timers stay real) past the reuse grace. */
  const pastTheGrace = () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + (REUSE_GRACE_SECONDS + 1) * 1000);
  };
  const revocationsOf = async (instance: string) =>
    (await issuer.runtime.store.queryDecisions({ by: 'identity', value: instance, limit: 100 })).items.filter((r) => r.decision === 'revoked');

  describe('when an orchestrator spawns a class it may spawn', () => {
    it('answers 201 with the instance, its credentials and a refresh token', async () => {
      // Act
      const res = await spawn({ ...SPAWN, credentials: [READ, { tool: 'crm', actions: ['read'], tenant: 'initech' }] });

      // Assess
      expect(res.status).toBe(201);
      expect(res.body.instance.identity).toMatch(/^support-triage\/prod#[A-Za-z0-9_-]{16}$/);
      expect(Date.parse(res.body.instance.expiresAt) - Date.now()).toBeGreaterThan(590_000);
      expect(res.body.refreshToken).toMatch(/^lr_[A-Za-z0-9_-]{43}$/);
      expect(res.body.credentials).toHaveLength(2);
      expect(res.body.credentials.map((c: any) => c.lane)).toStrictEqual([
        `${res.body.instance.identity}:tickets:read:acme`,
        `${res.body.instance.identity}:crm:read:initech`,
      ]);
    });

    it('issues credentials whose sub is the instance, to the orchestrator as principal of record', async () => {
      const res = await spawn();

      const claims = decodeJwt(res.body.credentials[0].token);
      expect(claims.sub).toBe(res.body.instance.identity);
      expect(claims.client_id).toBe('fleet-scheduler');
      const record = await issuer.runtime.store.getCredential(res.body.credentials[0].credentialId);
      expect(record).toMatchObject({ identity: res.body.instance.identity, instance: res.body.instance.identity.split('#')[1], principal: 'fleet-scheduler' });
    });

    it('stores the instance with its expiry, status and the class owner and purpose', async () => {
      const res = await spawn();

      const stored = await issuer.runtime.store.getIdentity(res.body.instance.identity);
      expect(stored).toMatchObject({
        agentClass: 'support-triage',
        environment: 'prod',
        status: 'active',
        owner: 'team-support',
        purpose: 'triage tickets',
        expiresAt: res.body.instance.expiresAt,
      });
    });

    it('keeps only the hash of the refresh token', async () => {
      const res = await spawn();

      const stored = await issuer.runtime.store.getRefreshToken(hashRefreshToken(res.body.refreshToken));
      expect(stored).toMatchObject({ instance: res.body.instance.identity, principal: 'fleet-scheduler', expiresAt: res.body.instance.expiresAt });
      expect(JSON.stringify(stored)).not.toContain(res.body.refreshToken);
    });
  });

  describe('when the refresh token is presented', () => {
    it('issues for the instance and rotates the token: the answer carries the next one', async () => {
      // Prepare
      const spawned = await spawn();

      // Act
      const first = await refresh(spawned.body.refreshToken);
      const second = await refresh(first.body.refreshToken, { ...READ, ttlSeconds: 60 });

      // Assess
      expect(first.status).toBe(201);
      expect(decodeJwt(first.body.token).sub).toBe(spawned.body.instance.identity);
      expect(first.body.refreshToken).toMatch(/^lr_/);
      expect(first.body.refreshToken).not.toBe(spawned.body.refreshToken);
      expect(second.status).toBe(201);
      expect(second.body.refreshToken).not.toBe(first.body.refreshToken);
      const spent = await issuer.runtime.store.getRefreshToken(hashRefreshToken(spawned.body.refreshToken));
      expect(spent).toMatchObject({ spentAt: expect.any(String), replacedBy: hashRefreshToken(first.body.refreshToken) });
    });

    it('spends nothing when the issuance is refused, so the same token still works', async () => {
      const spawned = await spawn();

      const refused = await refresh(spawned.body.refreshToken, { ...READ, tenant: 'umbrella' });
      const retried = await refresh(spawned.body.refreshToken);

      expect(refused.status).toBe(403);
      expect(refused.body.error.code).toBe('not_granted');
      expect(retried.status).toBe(201);
    });

    it('revokes the whole instance when a spent token is presented again after the grace, audited as refresh_token_reused', async () => {
      // Prepare
      const spawned = await spawn();
      const instance = spawned.body.instance.identity;
      const rotated = await refresh(spawned.body.refreshToken);
      pastTheGrace();

      // Act
      const reuse = await refresh(spawned.body.refreshToken);
      const later = await refresh(rotated.body.refreshToken);

      // Assess
      expect(reuse.status).toBe(401);
      expect(reuse.body.error).toMatchObject({ code: 'unauthenticated', message: 'authentication required' });
      expect(later.status).toBe(403);
      expect(later.body.error.code).toBe('identity_revoked');
      const records = (await issuer.runtime.store.queryDecisions({ by: 'identity', value: instance, limit: 100 })).items;
      expect(records.find((r) => r.decision === 'revoked')).toMatchObject({ reason: 'refresh_token_reused', target: { identity: instance } });
      await vi.waitFor(() => expect(events.some((e) => e.detailType === 'Identity Revoked' && JSON.stringify(e.detail).includes(instance))).toBe(true), { timeout: 60_000 });
      const log = await readFile(join(issuer.dataDir, 'events.log'), 'utf8');
      expect(log).toContain('Identity Revoked');
      expect(log).toContain('refresh_token_reused');
    });

    it('revokes only once however often the spent token comes back', async () => {
      const spawned = await spawn();
      await refresh(spawned.body.refreshToken);
      pastTheGrace();

      await refresh(spawned.body.refreshToken);
      await refresh(spawned.body.refreshToken);

      const records = (await issuer.runtime.store.queryDecisions({ by: 'identity', value: spawned.body.instance.identity, limit: 100 })).items;
      expect(records.filter((r) => r.decision === 'revoked')).toHaveLength(1);
    });

    it('revokes at once when a spent token comes back after its successor was used, even within the grace', async () => {
      // Prepare: the owner moved on (A → B → C); a copy of A turns up seconds later.
      const spawned = await spawn();
      const b = await refresh(spawned.body.refreshToken);
      const c = await refresh(b.body.refreshToken);

      // Act
      const copy = await refresh(spawned.body.refreshToken);
      const owner = await refresh(c.body.refreshToken);

      // Assess
      expect(copy.status).toBe(401);
      expect(owner.status).toBe(403);
      expect(owner.body.error.code).toBe('identity_revoked');
      expect(await revocationsOf(spawned.body.instance.identity)).toHaveLength(1);
    });

    it('answers unauthenticated, saying nothing, to an unknown or malformed lr_ token', async () => {
      const unknown = await refresh(`lr_${'A'.repeat(43)}`);
      const malformed = await refresh('lr_short');

      expect(unknown.status).toBe(401);
      expect(malformed.status).toBe(401);
      expect(unknown.body.error.message).toBe('authentication required');
    });

    it('stops one revoked instance while its sibling keeps working', async () => {
      // Prepare
      const a = await spawn();
      const b = await spawn();

      // Act
      const revoked = await issuer.post('/v1/admin', { command: 'revoke', target: { identity: a.body.instance.identity }, reason: 'leaked credential' }, KEYS.admin);
      const forA = await refresh(a.body.refreshToken);
      const forB = await refresh(b.body.refreshToken);

      // Assess
      expect(revoked.status).toBe(200);
      expect(forA.status).toBe(403);
      expect(forA.body.error.code).toBe('identity_revoked');
      expect(forB.status).toBe(201);
    });

    it('never lets a credential outlive its instance, and says so', async () => {
      // Act: a 60 s instance asks for the default 300 s credential.
      const spawned = await spawn({ ...SPAWN, maxLifetimeSeconds: 60 });

      // Assess
      const [credential] = spawned.body.credentials;
      expect(Date.parse(credential.expiresAt)).toBeLessThanOrEqual(Date.parse(spawned.body.instance.expiresAt));
      expect(credential.ttlSeconds).toBeLessThanOrEqual(60);
      expect(credential.notice).toMatch(/shortened to \d+ s: identity .+ expires at/);
    });

    it('refuses an instance past its maximum lifetime with identity_revoked', async () => {
      // Prepare: fake Date only, so the in-process issuer's clock moves and timers stay real.
      const spawned = await spawn({ ...SPAWN, maxLifetimeSeconds: 60 });
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(Date.parse(spawned.body.instance.expiresAt) + 1_000);

      // Act
      const res = await refresh(spawned.body.refreshToken);

      // Assess
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('identity_revoked');
    });
  });

  describe('when a spent token comes back within the reuse grace', () => {
    it('answers a retry after the issuer died between the rotation and its answer with a fresh successor, and revokes nothing', async () => {
      // Prepare: an issuer on the same data whose spend commits and then fails, as if it died before answering.
      const spawned = await spawn();
      const instance = spawned.body.instance.identity;
      const dying = { ...issuer.runtime, log: silentLog, store: storeFailingAfterCommit(issuer.runtime.store, { spendRefreshToken: new Error('process killed') }) };
      const server = await startDevServer({ runtime: dying, port: 0 });
      const lost = await fetch(`${server.url}/v1/instance/credentials`, {
        method: 'POST',
        headers: { authorization: `Bearer ${spawned.body.refreshToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(READ),
      });
      await server.close();
      const firstSuccessor = (await issuer.runtime.store.getRefreshToken(hashRefreshToken(spawned.body.refreshToken)))!.replacedBy!;

      // Act: the instance retries with the token it still holds, then carries on with the answer.
      const retried = await refresh(spawned.body.refreshToken);
      const next = await refresh(retried.body.refreshToken);

      // Assess
      expect(lost.status).toBe(503);
      expect(((await lost.json()) as { refreshToken?: string }).refreshToken).toBeUndefined();
      expect(retried.status).toBe(201);
      expect(decodeJwt(retried.body.token).sub).toBe(instance);
      expect(hashRefreshToken(retried.body.refreshToken)).not.toBe(firstSuccessor);
      expect(next.status).toBe(201);
      expect(await issuer.runtime.store.getRefreshToken(firstSuccessor)).toMatchObject({
        spentAt: expect.any(String),
        supersededAt: expect.any(String),
        replacedBy: hashRefreshToken(retried.body.refreshToken),
      });
      expect(await revocationsOf(instance)).toHaveLength(0);
    });

    it('honours the grace once: the same spent token presented a second time revokes the instance', async () => {
      const spawned = await spawn();
      await refresh(spawned.body.refreshToken);

      const retried = await refresh(spawned.body.refreshToken);
      const again = await refresh(spawned.body.refreshToken);
      const holder = await refresh(retried.body.refreshToken);

      expect(retried.status).toBe(201);
      expect(again.status).toBe(401);
      expect(holder.status).toBe(403);
      expect(holder.body.error.code).toBe('identity_revoked');
      expect(await revocationsOf(spawned.body.instance.identity)).toMatchObject([{ reason: 'refresh_token_reused' }]);
    });

    it('ends a stolen copy used after the owner in a revocation, when the owner next refreshes with its superseded token', async () => {
      // Prepare: the owner rotates A → B; a thief holding a copy of A presents it seconds later.
      const spawned = await spawn();
      const owner = await refresh(spawned.body.refreshToken);
      const thief = await refresh(spawned.body.refreshToken);

      // Act
      const ownerNext = await refresh(owner.body.refreshToken);
      const thiefNext = await refresh(thief.body.refreshToken);

      // Assess: the thief's grace answer superseded the owner's B, whose next use is a reuse.
      expect(thief.status).toBe(201);
      expect(ownerNext.status).toBe(401);
      expect(thiefNext.status).toBe(403);
      expect(thiefNext.body.error.code).toBe('identity_revoked');
      expect(await revocationsOf(spawned.body.instance.identity)).toMatchObject([{ reason: 'refresh_token_reused' }]);
    });

    it('gives no grace to a superseded token, even within the grace', async () => {
      // Prepare: A → B, then a grace use of A supersedes B with C.
      const spawned = await spawn();
      const b = await refresh(spawned.body.refreshToken);
      await refresh(spawned.body.refreshToken);

      // Act: B, never spent by its own use, comes back at once.
      const res = await refresh(b.body.refreshToken);

      // Assess
      expect(res.status).toBe(401);
      expect(await revocationsOf(spawned.body.instance.identity)).toHaveLength(1);
    });

    it('lets exactly one of concurrent grace uses through and revokes for the others', async () => {
      const spawned = await spawn();
      await refresh(spawned.body.refreshToken);

      const outcomes = await Promise.all([1, 2, 3].map(() => refresh(spawned.body.refreshToken)));
      const winner = await refresh(outcomes.find((o) => o.status === 201)!.body.refreshToken);

      expect(outcomes.map((o) => o.status).sort()).toStrictEqual([201, 401, 401]);
      expect(winner.body.error.code).toBe('identity_revoked');
      expect((await revocationsOf(spawned.body.instance.identity)).length).toBeGreaterThan(0);
    });

    it('answers both of two concurrent first uses (a retry while the first is still running), leaving one live token', async () => {
      // Prepare
      const spawned = await spawn();

      // Act
      const [first, second] = await Promise.all([refresh(spawned.body.refreshToken), refresh(spawned.body.refreshToken)]);

      // Assess: one answer's token superseded the other's; only the live one rotates.
      expect([first.status, second.status]).toStrictEqual([201, 201]);
      const tokens = [first.body.refreshToken as string, second.body.refreshToken as string];
      const records = await Promise.all(tokens.map((t) => issuer.runtime.store.getRefreshToken(hashRefreshToken(t))));
      const live = tokens.filter((_t, i) => records[i]!.spentAt === undefined);
      expect(live).toHaveLength(1);
      expect((await refresh(live[0]!)).status).toBe(201);
      expect(await revocationsOf(spawned.body.instance.identity)).toHaveLength(0);
    });

    it('revokes a spent token presented after the grace, though its successor was never used', async () => {
      const spawned = await spawn();
      const lostAnswer = await refresh(spawned.body.refreshToken);
      pastTheGrace();

      const late = await refresh(spawned.body.refreshToken);

      expect(lostAnswer.status).toBe(201);
      expect(late.status).toBe(401);
      expect(await revocationsOf(spawned.body.instance.identity)).toHaveLength(1);
    });
  });

  describe('when the caller or the body is refused', () => {
    it.each([
      ['an agent', KEYS.agent],
      ['a verifier', KEYS.verifier],
      ['an admin', KEYS.admin],
    ])('refuses %s with 403 forbidden', async (_who, key) => {
      const res = await spawn(SPAWN, key);

      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
    });

    it('records the refusal of a caller that is no orchestrator as a denied decision', async () => {
      const append = vi.spyOn(issuer.runtime.decisions, 'append');
      try {
        const res = await spawn(SPAWN, KEYS.agent);

        expect(res.status).toBe(403);
        expect(append).toHaveBeenCalledWith(
          expect.objectContaining({ decision: 'denied', reason: 'forbidden', principal: 'triage-worker-1', requestId: res.body.error.requestId }),
        );
      } finally {
        append.mockRestore();
      }
    });

    it('records a body naming an unknown field as a denied decision, and a malformed one not at all', async () => {
      const append = vi.spyOn(issuer.runtime.decisions, 'append');
      try {
        const unknown = await spawn({ ...SPAWN, replicas: 3 });
        const malformed = await spawn({ ...SPAWN, maxLifetimeSeconds: 'long' });

        expect(unknown.status).toBe(400);
        expect(malformed.status).toBe(400);
        expect(append).toHaveBeenCalledTimes(1);
        expect(append).toHaveBeenCalledWith(
          expect.objectContaining({ decision: 'denied', reason: 'invalid_request', principal: 'fleet-scheduler', identity: SPAWN.identity, requestId: unknown.body.error.requestId }),
        );
      } finally {
        append.mockRestore();
      }
    });

    it('refuses a class outside the orchestrator spawns with 403 forbidden', async () => {
      const res = await spawn({ ...SPAWN, identity: 'billing-bot/prod' });

      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
    });

    it('refuses an unknown caller with 401', async () => {
      const res = await spawn(SPAWN, 'lk_nobody_0000000000000000000000');

      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('unauthenticated');
    });

    it.each([
      ['a lifetime under 60 s', { ...SPAWN, maxLifetimeSeconds: 59 }, 'maxLifetimeSeconds'],
      ['a lifetime over a day', { ...SPAWN, maxLifetimeSeconds: 86_401 }, 'maxLifetimeSeconds'],
      ['no credentials', { ...SPAWN, credentials: [] }, 'credentials'],
      ['eleven credentials', { ...SPAWN, credentials: Array.from({ length: 11 }, () => READ) }, 'credentials'],
      ['an instance as the identity', { ...SPAWN, identity: 'support-triage/prod#abc' }, 'identity'],
      ['an unknown field', { ...SPAWN, replicas: 3 }, 'replicas'],
      ['an unknown field in a credential', { ...SPAWN, credentials: [{ ...READ, scopes: ['all'] }] }, 'credentials[0].scopes'],
    ])('refuses %s with 400 naming the field', async (_case, body, field) => {
      const res = await spawn(body);

      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_request', field });
    });

    it('refuses a credential the class is not granted, naming which one, and leaves the instance suspended', async () => {
      const res = await spawn({ ...SPAWN, credentials: [READ, { ...READ, tenant: 'umbrella' }] });

      expect(res.status).toBe(403);
      expect(res.body.error).toMatchObject({ code: 'not_granted', field: 'credentials[1]' });
      expect(res.body.refreshToken).toBeUndefined();
      const instances = (await issuer.runtime.store.listIdentities()).filter((i) => i.instance && i.status === 'suspended');
      expect(instances.length).toBeGreaterThan(0);
    });
  });

  // Last: it demotes a grant of the class for the rest of this file.
  describe('when a grant of the class is demoted', () => {
    it('revokes at once the live credentials its instances hold under that grant, and only those', async () => {
      // Prepare
      const CRM = { tool: 'crm', actions: ['read'], tenant: 'initech' };
      const spawned = await spawn({ ...SPAWN, credentials: [READ, CRM] });
      const [tickets, crm] = spawned.body.credentials as { credentialId: string; token: string }[];
      const active = async (token: string): Promise<boolean> =>
        (await issuer.post('/v1/introspect', `token=${token}`, KEYS.verifier, { 'content-type': 'application/x-www-form-urlencoded' })).body.active as boolean;

      // Act
      const change = await issuer.post(
        '/v1/admin',
        { command: 'grant.change', identity: 'support-triage/prod', grant: 'crm-reader@1', set: { status: 'demoted' }, reason: 'crm access under review' },
        KEYS.admin,
      );

      // Assess
      expect(change.status).toBe(200);
      expect(change.body.result.revokedCredentials).toContain(crm!.credentialId);
      expect(change.body.result.revokedCredentials).not.toContain(tickets!.credentialId);
      expect(await active(crm!.token)).toBe(false);
      expect(await active(tickets!.token)).toBe(true);
    });
  });
});
