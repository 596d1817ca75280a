/**
 * Revocation propagation end to end: a real local issuer, the verifier SDK following its
 * revocations, and many simulated agents calling through the verifier while an admin revokes
 * one target. Every call is recorded with its start time and outcome; the assertions read the
 * record: calls on the target are refused with `credential_revoked` (and the right target)
 * once the stated bound has passed after the admin command was acknowledged, and no call on
 * any other lane ever fails.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, isVerificationError, type RevokedTarget, type Verifier } from '@lanyard/sdk';
import { KEYS, TICKETS_AUDIENCE, startTestIssuer, type TestIssuer } from '../helpers/issuer.ts';

const CRM_AUDIENCE = 'https://crm.example.internal';
const TRIAGE = 'support-triage/prod';
const BILLING = 'billing-bot/prod';

/** The embedded default's stated bound for stream mode (docs/events.md: the fleet learns before the next call fails). */
const STREAM_BOUND_MS = 1_000;
const POLL_INTERVAL_MS = 500;
/** One feed round trip on a loaded two-core machine. */
const POLL_MARGIN_MS = 250;

const AGENTS = 20;
const CREDENTIALS_PER_LANE = 2;
const BEFORE_REVOKE_MS = 500;
const AFTER_BOUND_MS = 500;

interface LaneSpec {
  readonly name: string;
  readonly key: string;
  readonly request: { tool: string; actions: string[]; tenant: string };
  readonly action: string;
  readonly lane: string;
}

