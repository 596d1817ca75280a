/**
 * The `broker` section of `npm run bench` (issue 6): what going through the credential broker
 * costs an agent, against calling the same loopback upstream directly with the key in hand.
 *
 * Three processes besides this one (the load generator):
 * - the upstream (`bench/broker-upstream-process.ts`): plain `node:http`, checks the key,
 *   answers a 200-byte JSON body, keep-alive;
 * - the issuer with its broker (`bench/broker-issuer-process.ts`): `lanyard dev` with its SQLite store
 *   on disk, so every proxied call takes one request from a (never spent) quota bucket and
 *   leaves a durable audit record, as in normal use;
 * - neither shares an event loop with the load generator, and each one's CPU is read apart.
 *
 * Per concurrency, interleaved so that a busy moment of a shared machine hits both alike:
 * (a) `GET /v1/charges` straight to the upstream with its key, (b) the same GET through
 * `/v1/proxy/payments/v1/charges` with a read credential (TTL: the grant's cap, sized to
 * outlast the run). The metered bucket puts one quota take (a conditional update) in every
 * call's path; at concurrency 8 the same GET also runs through a tool whose bucket has no quota
 * policy, which shows what the take costs. Then a 64 KiB `POST` each way, streamed through, with
 * a write credential (one credential serves one access level).
 *
 * Before measuring, one call each way is checked: the upstream refuses a call without its key,
 * the broker's answer is byte for byte the upstream's, the key appears nowhere in what the
 * agent received, and the audit has a `proxied` record for each call. After measuring, the
 * proxied records of the credentials' lanes are counted against the calls the upstream
 * received through the broker (warm-ups included): they should be equal.
 *
 * Settings (environment): BENCH_BROKER_CONCURRENCY (default "1,8,32"), BENCH_SECONDS and
 * BENCH_WARMUP_SECONDS as everywhere; BENCH_TRACE=1 also prints the issuer's store calls per
 * proxied call and the connections the upstream accepted per step. The POST steps and the
 * unmetered GET run at concurrency 8.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import type { PolicyDocument } from '../shared/policy/policy-file.ts';
import { startChild, type RunningChild } from './child.ts';
import { loadFigures, runClosedLoop, type RequestSpec } from './load.ts';
import type { Row, Section, Settings } from './run.ts';

export const BROKER_SUBJECT = {
  directGet: 'upstream direct, GET',
  proxiedGet: 'via broker, GET',
  directPost: 'upstream direct, POST 64 KiB',
  proxiedPost: 'via broker, POST 64 KiB',
  proxiedGetUnmetered: 'via broker, GET, no quota',
} as const;

/** The provider whose bucket is metered: every call takes one request from it (never spent). */
const PROVIDER = 'payments';
/** The same upstream again, behind a bucket with no quota policy: the broker takes nothing. */
const UNMETERED = 'payments-unmetered';
const QUOTA_BUCKET = 'bench-broker';
const TENANT = 'acme';
const READ = `${PROVIDER}:charges.read`;
const WRITE = `${PROVIDER}:uploads.create`;
const READ_UNMETERED = `${UNMETERED}:charges.read`;
const POST_BYTES = 64 * 1024;
/** The POST steps and the unmetered GET step run at this concurrency only. */
const SIDE_CONCURRENCY = 8;
const DEFAULT_CONCURRENCY = '1,8,32';

interface Keys {
  readonly upstream: string;
  readonly agent: string;
  readonly admin: string;
}

/**
 * Two upstream tools on the one loopback upstream (metered and not), one identity allowed their
 * actions, one agent and one admin principal.
 */
