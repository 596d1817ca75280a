/**
 * Runs a system under test in its own Node process, so the load generator and the server never
 * share an event loop. The child is forked with the same Node (`process.execPath`, Node 24 with
 * native type stripping) and reports readiness over the IPC channel:
 *
 *   child → parent  { type: 'ready', url, ...details }   once it listens
 *   parent → child  { type: 'stop' }                     close cleanly and exit
 *   parent → child  { type: 'report', reset }           (optional) child answers
 *   child → parent  { type: 'report', data }             its counters since the last reset
 *
 * `BENCH_CPU_PROF=<dir>` starts every child with `--cpu-prof` writing into that folder.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

export interface ReadyMessage {
  readonly type: 'ready';
  readonly url: string;
  readonly [detail: string]: unknown;
}

export interface RunningChild<T extends ReadyMessage = ReadyMessage> {
  readonly ready: T;
  readonly pid: number;
  /** The last lines the child wrote to stderr (for diagnosing errors). */
  readonly stderrTail: () => string;
  /** Asks the child for its counters (children started with a trace flag); `reset` starts a new window. */
  readonly report: (reset: boolean) => Promise<unknown>;
  readonly stop: () => Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

export async function startChild<T extends ReadyMessage>(file: URL, args: readonly string[] = []): Promise<RunningChild<T>> {
  const profDir = process.env.BENCH_CPU_PROF;
  // `@lanyard/sdk` from its sources (packages/sdk/package.json): execArgv replaces the parent's flags.
  const execArgv = ['--conditions=@lanyard/source', ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])];
  const child = fork(file, [...args], { execPath: process.execPath, execArgv, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let tail = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-4000);
  });
  const ready = await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${file.pathname} was not ready after ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    const onMessage = (message: unknown) => {
      if (typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'ready') {
        cleanup();
        resolve(message as T);
      }
    };
    const onExit = (code: number | null) => fail(new Error(`${file.pathname} exited (${code}) before it was ready:\n${tail}`));
    const fail = (error: Error) => {
      cleanup();
      child.kill('SIGKILL');
      reject(error);
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
  return {
    ready,
    pid: child.pid ?? -1,
    stderrTail: () => tail,
    report: (reset) => requestReport(child, reset),
    stop: () => stopChild(child),
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.send({ type: 'stop' });
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

function requestReport(child: ChildProcess, reset: boolean): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', onMessage);
      reject(new Error('the child did not answer a report request'));
    }, 5_000);
    const onMessage = (message: unknown) => {
      if (typeof message !== 'object' || message === null || (message as { type?: unknown }).type !== 'report') return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve((message as { data?: unknown }).data);
    };
    child.on('message', onMessage);
    child.send({ type: 'report', reset });
  });
}

/** In a child: answers report requests with `collect(reset)`. */
export function onReportRequest(collect: (reset: boolean) => unknown): void {
  process.on('message', (message: unknown) => {
    if (typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'report') {
      process.send?.({ type: 'report', data: collect((message as { reset?: unknown }).reset === true) });
    }
  });
}

/** In a child: calls `stop` when the parent asks or goes away, then exits. */
export function onStopRequest(stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on('message', (message: unknown) => {
    if (typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'stop') shutdown();
  });
  process.on('disconnect', shutdown);
}

export function sendReady(message: ReadyMessage): void {
  if (!process.send) throw new Error('run this file through bench/run.ts (it needs an IPC channel)');
  process.send(message);
}
