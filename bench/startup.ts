/**
 * The `startup` section of `npm run bench`: how long `lanyard dev` (what `npm start` runs:
 * `node --conditions=@lanyard/source cli/lanyard.ts dev`, without npm's own start-up) takes
 * from being spawned to its first credential, on a fresh data dir and again on the same dir
 * after a clean stop (SIGTERM). Whichever store the local bootstrap uses is what is timed.
 *
 * A first start applies the example policy and prints the agent's new API key in its banner;
 * the clock stops when the answer to the first `POST /v1/credentials` with that key (a 201)
 * has arrived. The restart prints its banner once it listens with the data dir's policy; the
 * same key must still work. Each trial uses its own temp folder. Median and range of
 * BENCH_STARTUP_TRIALS (default 3).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CREDENTIAL_BODY } from './lanyard-request.ts';
import type { Row, Section } from './run.ts';

export const STARTUP_SUBJECT = {
  firstStart: 'lanyard dev, first start → first 201',
  restart: 'lanyard dev, restart → first 201',
} as const;

const CLI = fileURLToPath(new URL('../cli/lanyard.ts', import.meta.url));
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
/** The banner line that carries the agent's key on a first start (cli/dev.ts printBanner). */
const KEY_IN_BANNER = /authorization: Bearer (lk_[A-Za-z0-9_-]+)/;
const LISTENING = /^Lanyard issuer on /m;

export const startupSection: Section = {
  name: 'startup',
  describe: 'lanyard dev (as npm start runs it) spawned on a fresh temp data dir: spawn → first 201; then SIGTERM and start again on the same dir',
  run: async () => {
    const trials = Number(process.env.BENCH_STARTUP_TRIALS ?? 3);
    if (!Number.isInteger(trials) || trials < 1) throw new Error('BENCH_STARTUP_TRIALS must be a positive integer');
    const first: number[] = [];
    const again: number[] = [];
    for (let trial = 0; trial < trials; trial += 1) {
      const dataDir = await mkdtemp(join(tmpdir(), 'lanyard-bench-start-'));
      try {
        const port = await freePort();
        const fresh = await timedStart(dataDir, port);
        first.push(fresh.ms);
        const restarted = await timedStart(dataDir, port, fresh.apiKey);
        again.push(restarted.ms);
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    }
    return [startupRow(STARTUP_SUBJECT.firstStart, first), startupRow(STARTUP_SUBJECT.restart, again)];
  },
};

function startupRow(subject: string, ms: readonly number[]): Row {
  const sorted = [...ms].sort((a, b) => a - b);
  return {
    subject,
    perSecond: Number.NaN,
    p50Ms: median(sorted),
    note: `median of ${ms.length} (ms, in order: ${ms.map((m) => m.toFixed(0)).join(', ')})`,
  };
}

function median(sorted: readonly number[]): number {
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Spawns `lanyard dev`, waits for its banner, gets one credential, stops it; the time is spawn → 201. */
async function timedStart(dataDir: string, port: number, knownKey?: string): Promise<{ ms: number; apiKey: string }> {
  const startedAt = performance.now();
  const child = spawn(process.execPath, ['--conditions=@lanyard/source', CLI, 'dev', '--port', String(port), '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    const banner = await bannerOf(child, knownKey === undefined ? KEY_IN_BANNER : LISTENING);
    const apiKey = knownKey ?? KEY_IN_BANNER.exec(banner)![1]!;
    const response = await fetch(`http://127.0.0.1:${port}/v1/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: CREDENTIAL_BODY,
    });
    const body = await response.text();
    const ms = performance.now() - startedAt;
    if (response.status !== 201) throw new Error(`lanyard dev answered ${response.status} to its first request: ${body}`);
    return { ms, apiKey };
  } finally {
    await stop(child);
  }
}

/** Everything the child printed up to the first line that matches `ready`. */
function bannerOf(child: ChildProcess, ready: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`lanyard dev printed no banner within ${READY_TIMEOUT_MS} ms:\n${out}${err}`)), READY_TIMEOUT_MS);
    const onOut = (chunk: string) => {
      out += chunk;
      if (ready.test(out)) done(() => resolve(out));
    };
    const onErr = (chunk: string) => {
      err = (err + chunk).slice(-4000);
    };
    const onExit = (code: number | null) => fail(new Error(`lanyard dev exited (${code}) before its banner:\n${out}${err}`));
    const fail = (error: Error) => done(() => reject(error));
    const done = (settle: () => void) => {
      clearTimeout(timer);
      child.stdout?.off('data', onOut);
      // Keep draining what it prints later, so it never blocks on a full pipe.
      child.stdout?.resume();
      child.off('exit', onExit);
      settle();
    };
    child.stdout?.setEncoding('utf8').on('data', onOut);
    child.stderr?.setEncoding('utf8').on('data', onErr);
    child.on('exit', onExit);
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** A port nothing listens on right now, for a child that must be told its port. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