function benchPolicy(upstreamUrl: string, keys: Keys, maxTtlSeconds: number): PolicyDocument {
  const upstream: NonNullable<PolicyDocument['tools'][number]['upstream']> = {
    baseUrl: upstreamUrl,
    key: { header: 'authorization', scheme: 'Bearer' },
    routes: {
      'charges.read': [{ method: 'GET', path: '/v1/charges*' }],
      'uploads.create': [{ method: 'POST', path: '/v1/uploads' }],
    },
    timeoutMs: 10_000,
  };
  const actions = { 'charges.read': 'read', 'uploads.create': 'write' } as const;
  const grant = { identity: 'broker-bench/prod', tenants: [TENANT], maxTtlSeconds, kinds: ['jwt' as const], budgetOwner: 'bench' };
  return {
    tools: [
      { id: PROVIDER, actions, enabled: true, upstream },
      { id: UNMETERED, actions, enabled: true, upstream },
    ],
    roles: [
      { id: 'payments-bench', version: 1, actions: [READ, WRITE], approvedBy: 'bench' },
      { id: 'payments-unmetered-bench', version: 1, actions: [READ_UNMETERED], approvedBy: 'bench' },
    ],
    identities: [{ id: 'broker-bench/prod', owner: 'bench', purpose: 'broker benchmark', status: 'active' }],
    grants: [
      { ...grant, role: 'payments-bench@1', quotaBucket: QUOTA_BUCKET },
      { ...grant, role: 'payments-unmetered-bench@1', quotaBucket: 'bench-unmetered' },
    ],
    principals: [
      { id: 'broker-bench-agent', kind: 'agent', identity: 'broker-bench/prod', apiKey: keys.agent },
      { id: 'broker-bench-admin', kind: 'admin', apiKey: keys.admin },
    ],
    // Metered, so the quota take (one conditional update per call) is in the path, but never spent.
    quotas: [{ bucket: QUOTA_BUCKET, windowSeconds: 86_400, requests: 1_000_000_000 }],
  };
}

