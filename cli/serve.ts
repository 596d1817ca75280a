/**
 * `lanyard serve`: the issuer as a service on one machine. Unlike `lanyard dev` it applies no
 * example policy (only a `--policy` file), logs JSON lines, prints no API key except the ones
 * `--new-key` mints, and on SIGTERM or SIGINT stops gracefully: no new connection, requests in
 * flight answered (cut after the drain deadline), the store closed, exit 0.
 */
import { describeError, jsonLinesLog, type Log } from '../shared/ports/log.ts';
import { DEFAULT_DRAIN_DEADLINE_MS, startIssuer, type GeneratedKey, type RunningIssuer } from '../shared/bootstrap/local/issuer.ts';

export interface ServeOptions {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly policyFile?: string;
  readonly issuer?: string;
  readonly newKeys?: readonly string[];
  readonly drainDeadlineMs?: number;
  /** Decision records older than this many days are dropped. @default 400 */
  readonly retentionDays?: number;
  readonly log?: Log;
  /** Where the keys `--new-key` mints are printed (once). @default stdout */
  readonly out?: (line: string) => void;
}

export async function startServe(options: ServeOptions): Promise<RunningIssuer> {
  const log = options.log ?? jsonLinesLog();
  const out = options.out ?? ((line: string) => console.log(line));
  const asked = new Set(options.newKeys ?? []);
  const issuer = await startIssuer({
    port: options.port,
    host: options.host,
    dataDir: options.dataDir,
    startedBy: 'lanyard serve',
    log,
    ...(options.issuer !== undefined && { issuer: options.issuer }),
    ...(options.policyFile !== undefined && { policyFile: options.policyFile }),
    ...(options.newKeys && { newKeys: options.newKeys }),
    ...(options.retentionDays !== undefined && { retentionDays: options.retentionDays }),
    onPolicyApplied: (applied, source) => {
      log.info('policy applied at start', { ...(source.kind === 'file' && { file: source.path }), changes: applied.changes });
      warnUnshown(log, applied.generatedKeys.filter((k) => !asked.has(k.principal)));
    },
    // Keys --new-key minted before the start failed work on the next start: this is their one showing.
    onFailedStartKeys: (keys) => printNewKeys(keys.filter((k) => asked.has(k.principal)), out),
  });
  printNewKeys(issuer.keys.filter((k) => asked.has(k.principal)), out);
  log.info('listening', { url: issuer.server.url, issuer: issuer.runtime.config.issuer, dataDir: options.dataDir });
  return issuer;
}

export async function runServe(options: ServeOptions): Promise<void> {
  const log = options.log ?? jsonLinesLog();
  let issuer: RunningIssuer;
  try {
    issuer = await startServe({ ...options, log });
  } catch (error) {
    log.error('start failed', { error: describeError(error) });
    process.exitCode = 1;
    return;
  }
  const deadlineMs = options.drainDeadlineMs ?? DEFAULT_DRAIN_DEADLINE_MS;
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A supervisor may signal twice (a process group, a wrapper forwarding): the deadline
      // bounds the stop anyway. A second Ctrl-C is someone at a terminal who wants out now.
      if (signal === 'SIGINT') process.exit(130);
      log.info('already stopping', { signal });
      return;
    }
    stopping = true;
    log.info('stopping: no new connections, answering requests in flight', { signal, deadlineMs });
    issuer.drain(deadlineMs).then(
      ({ cut }) => {
        if (cut > 0) log.warn('drain deadline reached: cut unanswered requests', { cut, deadlineMs });
        log.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log.error('stopping failed', { error: describeError(error) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** A policy applied by a service names principals whose new keys nobody will see: say who, never the key. */
function warnUnshown(log: Log, keys: readonly GeneratedKey[]): void {
  if (keys.length === 0) return;
  log.warn('the policy gave principals API keys that lanyard serve does not show; give each one with lanyard serve --new-key <principal>', {
    principals: keys.map((k) => k.principal),
  });
}

function printNewKeys(keys: readonly GeneratedKey[], out: (line: string) => void): void {
  if (keys.length === 0) return;
  out('API keys from --new-key (shown once, stored hashed; keep them):');
  for (const { principal, apiKey } of keys) out(`  ${principal.padEnd(20)} ${apiKey}`);
}
