/**
 * `npm run bench`: Lanyard's issuance rate beside oidc-provider's, in one run on this
 * machine, with the raw ES256 signing rate as the ceiling. See docs/benchmarks.md.
 *
 * Sections run one after another, each with its own child process(es), and return rows; the
 * comparisons at the end are computed from the rows. To add a section, write a
 * `{ name, run(settings) }` that returns `Row[]` and append it to `SECTIONS`.
 *
 * Settings (environment): BENCH_CONCURRENCY (default "1,8,32,64"), BENCH_SECONDS (5),
 * BENCH_WARMUP_SECONDS (1), BENCH_SIGN_SECONDS (2), BENCH_ONLY (comma-separated section
 * names), BENCH_CPU_PROF (a folder: children run with --cpu-prof), BENCH_TRACE=1 (the issuer
 * child counts and times signatures, decision-log appends and putDecisions calls per step),
 * BENCH_BROKER_CONCURRENCY ("1,8,32": the broker section's direct and proxied GETs),
 * BENCH_SOAK_AGENTS / BENCH_SOAK_SECONDS / BENCH_SOAK_THINK_MS (500 / 60 / 1000: the soak),
 * BENCH_STARTUP_TRIALS (3: the startup section).
 *
 * It ends with issue 12's targets, one verdict line each (met, NOT MET, or not measured when
 * the sections that measure it did not run).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { startChild, type ReadyMessage, type RunningChild } from './child.ts';
import { loadFigures, runClosedLoop, type LoadResult, type RequestSpec } from './load.ts';
import { peakRssMb, processCpuMs } from './proc.ts';
import { CREDENTIAL_BODY, credentialRequest } from './lanyard-request.ts';
import { SOAK_SUBJECT, soakFigures, soakSection } from './soak.ts';
import { STARTUP_SUBJECT, startupSection } from './startup.ts';
import { lambdaBundlesSection } from './lambda-bundles.ts';
import { measureSignRate, measureWebCryptoSignRate } from './sign-rate.ts';
import { verifySection } from './verify.ts';
import { spawnSection } from './spawn.ts';
import { BROKER_SUBJECT, brokerSection } from './broker-overhead.ts';

export interface Settings {
  readonly concurrencies: readonly number[];
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly signSeconds: number;
  readonly trace: boolean;
}

/** One measured figure. `subject` names what was measured; comparisons look rows up by it. */
export interface Row {
  readonly subject: string;
  readonly concurrency?: number;
  readonly perSecond: number;
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  readonly ok?: number;
  readonly errors?: number;
  /** CPU time the server process (all its threads) spent per successful answer, in the measured window. */
  readonly serverCpuMsPerOp?: number;
  /** The server process's CPU use in the window, in cores (1 = one core fully busy). */
  readonly serverCores?: number;
  /** The load generator's CPU time per successful answer. */
  readonly clientCpuMsPerOp?: number;
  /** The server process's peak resident set since it started (VmHWM), read at the end of the step. */
  readonly serverPeakRssMb?: number;
  readonly note?: string;
}

export interface Section {
  readonly name: string;
  /** One line printed above the section's rows: what it measures and how. */
  readonly describe: string;
  run(settings: Settings): Promise<Row[]>;
}

export const SUBJECT = {
  lanyardDurable: 'Lanyard (durable log)',
  lanyardInMemory: 'Lanyard (in-memory db)',
  oidcProvider: 'oidc-provider 9',
  harness: 'null server (harness)',
  signRate: 'node:crypto ES256 sign',
  webCryptoSignRate: 'WebCrypto ES256 subtle.sign',
} as const;


// ---------------------------------------------------------------------------------------------
// Sections

