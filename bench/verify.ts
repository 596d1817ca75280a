/**
 * Bench section `verify`: what the revocation check costs a resource server, and how fast a
 * revocation reaches it.
 *
 * 1. Verifications per second, single-threaded in the parent: the SDK verifier
 *    (`createVerifier`, stream mode, synced against a real local issuer holding
 *    `BENCH_VERIFY_REVOCATIONS` live revocations, none of which covers the tokens) beside plain
 *    `jose` `jwtVerify` with the issuer's public key imported locally, on the same tokens. The
 *    two alternate in short rounds so drift on a shared machine hits both alike.
 * 2. Revoke → first refusal: a loop verifies one credential through the verifier (default
 *    settings: stream mode) while the admin revokes it over HTTP; the time from the admin
 *    POST's acknowledgement (and from its sending) to the first `credential_revoked`, median
 *    of `BENCH_VERIFY_TRIALS` trials.
 *
 * The issuer runs in its own child process: this same file, started with `--issuer-child`.
 *
 * Settings (environment): BENCH_VERIFY_SECONDS (3, measured time per subject),
 * BENCH_VERIFY_REVOCATIONS (1000), BENCH_VERIFY_TRIALS (10).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { decodeProtectedHeader, importJWK, jwtVerify, type JWK } from 'jose';
import { startIssuer } from '../cli/dev.ts';
import { EXAMPLE_POLICY } from '../cli/example-policy.ts';
import { createVerifier, isVerificationError, type Verifier } from '@lanyard/sdk';
import { revoke } from '../shared/revocation/revoke.ts';
import type { RevocationTarget } from '../shared/domain/model.ts';
import type { PolicyDocument } from '../shared/policy/policy-file.ts';
import { onStopRequest, sendReady, startChild, type ReadyMessage } from './child.ts';
import type { Row, Section } from './run.ts';

const AUDIENCE = 'https://tickets.example.internal';
const IDENTITY = 'support-triage/dev';
const TOKENS = 64;
const ROUNDS = 3;
const WARMUP_MS = 500;

interface IssuerReady extends ReadyMessage {
  readonly revocations: number;
}

export const verifySection: Section = {
  name: 'verify',
  describe:
    'Verifier SDK: verifications/s with the revocation check on (stream mode, live revocations loaded) vs plain jose jwtVerify with a local key, one thread; and revoke → first refused call',
  run: async () => {
    const seconds = positive('BENCH_VERIFY_SECONDS', 3);
    const revocations = positive('BENCH_VERIFY_REVOCATIONS', 1000);
    const trials = positive('BENCH_VERIFY_TRIALS', 10);
    const keys = { agent: apiKey(), verifier: apiKey(), admin: apiKey() };
    const dataDir = await mkdtemp(join(tmpdir(), 'lanyard-bench-verify-'));
    const child = await startChild<IssuerReady>(new URL(import.meta.url), ['--issuer-child', dataDir, keys.agent, keys.verifier, keys.admin, String(revocations)]);
    const issuer = child.ready.url;
    const verifier = createVerifier({ issuer, audience: AUDIENCE, revocations: { mode: 'stream', apiKey: keys.verifier } });
    try {
      await verifier.ready();
      const tokens = await mintTokens(issuer, keys.agent);
      const throughput = await measureThroughput(issuer, verifier, tokens, seconds * 1000);
      const latency = await measureRevocationLatency(issuer, verifier, keys, trials);

      const ratio = throughput.lanyard.perSecond / throughput.jose.perSecond;
      const cpuRatio = throughput.jose.cpuMsPerOp / throughput.lanyard.cpuMsPerOp;
      console.log(
        `   verifications/s with the revocation check (${child.ready.revocations} live revocations, stream mode) ÷ plain jose jwtVerify = ` +
          `${(ratio * 100).toFixed(1)} % by wall clock, ${(cpuRatio * 100).toFixed(1)} % by CPU time per verification (aim ≥ 90 %: ${ratio >= 0.9 ? 'MET' : 'NOT MET'})`,
      );
      console.log(
        `   revoke → first refused call (stream mode, default settings), median of ${trials}: ${fmtMs(latency.fromAck.median)} ms after the admin POST was acknowledged ` +
          `(${fmtMs(latency.fromSend.median)} ms after it was sent; worst ${fmtMs(latency.fromSend.max)} ms)`,
      );
      return [
        {
          subject: 'jose jwtVerify (local key)',
          perSecond: throughput.jose.perSecond,
          ok: throughput.jose.ops,
          note: `${(throughput.jose.cpuMsPerOp * 1000).toFixed(1)} µs CPU/verification; no revocation check, no scope check`,
        },
        {
          subject: 'Lanyard verifier (stream)',
          perSecond: throughput.lanyard.perSecond,
          ok: throughput.lanyard.ops,
          note: `${(throughput.lanyard.cpuMsPerOp * 1000).toFixed(1)} µs CPU/verification; ${child.ready.revocations} live revocations; ${(ratio * 100).toFixed(1)} % of jose`,
        },
        {
          subject: 'revoke → first refusal (from ack)',
          perSecond: Number.NaN,
          p50Ms: latency.fromAck.median,
          ok: trials,
          note: `median of ${trials}; min ${fmtMs(latency.fromAck.min)} ms, max ${fmtMs(latency.fromAck.max)} ms; negative = refused before the ack arrived`,
        },
        {
          subject: 'revoke → first refusal (from send)',
          perSecond: Number.NaN,
          p50Ms: latency.fromSend.median,
          ok: trials,
          note: `median of ${trials}; min ${fmtMs(latency.fromSend.min)} ms, max ${fmtMs(latency.fromSend.max)} ms`,
        },
      ] satisfies Row[];
    } finally {
      verifier.close();
      await child.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  },
};

// ---------------------------------------------------------------------------------------------
// Parent side

interface Minted {
  readonly token: string;
  readonly credentialId: string;
  readonly action: string;
}

interface Answer {
  readonly status: number;
  readonly body: { readonly token?: string; readonly credentialId?: string; readonly error?: unknown };
}

async function post(url: string, key: string, body: unknown): Promise<Answer> {
  const response = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Answer['body'] };
}

async function mint(issuer: string, key: string, action: string, tenant: string): Promise<Minted> {
  const res = await post(`${issuer}/v1/credentials`, key, { tool: 'tickets', actions: [action], tenant });
  if (res.status !== 201 || !res.body.token || !res.body.credentialId) throw new Error(`issuing answered ${res.status}: ${JSON.stringify(res.body)}`);
  return { token: res.body.token, credentialId: res.body.credentialId, action };
}

async function mintTokens(issuer: string, key: string): Promise<Minted[]> {
  const lanes = [['tickets:read', 'acme'], ['tickets:list', 'globex'], ['tickets:reply', 'acme'], ['tickets:read', 'globex']] as const;
  const tokens: Minted[] = [];
  for (let i = 0; i < TOKENS; i += 1) {
    const [action, tenant] = lanes[i % lanes.length]!;
    tokens.push(await mint(issuer, key, action, tenant));
  }
  return tokens;
}

interface Rate {
  readonly ops: number;
  readonly perSecond: number;
  readonly cpuMsPerOp: number;
}

async function measureThroughput(issuer: string, verifier: Verifier, tokens: readonly Minted[], durationMs: number): Promise<{ lanyard: Rate; jose: Rate }> {
  const jwks = (await (await fetch(`${issuer}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
  const { kid } = decodeProtectedHeader(tokens[0]!.token);
  const key = await importJWK(jwks.keys.find((k) => k.kid === kid)!, 'ES256');
  const lanyard = (i: number) => {
    const t = tokens[i % tokens.length]!;
    return verifier.verify(t.token, { action: t.action });
  };
  const jose = (i: number) => jwtVerify(tokens[i % tokens.length]!.token, key, { issuer, audience: AUDIENCE, algorithms: ['ES256'], typ: 'at+jwt' });

  // Both must accept every token before anything is timed.
  for (let i = 0; i < tokens.length; i += 1) {
    await lanyard(i);
    await jose(i);
  }
  await loop(lanyard, WARMUP_MS);
  await loop(jose, WARMUP_MS);
  const totals = { lanyard: { ops: 0, wallMs: 0, cpuMs: 0 }, jose: { ops: 0, wallMs: 0, cpuMs: 0 } };
  for (let round = 0; round < ROUNDS; round += 1) {
    // Alternate which goes first, so a change in machine load lands on both.
    const order = round % 2 === 0 ? (['lanyard', 'jose'] as const) : (['jose', 'lanyard'] as const);
    for (const name of order) {
      const result = await loop(name === 'lanyard' ? lanyard : jose, durationMs / ROUNDS);
      totals[name].ops += result.ops;
      totals[name].wallMs += result.wallMs;
      totals[name].cpuMs += result.cpuMs;
    }
  }
  const rate = (t: { ops: number; wallMs: number; cpuMs: number }): Rate => ({ ops: t.ops, perSecond: (t.ops / t.wallMs) * 1000, cpuMsPerOp: t.cpuMs / t.ops });
  return { lanyard: rate(totals.lanyard), jose: rate(totals.jose) };
}

/** Calls `fn` back to back (awaiting each) for `ms`. */
async function loop(fn: (i: number) => Promise<unknown>, ms: number): Promise<{ ops: number; wallMs: number; cpuMs: number }> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const end = start + ms;
  let ops = 0;
  while (performance.now() < end) {
    for (let k = 0; k < 64; k += 1) await fn(ops++);
  }
  const wallMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { ops, wallMs, cpuMs: (used.user + used.system) / 1000 };
}

interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

async function measureRevocationLatency(issuer: string, verifier: Verifier, keys: { agent: string; admin: string }, trials: number): Promise<{ fromAck: Spread; fromSend: Spread }> {
  const fromAck: number[] = [];
  const fromSend: number[] = [];
  for (let trial = 0; trial < trials; trial += 1) {
    const credential = await mint(issuer, keys.agent, 'tickets:read', trial % 2 === 0 ? 'acme' : 'globex');
    let refusedAt: number | undefined;
    let calls = 0;
    // A resource server under steady load: verify, yield, verify again, until the refusal.
    const calling = (async () => {
      const giveUpAt = performance.now() + 10_000;
      while (refusedAt === undefined && performance.now() < giveUpAt) {
        try {
          await verifier.verify(credential.token, { action: 'tickets:read' });
          calls += 1;
        } catch (error) {
          if (!isVerificationError(error, 'credential_revoked')) throw error;
          refusedAt = performance.now();
        }
        await yieldToLoop();
      }
    })();
    while (calls < 10) await yieldToLoop();
    const sentAt = performance.now();
    const res = await post(`${issuer}/v1/admin`, keys.admin, { command: 'revoke', target: { credential: credential.credentialId }, reason: 'bench: revocation latency' });
    const ackAt = performance.now();
    if (res.status !== 200) throw new Error(`revoke answered ${res.status}: ${JSON.stringify(res.body)}`);
    await calling;
    if (refusedAt === undefined) throw new Error('the verifier never refused the revoked credential (10 s)');
    fromAck.push(refusedAt - ackAt);
    fromSend.push(refusedAt - sentAt);
  }
  return { fromAck: spread(fromAck), fromSend: spread(fromSend) };
}

