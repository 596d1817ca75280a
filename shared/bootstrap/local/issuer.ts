/**
 * Starting and stopping the issuer on one machine: open the local services, listen, apply a
 * policy if one is given (or a first-start policy to an empty data dir), mint the API keys
 * asked for, and later stop gracefully. `lanyard dev`, `lanyard serve`, the benchmarks and the
 * test helpers all start it here; what they print about it is theirs.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { applyPolicyAudited } from '../../admin/admin.ts';
import { hashApiKey, newApiKey } from '../../domain/caller-keys.ts';
import { parsePolicyDocument, type ApplyResult, type PolicyDocument } from '../../policy/policy-file.ts';
import type { Log } from '../../ports/log.ts';
import { PrometheusMetrics } from '../../adapters/local/prometheus-metrics.ts';
import { openLocalServices, type LocalServices } from './runtime.ts';
import { startDevServer, type DevServer } from './server.ts';

export type GeneratedKey = ApplyResult['generatedKeys'][number];

/** How long a graceful stop waits for requests in flight before it cuts them. */
export const DEFAULT_DRAIN_DEADLINE_MS = 10_000;

/** Where a policy applied at start came from. */
export type PolicySource = { readonly kind: 'document' } | { readonly kind: 'file'; readonly path: string } | { readonly kind: 'first start' };

export interface IssuerOptions {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  /**
   * The issuer's public URL (tokens' `iss`, the metadata's URLs), when callers reach it
   * through a proxy or a name. @default `http://<host>:<port>` as bound
   */
  readonly issuer?: string;
  /** Who starts it (`lanyard dev`, `lanyard serve`): the audit's actor for a policy applied at start, and the name in messages. */
  readonly startedBy?: string;
  /** A policy document to apply at start (tests, benchmarks). */
  readonly policy?: PolicyDocument;
  /** A policy file (YAML) to apply at start. */
  readonly policyFile?: string;
  /** Applied only when the data dir has no principal yet (`lanyard dev`'s example policy). */
  readonly firstStartPolicy?: PolicyDocument;
  /** Principals to give a new API key at start (the old one stops working). */
  readonly newKeys?: readonly string[];
  /** Keep the database in memory (tests). */
  readonly inMemory?: boolean;
  /** Decision records older than this many days are dropped. @default 400 */
  readonly retentionDays?: number;
  /** Count the process's CPU, memory and event-loop lag in `/metrics` too. @default true */
  readonly processMetrics?: boolean;
  readonly log?: Log;
  /** Told what a policy applied at start changed, and where it came from. */
  readonly onPolicyApplied?: (applied: ApplyResult, source: PolicySource) => void;
  /**
   * Given the API keys a start minted before it failed: they work on the next start and this
   * is the only moment they can be shown (only their hashes are stored).
   */
  readonly onFailedStartKeys?: (keys: readonly GeneratedKey[]) => void;
}

export interface RunningIssuer {
  readonly runtime: LocalServices;
  readonly server: DevServer;
  readonly applied?: ApplyResult;
  /** The API keys minted on this start (policy and `newKeys`): shown once, stored hashed. */
  readonly keys: readonly GeneratedKey[];
  /** Stops at once, cutting every connection (tests, a failed start). */
  close(): Promise<void>;
  /**
   * Stops gracefully: no new connection, requests in flight answered (cut after
   * `deadlineMs`), then the store closed. Resolves with how many answers were cut.
   */
  drain(deadlineMs?: number): Promise<{ cut: number }>;
}

