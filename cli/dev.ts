/**
 * `lanyard dev`: the issuer on one machine. A first run with no policy starts from a small
 * example policy and prints the one `curl` that gets a credential.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { openLocalRuntime, type LocalRuntime } from '../shared/adapters/local/runtime.ts';
import { applyPolicyAudited } from '../shared/admin.ts';
import { parsePolicyDocument, type ApplyResult, type PolicyDocument } from '../shared/policy-file.ts';
import type { Log } from '../shared/log.ts';
import { startDevServer, type DevServer } from './dev-server.ts';
import { EXAMPLE_POLICY } from './example-policy.ts';

export interface DevOptions {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly policyFile?: string;
  /** A policy document to apply at start (tests, benchmarks). */
  readonly policy?: PolicyDocument;
  /** Keep the database in memory (tests). */
  readonly inMemory?: boolean;
  readonly out?: (line: string) => void;
  readonly log?: Log;
}

export interface RunningIssuer {
  readonly runtime: LocalRuntime;
  readonly server: DevServer;
  readonly applied?: ApplyResult;
  close(): Promise<void>;
}

export async function startIssuer(options: DevOptions): Promise<RunningIssuer> {
  const out = options.out ?? ((line: string) => console.log(line));
  const displayHost = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  // The issuer URL is known before listening unless port 0 asks for any free port.
  let issuer = `http://${displayHost.includes(':') ? `[${displayHost}]` : displayHost}:${options.port}`;
  const runtime = await openLocalRuntime({
    dataDir: options.dataDir,
    issuer,
    ...(options.inMemory && { inMemory: true }),
    ...(options.log && { log: options.log }),
  });
  let server: DevServer | undefined;
  try {
    let applied: ApplyResult | undefined;
    const now = new Date(runtime.clock.now()).toISOString();
    const act = { actor: 'lanyard dev', reason: 'policy applied at start', requestId: `start-${now}` };
    if (options.policy) {
      applied = await applyPolicyAudited(runtime, options.policy, act);
    } else if (options.policyFile) {
      const doc = parsePolicyDocument(parseYaml(await readFile(options.policyFile, 'utf8')));
      applied = await applyPolicyAudited(runtime, doc, act);
      out(`applied ${options.policyFile}: ${applied.changes.length === 0 ? 'no changes' : `${applied.changes.length} changes`}`);
    } else if ((await runtime.store.listPrincipals()).length === 0) {
      applied = await applyPolicyAudited(runtime, EXAMPLE_POLICY, act);
      out('first run: started from the example policy (tool "tickets", identity "support-triage/dev")');
    }
    if (options.port === 0) {
      server = await startDevServer({ runtime, host: options.host, port: 0 });
      issuer = server.url;
      (runtime.config as { issuer: string }).issuer = issuer;
    } else {
      server = await startDevServer({ runtime, host: options.host, port: options.port });
    }
    const running = server;
    return {
      runtime,
      server: running,
      ...(applied && { applied }),
      close: async () => {
        await running.close();
        await runtime.close();
      },
    };
  } catch (error) {
    await server?.close();
    await runtime.close();
    throw error;
  }
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

/** Where the issuer is, the keys generated on this start (shown once), and the one curl that gets a credential. */
export function printBanner(issuer: RunningIssuer, dataDir: string, out: (line: string) => void): void {
  const url = issuer.server.url;
  out(`Lanyard issuer on ${url}  (data: ${dataDir})`);
  out(`  JWKS      ${url}/.well-known/jwks.json`);
  out(`  metadata  ${url}/.well-known/oauth-authorization-server`);
  const keys = issuer.applied?.generatedKeys ?? [];
  if (keys.length > 0) {
    out('API keys (shown once, stored hashed; keep them):');
    for (const { principal, apiKey } of keys) out(`  ${principal.padEnd(20)} ${apiKey}`);
  }
  const agentKey = keys.find((k) => k.principal === 'triage-worker-1')?.apiKey;
  if (agentKey) {
    out('Get a credential:');
    out(
      `  curl -s -X POST ${url}/v1/credentials -H 'authorization: Bearer ${agentKey}' -H 'content-type: application/json' ` +
        `-d '{"tool":"tickets","actions":["tickets:read"],"tenant":"acme"}'`,
    );
  }
}