function spread(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted.at(-1)! };
}

function positive(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!(value > 0)) throw new Error(`${name} must be a positive number`);
  return value;
}

function apiKey(): string {
  return `lk_bench_${randomBytes(24).toString('base64url')}`;
}

function fmtMs(ms: number): string {
  return Math.abs(ms) < 10 ? ms.toFixed(2) : ms.toFixed(1);
}

// ---------------------------------------------------------------------------------------------
// Child side: the issuer, with the example policy, fixed keys and `count` live revocations.

async function runIssuerChild(args: readonly string[]): Promise<void> {
  const [dataDir, agentKey, verifierKey, adminKey, countText] = args;
  if (!dataDir || !agentKey || !verifierKey || !adminKey || !countText) throw new Error('usage: verify.ts --issuer-child <dataDir> <agentKey> <verifierKey> <adminKey> <revocations>');
  const keyOf: Record<string, string> = { 'triage-worker-1': agentKey, 'resource-server': verifierKey, admin: adminKey };
  const policy: PolicyDocument = { ...EXAMPLE_POLICY, principals: EXAMPLE_POLICY.principals.map((p) => ({ ...p, apiKey: keyOf[p.id]! })) };
  const issuer = await startIssuer({ port: 0, host: '127.0.0.1', dataDir, policy, inMemory: true, out: () => {} });
  onStopRequest(() => issuer.close());
  // Live revocations of other lanes, identities, tenants and tools: none covers the benchmark's tokens.
  const count = Number(countText);
  for (let i = 0; i < count; i += 1) {
    const target: RevocationTarget =
      i % 10 < 6
        ? { lane: `${IDENTITY}:tickets:read:tenant-${i}` }
        : i % 10 < 8
          ? { identity: `other-bot-${i}/dev` }
          : i % 10 < 9
            ? { tenant: `tenant-${i}` }
            : { tool: `tool-${i}`, identity: IDENTITY };
    await revoke(issuer.runtime, target, { actor: 'bench', reason: 'bench: background revocations', requestId: `bench-${i}` });
  }
  sendReady({ type: 'ready', url: issuer.server.url, revocations: count });
}

if (process.argv[2] === '--issuer-child') await runIssuerChild(process.argv.slice(3));