function lanyardSection(options: { inMemory: boolean }): Section {
  const subject = options.inMemory ? SUBJECT.lanyardInMemory : SUBJECT.lanyardDurable;
  return {
    name: options.inMemory ? 'lanyard-memory' : 'lanyard',
    describe: options.inMemory
      ? 'Lanyard, POST /v1/credentials, the local store in memory (the decision record is written but not to disk)'
      : 'Lanyard, POST /v1/credentials, the local store on disk in a fresh temp folder (durable decision record per 201)',
    run: async (settings) => {
      const dataDir = await mkdtemp(join(tmpdir(), 'lanyard-bench-'));
      const apiKey = `lk_bench_${randomBytes(24).toString('base64url')}`;
      const child = await startChild<ReadyMessage>(new URL('./issuer-process.ts', import.meta.url), [
        dataDir,
        apiKey,
        ...(options.inMemory ? ['--in-memory'] : []),
        ...(settings.trace ? ['--trace'] : []),
      ]);
      try {
        const spec = credentialRequest(child.ready.url, apiKey);
        const response = await fetch(spec.url, { method: 'POST', headers: spec.headers, body: spec.body });
        const answer = (await response.json()) as { token?: string };
        if (response.status !== 201 || !answer.token) throw new Error(`Lanyard answered ${response.status}: ${JSON.stringify(answer)}`);
        const alg = await verifyEs256(answer.token, `${child.ready.url}/.well-known/jwks.json`);
        return await measureSteps(settings, spec, subject, child, `${alg}, verified against JWKS`, settings.trace);
      } finally {
        await child.stop();
        await rm(dataDir, { recursive: true, force: true });
      }
    },
  };
}

const oidcProviderSection: Section = {
  name: 'oidc-provider',
  describe: 'oidc-provider 9, POST /token client_credentials → ES256 JWT access token; default in-memory adapter (no durable record)',
  run: async (settings) => {
    const clientId = 'bench-client';
    const clientSecret = randomBytes(24).toString('base64url');
    const child = await startChild<ReadyMessage & { tokenEndpoint: string; jwksUri: string }>(
      new URL('./oidc-provider-process.ts', import.meta.url),
      [clientId, clientSecret],
    );
    try {
      const spec: RequestSpec = {
        url: child.ready.tokenEndpoint,
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'tickets:read', resource: 'https://tickets.example.internal' }).toString(),
        expectStatus: 200,
      };
      const response = await fetch(spec.url, { method: 'POST', headers: spec.headers, body: spec.body });
      const answer = (await response.json()) as { access_token?: string };
      if (response.status !== 200 || !answer.access_token) throw new Error(`oidc-provider answered ${response.status}: ${JSON.stringify(answer)}`);
      const alg = await verifyEs256(answer.access_token, child.ready.jwksUri);
      return await measureSteps(settings, spec, SUBJECT.oidcProvider, child, `${alg}, verified against JWKS`);
    } finally {
      await child.stop();
    }
  },
};

const harnessSection: Section = {
  name: 'harness',
  describe: 'Harness ceiling: a node:http server answering a fixed 201 (no work), at the lowest and highest concurrency',
  run: async (settings) => {
    const child = await startChild(new URL('./null-server-process.ts', import.meta.url));
    try {
      const spec: RequestSpec = { url: `${child.ready.url}/v1/credentials`, method: 'POST', headers: { 'content-type': 'application/json' }, body: CREDENTIAL_BODY, expectStatus: 201 };
      const ends = [...new Set([Math.min(...settings.concurrencies), Math.max(...settings.concurrencies)])];
      return await measureSteps({ ...settings, concurrencies: ends }, spec, SUBJECT.harness, child, 'most this harness can measure');
    } finally {
      await child.stop();
    }
  },
};

const signRateSection: Section = {
  name: 'sign-rate',
  describe: 'Raw ES256 signing, node:crypto sign(sha256, ieee-p1363) over a Lanyard-sized JWS input, one core, in the parent; WebCrypto subtle.sign beside it',
  run: async (settings) => {
    const rate = measureSignRate(settings.signSeconds);
    const rows: Row[] = [
      { subject: SUBJECT.signRate, perSecond: rate.perSecond, note: `${rate.microsPerSignature.toFixed(1)} µs/signature, ${rate.cpuMicrosPerSignature.toFixed(1)} µs CPU/signature, ${rate.inputBytes}-byte input` },
    ];
    // WebCrypto beside it, one at a time and 64 in flight: what the local signer paid before issue 12.
    for (const concurrency of [1, 64]) {
      const web = await measureWebCryptoSignRate(settings.signSeconds, concurrency);
      rows.push({
        subject: SUBJECT.webCryptoSignRate,
        concurrency,
        perSecond: web.perSecond,
        note: `${web.microsPerSignature.toFixed(1)} µs/signature wall, ${web.cpuMicrosPerSignature.toFixed(1)} µs CPU/signature (all threads)`,
      });
    }
    return rows;
  },
};

