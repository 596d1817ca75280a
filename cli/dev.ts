/**
 * `lanyard dev`: the issuer on one machine, the friendly way. A first run with no policy starts
 * from a small example policy and prints the one `curl` that gets a credential. Starting and
 * stopping is shared/bootstrap/local/issuer.ts; what is printed is here.
 */
import { counted } from '../shared/lib/words.ts';
import { startIssuer as startLocalIssuer, type GeneratedKey, type IssuerOptions, type RunningIssuer } from '../shared/bootstrap/local/issuer.ts';
import { EXAMPLE_POLICY } from './example-policy.ts';

export type { RunningIssuer } from '../shared/bootstrap/local/issuer.ts';

export interface DevOptions extends Omit<IssuerOptions, 'startedBy' | 'firstStartPolicy' | 'onPolicyApplied' | 'onFailedStartKeys'> {
  readonly out?: (line: string) => void;
}

/** `lanyard dev`'s start: the example policy on an empty data dir, and a line about any policy applied. */
export function startDevIssuer(options: DevOptions): Promise<RunningIssuer> {
  const out = options.out ?? ((line: string) => console.log(line));
  const { out: _out, ...issuerOptions } = options;
  return startLocalIssuer({
    ...issuerOptions,
    startedBy: 'lanyard dev',
    firstStartPolicy: EXAMPLE_POLICY,
    onPolicyApplied: (applied, source) => {
      if (source.kind === 'file') out(`applied ${source.path}: ${applied.changes.length === 0 ? 'no changes' : counted(applied.changes.length, 'change')}`);
      if (source.kind === 'first start') out('first run: started from the example policy (tool "tickets", identity "support-triage/dev")');
    },
    // A key minted on this start works on the next one, and this is the only time it can be shown.
    onFailedStartKeys: (keys) => printKeys(keys, out),
  });
}

/** The name the benchmarks start `lanyard dev` by. */
export const startIssuer = startDevIssuer;

export async function runDev(options: DevOptions): Promise<void> {
  const out = options.out ?? ((line: string) => console.log(line));
  const issuer = await startDevIssuer(options);
  printBanner(issuer, options.dataDir, out);
  const stop = () => {
    out('stopping');
    void issuer.drain().then(() => process.exit(0));
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

export function printKeys(keys: readonly GeneratedKey[], out: (line: string) => void): void {
  out('API keys (shown once, stored hashed; keep them):');
  for (const { principal, apiKey } of keys) out(`  ${principal.padEnd(20)} ${apiKey}`);
}