export const brokerSection: Section = {
  name: 'broker',
  describe:
    'Broker: GET (200-byte JSON answer) and POST (64 KiB body) to a loopback upstream in its own process, directly with the key vs through /v1/proxy with a Lanyard credential ' +
    '(issuer child, SQLite on disk: a quota take and a durable audit record per call)',
  run: async (settings) => {
    const concurrencies = brokerConcurrencies();
    const steps = concurrencies.length * 2 + 3;
    const plannedSeconds = (steps * (settings.warmupMs + settings.durationMs)) / 1000;
    // The credentials must outlast every step; 43,200 s is the largest grant cap a policy takes.
    const maxTtlSeconds = Math.max(900, Math.ceil(plannedSeconds * 2 + 120));
    if (maxTtlSeconds > 43_200) throw new Error(`the broker section would run ${plannedSeconds} s, longer than a credential can live`);

    const keys: Keys = {
      upstream: `sk_bench_${randomBytes(24).toString('base64url')}`,
      agent: `lk_bench_${randomBytes(24).toString('base64url')}`,
      admin: `lk_bench_${randomBytes(24).toString('base64url')}`,
    };
    const dataDir = await mkdtemp(join(tmpdir(), 'lanyard-bench-broker-'));
    const children: RunningChild[] = [];
    try {
      const upstream = await startChild(new URL('./broker-upstream-process.ts', import.meta.url), [keys.upstream]);
      children.push(upstream);
      const policyFile = join(dataDir, 'bench-policy.yaml');
      await writeFile(policyFile, stringify(benchPolicy(upstream.ready.url, keys, maxTtlSeconds)), { mode: 0o600 });
      const issuer = await startChild(new URL('./broker-issuer-process.ts', import.meta.url), [dataDir, policyFile, ...(settings.trace ? ['--trace'] : [])]);
      children.push(issuer);

      for (const provider of [PROVIDER, UNMETERED]) await setUpstreamKey(issuer.ready.url, keys, provider);
      // One credential serves one access level: a read one for the GETs, a write one for the POSTs.
      const credential = (tool: string, action: string) => credentialFor(issuer.ready.url, keys.agent, tool, action, maxTtlSeconds, plannedSeconds);
      const reader = await credential(PROVIDER, READ);
      const writer = await credential(PROVIDER, WRITE);
      const unmetered = await credential(UNMETERED, READ_UNMETERED);
      const lanes = [reader.lane, writer.lane, unmetered.lane];
      const specs = requestSpecs(upstream.ready.url, issuer.ready.url, keys.upstream, { reader: reader.token, writer: writer.token, unmetered: unmetered.token });
      await checkOneCallEachWay(specs, issuer.ready.url, keys, lanes);

      const processes = { issuer, upstream };
      const rows: Row[] = [];
      for (const concurrency of concurrencies) {
        rows.push(await measure(settings, specs.directGet, BROKER_SUBJECT.directGet, concurrency, processes));
        rows.push(await measure(settings, specs.proxiedGet, BROKER_SUBJECT.proxiedGet, concurrency, processes));
      }
      rows.push(await measure(settings, specs.proxiedGetUnmetered, BROKER_SUBJECT.proxiedGetUnmetered, SIDE_CONCURRENCY, processes));
      rows.push(await measure(settings, specs.directPost, BROKER_SUBJECT.directPost, SIDE_CONCURRENCY, processes));
      rows.push(await measure(settings, specs.proxiedPost, BROKER_SUBJECT.proxiedPost, SIDE_CONCURRENCY, processes));

      // Every call the upstream saw from the broker must have its record: a gap would be a broker bug.
      // Said loudly, but the figures are kept.
      const audited = await countProxiedRecords(issuer.ready.url, keys.admin, lanes);
      const forwarded = (await reportOf(upstream)).forwarded ?? Number.NaN;
      const verdict = audited === forwarded ? 'one each' : 'MISMATCH';
      console.log(`   audit: ${audited.toLocaleString('en-US')} proxied-call records for ${forwarded.toLocaleString('en-US')} calls the upstream received through the broker (${verdict})`);
      return rows;
    } finally {
      for (const child of children.reverse()) await child.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  },
};

function brokerConcurrencies(): number[] {
  const list = (process.env.BENCH_BROKER_CONCURRENCY ?? DEFAULT_CONCURRENCY).split(',').map((c) => Number(c.trim()));
  if (list.some((c) => !Number.isInteger(c) || c < 1)) throw new Error('BENCH_BROKER_CONCURRENCY is a comma-separated list of positive integers');
  return list;
}

interface Specs {
  readonly directGet: RequestSpec;
  readonly proxiedGet: RequestSpec;
  readonly directPost: RequestSpec;
  readonly proxiedPost: RequestSpec;
  readonly proxiedGetUnmetered: RequestSpec;
}

function requestSpecs(upstreamUrl: string, issuerUrl: string, upstreamKey: string, tokens: { reader: string; writer: string; unmetered: string }): Specs {
  const direct = { authorization: `Bearer ${upstreamKey}` };
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const proxyBase = `${issuerUrl}/v1/proxy/${PROVIDER}`;
  const body = 'x'.repeat(POST_BYTES);
  const octets = { 'content-type': 'application/octet-stream' };
  return {
    directGet: { url: `${upstreamUrl}/v1/charges?limit=1`, method: 'GET', headers: direct, expectStatus: 200 },
    proxiedGet: { url: `${proxyBase}/v1/charges?limit=1`, method: 'GET', headers: bearer(tokens.reader), expectStatus: 200 },
    proxiedGetUnmetered: { url: `${issuerUrl}/v1/proxy/${UNMETERED}/v1/charges?limit=1`, method: 'GET', headers: bearer(tokens.unmetered), expectStatus: 200 },
    directPost: { url: `${upstreamUrl}/v1/uploads`, method: 'POST', headers: { ...direct, ...octets }, body, expectStatus: 200 },
    proxiedPost: { url: `${proxyBase}/v1/uploads`, method: 'POST', headers: { ...bearer(tokens.writer), ...octets }, body, expectStatus: 200 },
  };
}

// ---------------------------------------------------------------------------------------------
// Setting up through the issuer's own HTTP API, as an operator and an agent would

async function call(url: string, init: RequestInit): Promise<{ status: number; text: string; headers: Headers }> {
  const response = await fetch(url, init);
  return { status: response.status, text: await response.text(), headers: response.headers };
}

async function admin(issuerUrl: string, adminKey: string, command: Record<string, unknown>): Promise<unknown> {
  const answer = await call(`${issuerUrl}/v1/admin`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(command),
  });
  if (answer.status !== 200) throw new Error(`admin ${String(command.command)} answered ${answer.status}: ${answer.text}`);
  return (JSON.parse(answer.text) as { result: unknown }).result;
}

