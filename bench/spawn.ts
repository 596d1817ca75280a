/**
 * The `spawn` section of `npm run bench`: how fast an orchestrator can spawn agent instances,
 * and how much issuer load a fleet of agents using the SDK causes.
 *
 * - **spawns per second**: closed loop of `POST /v1/spawn` (one credential each) against a
 *   local issuer (its SQLite store in memory) running in this process, at concurrency 1 and 8. Each
 *   spawn writes the instance, one issuance record and one refresh token.
 * - **fleet load**: N credential sources (one spawned instance each, refresh tokens, TTL T)
 *   against a second in-process issuer on a virtual clock that both sides share, stepped
 *   through 4·T of virtual time. The refresh calls per virtual second are compared with the
 *   ideal N / (0.75 · T): an agent that refreshes exactly at `refreshAt` and never retries.
 *   Jitter only moves refreshes earlier, so over many lifetimes the ratio is ≥ 1 (over 4·T, edge
 *   effects of the window can put it a little under); how far above 1 it is the price of
 *   spreading the fleet out.
 *
 * Settings (environment): BENCH_FLEET_AGENTS (default 100), BENCH_FLEET_TTL (30).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startIssuer } from '../cli/dev.ts';
import { startDevServer } from '../shared/bootstrap/local/server.ts';
import { applyPolicyAudited } from '../shared/admin/admin.ts';
import { openLocalServices } from '../shared/bootstrap/local/runtime.ts';
import { silentLog } from '../shared/ports/log.ts';
import type { PolicyDocument } from '../shared/policy/policy-file.ts';
import { createCredentialSource, type Credential, type CredentialSource } from '@lanyard/sdk';
import { loadFigures, runClosedLoop } from './load.ts';
import type { Row, Section, Settings } from './run.ts';

const ORCHESTRATOR_KEY = 'lk_bench_orchestrator_key_00000000001';
const REQUEST = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };

function policy(): PolicyDocument {
  return {
    tools: [{ id: 'tickets', audience: 'https://tickets.example.internal', actions: { read: 'read' }, enabled: true }],
    roles: [{ id: 'reader', version: 1, actions: ['tickets:read'], approvedBy: 'bench' }],
    identities: [{ id: 'support-triage/prod', owner: 'bench', purpose: 'benchmark', status: 'active' }],
    grants: [{ identity: 'support-triage/prod', role: 'reader@1', tenants: ['acme'], maxTtlSeconds: 900, kinds: ['jwt'], quotaBucket: 'bench' }],
    principals: [{ id: 'fleet-scheduler', kind: 'orchestrator', spawns: ['support-triage/prod'], apiKey: ORCHESTRATOR_KEY }],
  };
}

async function measureSpawns(settings: Settings): Promise<Row[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'lanyard-bench-spawn-'));
  const issuer = await startIssuer({ port: 0, host: '127.0.0.1', dataDir, inMemory: true, policy: policy(), out: () => {}, log: silentLog });
  try {
    const rows: Row[] = [];
    for (const concurrency of [1, 8]) {
      const result = await runClosedLoop(
        {
          url: `${issuer.server.url}/v1/spawn`,
          method: 'POST',
          headers: { authorization: `Bearer ${ORCHESTRATOR_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ identity: 'support-triage/prod', maxLifetimeSeconds: 3_600, credentials: [REQUEST] }),
          expectStatus: 201,
        },
        { concurrency, warmupMs: Math.min(settings.warmupMs, 500), durationMs: Math.min(settings.durationMs, 2_000) },
      );
      rows.push({
        subject: 'POST /v1/spawn (1 credential)',
        concurrency,
        ...loadFigures(result),
        note: result.errors > 0 ? `errors: ${JSON.stringify(result.errorKinds)}` : 'in-process issuer, SQLite in memory; load generator shares its event loop',
      });
    }
    return rows;
  } finally {
    await issuer.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function measureFleetLoad(agents: number, ttlSeconds: number): Promise<Row> {
  const dataDir = await mkdtemp(join(tmpdir(), 'lanyard-bench-fleet-'));
  let virtualNow = Date.now();
  const clock = { now: () => virtualNow };
  const runtime = await openLocalServices({ dataDir, issuer: 'http://127.0.0.1', inMemory: true, clock, log: silentLog });
  const server = await startDevServer({ runtime, host: '127.0.0.1', port: 0 });
  (runtime.config as { issuer: string }).issuer = server.url;
  try {
    await applyPolicyAudited(runtime, policy(), { actor: 'bench', reason: 'fleet benchmark', requestId: 'bench-fleet' });
    const request = { ...REQUEST, ttlSeconds: ttlSeconds };
    let refreshCalls = 0;
    let expiredUses = 0;
    const countingFetch = (input: string, init?: RequestInit) => {
      refreshCalls += 1;
      return fetch(input, init);
    };
    const sources: CredentialSource[] = [];
    for (let i = 0; i < agents; i++) {
      const res = await fetch(`${server.url}/v1/spawn`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ORCHESTRATOR_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ identity: 'support-triage/prod', maxLifetimeSeconds: 86_400, credentials: [request] }),
      });
      const spawned = (await res.json()) as { credentials: Credential[]; refreshToken: string };
      if (res.status !== 201) throw new Error(`spawn answered ${res.status}: ${JSON.stringify(spawned)}`);
      sources.push(
        createCredentialSource({ issuer: server.url, auth: { refreshToken: spawned.refreshToken }, request, initial: spawned.credentials[0]!, fetch: countingFetch, clock: () => virtualNow }),
      );
    }
    const tickMs = 500;
    const virtualMs = 4 * ttlSeconds * 1000;
    const started = performance.now();
    for (let elapsed = 0; elapsed < virtualMs; elapsed += tickMs) {
      const credentials = await Promise.all(sources.map((s) => s.get()));
      for (const c of credentials) if (Date.parse(c.expiresAt) <= virtualNow) expiredUses += 1;
      virtualNow += tickMs;
    }
    const wallSeconds = (performance.now() - started) / 1000;
    const perSecond = refreshCalls / (virtualMs / 1000);
    const ideal = agents / (0.75 * ttlSeconds);
    return {
      subject: `fleet: ${agents} agents, TTL ${ttlSeconds} s`,
      perSecond,
      ok: refreshCalls,
      errors: expiredUses,
      note: `refresh calls per virtual second; ideal N/(0.75·T) = ${ideal.toFixed(2)}/s, measured ÷ ideal = ${(perSecond / ideal).toFixed(2)}×; ` +
        `${virtualMs / 1000} s virtual in ${wallSeconds.toFixed(1)} s wall; errors = uses of an expired credential`,
    };
  } finally {
    await server.close();
    await runtime.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

export const spawnSection: Section = {
  name: 'spawn',
  describe: 'Agent instances: POST /v1/spawn per second, and the issuer load of N SDK agents with TTL T (virtual clock) against the ideal N/(0.75·T)',
  run: async (settings) => {
    const agents = Number(process.env.BENCH_FLEET_AGENTS ?? 100);
    const ttl = Number(process.env.BENCH_FLEET_TTL ?? 30);
    if (!Number.isInteger(agents) || agents < 1) throw new Error('BENCH_FLEET_AGENTS must be a positive integer');
    if (!Number.isInteger(ttl) || ttl < 30) throw new Error('BENCH_FLEET_TTL must be an integer ≥ 30');
    return [...(await measureSpawns(settings)), await measureFleetLoad(agents, ttl)];
  },
};