/** The order sections run in. Later sections (verification, spawn, broker) append here. */
export const SECTIONS: Section[] = [
  signRateSection,
  harnessSection,
  lanyardSection({ inMemory: false }),
  lanyardSection({ inMemory: true }),
  oidcProviderSection,
  startupSection,
  soakSection,
  verifySection,
  spawnSection,
  brokerSection,
  lambdaBundlesSection,
  (await import('./aws-calls.ts')).awsCallsSection,
];

// ---------------------------------------------------------------------------------------------
// Measuring and printing

async function measureSteps(settings: Settings, spec: RequestSpec, subject: string, child: RunningChild, note: string, trace = false): Promise<Row[]> {
  const rows: Row[] = [];
  for (const concurrency of settings.concurrencies) {
    let at: { server: number | undefined; client: NodeJS.CpuUsage; wall: number } | undefined;
    const onWindowStart = () => {
      at = { server: processCpuMs(child.pid), client: process.cpuUsage(), wall: performance.now() };
      if (trace) void child.report(true);
    };
    const result: LoadResult = await runClosedLoop(spec, { concurrency, warmupMs: settings.warmupMs, durationMs: settings.durationMs, onWindowStart });
    const serverEnd = processCpuMs(child.pid);
    const peakRss = peakRssMb(child.pid);
    const serverMs = at?.server !== undefined && serverEnd !== undefined ? serverEnd - at.server : undefined;
    const client = at ? process.cpuUsage(at.client) : undefined;
    const wallMs = at ? performance.now() - at.wall : Number.NaN;
    const perOp = (ms: number | undefined) => (ms === undefined || result.ok === 0 ? undefined : ms / result.ok);
    if (trace) console.log(`  trace ${subject} c=${concurrency}: ${formatTrace(await child.report(true))}`);
    const errorNote = result.errors > 0 ? `errors: ${JSON.stringify(result.errorKinds)}` : note;
    rows.push({
      subject,
      concurrency,
      ...loadFigures(result),
      ...(serverMs !== undefined && { serverCpuMsPerOp: perOp(serverMs), serverCores: serverMs / wallMs }),
      ...(client && { clientCpuMsPerOp: perOp((client.user + client.system) / 1000) }),
      ...(peakRss !== undefined && { serverPeakRssMb: peakRss }),
      note: errorNote,
    });
    if (result.errors > 0) {
      const tail = child.stderrTail().trim();
      if (tail) console.error(`  ${subject} c=${concurrency}: server stderr tail:\n${tail}`);
    }
  }
  return rows;
}

function formatTrace(data: unknown): string {
  return Object.entries(data as Record<string, number>)
    .map(([key, value]) => `${key}=${Number.isInteger(value) ? value : value.toFixed(key === 'cpuShare' ? 2 : 3)}`)
    .join(' ');
}

async function verifyEs256(token: string, jwksUri: string): Promise<string> {
  const header = decodeProtectedHeader(token);
  if (header.alg !== 'ES256') throw new Error(`expected an ES256 JWT, got alg ${String(header.alg)}`);
  const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(jwksUri)), { algorithms: ['ES256'] });
  if (process.env.BENCH_SHOW_TOKEN === '1') console.log(`   token claims: ${JSON.stringify(payload)}`);
  return `JWT ${header.alg}${header.typ ? ` typ ${header.typ}` : ''}`;
}

function settingsFromEnv(): Settings {
  const number = (name: string, fallback: number) => {
    const value = Number(process.env[name] ?? fallback);
    if (!(value > 0)) throw new Error(`${name} must be a positive number`);
    return value;
  };
  const concurrencies = (process.env.BENCH_CONCURRENCY ?? '1,8,32,64').split(',').map((c) => Number(c.trim()));
  if (concurrencies.some((c) => !Number.isInteger(c) || c < 1)) throw new Error('BENCH_CONCURRENCY is a comma-separated list of positive integers');
  return {
    concurrencies,
    warmupMs: number('BENCH_WARMUP_SECONDS', 1) * 1000,
    durationMs: number('BENCH_SECONDS', 5) * 1000,
    signSeconds: number('BENCH_SIGN_SECONDS', 2),
    trace: process.env.BENCH_TRACE === '1',
  };
}