async function setUpstreamKey(issuerUrl: string, keys: Keys, provider: string): Promise<void> {
  await admin(issuerUrl, keys.admin, { command: 'upstream.secret.set', provider, secret: keys.upstream, reason: 'broker benchmark' });
}

async function credentialFor(issuerUrl: string, agentKey: string, tool: string, action: string, ttlSeconds: number, plannedSeconds: number): Promise<{ token: string; lane: string }> {
  const answer = await call(`${issuerUrl}/v1/credentials`, {
    method: 'POST',
    headers: { authorization: `Bearer ${agentKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tool, actions: [action], tenant: TENANT, ttlSeconds }),
  });
  const body = JSON.parse(answer.text) as { token?: string; lane?: string; expiresAt?: string };
  if (answer.status !== 201 || !body.token || !body.lane || !body.expiresAt) throw new Error(`POST /v1/credentials answered ${answer.status}: ${answer.text}`);
  const leftSeconds = (Date.parse(body.expiresAt) - Date.now()) / 1000;
  if (leftSeconds < plannedSeconds + 60) throw new Error(`the credential lives ${leftSeconds.toFixed(0)} s, the run takes ${plannedSeconds} s`);
  return { token: body.token, lane: body.lane };
}

/** One call each way, checked before anything is measured. */
async function checkOneCallEachWay(specs: Specs, issuerUrl: string, keys: Keys, lanes: readonly string[]): Promise<void> {
  const send = (spec: RequestSpec, headers = spec.headers) => call(spec.url, { method: spec.method, headers, ...(spec.body !== undefined && { body: spec.body }) });
  const keyless = await send(specs.directGet, {});
  if (keyless.status !== 401) throw new Error(`the upstream answered ${keyless.status} without its key`);
  const direct = await send(specs.directGet);
  for (const spec of [specs.proxiedGet, specs.proxiedGetUnmetered]) {
    const proxied = await send(spec);
    if (direct.status !== 200 || proxied.status !== 200 || proxied.text !== direct.text) {
      throw new Error(`direct ${direct.status} and proxied ${proxied.status} answers differ: ${proxied.text}`);
    }
    if ([proxied.text, JSON.stringify([...proxied.headers])].join('\n').includes(keys.upstream)) throw new Error('the upstream key reached the agent');
  }
  const posted = await send(specs.proxiedPost);
  if (posted.status !== 200 || (JSON.parse(posted.text) as { received?: number }).received !== POST_BYTES) {
    throw new Error(`the proxied POST answered ${posted.status}: ${posted.text}`);
  }
  if ((await countProxiedRecords(issuerUrl, keys.admin, lanes)) < 3) throw new Error('the proxied calls have no audit records');
}

/** Proxied-call records on the lanes; records land once the answer has streamed, so wait a little first. */
async function countProxiedRecords(issuerUrl: string, adminKey: string, lanes: readonly string[]): Promise<number> {
  await sleep(500);
  let count = 0;
  for (const lane of lanes) {
    let cursor: string | undefined;
    do {
      const page = (await admin(issuerUrl, adminKey, { command: 'audit.query', by: 'lane', value: lane, limit: 1000, ...(cursor && { cursor }) })) as {
        items: { decision: string }[];
        cursor?: string;
      };
      count += page.items.filter((r) => r.decision === 'proxied').length;
      cursor = page.cursor;
    } while (cursor);
  }
  return count;
}

// ---------------------------------------------------------------------------------------------
// Measuring

interface Processes {
  readonly issuer: RunningChild;
  readonly upstream: RunningChild;
}

/** What a child reports: its CPU time so far (all its threads) and, traced, the issuer's store calls since the last reset. */
interface ChildReport {
  readonly cpuMs: number;
  readonly storeCalls?: Readonly<Record<string, number>>;
  /** The upstream's: connections accepted so far. */
  readonly connections?: number;
  /** The upstream's: requests the broker forwarded to it so far. */
  readonly forwarded?: number;
}

function reportOf(child: RunningChild, reset = false): Promise<ChildReport> {
  return child.report(reset) as Promise<ChildReport>;
}

async function measure(settings: Settings, spec: RequestSpec, subject: string, concurrency: number, processes: Processes): Promise<Row> {
  const viaBroker = spec.url.includes('/v1/proxy/');
  let windowStart: Promise<[ChildReport, ChildReport]> | undefined;
  let clientStart: NodeJS.CpuUsage | undefined;
  const result = await runClosedLoop(spec, {
    concurrency,
    warmupMs: settings.warmupMs,
    durationMs: settings.durationMs,
    onWindowStart: () => {
      windowStart = Promise.all([reportOf(processes.issuer, settings.trace), reportOf(processes.upstream)]);
      clientStart = process.cpuUsage();
    },
  });
  const client = clientStart && process.cpuUsage(clientStart);
  const [issuerEnd, upstreamEnd] = await Promise.all([reportOf(processes.issuer, settings.trace), reportOf(processes.upstream)]);
  const [issuerStart, upstreamStart] = (await windowStart) ?? [{ cpuMs: Number.NaN }, { cpuMs: Number.NaN }];
  const perOp = (ms: number) => (result.ok === 0 ? Number.NaN : ms / result.ok);
  const issuerMs = issuerEnd.cpuMs - issuerStart.cpuMs;
  const upstreamMs = upstreamEnd.cpuMs - upstreamStart.cpuMs;
  if (settings.trace && viaBroker && issuerEnd.storeCalls) {
    // Counted from the window's start to a little after its end (calls still settling land in it).
    const calls = Object.entries(issuerEnd.storeCalls).map(([name, n]) => `${name}=${perOp(n).toFixed(2)}`);
    console.log(`  trace ${subject} c=${concurrency}: store calls per proxied call: ${calls.join(' ') || 'none'}`);
  }
  if (settings.trace) {
    const opened = (upstreamEnd.connections ?? 0) - (upstreamStart.connections ?? 0);
    console.log(`  trace ${subject} c=${concurrency}: upstream connections opened in the window: ${opened}`);
  }
  const serverMs = viaBroker ? issuerMs : upstreamMs;
  const bodyBytes = spec.body === undefined ? 0 : Buffer.byteLength(spec.body);
  const throughput = bodyBytes > 0 ? `, ${((result.perSecond * bodyBytes) / 1e6).toFixed(1)} MB/s of request body` : '';
  const note = viaBroker
    ? `srv = issuer+broker; upstream ${perOp(upstreamMs).toFixed(3)} ms CPU/op${throughput}`
    : `srv = upstream; agent holds the key${throughput}`;
  if (result.errors > 0) {
    for (const [name, child] of [['issuer', processes.issuer], ['upstream', processes.upstream]] as const) {
      const tail = child.stderrTail().trim();
      if (tail) console.error(`  ${subject} c=${concurrency}: ${name} stderr tail:\n${tail}`);
    }
  }
  return {
    subject,
    concurrency,
    ...loadFigures(result),
    serverCpuMsPerOp: perOp(serverMs),
    serverCores: serverMs / result.elapsedMs,
    ...(client && { clientCpuMsPerOp: perOp((client.user + client.system) / 1000) }),
    note: result.errors > 0 ? `errors: ${JSON.stringify(result.errorKinds)}` : note,
  };
}
