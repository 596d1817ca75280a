import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createAdminInvokeHandler } from '../../lambdas/admin.ts';
import { SECRETS_DIR } from '../../shared/adapters/local/file-vault.ts';
import type { Tool } from '../../shared/domain/model.ts';
import type { Log } from '../../shared/ports/log.ts';
import type { PolicyDocument } from '../../shared/policy/policy-file.ts';
import type { LanyardEvent } from '../../shared/ports/index.ts';
import { KEYS, startTestIssuer, testPolicy, type TestIssuer } from '../helpers/issuer.ts';

const TRIAGE = 'support-triage/prod';
const BILLING = 'billing-bot/prod';
const LANE = `${TRIAGE}:tickets:read:acme`;
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** The test policy, with a second, wider version of the triage role that the triage identity holds. */
function policy(): PolicyDocument {
  const base = testPolicy();
  return {
    ...base,
    roles: [...base.roles, { id: 'support-triage', version: 2, actions: ['tickets:read', 'tickets:list', 'tickets:reply', 'tickets:escalate', 'legacy:read'], approvedBy: 'alice@example.com' }],
    grants: base.grants.map((g) => (g.identity === TRIAGE && g.role === 'support-triage@1' ? { ...g, role: 'support-triage@2' } : g)),
  };
}

