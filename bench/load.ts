/**
 * A closed-loop HTTP load generator: N workers, each sending its next request only when the
 * previous one has answered, over one keep-alive `node:http` Agent with N sockets. Latencies
 * go into a preallocated Float64Array (no allocation per sample on the hot path); p50/p99 are
 * computed once at the end.
 *
 * A run is a warm-up (requests sent, nothing recorded) followed by a measured window. Only
 * requests *started* inside the window are counted; the rate is those answered with the
 * expected status divided by the time from the window's start to the last of them answering.
 * Every other status, and every network error, is an error, reported but never counted.
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface RequestSpec {
  readonly url: string;
  readonly method: 'POST' | 'GET';
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
  /** The status that counts as success (201 for Lanyard, 200 for an OAuth token endpoint). */
  readonly expectStatus: number;
}

export interface LoadOptions {
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Preallocated latency slots; answers beyond it are counted but not sampled. @default 2^21 */
  readonly maxSamples?: number;
  /** Called once when the warm-up ends and the measured window starts. */
  readonly onWindowStart?: () => void;
  /**
   * Think time: after each answer a worker waits a random 0.5–1.5 × this many ms before its
   * next request (and as long before its first), as an agent doing work between credentials
   * does. The jitter keeps hundreds of workers from moving in lockstep. @default 0 (none)
   */
  readonly thinkMs?: number;
}

export interface LoadResult {
  readonly concurrency: number;
  /** Answers with the expected status, started inside the measured window. */
  readonly ok: number;
  /** Anything else: other statuses and network errors, keyed by status or error code. */
  readonly errors: number;
  readonly errorKinds: Readonly<Record<string, number>>;
  readonly elapsedMs: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
}

/** The figures of a row (bench/run.ts `Row`) that every closed-loop step reports the same way. */
export function loadFigures(result: LoadResult): { perSecond: number; p50Ms: number; p99Ms: number; ok: number; errors: number } {
  return { perSecond: result.perSecond, p50Ms: result.p50Ms, p99Ms: result.p99Ms, ok: result.ok, errors: result.errors };
}

export async function runClosedLoop(spec: RequestSpec, options: LoadOptions): Promise<LoadResult> {
  const url = new URL(spec.url);
  const body = spec.body === undefined ? undefined : Buffer.from(spec.body);
  const headers: Record<string, string> = { ...spec.headers, ...(body && { 'content-length': String(body.length) }) };
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency, maxFreeSockets: options.concurrency });
  const requestOptions = { host: url.hostname, port: url.port, path: url.pathname + url.search, method: spec.method, headers, agent };
  const samples = new Float64Array(options.maxSamples ?? 1 << 21);
  let sampled = 0;
  let ok = 0;
  const errorKinds: Record<string, number> = {};
  let lastAnswer = 0;

  const send = () =>
    new Promise<number | string>((resolve) => {
      const req = request(requestOptions, (res) => {
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'response_error'));
        res.resume();
      });
      req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'request_error'));
      req.end(body);
    });

  const start = performance.now();
  const windowStart = start + options.warmupMs;
  const windowEnd = windowStart + options.durationMs;
  const windowTimer = options.onWindowStart ? setTimeout(options.onWindowStart, options.warmupMs) : undefined;

  const think = options.thinkMs ?? 0;
  const pause = () => new Promise((resolve) => setTimeout(resolve, think * (0.5 + Math.random())));

  const worker = async () => {
    if (think > 0) await new Promise((resolve) => setTimeout(resolve, think * Math.random()));
    for (;;) {
      const sentAt = performance.now();
      if (sentAt >= windowEnd) return;
      const outcome = await send();
      if (sentAt < windowStart) {
        if (think > 0) await pause();
        continue;
      }
      const answeredAt = performance.now();
      lastAnswer = Math.max(lastAnswer, answeredAt);
      if (outcome === spec.expectStatus) {
        ok += 1;
        if (sampled < samples.length) samples[sampled++] = answeredAt - sentAt;
      } else {
        const kind = String(outcome);
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
        // A refused connection answers at once: do not spin the CPU the server needs.
        if (typeof outcome === 'string') await new Promise((resolve) => setTimeout(resolve, 10));
      }
      if (think > 0) await pause();
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  agent.destroy();
  clearTimeout(windowTimer);

  const elapsedMs = Math.max(lastAnswer, windowEnd) - windowStart;
  const sorted = samples.subarray(0, sampled).sort();
  let sum = 0;
  for (const value of sorted) sum += value;
  const errors = Object.values(errorKinds).reduce((a, b) => a + b, 0);
  return {
    concurrency: options.concurrency,
    ok,
    errors,
    errorKinds,
    elapsedMs,
    perSecond: (ok * 1000) / elapsedMs,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    meanMs: sampled === 0 ? Number.NaN : sum / sampled,
  };
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}
