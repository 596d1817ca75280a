/**
 * The `startup` section of `npm run bench`: how long `lanyard dev` (what `npm start` runs:
 * `node --conditions=@lanyard/source cli/lanyard.ts dev`, without npm's own start-up) takes
 * from being spawned to its first credential, on a fresh data dir and again on the same dir
 * after a clean stop (SIGTERM). Whichever store the local bootstrap uses is what is timed.
 *
 * A first start applies the example policy and prints the agent's new API key (the only thing
 * read from its output); a restart keeps it. From the spawn on, `POST /v1/credentials` with
 * that key is tried every 5 ms until it is answered 201 (a refused connection or any other
 * answer means not ready yet), and the clock stops at that 201. Each trial uses its own temp
 * folder. Median and range of BENCH_STARTUP_TRIALS (default 3).
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
const POLL_MS = 5;
/** The agent's key in the first start's output (cli/dev.ts prints it with its principal, and in a curl line). */
const AGENT_KEY = /triage-worker-1\s+(lk_[A-Za-z0-9_-]{16,128})|Bearer (lk_[A-Za-z0-9_-]{16,128})/;

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

/** Spawns `lanyard dev` and gets one credential from it, then stops it; the time is spawn → 201. */
async function timedStart(dataDir: string, port: number, knownKey?: string): Promise<{ ms: number; apiKey: string }> {
  const startedAt = performance.now();
  const child = spawn(process.execPath, ['--conditions=@lanyard/source', CLI, 'dev', '--port', String(port), '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    const output = watchOutput(child);
    const apiKey = knownKey ?? (await output.key());
    await firstCredential(port, apiKey, startedAt, output);
    return { ms: performance.now() - startedAt, apiKey };
  } finally {
    await stop(child);
  }
}

interface WatchedOutput {
  /** The agent's key, once printed (rejects if the child exits first). */
  readonly key: () => Promise<string>;
  /** Rejects when the child exits before it is stopped. */
  readonly exited: Promise<never>;
  readonly text: () => string;
}

function watchOutput(child: ChildProcess): WatchedOutput {
  let out = '';
  let resolveKey: (key: string) => void = () => {};
  const key = new Promise<string>((resolve) => (resolveKey = resolve));
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    const match = AGENT_KEY.exec(out);
    if (match) resolveKey((match[1] ?? match[2])!);
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    out = (out + chunk).slice(-8000);
  });
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code) => reject(new Error(`lanyard dev exited (${code}) before its first credential:\n${out}`)));
  });
  exited.catch(() => {}); // observed by whoever races it
  return { key: () => Promise.race([key, exited]), exited, text: () => out };
}

/** Tries `POST /v1/credentials` every POLL_MS until it is answered 201. */
async function firstCredential(port: number, apiKey: string, startedAt: number, output: WatchedOutput): Promise<void> {
  let last = 'no answer';
  while (performance.now() - startedAt < READY_TIMEOUT_MS) {
    const outcome = await Promise.race([tryCredential(port, apiKey), output.exited]);
    if (outcome === 201) return;
    last = String(outcome);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`lanyard dev gave no credential within ${READY_TIMEOUT_MS} ms (last: ${last}):\n${output.text()}`);
}

async function tryCredential(port: number, apiKey: string): Promise<number | string> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/v1/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: CREDENTIAL_BODY,
    });
    await response.arrayBuffer();
    return response.status;
  } catch (error) {
    return (error as { cause?: { code?: string } }).cause?.code ?? 'fetch_failed';
  }
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