const fmt = {
  rate: (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-'),
  ms: (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '-' : n < 10 ? n.toFixed(2) : n.toFixed(1)),
  ratio: (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '-'),
};

function table(header: readonly string[], rows: readonly (readonly string[])[], rightAlign: ReadonlySet<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (rightAlign.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function printRows(rows: readonly Row[]): void {
  console.log(
    table(
      ['subject', 'conc', 'per second', 'p50 ms', 'p99 ms', 'ok', 'errors', 'srv CPU ms/op', 'srv cores', 'gen CPU ms/op', 'srv peak RSS MB', 'note'],
      rows.map((r) => [
        r.subject,
        r.concurrency === undefined ? '-' : String(r.concurrency),
        fmt.rate(r.perSecond),
        fmt.ms(r.p50Ms),
        fmt.ms(r.p99Ms),
        r.ok === undefined ? '-' : String(r.ok),
        r.errors === undefined ? '-' : String(r.errors),
        r.serverCpuMsPerOp === undefined ? '-' : r.serverCpuMsPerOp.toFixed(3),
        r.serverCores === undefined ? '-' : r.serverCores.toFixed(2),
        r.clientCpuMsPerOp === undefined ? '-' : r.clientCpuMsPerOp.toFixed(3),
        r.serverPeakRssMb === undefined ? '-' : r.serverPeakRssMb.toFixed(0),
        r.note ?? '',
      ]),
      new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    ),
  );
}

/** Lanyard / oidc-provider at each concurrency, and Lanyard's best / the signing ceiling. */
function printComparison(rows: readonly Row[], settings: Settings): void {
  const at = (subject: string, c: number) => rows.find((r) => r.subject === subject && r.concurrency === c);
  const lines: string[][] = [];
  const met: number[] = [];
  const missed: number[] = [];
  for (const c of settings.concurrencies) {
    const durable = at(SUBJECT.lanyardDurable, c);
    const memory = at(SUBJECT.lanyardInMemory, c);
    const oidc = at(SUBJECT.oidcProvider, c);
    if (!durable || !oidc) continue;
    const ratio = durable.perSecond / oidc.perSecond;
    (ratio >= 2 ? met : missed).push(c);
    lines.push([
      String(c),
      fmt.rate(durable.perSecond),
      memory ? fmt.rate(memory.perSecond) : '-',
      fmt.rate(oidc.perSecond),
      fmt.ratio(ratio),
      memory ? fmt.ratio(memory.perSecond / oidc.perSecond) : '-',
      ratio >= 2 ? 'yes' : 'no',
    ]);
  }
  console.log('\n== Comparison (same machine, same run) ==');
  if (lines.length === 0) {
    console.log('(needs the lanyard and oidc-provider sections)');
  } else {
    console.log(
      table(['conc', 'Lanyard durable/s', 'Lanyard in-mem/s', 'oidc-provider/s', 'durable ÷ oidc', 'in-mem ÷ oidc', '≥ 2×'], lines, new Set([0, 1, 2, 3, 4, 5])),
    );
  }
  const sign = rows.find((r) => r.subject === SUBJECT.signRate);
  const durableRows = rows.filter((r) => r.subject === SUBJECT.lanyardDurable);
  if (sign && durableRows.length > 0) {
    const best = durableRows.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
    console.log(
      `\nLanyard's best durable rate ${fmt.rate(best.perSecond)}/s (c=${best.concurrency}) ÷ raw ES256 signing ${fmt.rate(sign.perSecond)}/s = ` +
        `${(best.perSecond / sign.perSecond * 100).toFixed(1)} % of the single-core signing ceiling`,
    );
  }
  if (lines.length > 0) {
    const verdict = missed.length === 0 ? 'MET' : 'NOT MET';
    console.log(
      `Aim (Lanyard ≥ 2× oidc-provider at the same concurrency, keeping the durable record): ${verdict}` +
        (met.length > 0 && missed.length > 0 ? ` (met at c=${met.join(',')}; missed at c=${missed.join(',')})` : ''),
    );
  }
}

/** Issue 12's targets: what each needs, what this run measured, and whether it is met. */
export const TARGETS = {
  /** Durable rate ÷ oidc-provider's at the same concurrency. */
  rateRatio: [
    { concurrency: 1, atLeast: 1 },
    { concurrency: 8, atLeast: 2 },
    { concurrency: 32, atLeast: 2 },
    { concurrency: 64, atLeast: 2 },
  ],
  p99Concurrency: 64,
  cpuConcurrency: 64,
  cpuMsPerCredential: 0.25,
  peakRssMb: 250,
  diskBytesPerCredential: 2000,
  firstStartMs: 1000,
  restartMs: 500,
} as const;

type Verdict = readonly [target: string, figure: string, verdict: string];

function verdict(met: boolean | undefined, figure: string | undefined, sections: string): [string, string] {
  if (met === undefined || figure === undefined) return ['-', `not measured (needs ${sections})`];
  return [figure, met ? 'met' : 'NOT MET'];
}

function printTargets(rows: readonly Row[]): void {
  const at = (subject: string, c: number) => rows.find((r) => r.subject === subject && r.concurrency === c);
  const lines: Verdict[] = [];
  const add = (target: string, met: boolean | undefined, figure: string | undefined, sections: string) => lines.push([target, ...verdict(met, figure, sections)]);

  for (const { concurrency: c, atLeast } of TARGETS.rateRatio) {
    const durable = at(SUBJECT.lanyardDurable, c);
    const oidc = at(SUBJECT.oidcProvider, c);
    const ratio = durable && oidc ? durable.perSecond / oidc.perSecond : undefined;
    add(
      `durable issuance ≥ ${atLeast}× oidc-provider's rate at c=${c}`,
      ratio === undefined ? undefined : ratio >= atLeast,
      ratio === undefined ? undefined : `${fmt.rate(durable!.perSecond)}/s ÷ ${fmt.rate(oidc!.perSecond)}/s = ${fmt.ratio(ratio)}`,
      'sections lanyard and oidc-provider',
    );
  }
  const c99 = TARGETS.p99Concurrency;
  const durable99 = at(SUBJECT.lanyardDurable, c99);
  const oidc99 = at(SUBJECT.oidcProvider, c99);
  add(
    `durable p99 at c=${c99} ≤ oidc-provider's`,
    durable99 && oidc99 ? durable99.p99Ms! <= oidc99.p99Ms! : undefined,
    durable99 && oidc99 ? `${fmt.ms(durable99.p99Ms)} ms vs ${fmt.ms(oidc99.p99Ms)} ms` : undefined,
    'sections lanyard and oidc-provider',
  );
  const cpu = at(SUBJECT.lanyardDurable, TARGETS.cpuConcurrency)?.serverCpuMsPerOp;
  add(
    `server CPU per durable credential at c=${TARGETS.cpuConcurrency} (all threads) ≤ ${TARGETS.cpuMsPerCredential} ms`,
    cpu === undefined ? undefined : cpu <= TARGETS.cpuMsPerCredential,
    cpu === undefined ? undefined : `${cpu.toFixed(3)} ms`,
    'section lanyard',
  );
  const benchRss = Math.max(...rows.filter((r) => r.subject === SUBJECT.lanyardDurable).map((r) => r.serverPeakRssMb ?? Number.NaN));
  add(
    `the durable issuer's peak RSS during the bench (VmHWM) ≤ ${TARGETS.peakRssMb} MB`,
    Number.isFinite(benchRss) ? benchRss <= TARGETS.peakRssMb : undefined,
    Number.isFinite(benchRss) ? `${benchRss.toFixed(0)} MB` : undefined,
    'section lanyard',
  );
  const soak = rows.find((r) => r.subject === SOAK_SUBJECT);
  const soakDisk = soakFigures();
  add(
    `peak RSS during the 500-agent minute ≤ ${TARGETS.peakRssMb} MB`,
    soak?.serverPeakRssMb === undefined ? undefined : soak.serverPeakRssMb <= TARGETS.peakRssMb,
    soak?.serverPeakRssMb === undefined ? undefined : `${soak.serverPeakRssMb.toFixed(0)} MB (${soak.concurrency} agents, ${soak.ok} credentials)`,
    'section soak',
  );
  const perCredential = soakDisk && soakDisk.issued > 0 ? soakDisk.growthBytes / soakDisk.issued : undefined;
  add(
    `data dir growth per credential in the 500-agent minute (indexes included) ≤ ${TARGETS.diskBytesPerCredential.toLocaleString('en-US')} bytes`,
    perCredential === undefined ? undefined : perCredential <= TARGETS.diskBytesPerCredential,
    perCredential === undefined ? undefined : `${Math.round(perCredential).toLocaleString('en-US')} bytes (${(soakDisk!.growthBytes / 1e6).toFixed(1)} MB for ${soakDisk!.issued.toLocaleString('en-US')})`,
    'section soak',
  );
  for (const [subject, limit, what] of [
    [STARTUP_SUBJECT.firstStart, TARGETS.firstStartMs, 'first start of lanyard dev → first credential'],
    [STARTUP_SUBJECT.restart, TARGETS.restartMs, 'restart on the same data dir → first credential'],
  ] as const) {
    const row = rows.find((r) => r.subject === subject);
    add(`${what} ≤ ${limit} ms (median)`, row?.p50Ms === undefined ? undefined : row.p50Ms <= limit, row?.p50Ms === undefined ? undefined : `${row.p50Ms.toFixed(0)} ms`, 'startup');
  }

  console.log('\n== Targets (issue 12; same run, same machine) ==');
  console.log(table(['target', 'this run', 'verdict'], lines, new Set()));
  const count = (v: string) => lines.filter((l) => l[2] === v).length;
  console.log(`Targets: ${count('met')} met, ${count('NOT MET')} not met, ${lines.length - count('met') - count('NOT MET')} not measured in this run`);
}

/** The broker against calling the upstream directly (issue 6): proxied ÷ direct throughput, added latency, broker CPU. */
function printBrokerComparison(rows: readonly Row[]): void {
  const pairs = [
    ['GET', BROKER_SUBJECT.directGet, BROKER_SUBJECT.proxiedGet],
    ['GET, no quota', BROKER_SUBJECT.directGet, BROKER_SUBJECT.proxiedGetUnmetered],
    ['POST 64 KiB', BROKER_SUBJECT.directPost, BROKER_SUBJECT.proxiedPost],
  ] as const;
  const minus = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a - b);
  const lines: string[][] = [];
  for (const [request, directSubject, proxiedSubject] of pairs) {
    for (const proxied of rows.filter((r) => r.subject === proxiedSubject)) {
      const direct = rows.find((r) => r.subject === directSubject && r.concurrency === proxied.concurrency);
      if (!direct) continue;
      lines.push([
        request,
        String(proxied.concurrency),
        fmt.rate(direct.perSecond),
        fmt.rate(proxied.perSecond),
        fmt.ratio(proxied.perSecond / direct.perSecond),
        fmt.ms(direct.p50Ms),
        fmt.ms(proxied.p50Ms),
        fmt.ms(minus(proxied.p50Ms, direct.p50Ms)),
        fmt.ms(direct.p99Ms),
        fmt.ms(proxied.p99Ms),
        fmt.ms(minus(proxied.p99Ms, direct.p99Ms)),
        proxied.serverCpuMsPerOp === undefined ? '-' : proxied.serverCpuMsPerOp.toFixed(3),
      ]);
    }
  }
  if (lines.length === 0) return;
  console.log('\n== Broker vs the upstream called directly (same run) ==');
  console.log(
    table(
      ['request', 'conc', 'direct/s', 'broker/s', 'broker ÷ direct', 'direct p50', 'broker p50', 'added p50 ms', 'direct p99', 'broker p99', 'added p99 ms', 'broker CPU ms/call'],
      lines,
      new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
    ),
  );
}

async function main(): Promise<void> {
  const settings = settingsFromEnv();
  const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
  const sections = only ? SECTIONS.filter((s) => only.includes(s.name)) : SECTIONS;
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log('== Lanyard benchmark ==');
  console.log(`date      ${new Date().toISOString()}`);
  console.log(`machine   ${availableParallelism()} cores (${cpu}), Node ${process.version}, ${process.platform}/${process.arch}`);
  console.log(
    `settings  closed loop over loopback HTTP/1.1 keep-alive; concurrency ${settings.concurrencies.join(', ')}; ` +
      `${settings.warmupMs / 1000} s warm-up + ${settings.durationMs / 1000} s measured per step; each server in its own child process`,
  );
  console.log(`          sections: ${sections.map((s) => s.name).join(', ')}`);
  const rows: Row[] = [];
  const started = Date.now();
  for (const section of sections) {
    console.log(`\n== ${section.name}: ${section.describe} ==`);
    console.log(`   (load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')})`);
    const sectionRows = await section.run(settings);
    printRows(sectionRows);
    rows.push(...sectionRows);
  }
  printComparison(rows, settings);
  printBrokerComparison(rows);
  printTargets(rows);
  console.log('\nNotes: oidc-provider uses its default in-memory adapter and keeps no durable record of what it issued; ' +
    'Lanyard writes one decision record per request to the local issuer\'s store (on disk in the lanyard section) before answering. ' +
    `Load generator and server share ${availableParallelism()} cores. Total ${((Date.now() - started) / 1000).toFixed(0)} s.`);
}

await main();
