/**
 * The `soak` section of `npm run bench` (issue 12's "500-agent minute"): the local issuer
 * (bench/issuer-process.ts, the store the local bootstrap chooses, on disk in a fresh temp
 * folder) under 500 agents, each asking for a credential, waiting a think time, and asking
 * again, for BENCH_SOAK_SECONDS (default 60). It reports the credentials issued, their
 * latency, the issuer's CPU per credential, its peak resident memory (VmHWM) and how much the
 * data dir grew per credential: every file under it, indexes, logs and write-ahead files
 * included, measured while the issuer still runs and again once it has closed (the larger of
 * the two is the figure).
 *
 * Settings (environment): BENCH_SOAK_AGENTS (500), BENCH_SOAK_SECONDS (60),
 * BENCH_SOAK_THINK_MS (1000: each agent waits 0.5–1.5 × this between answers).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChild, type ReadyMessage } from './child.ts';
import { loadFigures, runClosedLoop } from './load.ts';
import { diskBytes, peakRssMb, processCpuMs } from './proc.ts';
import { credentialRequest } from './lanyard-request.ts';
import type { Row, Section } from './run.ts';

export const SOAK_SUBJECT = 'Lanyard, 500-agent minute';

/** What the soak found beyond a row's figures: the disk the data dir grew by. */
export interface SoakFigures {
  readonly issued: number;
  readonly growthBytes: number;
  readonly growthWhileRunningBytes: number;
  readonly growthAfterCloseBytes: number;
}

let lastSoak: SoakFigures | undefined;
/** The figures of the last soak this process ran (for the targets at the end of the run). */
export function soakFigures(): SoakFigures | undefined {
  return lastSoak;
}

function soakSettings(): { agents: number; seconds: number; thinkMs: number } {
  const number = (name: string, fallback: number) => {
    const value = Number(process.env[name] ?? fallback);
    if (!(value >= 0) || !Number.isFinite(value)) throw new Error(`${name} must be a number ≥ 0`);
    return value;
  };
  const agents = number('BENCH_SOAK_AGENTS', 500);
  if (!Number.isInteger(agents) || agents < 1) throw new Error('BENCH_SOAK_AGENTS must be a positive integer');
  return { agents, seconds: number('BENCH_SOAK_SECONDS', 60), thinkMs: number('BENCH_SOAK_THINK_MS', 1000) };
}

const described = soakSettings();

export const soakSection: Section = {
  name: 'soak',
  describe:
    `${described.agents} agents, each POST /v1/credentials then a think time of 0.5–1.5 × ${described.thinkMs} ms, for ${described.seconds} s; ` +
    'the local issuer with its store on disk in a fresh temp folder (durable decision record per 201)',
  run: async () => {
    const { agents, seconds, thinkMs } = soakSettings();
    const dataDir = await mkdtemp(join(tmpdir(), 'lanyard-bench-soak-'));
    const apiKey = `lk_bench_${randomBytes(24).toString('base64url')}`;
    const child = await startChild<ReadyMessage>(new URL('./issuer-process.ts', import.meta.url), [dataDir, apiKey]);
    let stopped = false;
    try {
      const spec = credentialRequest(child.ready.url, apiKey);
      // One credential first: the store's tables, files and first pages exist before the baseline.
      const first = await fetch(spec.url, { method: 'POST', headers: spec.headers, body: spec.body });
      if (first.status !== 201) throw new Error(`Lanyard answered ${first.status}: ${await first.text()}`);
      const baseline = await diskBytes(dataDir);
      const cpuBefore = processCpuMs(child.pid);
      const clientBefore = process.cpuUsage();
      const result = await runClosedLoop(spec, { concurrency: agents, warmupMs: 0, durationMs: seconds * 1000, thinkMs });
      const cpuAfter = processCpuMs(child.pid);
      const client = process.cpuUsage(clientBefore);
      const peakRss = peakRssMb(child.pid);
      const whileRunning = (await diskBytes(dataDir)) - baseline;
      await child.stop();
      stopped = true;
      const afterClose = (await diskBytes(dataDir)) - baseline;
      // Per credential issued: refusals (errors here) write records too, so with errors this overstates.
      const records = result.ok;
      lastSoak = { issued: result.ok, growthBytes: Math.max(whileRunning, afterClose), growthWhileRunningBytes: whileRunning, growthAfterCloseBytes: afterClose };
      const perRecord = (bytes: number) => (records === 0 ? '-' : `${Math.round(bytes / records).toLocaleString('en-US')} B`);
      const cpuMs = cpuBefore !== undefined && cpuAfter !== undefined ? cpuAfter - cpuBefore : undefined;
      const row: Row = {
        subject: SOAK_SUBJECT,
        concurrency: agents,
        ...loadFigures(result),
        ...(cpuMs !== undefined && result.ok > 0 && { serverCpuMsPerOp: cpuMs / result.ok, serverCores: cpuMs / result.elapsedMs }),
        ...(result.ok > 0 && { clientCpuMsPerOp: (client.user + client.system) / 1000 / result.ok }),
        ...(peakRss !== undefined && { serverPeakRssMb: peakRss }),
        note:
          (result.errors > 0 ? `errors: ${JSON.stringify(result.errorKinds)}; ` : '') +
          `data dir +${(lastSoak.growthBytes / 1e6).toFixed(1)} MB, ${perRecord(lastSoak.growthBytes)}/credential ` +
          `(running ${perRecord(whileRunning)}, after close ${perRecord(afterClose)})`,
      };
      return [row];
    } finally {
      if (!stopped) await child.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  },
};
