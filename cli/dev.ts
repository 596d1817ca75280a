/**
 * `lanyard dev`: the issuer on one machine. A first run with no policy starts from a small
 * example policy and prints the one `curl` that gets a credential.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { openLocalServices, type LocalServices } from '../shared/bootstrap/local/runtime.ts';
import { applyPolicyAudited } from '../shared/admin/admin.ts';
import { hashApiKey, newApiKey } from '../shared/domain/caller-keys.ts';
import { parsePolicyDocument, type ApplyResult, type PolicyDocument } from '../shared/policy/policy-file.ts';
import type { Log } from '../shared/ports/log.ts';
import { counted } from '../shared/lib/words.ts';
import { startDevServer, type DevServer } from '../shared/bootstrap/local/server.ts';
import { EXAMPLE_POLICY } from './example-policy.ts';

type GeneratedKey = ApplyResult['generatedKeys'][number];

export interface DevOptions {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly policyFile?: string;
  /** Principals to give a new API key at start (the old one stops working). */
  readonly newKeys?: readonly string[];
  /** A policy document to apply at start (tests, benchmarks). */
  readonly policy?: PolicyDocument;
  /** Keep the database in memory (tests). */
  readonly inMemory?: boolean;
  /** Decision records older than this many days are dropped. @default 400 */
  readonly retentionDays?: number;
  readonly out?: (line: string) => void;
  readonly log?: Log;
}

export interface RunningIssuer {
  readonly runtime: LocalServices;
  readonly server: DevServer;
  readonly applied?: ApplyResult;
  /** The API keys minted on this start (policy and `newKeys`): shown once, stored hashed. */
  readonly keys: readonly GeneratedKey[];
  close(): Promise<void>;
}

export async function startIssuer(options: DevOptions): Promise<RunningIssuer> {
  const out = options.out ?? ((line: string) => console.log(line));
  const displayHost = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  // The issuer URL is known before listening unless port 0 asks for any free port.
  let issuer = `http://${displayHost.includes(':') ? `[${displayHost}]` : displayHost}:${options.port}`;
  const runtime = await openLocalServices({
    dataDir: options.dataDir,
    issuer,
    ...(options.inMemory && { inMemory: true }),
    ...(options.retentionDays !== undefined && { retentionDays: options.retentionDays }),
    ...(options.log && { log: options.log }),
  });
  let server: DevServer | undefined;
  const keys: GeneratedKey[] = [];
  try {
    // Listen first: API keys are stored only hashed, so a key minted by a start that then
    // fails on a busy port would be lost. A request in the moment before the policy is
    // applied sees the policy of the last start, or none.
    server = await listen(runtime, options);
    if (options.port === 0) {
      issuer = server.url;
      (runtime.config as { issuer: string }).issuer = issuer;
    }
    let applied: ApplyResult | undefined;
    const now = new Date(runtime.clock.now()).toISOString();
    const act = { actor: 'lanyard dev', reason: 'policy applied at start', requestId: `start-${now}` };
    if (options.policy) {
      applied = await applyPolicyAudited(runtime, options.policy, act);
    } else if (options.policyFile) {
      const doc = parsePolicyDocument(parseYaml(await readFile(options.policyFile, 'utf8')));
      applied = await applyPolicyAudited(runtime, doc, act);
      out(`applied ${options.policyFile}: ${applied.changes.length === 0 ? 'no changes' : counted(applied.changes.length, 'change')}`);
    } else if ((await runtime.store.listPrincipals()).length === 0) {
      applied = await applyPolicyAudited(runtime, EXAMPLE_POLICY, act);
      out('first run: started from the example policy (tool "tickets", identity "support-triage/dev")');
    }
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
        await runtime.close();
      },
    };
  } catch (error) {
    // A key minted on this start works on the next one, and this is the only time it can be shown.
    if (keys.length > 0) printKeys(latestPerPrincipal(keys), out);
    await server?.close();
    await runtime.close();
    throw error;
  }
}

async function listen(runtime: LocalServices, options: DevOptions): Promise<DevServer> {
  try {
    return await startDevServer({ runtime, host: options.host, port: options.port });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    throw new Error(`port ${options.port} on ${options.host} is in use (another lanyard dev?): stop what holds it, or pass --port <another port>; nothing was applied and no API key was minted`, { cause: error });
  }
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

export async function runDev(options: DevOptions): Promise<void> {
  const out = options.out ?? ((line: string) => console.log(line));
  const issuer = await startIssuer(options);
  printBanner(issuer, options.dataDir, out);
  const stop = () => {
    out('stopping');
    void issuer.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/** Where the issuer is, the keys minted on this start (shown once), and the one curl that gets a credential. */
export function printBanner(issuer: RunningIssuer, dataDir: string, out: (line: string) => void): void {
  const url = issuer.server.url;
  out(`Lanyard issuer on ${url}  (data: ${dataDir})`);
  out(`  JWKS      ${url}/.well-known/jwks.json`);
  out(`  metadata  ${url}/.well-known/oauth-authorization-server`);
  if (issuer.keys.length > 0) printKeys(issuer.keys, out);
  else out('API keys: shown once, by the start that minted them; a lost one is replaced with lanyard dev --new-key <principal>');
  const agentKey = issuer.keys.find((k) => k.principal === 'triage-worker-1')?.apiKey;
  if (agentKey) {
    out('Get a credential:');
    out(
      `  curl -s -X POST ${url}/v1/credentials -H 'authorization: Bearer ${agentKey}' -H 'content-type: application/json' ` +
        `-d '{"tool":"tickets","actions":["tickets:read"],"tenant":"acme"}'`,
    );
  }
}

function printKeys(keys: readonly GeneratedKey[], out: (line: string) => void): void {
  out('API keys (shown once, stored hashed; keep them):');
  for (const { principal, apiKey } of keys) out(`  ${principal.padEnd(20)} ${apiKey}`);
}
