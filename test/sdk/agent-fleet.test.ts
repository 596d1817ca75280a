/**
 * The agent SDK against the real local issuer (in process, loopback): spawn, refresh-token
 * rotation, revocation of one instance, and a fleet of agents on a fake clock. Only `Date` is
 * faked, so the issuer and the sources share one clock while sockets and timers stay real.
 */
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startDevServer } from '../../shared/bootstrap/local/server.ts';
import { silentLog } from '../../shared/ports/log.ts';
import { createCredentialSource, type Credential, type CredentialSource } from '@lanyard/sdk';
import { storeFailingAfterCommit } from '../helpers/faults.ts';
import { KEYS, startTestIssuer, type TestIssuer } from '../helpers/issuer.ts';

const READ = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };

describe('Function: createCredentialSource (against the local issuer)', () => {
  let issuer: TestIssuer;

  beforeAll(async () => {
    issuer = await startTestIssuer();
  });
  afterAll(() => issuer.stop());
  afterEach(() => {
    vi.useRealTimers();
  });

  const spawn = async (request: Record<string, unknown> = READ, maxLifetimeSeconds = 3_600) => {
    const res = await issuer.post('/v1/spawn', { identity: 'support-triage/prod', maxLifetimeSeconds, credentials: [request] }, KEYS.orchestrator);
    expect(res.status).toBe(201);
    return res.body as { instance: { identity: string }; credentials: Credential[]; refreshToken: string };
  };

  it('refreshes a spawned instance with its refresh token: sub stays the instance, the token rotates', async () => {
    // Prepare
    vi.useFakeTimers({ toFake: ['Date'] });
    const spawned = await spawn();
    const s = createCredentialSource({ issuer: issuer.url, auth: { refreshToken: spawned.refreshToken }, request: READ, initial: spawned.credentials[0]! });

    // Act
    vi.setSystemTime(Date.now() + 230_000);
    const fresh = await s.get();
    vi.setSystemTime(Date.now() + 230_000);
    const again = await s.get();

    // Assess
    expect(fresh.credentialId).not.toBe(spawned.credentials[0]!.credentialId);
    expect(again.credentialId).not.toBe(fresh.credentialId);
    expect(decodeJwt(again.token!).sub).toBe(spawned.instance.identity);
    const reuse = await issuer.post('/v1/credentials', READ, spawned.refreshToken);
    expect(reuse.status).toBe(401);
  });

  it('stops only the revoked instance, calling its onAuthorityLost once with identity_revoked, while a sibling keeps working', async () => {
    // Prepare
    vi.useFakeTimers({ toFake: ['Date'] });
    const [a, b] = [await spawn(), await spawn()];
    const lostA = vi.fn();
    const lostB = vi.fn();
    const sourceA = createCredentialSource({ issuer: issuer.url, auth: { refreshToken: a.refreshToken }, request: READ, initial: a.credentials[0]!, onAuthorityLost: lostA });
    const sourceB = createCredentialSource({ issuer: issuer.url, auth: { refreshToken: b.refreshToken }, request: READ, initial: b.credentials[0]!, onAuthorityLost: lostB });
    const revoked = await issuer.post('/v1/admin', { command: 'revoke', target: { identity: a.instance.identity }, reason: 'instance misbehaved' }, KEYS.admin);
    expect(revoked.status).toBe(200);

    // Act
    vi.setSystemTime(Date.now() + 230_000);
    const outcomes = await Promise.all([sourceA.get(), sourceA.get(), sourceB.get()].map((p) => p.then((c) => c.identity, (e: { code: string }) => e.code)));
    const laterA = await sourceA.get().catch((e: { code: string }) => e.code);

    // Assess
    expect(outcomes).toStrictEqual(['identity_revoked', 'identity_revoked', b.instance.identity]);
    expect(laterA).toBe('identity_revoked');
    expect(lostA).toHaveBeenCalledOnce();
    expect(lostA.mock.calls[0]![0]).toMatchObject({ code: 'identity_revoked', lane: `${a.instance.identity}:tickets:read:acme` });
    expect(lostB).not.toHaveBeenCalled();
    expect(sourceA.state().stopped).toStrictEqual({ code: 'identity_revoked' });
  });

  it('tells an instance past its lifetime identity_revoked', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const spawned = await spawn({ ...READ, ttlSeconds: 60 }, 60);
    const lost = vi.fn();
    const s = createCredentialSource({ issuer: issuer.url, auth: { refreshToken: spawned.refreshToken }, request: { ...READ, ttlSeconds: 60 }, initial: spawned.credentials[0]!, onAuthorityLost: lost });

    vi.setSystemTime(Date.now() + 61_000);
    const error = await s.get().catch((e: { code: string }) => e.code);

    expect(error).toBe('identity_revoked');
    expect(lost).toHaveBeenCalledOnce();
  });

  /** Refreshes twice through `source`, the first refresh's answer lost; the instance must carry on, unrevoked. */
  async function carriesOnAfterALostAnswer(source: CredentialSource, spawned: { instance: { identity: string }; credentials: Credential[] }, lost: () => void) {
    // Act: at the refresh time the rotation commits but its answer is lost; the held credential is still good.
    vi.setSystemTime(Date.now() + 230_000);
    const during = await source.get();
    // After the backoff (random 0.5 → 500 ms) the source retries with the token it still holds.
    vi.setSystemTime(Date.now() + 2_000);
    const retried = await source.get();
    vi.setSystemTime(Date.now() + 230_000);
    const next = await source.get();

    // Assess
    expect(during.credentialId).toBe(spawned.credentials[0]!.credentialId);
    expect(retried.credentialId).not.toBe(during.credentialId);
    expect(next.credentialId).not.toBe(retried.credentialId);
    expect(decodeJwt(next.token!).sub).toBe(spawned.instance.identity);
    expect(lost).not.toHaveBeenCalled();
    expect(source.state().stopped).toBeUndefined();
    const records = (await issuer.runtime.store.queryDecisions({ by: 'identity', value: spawned.instance.identity, limit: 100 })).items;
    expect(records.filter((r) => r.decision === 'revoked')).toHaveLength(0);
  }

  it('carries on without revocation when the issuer dies after rotating the refresh token and before answering', async () => {
    // Prepare: an issuer on the same data whose next refresh-token spend commits and then fails (it "dies"),
    // and which answers normally afterwards (it "restarted").
    vi.useFakeTimers({ toFake: ['Date'] });
    const spawned = await spawn();
    const runtime = { ...issuer.runtime, log: silentLog, store: storeFailingAfterCommit(issuer.runtime.store, { spendRefreshToken: new Error('process killed') }) };
    const server = await startDevServer({ runtime, port: 0 });
    const lost = vi.fn();
    const s = createCredentialSource({ issuer: server.url, auth: { refreshToken: spawned.refreshToken }, request: READ, initial: spawned.credentials[0]!, random: () => 0.5, onAuthorityLost: lost });

    try {
      await carriesOnAfterALostAnswer(s, spawned, lost);
    } finally {
      await server.close();
    }
  });

  it('carries on without revocation when the answer of a rotation is lost in transit (a timeout)', async () => {
    // Prepare: the first refresh reaches the issuer, which rotates and answers; the answer never arrives.
    vi.useFakeTimers({ toFake: ['Date'] });
    const spawned = await spawn();
    let refreshes = 0;
    const losingFetch = async (input: string, init?: RequestInit) => {
      const response = await fetch(input, init);
      refreshes += 1;
      if (refreshes > 1) return response;
      await response.text();
      throw new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    };
    const lost = vi.fn();
    const s = createCredentialSource({ issuer: issuer.url, auth: { refreshToken: spawned.refreshToken }, request: READ, initial: spawned.credentials[0]!, fetch: losingFetch, random: () => 0.5, onAuthorityLost: lost });

    await carriesOnAfterALostAnswer(s, spawned, lost);
    expect(refreshes).toBe(3);
  });

  it('keeps 50 agents on 30 s credentials from ever calling with an expired one, refreshing spread over the window', async () => {
    // Prepare: 50 spawned instances, TTL 30 s, on one fake clock stepped 250 ms at a time for 2 minutes.
    vi.useFakeTimers({ toFake: ['Date'] });
    const request = { ...READ, ttlSeconds: 30 };
    const start = Date.now();
    type Refresh = { at: number; issuedAt: number; refreshAt: number; expiresAt: number };
    const agents: { source: CredentialSource; initial: Refresh; refreshes: Refresh[] }[] = [];
    for (let i = 0; i < 50; i++) {
      const spawned = await spawn(request);
      const first = spawned.credentials[0]!;
      const initial = { at: start, issuedAt: Date.parse(first.issuedAt), refreshAt: Date.parse(first.refreshAt), expiresAt: Date.parse(first.expiresAt) };
      const agent = { source: undefined as unknown as CredentialSource, initial, refreshes: [] as Refresh[] };
      const countingFetch = async (input: string, init?: RequestInit) => {
        const response = await fetch(input, init);
        if (response.status === 201) {
          const body = (await response.clone().json()) as Credential;
          agent.refreshes.push({ at: Date.now(), issuedAt: Date.parse(body.issuedAt), refreshAt: Date.parse(body.refreshAt), expiresAt: Date.parse(body.expiresAt) });
        }
        return response;
      };
      agent.source = createCredentialSource({ issuer: issuer.url, auth: { refreshToken: spawned.refreshToken }, request, initial: spawned.credentials[0]!, fetch: countingFetch });
      agents.push(agent);
    }

    // Act: every agent gets its credential and "calls its tool" on every tick.
    let expiredCalls = 0;
    let calls = 0;
    const endAt = start + 120_000;
    while (Date.now() < endAt) {
      const now = Date.now();
      const credentials = await Promise.all(agents.map((a) => a.source.get()));
      for (const credential of credentials) {
        calls += 1;
        const exp = decodeJwt(credential.token!).exp! * 1000;
        if (exp <= now || Date.parse(credential.expiresAt) <= now) expiredCalls += 1;
      }
      vi.setSystemTime(now + 250);
    }

    // Assess
    expect(calls).toBeGreaterThanOrEqual(50 * 480);
    expect(expiredCalls).toBe(0);
    const all = agents.flatMap((a) => a.refreshes);
    // Ideal: one refresh per agent every 0.75 × 30 s = 22.5 s, so 120 s ≈ 5.3 each; jitter can only make it earlier.
    expect(all.length).toBeGreaterThanOrEqual(50 * 5);
    expect(all.length).toBeLessThanOrEqual(50 * 7);
    for (const agent of agents) {
      // The issuer's times are truncated to the second; the credential each refresh replaced is the reference.
      let before = agent.initial;
      for (const r of agent.refreshes) {
        // Inside [refreshAt - 20 % window, refreshAt] of the credential it replaced (250 ms ticks), never after expiry.
        expect(r.at).toBeLessThanOrEqual(before.refreshAt + 250);
        expect(r.at).toBeGreaterThanOrEqual(before.refreshAt - 0.2 * (before.refreshAt - before.issuedAt) - 250);
        before = r;
      }
    }
    const firstRefreshSeconds = new Set(agents.map((a) => Math.floor((a.refreshes[0]!.at - start) / 1000)));
    expect(firstRefreshSeconds.size).toBeGreaterThanOrEqual(4);
  });
});