describe('Handler: POST /v1/admin', () => {
  let issuer: TestIssuer;

  beforeAll(async () => {
    issuer = await startTestIssuer({ policy: policy() });
  });
  afterAll(() => issuer.stop());

  const admin = (command: unknown, key: string = KEYS.admin) => issuer.post('/v1/admin', command, key);
  const mint = async (body: object, key: string = KEYS.agent) => {
    const res = await issuer.post('/v1/credentials', body, key);
    expect(res.status).toBe(201);
    return res.body as { token: string; credentialId: string; lane: string };
  };
  const active = async (token: string): Promise<boolean> =>
    (await issuer.post('/v1/introspect', `token=${token}`, KEYS.verifier, FORM)).body.active as boolean;
  /** Events published on the local bus while `act` runs. */
  const eventsDuring = async (act: () => Promise<unknown>): Promise<LanyardEvent[]> => {
    const seen: LanyardEvent[] = [];
    const unsubscribe = issuer.runtime.events.subscribe((e) => seen.push(e));
    try {
      await act();
      return seen;
    } finally {
      unsubscribe();
    }
  };
  const snapshot = async () => ({
    feed: (await issuer.get('/v1/revocations', KEYS.admin)).body,
    blocks: await issuer.runtime.store.listBlocks(),
    grants: await issuer.runtime.store.listGrants(TRIAGE),
  });

  describe('when the command is malformed', () => {
    const revoke = { command: 'revoke', target: { lane: LANE }, reason: 'leaked in a log' };
    it.each([
      ['an unknown command', { command: 'explode', reason: 'because' }, 'command'],
      ['a command that is not a string', { command: 5 }, 'command'],
      ['no command', { target: { lane: LANE }, reason: 'because' }, 'command'],
      ['no reason', { command: 'revoke', target: { lane: LANE } }, 'reason'],
      ['a reason too short to say why', { ...revoke, reason: 'no' }, 'reason'],
      ['a reason of blanks', { ...revoke, reason: '     ' }, 'reason'],
      ['two target keys', { ...revoke, target: { lane: LANE, identity: TRIAGE } }, 'target'],
      ['an empty target', { ...revoke, target: {} }, 'target'],
      ['a malformed lane id', { ...revoke, target: { lane: 'support-triage/prod:tickets:superuser:acme' } }, 'target.lane'],
      ['a lane id with three parts', { ...revoke, target: { lane: 'support-triage/prod:tickets:acme' } }, 'target.lane'],
      ['a malformed credential id', { ...revoke, target: { credential: 'jti-1' } }, 'target.credential'],
      ['a tenant target of *', { ...revoke, target: { tenant: '*' } }, 'target.tenant'],
      ['an unknown field', { ...revoke, force: true }, 'force'],
      ['an actor other than the authenticated admin (audit would name them)', { ...revoke, actor: 'alice@example.com' }, 'actor'],
      ['a policy apply attributed to someone else', { command: 'policy.apply', policy: {}, actor: 'alice@example.com' }, 'actor'],
      ['a grant change that changes nothing', { command: 'grant.change', identity: TRIAGE, grant: 'crm-reader@1', set: {}, reason: 'tidy up' }, 'set'],
      ['a grant change with an unknown field to set', { command: 'grant.change', identity: TRIAGE, grant: 'crm-reader@1', set: { owner: 'x' }, reason: 'tidy up' }, 'set.owner'],
      ['an audit query at a time that is not an instant', { command: 'audit.at', identity: TRIAGE, at: 'yesterday' }, 'at'],
      ['a JSON array', [revoke], 'body'],
      ['a JSON string', 'revoke', 'body'],
      ['JSON null', null, 'body'],
    ])('answers 400 invalid_request naming the field for %s, and changes nothing', async (_name, command, field) => {
      // Prepare
      const before = await snapshot();

      // Act
      const res = await admin(JSON.stringify(command));

      // Assess
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_request', field, retryable: false });
      expect(await snapshot()).toEqual(before);
    });

    it('answers 415 unsupported_media_type to a body that is not JSON', async () => {
      const res = await issuer.post('/v1/admin', 'command=revoke', KEYS.admin, FORM);

      expect(res.status).toBe(415);
      expect(res.body.error.code).toBe('unsupported_media_type');
    });
  });

  describe('when the caller is not an admin', () => {
    const commands = [
      { command: 'revoke', target: { lane: LANE }, reason: 'not yours to do' },
      { command: 'revoke', target: { identity: TRIAGE }, reason: 'not yours to do' },
      { command: 'grant.change', identity: TRIAGE, grant: 'crm-reader@1', set: { status: 'demoted' }, reason: 'not yours to do' },
      { command: 'audit.query', by: 'identity', value: TRIAGE },
    ];
    it.each([
      ['an agent', KEYS.agent],
      ['a verifier', KEYS.verifier],
      ['an orchestrator', KEYS.orchestrator],
    ])('answers 403 forbidden to %s and leaves the feed, the blocks and the grants unchanged', async (_name, key) => {
      // Prepare
      const before = await snapshot();

      // Act
      const answers = await Promise.all(commands.map((command) => admin(command, key)));

      // Assess
      for (const res of answers) {
        expect(res.status).toBe(403);
        expect(res.body.error.code).toBe('forbidden');
        expect(res.body.result).toBeUndefined();
      }
      expect(await snapshot()).toEqual(before);
      expect((await issuer.post('/v1/credentials', { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' }, KEYS.agent)).status).toBe(201);
    });

    it('answers 401 unauthenticated to a caller with no key, and changes nothing', async () => {
      const before = await snapshot();

      const res = await issuer.post('/v1/admin', commands[0], undefined);

      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('unauthenticated');
      expect(await snapshot()).toEqual(before);
    });
  });

  describe('when the target does not exist', () => {
    it('answers 404 not_found to a revoke of a credential this issuer never issued, and appends nothing', async () => {
      const before = await snapshot();

      const res = await admin({ command: 'revoke', target: { credential: 'crd_neverIssuedByThisIssuer0' }, reason: 'leaked in a log' });

      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('not_found');
      expect(await snapshot()).toEqual(before);
    });

    it('answers 404 not_found to a reinstate with no standing block, and to a second reinstate of the same target', async () => {
      // Prepare
      const lane = `${TRIAGE}:tickets:admin:globex`;
      await admin({ command: 'revoke', target: { lane }, reason: 'purge by mistake' });

      // Act
      const never = await admin({ command: 'reinstate', target: { lane: `${TRIAGE}:crm:write:nowhere` }, reason: 'nothing to lift' });
      const first = await admin({ command: 'reinstate', target: { lane }, reason: 'reviewed' });
      const second = await admin({ command: 'reinstate', target: { lane }, reason: 'reviewed again' });

      // Assess
      expect(never.status).toBe(404);
      expect(never.body.error.code).toBe('not_found');
      expect(first.status).toBe(200);
      expect(first.body.result.lifted).toMatchObject({ targetKey: `lane:${lane}`, actor: 'oncall' });
      expect(second.status).toBe(404);
      expect(second.body.error.code).toBe('not_found');
    });
  });

  describe('when a grant changes', () => {
    it('refuses to widen a grant without approvedBy (400, field approvedBy) and changes nothing', async () => {
      // Prepare
      const before = await snapshot();

      // Act
      const answers = await Promise.all([
        admin({ command: 'grant.change', identity: TRIAGE, grant: 'crm-reader@1', set: { maxTtlSeconds: 1200 }, reason: 'longer tasks' }),
        admin({ command: 'grant.change', identity: TRIAGE, grant: 'crm-reader@1', set: { kinds: ['jwt', 'sts'] }, reason: 'aws access' }),
        admin({ command: 'grant.change', identity: BILLING, grant: 'support-triage@1', set: { tenants: ['acme', 'globex'] }, reason: 'new customer' }),
        admin({ command: 'grant.change', identity: BILLING, grant: 'support-triage@1', set: { roleVersion: 2 }, reason: 'escalations' }),
      ]);

      // Assess
      for (const res of answers) {
        expect(res.status).toBe(400);
        expect(res.body.error).toMatchObject({ code: 'invalid_request', field: 'approvedBy' });
      }
      expect(await snapshot()).toEqual(before);
    });

    it('refuses a grant change that would let sts outlive one hour (400 naming the field) and changes nothing', async () => {
      // Prepare
      const before = await snapshot();
      const policyBefore = policy();
      const longSts = { ...policyBefore.grants[0]!, id: 'aws-long', kinds: ['jwt', 'sts'], maxTtlSeconds: 7_200 };

      // Act
      const longer = await admin({ command: 'grant.change', identity: TRIAGE, grant: 'crm-reader@1', set: { kinds: ['jwt', 'sts'], maxTtlSeconds: 3_601 }, reason: 'aws access', approvedBy: 'alice@example.com' });
      const applied = await admin({ command: 'policy.apply', policy: { ...policyBefore, grants: [...policyBefore.grants, longSts] } });

      // Assess
      expect(longer.status).toBe(400);
      expect(longer.body.error).toMatchObject({ code: 'invalid_request', field: 'set.maxTtlSeconds', maxTtlSeconds: 3_600 });
      expect(applied.status).toBe(400);
      expect(applied.body.error).toMatchObject({ code: 'invalid_request', field: `grants[${policyBefore.grants.length}].maxTtlSeconds` });
      expect(await snapshot()).toEqual(before);
    });

    it('widens a grant that names its approver, and records the approver', async () => {
      const res = await admin({ command: 'grant.change', identity: BILLING, grant: 'support-triage@1', set: { maxTtlSeconds: 600 }, reason: 'longer tasks', approvedBy: 'alice@example.com' });

      expect(res.status).toBe(200);
      expect(res.body.result).toMatchObject({ widened: true, revokedCredentials: [], after: { maxTtlSeconds: 600, approvedBy: 'alice@example.com', changedBy: 'oncall' } });
    });

    it('on demotion revokes exactly the live credentials the grant no longer covers, keeps the rest active, and emits Grant Changed', async () => {
      // Prepare
      const crmAcme = await mint({ tool: 'crm', actions: ['crm:read'], tenant: 'acme' });
      const crmInitech = await mint({ tool: 'crm', actions: ['crm:read'], tenant: 'initech' });
      const tickets = await mint({ tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' });
      const billing = await mint({ tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' }, KEYS.otherAgent);

      // Act
      let res: Awaited<ReturnType<typeof admin>> | undefined;
      const events = await eventsDuring(async () => {
        res = await admin({ command: 'grant.change', identity: TRIAGE, grant: 'crm-reader@1', set: { status: 'demoted' }, reason: 'crm access under review' });
      });

      // Assess
      expect(res!.status).toBe(200);
      expect(res!.body.result).toMatchObject({ widened: false, after: { status: 'demoted' } });
      expect([...res!.body.result.revokedCredentials].sort()).toEqual([crmAcme.credentialId, crmInitech.credentialId].sort());
      expect(await active(crmAcme.token)).toBe(false);
      expect(await active(crmInitech.token)).toBe(false);
      expect(await active(tickets.token)).toBe(true);
      expect(await active(billing.token)).toBe(true);
      const grantChanged = events.filter((e) => e.detailType === 'Grant Changed');
      expect(grantChanged).toHaveLength(1);
      expect(grantChanged[0]!.detail).toMatchObject({
        identity: TRIAGE,
        grant: 'crm-reader@1',
        before: { status: 'active' },
        after: { status: 'demoted' },
        actor: 'oncall',
        reason: 'crm access under review',
      });
      const refused = await issuer.post('/v1/credentials', { tool: 'crm', actions: ['crm:read'], tenant: 'acme' }, KEYS.agent);
      expect(refused.status).toBe(403);
      expect(refused.body.error.code).toBe('not_granted');
    });

    it('on a move to a lower role version revokes only the credentials for actions the older version lacks', async () => {
      // Prepare
      const escalate = await mint({ tool: 'tickets', actions: ['tickets:escalate'], tenant: 'acme' });
      const reply = await mint({ tool: 'tickets', actions: ['tickets:reply'], tenant: 'acme' });
      const read = await mint({ tool: 'tickets', actions: ['tickets:read'], tenant: 'globex' });

      // Act
      const res = await admin({ command: 'grant.change', identity: TRIAGE, grant: 'support-triage@2', set: { roleVersion: 1 }, reason: 'escalation rights withdrawn' });

      // Assess
      expect(res.status).toBe(200);
      expect(res.body.result.widened).toBe(false);
      expect(res.body.result.revokedCredentials).toEqual([escalate.credentialId]);
      expect(await active(escalate.token)).toBe(false);
      expect(await active(reply.token)).toBe(true);
      expect(await active(read.token)).toBe(true);
      const refused = await issuer.post('/v1/credentials', { tool: 'tickets', actions: ['tickets:escalate'], tenant: 'acme' }, KEYS.agent);
      expect(refused.status).toBe(403);
      expect(refused.body.error.code).toBe('not_granted');
    });
  });

  describe('audit of admin commands', () => {
    it('finds every revoke and reinstate by identity, lane, tenant and tool, with actor and reason', async () => {
      // Prepare
      const lane = `${TRIAGE}:tickets:write:globex`;
      await admin({ command: 'revoke', target: { lane }, reason: 'replies looked wrong' });
      await admin({ command: 'reinstate', target: { lane }, reason: 'false alarm' });
      await admin({ command: 'revoke', target: { tenant: 'umbrella' }, reason: 'customer offboarded' });
      await admin({ command: 'revoke', target: { tool: 'legacy' }, reason: 'legacy api retired' });
      const query = async (by: string, value: string) => {
        const res = await admin({ command: 'audit.query', by, value, limit: 1000 });
        expect(res.status).toBe(200);
        return (res.body.result.items as any[]).filter((r) => r.decision === 'revoked' || r.decision === 'reinstated');
      };

      // Act
      const [byLane, byIdentity, byTenant, byTool, byOtherTenant, byOtherTool] = await Promise.all([
        query('lane', lane),
        query('identity', TRIAGE),
        query('tenant', 'globex'),
        query('tool', 'tickets'),
        query('tenant', 'umbrella'),
        query('tool', 'legacy'),
      ]);

      // Assess
      const revokeRecord = { decision: 'revoked', actor: 'oncall', reason: 'replies looked wrong', lane, targetKey: `lane:${lane}` };
      const reinstateRecord = { decision: 'reinstated', actor: 'oncall', reason: 'false alarm', lane, targetKey: `lane:${lane}` };
      for (const records of [byLane, byIdentity, byTenant, byTool]) {
        expect(records).toContainEqual(expect.objectContaining(revokeRecord));
        expect(records).toContainEqual(expect.objectContaining(reinstateRecord));
      }
      expect(byLane).toHaveLength(2);
      expect(byOtherTenant).toEqual([expect.objectContaining({ decision: 'revoked', actor: 'oncall', reason: 'customer offboarded', tenant: 'umbrella' })]);
      expect(byOtherTool).toEqual([expect.objectContaining({ decision: 'revoked', actor: 'oncall', reason: 'legacy api retired', tool: 'legacy' })]);
    });

    it('answers "what could this identity do at T" before and after a revoke', async () => {
      // Prepare
      const credential = await mint({ tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' }, KEYS.otherAgent);
      await delay(5);
      const beforeRevoke = new Date().toISOString();
      await delay(5);
      const revoked = await admin({ command: 'revoke', target: { lane: `${BILLING}:tickets:read:acme` }, reason: 'billing bot misbehaving' });
      expect(revoked.status).toBe(200);
      await delay(5);
      const afterRevoke = new Date().toISOString();

      // Act
      const [before, after] = await Promise.all([
        admin({ command: 'audit.at', identity: BILLING, at: beforeRevoke }),
        admin({ command: 'audit.at', identity: BILLING, at: afterRevoke }),
      ]);

      // Assess
      expect(before.status).toBe(200);
      expect(after.status).toBe(200);
      expect(before.body.result.couldIssue).toEqual(expect.arrayContaining(['tickets:read@acme', 'tickets:list@acme', 'tickets:reply@acme']));
      // The read lane is blocked; the write lane of the same tool and tenant is not (and the issuer agrees).
      expect(after.body.result.couldIssue).not.toContain('tickets:read@acme');
      expect(after.body.result.couldIssue).not.toContain('tickets:list@acme');
      expect(after.body.result.couldIssue).toContain('tickets:reply@acme');
      expect((await issuer.post('/v1/credentials', { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' }, KEYS.otherAgent)).body.error.code).toBe('lane_revoked');
      expect((await issuer.post('/v1/credentials', { tool: 'tickets', actions: ['tickets:reply'], tenant: 'acme' }, KEYS.otherAgent)).status).toBe(201);
      expect(before.body.result.liveCredentials.map((r: any) => r.credentialId)).toContain(credential.credentialId);
      expect(after.body.result.liveCredentials.map((r: any) => r.credentialId)).not.toContain(credential.credentialId);
      expect(after.body.result.revocations).toContainEqual(
        expect.objectContaining({ targetKey: `lane:${BILLING}:tickets:read:acme`, standingAt: true, actor: 'oncall', reason: 'billing bot misbehaving' }),
      );
      expect(before.body.result.revocations.filter((r: any) => r.targetKey === `lane:${BILLING}:tickets:read:acme`)).toEqual([]);
    });
  });
});

describe('Handler: POST /v1/admin (upstream secrets)', () => {
  const SECRET = 'sk_live_51HxQadminHandlerSecret3c2b1a0z';
  const lines: string[] = [];
  const write = (level: string) => (message: string, extra?: Record<string, unknown>) => void lines.push(JSON.stringify({ level, message, ...extra }));
  const log: Log = { info: write('info'), warn: write('warn'), error: write('error') };
  const events: LanyardEvent[] = [];
  let issuer: TestIssuer;

  const stripe: Tool = {
    id: 'stripe',
    audience: 'urn:lanyard:broker',
    actions: { 'charges.read': 'read' },
    enabled: true,
    upstream: { baseUrl: 'https://api.stripe.com', key: { header: 'authorization', scheme: 'Bearer' }, routes: { 'charges.read': [{ method: 'GET', path: '/v1/charges*' }] } },
    updatedAt: '2026-11-22T12:00:00.000Z',
  };

  beforeAll(async () => {
    issuer = await startTestIssuer({ log });
    await issuer.runtime.store.putTool(stripe);
    issuer.runtime.policy.invalidate();
    issuer.runtime.events.subscribe((e) => events.push(e));
  });
  afterAll(() => issuer.stop());

  const admin = (command: unknown, key: string = KEYS.admin) => issuer.post('/v1/admin', command, key);
  const set = (extra: Record<string, unknown> = {}, key?: string) => admin({ command: 'upstream.secret.set', provider: 'stripe', secret: SECRET, reason: 'key rotation', ...extra }, key);
  /** What a refused command must leave as it was: the vault files, the pointers, the rotation records. */
  const written = async () => ({
    vault: await Promise.all((await readdir(join(issuer.dataDir, SECRETS_DIR))).map((f) => readFile(join(issuer.dataDir, SECRETS_DIR, f), 'utf8'))),
    refs: await issuer.runtime.store.listUpstreamSecretRefs(),
    records: (await issuer.runtime.store.queryDecisions({ by: 'tool', value: 'stripe', limit: 100 })).items,
  });

  it('sets a secret and rotates it: two versions, the pointer moves, a record each, an event each, the secret in none of them', async () => {
    // Act
    const first = await set();
    const second = await set({ secret: `${SECRET}-rotated`, overlapSeconds: 120 });

    // Assess
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(first.body.result).toEqual({
      provider: 'stripe',
      version: expect.stringMatching(/^v_[0-9a-f]{16}$/),
      rotatedAt: expect.any(String),
      overlapUntil: expect.any(String),
      takesEffectWithinMs: issuer.runtime.policy.ttlMs,
    });
    expect(second.body.result).toMatchObject({ provider: 'stripe', previousVersion: first.body.result.version });
    expect(Date.parse(second.body.result.overlapUntil) - Date.parse(second.body.result.rotatedAt)).toBe(120_000);
    expect(await issuer.runtime.store.getUpstreamSecretRef('stripe')).toMatchObject({ version: second.body.result.version, previousVersion: first.body.result.version, actor: 'oncall', reason: 'key rotation' });
    expect(await issuer.runtime.vault!.getSecret('stripe', first.body.result.version)).toBe(SECRET);
    expect(await issuer.runtime.vault!.getSecret('stripe', second.body.result.version)).toBe(`${SECRET}-rotated`);
    const records = (await issuer.runtime.store.queryDecisions({ by: 'tool', value: 'stripe', limit: 100 })).items.filter((r) => r.decision === 'secret_rotated');
    expect(records.map((r) => r.secretVersion).sort()).toEqual([first.body.result.version, second.body.result.version].sort());
    expect(records.every((r) => r.actor === 'oncall' && r.reason === 'key rotation')).toBe(true);
    const rotated = events.filter((e) => e.detailType === 'Upstream Secret Rotated');
    expect(rotated.map((e) => (e.detail as { version: string }).version)).toEqual([first.body.result.version, second.body.result.version]);
    expect(lines).toContainEqual(expect.stringContaining('"command":"upstream.secret.set"'));
    const visible = JSON.stringify({ answers: [first.body, second.body], records, events, lines, eventsLog: await readFile(join(issuer.dataDir, 'events.log'), 'utf8') });
    expect(visible).not.toContain(SECRET);
  });

  it('lists the upstreams with their current version, never the secret', async () => {
    const current = await issuer.runtime.store.getUpstreamSecretRef('stripe');

    const res = await admin({ command: 'upstream.list' });

    expect(res.status).toBe(200);
    expect(res.body.result.upstreams).toEqual([{ provider: 'stripe', baseUrl: 'https://api.stripe.com', secretSet: true, version: current?.version, rotatedAt: current?.rotatedAt }]);
    expect(JSON.stringify(res.body)).not.toContain('sk_live');
  });

  describe('when the command is refused', () => {
    it.each([
      ['a secret with CR LF (header injection)', { secret: `${SECRET}\r\nx-forwarded-for: 10.0.0.1` }, 'secret'],
      ['a secret with a NUL byte', { secret: `${SECRET}\u0000` }, 'secret'],
      ['a secret over 8192 characters', { secret: `${SECRET}${'x'.repeat(8192)}` }, 'secret'],
      ['an empty secret', { secret: '' }, 'secret'],
      ['a secret that is a number', { secret: 4242424242424242 }, 'secret'],
      ['a secret wrapped in an object', { secret: { value: SECRET } }, 'secret'],
      ['a secret wrapped in an array', { secret: [SECRET] }, 'secret'],
      ['no secret', { secret: undefined }, 'secret'],
      ['an overlap over an hour', { overlapSeconds: 7200 }, 'overlapSeconds'],
      ['a provider that is not a tool id', { provider: 'Stripe API' }, 'provider'],
      ['a tool without an upstream', { provider: 'tickets' }, 'provider'],
      ['an unknown field', { secretVersion: 'v_1' }, 'secretVersion'],
      ['no reason', { reason: undefined }, 'reason'],
      ['an actor other than the admin', { actor: 'alice@example.com' }, 'actor'],
    ])('answers 400 invalid_request naming the field for %s, quotes no secret, and writes nothing', async (_name, extra, field) => {
      // Prepare
      const before = await written();

      // Act
      const res = await set(extra);

      // Assess
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_request', field, retryable: false });
      expect(JSON.stringify(res.body)).not.toContain(SECRET);
      expect(JSON.stringify(res.body)).not.toContain('x-forwarded-for');
      expect(await written()).toEqual(before);
    });

    it('explains the secret rule without quoting the secret', async () => {
      const res = await set({ secret: `${SECRET}\n` });

      expect(res.body.error.message).toMatch(/^secret: a secret is 1 to 8192 printable ASCII characters/);
    });

    it('answers 404 not_found to an unknown provider, and writes nothing', async () => {
      const before = await written();

      const res = await set({ provider: 'nowhere' });

      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('not_found');
      expect(await written()).toEqual(before);
    });

    it.each([
      ['an agent', KEYS.agent],
      ['a verifier', KEYS.verifier],
      ['an orchestrator', KEYS.orchestrator],
    ])('answers 403 forbidden to %s, for setting and for listing, and writes nothing', async (_name, key) => {
      const before = await written();

      const [setting, listing] = await Promise.all([set({}, key), admin({ command: 'upstream.list' }, key)]);

      expect(setting.status).toBe(403);
      expect(listing.status).toBe(403);
      expect(setting.body.error.code).toBe('forbidden');
      expect(await written()).toEqual(before);
    });

    it('leaves the secret out of every log line written while refusing', async () => {
      const start = lines.length;

      await set({ secret: `${SECRET}\r\n` });
      await set({ provider: 'nowhere' });
      await set({ provider: 'tickets' });

      expect(lines.slice(start).join('\n')).not.toContain(SECRET);
    });
  });

  describe('direct invocation (the admin Lambda)', () => {
    it('sets a secret with the actor it names, and refuses a bad one without quoting it', async () => {
      // Prepare
      const invoke = createAdminInvokeHandler(issuer.runtime);

      // Act
      const ok = await invoke({ command: 'upstream.secret.set', provider: 'stripe', secret: `${SECRET}-lambda`, reason: 'rotation from the runbook', actor: 'alice@example.com' }, { awsRequestId: 'lambda-req-1' });
      const bad = await invoke({ command: 'upstream.secret.set', provider: 'stripe', secret: `${SECRET}\r\n`, reason: 'rotation from the runbook' }, { awsRequestId: 'lambda-req-2' });

      // Assess
      expect(ok).toMatchObject({ ok: true, result: { provider: 'stripe', version: expect.stringMatching(/^v_/) } });
      expect(await issuer.runtime.store.getUpstreamSecretRef('stripe')).toMatchObject({ actor: 'alice@example.com', requestId: 'lambda-req-1' });
      expect(bad).toMatchObject({ ok: false, error: { code: 'invalid_request', field: 'secret', requestId: 'lambda-req-2' } });
      expect(JSON.stringify([ok, bad])).not.toContain(SECRET);
    });
  });
});