export async function startIssuer(options: IssuerOptions): Promise<RunningIssuer> {
  const startedBy = options.startedBy ?? 'lanyard dev';
  const displayHost = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  // The issuer URL is known before listening unless port 0 asks for any free port.
  let issuer = options.issuer ?? `http://${displayHost.includes(':') ? `[${displayHost}]` : displayHost}:${options.port}`;
  const metrics = new PrometheusMetrics({ processMetrics: options.processMetrics ?? true });
  const runtime = await openLocalServices({
    dataDir: options.dataDir,
    issuer,
    onCommit: metrics.storeCommit,
    ...(options.inMemory && { inMemory: true }),
    ...(options.retentionDays !== undefined && { retentionDays: options.retentionDays }),
    ...(options.log && { log: options.log }),
  });
  // Counted from the event bus, which carries every committed revocation whatever caused it
  // (an admin revoke, a grant demotion, a refresh token's reuse).
  const unsubscribe = runtime.events.subscribe((event) => {
    const targetType = (event.detail as { revocation?: { targetType?: unknown } }).revocation?.targetType;
    if (typeof targetType === 'string') metrics.revocation(targetType);
  });
  const closeRuntime = () => {
    unsubscribe();
    return runtime.close();
  };
  let server: DevServer | undefined;
  const keys: GeneratedKey[] = [];
  try {
    // Listen first: API keys are stored only hashed, so a key minted by a start that then
    // fails on a busy port would be lost. A request in the moment before the policy is
    // applied sees the policy of the last start, or none.
    server = await listen(runtime, metrics, options, startedBy);
    if (options.port === 0 && options.issuer === undefined) {
      issuer = server.url;
      (runtime.config as { issuer: string }).issuer = issuer;
    }
    const applied = await applyStartPolicy(runtime, options, startedBy);
    keys.push(...(applied?.generatedKeys ?? []));
    if (options.newKeys && options.newKeys.length > 0) keys.push(...(await replaceKeys(runtime, options.newKeys)));
    const running = server;
    return {
      runtime,
      server: running,
      ...(applied && { applied }),
      keys: latestPerPrincipal(keys),
      close: async () => {
        await running.close();
        await closeRuntime();
      },
      drain: async (deadlineMs = DEFAULT_DRAIN_DEADLINE_MS) => {
        const drained = await running.drain(deadlineMs);
        // The requests are answered, so their records are committed; closing the store now loses none.
        await closeRuntime();
        return drained;
      },
    };
  } catch (error) {
    if (keys.length > 0) options.onFailedStartKeys?.(latestPerPrincipal(keys));
    await server?.close();
    await closeRuntime();
    throw error;
  }
}

/** Stops a running issuer gracefully (see `RunningIssuer.drain`). */
export function stopIssuer(issuer: RunningIssuer, deadlineMs = DEFAULT_DRAIN_DEADLINE_MS): Promise<{ cut: number }> {
  return issuer.drain(deadlineMs);
}

async function listen(runtime: LocalServices, metrics: PrometheusMetrics, options: IssuerOptions, startedBy: string): Promise<DevServer> {
  try {
    return await startDevServer({ runtime, host: options.host, port: options.port, metrics, ready: () => runtime.ready() });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    throw new Error(`port ${options.port} on ${options.host} is in use (another ${startedBy}?): stop what holds it, or pass --port <another port>; nothing was applied and no API key was minted`, { cause: error });
  }
}

/** The policy given (a document, else a file), else the first-start policy on an empty data dir, else none. */
async function applyStartPolicy(runtime: LocalServices, options: IssuerOptions, startedBy: string): Promise<ApplyResult | undefined> {
  const now = new Date(runtime.clock.now()).toISOString();
  const act = { actor: startedBy, reason: 'policy applied at start', requestId: `start-${now}` };
  let doc: PolicyDocument | undefined;
  let source: PolicySource | undefined;
  if (options.policy) {
    [doc, source] = [options.policy, { kind: 'document' }];
  } else if (options.policyFile) {
    [doc, source] = [parsePolicyDocument(parseYaml(await readFile(options.policyFile, 'utf8'))), { kind: 'file', path: options.policyFile }];
  } else if (options.firstStartPolicy && (await runtime.store.listPrincipals()).length === 0) {
    [doc, source] = [options.firstStartPolicy, { kind: 'first start' }];
  }
  if (!doc || !source) return undefined;
  const applied = await applyPolicyAudited(runtime, doc, act);
  options.onPolicyApplied?.(applied, source);
  return applied;
}

/**
 * `--new-key <principal…>`: a fresh API key for each named principal of the data dir, the way
 * an operator who lost one (keys are shown once) gets back in. The old key stops working at
 * once. Every name is checked before any key changes.
 */
async function replaceKeys(runtime: LocalServices, principals: readonly string[]): Promise<GeneratedKey[]> {
  const known = (await runtime.store.listPrincipals()).map((p) => p.id);
  const unknown = principals.filter((id) => !known.includes(id));
  if (unknown.length > 0) {
    throw new Error(`--new-key: no principal ${unknown.join(', ')} in this data dir; its principals are ${known.length > 0 ? known.join(', ') : 'none yet'}`);
  }
  const minted: GeneratedKey[] = [];
  for (const principal of new Set(principals)) {
    const apiKey = newApiKey();
    await runtime.store.setPrincipalKey(principal, 'apiKey', hashApiKey(apiKey));
    minted.push({ principal, apiKey });
  }
  runtime.policy.invalidate();
  return minted;
}

/** A principal given a key by the policy and again by --new-key holds only the last one. */
function latestPerPrincipal(keys: readonly GeneratedKey[]): GeneratedKey[] {
  return [...new Map(keys.map((k) => [k.principal, k])).values()];
}
