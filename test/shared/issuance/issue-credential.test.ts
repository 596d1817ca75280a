/**
 * A credential is never handed out already revoked (issue 14): a cut-off has milliseconds,
 * `iat` whole seconds, and a credential whose `iat` second is the cut-off's is revoked. Every
 * case runs on a frozen clock whose `sleep` advances it, so the same second is hit every time.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openLocalServices, type LocalServices } from '../../../shared/bootstrap/local/runtime.ts';
import type { Principal, RevocationTarget } from '../../../shared/domain/model.ts';
import { issueCredential, type IssuedCredential } from '../../../shared/issuance/issue-credential.ts';
import { silentLog } from '../../../shared/ports/log.ts';
import { applyPolicy } from '../../../shared/policy/policy-file.ts';
import { reinstate, revoke } from '../../../shared/revocation/revoke.ts';
import { spawnInstance } from '../../../shared/spawn/spawn.ts';
import { rejection } from '../../helpers/errors.ts';
import { testPolicy } from '../../helpers/issuer.ts';

const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);
const LANE = 'support-triage/prod:tickets:read:acme';
const READ = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };

describe('Use case: issueCredential right after a cut-off', () => {
  let runtime: LocalServices;
  let dataDir: string;
  let now = T0;
  let slept: number[] = [];
  /** When false, `sleep` returns without moving the clock (a clock that never reaches the next second). */
  let sleepAdvances = true;
  let second = 0;
  let agent: Principal;
  let orchestrator: Principal;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lanyard-born-revoked-'));
    const clock = {
      now: () => now,
      sleep: (ms: number) => {
        slept.push(ms);
        if (sleepAdvances) now += ms;
        return Promise.resolve();
      },
    };
    runtime = await openLocalServices({ dataDir, issuer: 'http://127.0.0.1:1', inMemory: true, clock, log: silentLog });
    await applyPolicy(runtime.store, testPolicy(), new Date(now).toISOString());
    agent = (await runtime.store.getPrincipal('triage-worker-1'))!;
    orchestrator = (await runtime.store.getPrincipal('fleet-scheduler'))!;
  });
  afterAll(async () => {
    await runtime.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  beforeEach(() => {
    // Each case starts on a whole second of its own, a minute after the last.
    second += 60;
    now = T0 + second * 1000;
    slept = [];
    sleepAdvances = true;
  });

  const at = (ms: number) => (now = T0 + second * 1000 + ms);
  const action = (name: string) => ({ actor: 'oncall', reason: 'test cut-off', requestId: `${name}-${second}` });
  const revokeAndReinstate = async (target: RevocationTarget) => {
    at(300);
    const { revocation } = await revoke(runtime, target, action('revoke'));
    at(500);
    await reinstate(runtime, target, action('reinstate'));
    return Date.parse(revocation.cutoff);
  };
  const deps = () => ({ ...runtime, issuer: runtime.config.issuer });
  /** Revoked as the issuer sees it (its record) and as a verifier does (`iat` second ≤ cut-off second). */
  const expectLive = async (issued: IssuedCredential, cutoffMs: number) => {
    const record = await runtime.store.getCredential(issued.credentialId);
    expect(await runtime.revocations.revokedBy(record!)).toBeUndefined();
    expect(decodeJwt(issued.token!).iat).toBeGreaterThan(Math.floor(cutoffMs / 1000));
  };

  it('waits out the second of a lane reinstated just before, so the credential is live', async () => {
    // Prepare
    const cutoff = await revokeAndReinstate({ lane: LANE });
    at(700);

    // Act
    const issued = await issueCredential(deps(), { requestId: `req-${second}`, principal: agent }, READ);

    // Assess
    expect(slept).toEqual([300]);
    expect(issued.issuedAt).toBe(new Date(T0 + (second + 1) * 1000).toISOString());
    await expectLive(issued, cutoff);
  });

  it('waits out the second of a signing-key revocation, which blocks no issuance', async () => {
    // Prepare
    at(300);
    const { revocation } = await revoke(runtime, { key: await runtime.signer.activeKid() }, action('revoke-key'));
    at(900);

    // Act
    const issued = await issueCredential(deps(), { requestId: `req-${second}`, principal: agent }, READ);

    // Assess
    expect(slept).toEqual([100]);
    await expectLive(issued, Date.parse(revocation.cutoff));
  });

  it('issues at once when the cut-off is in an earlier second', async () => {
    // Prepare
    const cutoff = await revokeAndReinstate({ lane: LANE });
    now = T0 + (second + 1) * 1000;

    // Act
    const issued = await issueCredential(deps(), { requestId: `req-${second}`, principal: agent }, READ);

    // Assess
    expect(slept).toEqual([]);
    await expectLive(issued, cutoff);
  });

  it('gives a spawn\'s first credentials, and the instance\'s next ones, the same wait', async () => {
    // Prepare: the class is revoked and reinstated in the second of the spawn
    const firstCutoff = await revokeAndReinstate({ identity: 'support-triage/prod' });
    at(800);

    // Act & Assess: the spawn
    const spawned = await spawnInstance(runtime, { requestId: `spawn-${second}`, principal: orchestrator }, { identity: 'support-triage/prod', maxLifetimeSeconds: 3600, credentials: [READ] });
    expect(slept).toEqual([200]);
    await expectLive(spawned.credentials[0]!, firstCutoff);

    // Act & Assess: later, the instance's refresh in the second of another reinstate of its class
    second += 10;
    const secondCutoff = await revokeAndReinstate({ identity: 'support-triage/prod' });
    at(600);
    const refreshed = await issueCredential(deps(), { requestId: `refresh-${second}`, principal: orchestrator, identity: spawned.instance.identity }, READ);
    expect(slept).toEqual([200, 400]);
    await expectLive(refreshed, secondCutoff);
  });

  it('refuses with a retryable issuer_unavailable, and records it, rather than hand out a revoked credential when the clock does not move on', async () => {
    // Prepare
    await revokeAndReinstate({ lane: LANE });
    at(700);
    sleepAdvances = false;

    // Act
    const error = await rejection(issueCredential(deps(), { requestId: `stuck-${second}`, principal: agent }, READ));

    // Assess
    expect(error.code).toBe('issuer_unavailable');
    expect(error.retryAfter).toBe(1);
    const records = (await runtime.store.queryDecisions({ by: 'lane', value: LANE, limit: 100 })).items;
    expect(records.find((r) => r.requestId === `stuck-${second}`)).toMatchObject({ decision: 'denied', reason: 'issuer_unavailable' });
    expect(records.filter((r) => r.decision === 'issued' && r.requestId === `stuck-${second}`)).toEqual([]);
  });
});