const LANES: readonly LaneSpec[] = [
  { name: 'triage tickets read acme', key: KEYS.agent, request: { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' }, action: 'tickets:read', lane: `${TRIAGE}:tickets:read:acme` },
  { name: 'triage tickets write acme', key: KEYS.agent, request: { tool: 'tickets', actions: ['tickets:reply'], tenant: 'acme' }, action: 'tickets:reply', lane: `${TRIAGE}:tickets:write:acme` },
  { name: 'triage tickets read globex', key: KEYS.agent, request: { tool: 'tickets', actions: ['tickets:read'], tenant: 'globex' }, action: 'tickets:read', lane: `${TRIAGE}:tickets:read:globex` },
  { name: 'triage crm read acme', key: KEYS.agent, request: { tool: 'crm', actions: ['crm:read'], tenant: 'acme' }, action: 'crm:read', lane: `${TRIAGE}:crm:read:acme` },
  { name: 'triage crm read initech', key: KEYS.agent, request: { tool: 'crm', actions: ['crm:read'], tenant: 'initech' }, action: 'crm:read', lane: `${TRIAGE}:crm:read:initech` },
  { name: 'billing tickets read acme', key: KEYS.otherAgent, request: { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' }, action: 'tickets:read', lane: `${BILLING}:tickets:read:acme` },
];

interface Minted {
  readonly lane: LaneSpec;
  readonly credentialId: string;
  readonly token: string;
}

interface Call {
  readonly agent: number;
  readonly credentialId: string;
  readonly lane: string;
  /** performance.now() when the call started. */
  readonly startedAt: number;
  readonly ok: boolean;
  readonly code?: string;
  readonly revokedTarget?: RevokedTarget;
}

interface Run {
  readonly calls: readonly Call[];
  /** performance.now() when the admin command was sent and when its 200 arrived. */
  readonly revokeSentAt: number;
  readonly revokeAckAt: number;
  readonly revokeStatus: number;
  readonly revokeBody: any;
  readonly followerErrors: readonly Error[];
}

async function mint(issuer: TestIssuer, lane: LaneSpec): Promise<Minted> {
  const res = await issuer.post('/v1/credentials', lane.request, lane.key);
  if (res.status !== 201) throw new Error(`minting ${lane.name} answered ${res.status}: ${JSON.stringify(res.body)}`);
  expect(res.body.lane).toBe(lane.lane);
  return { lane, credentialId: res.body.credentialId, token: res.body.token };
}

async function mintAll(issuer: TestIssuer): Promise<Minted[]> {
  const minted: Minted[] = [];
  for (let copy = 0; copy < CREDENTIALS_PER_LANE; copy += 1) for (const lane of LANES) minted.push(await mint(issuer, lane));
  return minted;
}

function follow(issuer: TestIssuer, mode: 'stream' | 'poll', errors: Error[]): Verifier {
  return createVerifier({
    issuer: issuer.url,
    audience: [TICKETS_AUDIENCE, CRM_AUDIENCE],
    revocations: { mode, apiKey: KEYS.verifier, ...(mode === 'poll' && { pollIntervalMs: POLL_INTERVAL_MS }), onError: (error) => errors.push(error) },
  });
}

/**
 * `AGENTS` loops call `verify` on their credential with a small await between calls; the
 * admin revokes `target` after `BEFORE_REVOKE_MS`, and the loops go on for `boundMs +
 * AFTER_BOUND_MS` after the acknowledgement, and at least until each agent has made more than
 * `AGENTS` calls past the bound.
 */
async function runAgents(issuer: TestIssuer, verifier: Verifier, minted: readonly Minted[], target: object, boundMs: number, errors: readonly Error[]): Promise<Run> {
  const calls: Call[] = [];
  let stop = false;
  const agents = Array.from({ length: AGENTS }, async (_, agent) => {
    const credential = minted[agent % minted.length]!;
    while (!stop) {
      const startedAt = performance.now();
      try {
        await verifier.verify(credential.token, { action: credential.lane.action });
        calls.push({ agent, credentialId: credential.credentialId, lane: credential.lane.lane, startedAt, ok: true });
      } catch (error) {
        if (!isVerificationError(error)) throw error;
        calls.push({
          agent,
          credentialId: credential.credentialId,
          lane: credential.lane.lane,
          startedAt,
          ok: false,
          code: error.code,
          ...(error.context.revokedTarget && { revokedTarget: error.context.revokedTarget }),
        });
      }
      await delay(2);
    }
  });
  await delay(BEFORE_REVOKE_MS);
  const revokeSentAt = performance.now();
  const res = await issuer.post('/v1/admin', { command: 'revoke', target, reason: 'propagation test' }, KEYS.admin);
  const revokeAckAt = performance.now();
  await delay(boundMs + AFTER_BOUND_MS);
  // Then until every agent has made more than AGENTS calls since ack + bound, however slow the
  // machine: the assertions need calls after the bound, not a rate (the test's timeout bounds a hang).
  const deadline = revokeAckAt + boundMs;
  const callsAfterBound = (agent: number) => calls.filter((c) => c.agent === agent && c.startedAt >= deadline).length;
  while (Array.from({ length: AGENTS }, (_, agent) => callsAfterBound(agent)).some((n) => n <= AGENTS)) await delay(20);
  stop = true;
  await Promise.all(agents);
  return { calls, revokeSentAt, revokeAckAt, revokeStatus: res.status, revokeBody: res.body, followerErrors: [...errors] };
}

interface Scenario {
  readonly name: string;
  readonly target: (minted: readonly Minted[]) => Record<string, string>;
  readonly revokedTarget: (minted: readonly Minted[]) => RevokedTarget;
  /** Which minted credentials the target covers. */
  readonly covers: (credential: Minted, minted: readonly Minted[]) => boolean;
  /** The code new issuance on a covered lane gets; undefined when the target blocks nothing (a credential). */
  readonly issuanceCode?: string;
}

const SCENARIOS: readonly Scenario[] = [
  {
    name: 'a lane',
    target: () => ({ lane: `${TRIAGE}:tickets:read:acme` }),
    revokedTarget: () => ({ type: 'lane', key: `lane:${TRIAGE}:tickets:read:acme` }),
    covers: (c) => c.lane.lane === `${TRIAGE}:tickets:read:acme`,
    issuanceCode: 'lane_revoked',
  },
  {
    name: 'an identity',
    target: () => ({ identity: TRIAGE }),
    revokedTarget: () => ({ type: 'identity', key: `identity:${TRIAGE}` }),
    covers: (c) => c.lane.lane.startsWith(`${TRIAGE}:`),
    issuanceCode: 'identity_revoked',
  },
  {
    name: 'a tenant',
    target: () => ({ tenant: 'acme' }),
    revokedTarget: () => ({ type: 'tenant', key: 'tenant:acme' }),
    covers: (c) => c.lane.request.tenant === 'acme',
    issuanceCode: 'tenant_revoked',
  },
  {
    name: 'a tool (global kill switch)',
    target: () => ({ tool: 'tickets' }),
    revokedTarget: () => ({ type: 'tool', key: 'tool:tickets' }),
    covers: (c) => c.lane.request.tool === 'tickets',
    issuanceCode: 'tool_disabled',
  },
  {
    name: 'a tool for one identity',
    target: () => ({ tool: 'tickets', identity: BILLING }),
    revokedTarget: () => ({ type: 'tool', key: `tool:tickets@${BILLING}` }),
    covers: (c) => c.lane.request.tool === 'tickets' && c.lane.lane.startsWith(`${BILLING}:`),
    issuanceCode: 'tool_disabled',
  },
  {
    name: 'one credential',
    target: (minted) => ({ credential: minted[0]!.credentialId }),
    revokedTarget: (minted) => ({ type: 'credential', key: `credential:${minted[0]!.credentialId}` }),
    covers: (c, minted) => c.credentialId === minted[0]!.credentialId,
  },
];

function assertPropagation(run: Run, covered: ReadonlySet<string>, revokedTarget: RevokedTarget, boundMs: number): void {
  expect(run.revokeStatus).toBe(200);
  const deadline = run.revokeAckAt + boundMs;
  const targeted = run.calls.filter((c) => covered.has(c.credentialId));
  const others = run.calls.filter((c) => !covered.has(c.credentialId));

  // Every call on another lane (or another credential) succeeded, before, during and after.
  expect(others.filter((c) => !c.ok)).toEqual([]);
  expect(others.length).toBeGreaterThan(0);
  // Before the command was sent, the targeted credentials worked.
  const before = targeted.filter((c) => c.startedAt < run.revokeSentAt);
  expect(before.length).toBeGreaterThan(0);
  expect(before.filter((c) => !c.ok)).toEqual([]);
  // After ack + bound, every targeted call was refused with the typed code naming the target.
  const after = targeted.filter((c) => c.startedAt >= deadline);
  expect(after.length).toBeGreaterThan(AGENTS);
  for (const call of after) {
    expect(call).toMatchObject({ ok: false, code: 'credential_revoked', revokedTarget });
  }
  // Anything refused in the window was refused for the same reason, never for another one.
  for (const call of targeted.filter((c) => !c.ok)) expect(call).toMatchObject({ code: 'credential_revoked', revokedTarget });
  expect(run.followerErrors).toEqual([]);
}

describe('Integration: revocation propagation through the verifier SDK', () => {
  describe.each(SCENARIOS)('when an admin revokes $name while agents call (stream mode)', (scenario) => {
    let issuer: TestIssuer;
    let verifier: Verifier;
    let minted: Minted[];
    let run: Run;
    const errors: Error[] = [];

    beforeAll(async () => {
      issuer = await startTestIssuer();
      minted = await mintAll(issuer);
      verifier = follow(issuer, 'stream', errors);
      await verifier.ready();
      run = await runAgents(issuer, verifier, minted, scenario.target(minted), STREAM_BOUND_MS, errors);
    });
    afterAll(async () => {
      verifier?.close();
      await issuer?.stop();
    });

    it('refuses every call on the target with credential_revoked within 1 s of the acknowledgement, and no call on any other lane fails', () => {
      // Prepare
      const covered = new Set(minted.filter((c) => scenario.covers(c, minted)).map((c) => c.credentialId));

      // Assess
      expect(covered.size).toBeGreaterThan(0);
      expect(covered.size).toBeLessThan(minted.length);
      expect(run.revokeBody.result.revocation.targetKey).toBe(scenario.revokedTarget(minted).key);
      assertPropagation(run, covered, scenario.revokedTarget(minted), STREAM_BOUND_MS);
    });

    it('refuses new issuance on the target with its typed code while every other lane still issues', async () => {
      // Act
      const answers = await Promise.all(LANES.map(async (lane) => ({ lane, res: await issuer.post('/v1/credentials', lane.request, lane.key) })));

      // Assess
      for (const { lane, res } of answers) {
        const blocked = scenario.issuanceCode !== undefined && scenario.covers({ lane, credentialId: '', token: '' }, minted);
        if (blocked) {
          expect(res.status, lane.name).toBe(403);
          expect(res.body.error.code, lane.name).toBe(scenario.issuanceCode);
        } else {
          expect(res.status, lane.name).toBe(201);
        }
      }
    });

    it('after reinstate issues again, while the credentials issued before the cut-off stay refused', async () => {
      // Prepare
      const target = scenario.target(minted);
      const covered = minted.filter((c) => scenario.covers(c, minted));

      // Act
      const reinstated = await issuer.post('/v1/admin', { command: 'reinstate', target, reason: 'incident closed' }, KEYS.admin);

      // Assess
      if (scenario.issuanceCode === undefined) {
        // A credential revocation is final: there is nothing to reinstate.
        expect(reinstated.status).toBe(400);
        expect(reinstated.body.error).toMatchObject({ code: 'invalid_request', field: 'target' });
      } else {
        expect(reinstated.status).toBe(200);
      }
      const cutoffMs = Date.parse(run.revokeBody.result.revocation.cutoff);
      for (const old of covered) {
        await expect(verifier.verify(old.token, { action: old.lane.action })).rejects.toMatchObject({ code: 'credential_revoked' });
        const introspection = await issuer.post('/v1/introspect', `token=${old.token}`, KEYS.verifier, { 'content-type': 'application/x-www-form-urlencoded' });
        expect(introspection.body).toEqual({ active: false });
        const fresh = await mint(issuer, old.lane);
        // Issued well after the cut-off (the run lasted longer than a second past it), so the verifier takes it.
        const claims = await verifier.verify(fresh.token, { action: fresh.lane.action });
        expect(claims.iat * 1000).toBeGreaterThan(cutoffMs);
      }
    });
  });

  describe('when an admin revokes a lane while agents call (poll mode, every 500 ms)', () => {
    let issuer: TestIssuer;
    let verifier: Verifier;
    let minted: Minted[];
    let run: Run;
    const errors: Error[] = [];

    beforeAll(async () => {
      issuer = await startTestIssuer();
      minted = await mintAll(issuer);
      verifier = follow(issuer, 'poll', errors);
      await verifier.ready();
      run = await runAgents(issuer, verifier, minted, SCENARIOS[0]!.target(minted), POLL_INTERVAL_MS + POLL_MARGIN_MS, errors);
    });
    afterAll(async () => {
      verifier?.close();
      await issuer?.stop();
    });

    it('refuses every call on the lane within the poll interval (+ one feed round trip), and no other lane fails', () => {
      // Prepare
      const scenario = SCENARIOS[0]!;
      const covered = new Set(minted.filter((c) => scenario.covers(c, minted)).map((c) => c.credentialId));

      // Assess
      assertPropagation(run, covered, scenario.revokedTarget(minted), POLL_INTERVAL_MS + POLL_MARGIN_MS);
    });
  });
});
