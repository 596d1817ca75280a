#!/usr/bin/env -S node --conditions=@lanyard/source
/**
 * The `lanyard` command: `dev` runs the local issuer (what `npm start` runs), `serve` runs it
 * as a service; `apply`, the listings, `issue` and `decode` talk to any running issuer.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { parse as parseYaml } from 'yaml';
import { withArticle } from '../shared/lib/words.ts';
import { regionOfApiUrl } from '@lanyard/sdk/aws';
import { adminCommand, callIssuer, IssuerCallError, type IssuerClientOptions } from './client.ts';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command()
  .name('lanyard')
  .description('Just-in-time credentials for AI agent fleets')
  .version(version, '-V, --version', 'print the version of lanyard')
  .showHelpAfterError();

const port = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError('a port number from 0 to 65535');
  return n;
};

const days = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a whole number of days, at least 1');
  return n;
};

/** The options `dev` and `serve` share: where the local issuer listens and what it keeps. */
const withLocalIssuerOptions = (command: Command, newKeyHelp: string) =>
  command
    .option('--port <port>', 'port to listen on', port, 8787)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--data-dir <dir>', 'where the key and the database live', '.lanyard')
    .option('--policy <file>', 'policy file (YAML) to apply at start')
    .option('--new-key <principal...>', newKeyHelp)
    .option('--retention-days <days>', 'drop decision records older than this many days', days, 400);

withLocalIssuerOptions(
  program.command('dev').description('run the issuer locally: embedded store, local signing key, local API keys'),
  'give these principals a new API key, printed once (a lost key; the old one stops working)',
)
  .action(async (opts: { port: number; host: string; dataDir: string; policy?: string; newKey?: string[]; retentionDays: number }) => {
    // Loaded on demand: the embedded engine and the AWS SDK are for `dev` only, not every command.
    const { runDev } = await import('./dev.ts');
    await runDev({
      port: opts.port,
      host: opts.host,
      dataDir: resolve(opts.dataDir),
      ...(opts.policy && { policyFile: resolve(opts.policy) }),
      ...(opts.newKey && { newKeys: opts.newKey }),
      retentionDays: opts.retentionDays,
    });
  });

/** `--issuer`: an absolute http(s) URL with no query or fragment; a trailing slash is dropped. */
const issuerUrl = (value: string) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('an absolute URL, e.g. https://lanyard.example.com');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new InvalidArgumentError('an http or https URL');
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') throw new InvalidArgumentError('a URL without query, fragment or credentials');
  return url.href.replace(/\/+$/, '');
};

const drainSeconds = (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 3600) throw new InvalidArgumentError('seconds from 0 to 3600');
  return n;
};

withLocalIssuerOptions(
  program.command('serve').description('run the issuer as a service: no example policy, JSON log lines, graceful stop on SIGTERM'),
  'give these principals a new API key, printed once on stdout (the old one stops working)',
)
  .option('--issuer <url>', "the issuer's public URL (tokens' iss), when callers reach it through a proxy", issuerUrl)
  .option('--drain-timeout <seconds>', 'on SIGTERM, how long requests in flight may take before they are cut', drainSeconds, 10)
  .action(async (opts: { port: number; host: string; dataDir: string; policy?: string; issuer?: string; newKey?: string[]; drainTimeout: number; retentionDays: number }) => {
    const { runServe } = await import('./serve.ts');
    await runServe({
      port: opts.port,
      host: opts.host,
      dataDir: resolve(opts.dataDir),
      drainDeadlineMs: opts.drainTimeout * 1000,
      retentionDays: opts.retentionDays,
      ...(opts.policy && { policyFile: resolve(opts.policy) }),
      ...(opts.issuer && { issuer: opts.issuer }),
      ...(opts.newKey && { newKeys: opts.newKey }),
    });
  });

const withIssuer = (command: Command) =>
  command
    .option('--url <url>', 'issuer URL (a deployed stack: its ApiUrl output)', process.env.LANYARD_URL ?? 'http://127.0.0.1:8787')
    .option('--key <key>', 'API key to call with (or LANYARD_KEY)', process.env.LANYARD_KEY)
    .option('--sigv4', 'deployed stack: sign HTTP requests with SigV4 (execute-api) using the default AWS credentials')
    .option('--function <name>', 'deployed stack: admin commands invoke this Lambda (the AdminFunctionName output, or LANYARD_ADMIN_FUNCTION)', process.env.LANYARD_ADMIN_FUNCTION)
    .option('--region <region>', 'deployed stack: AWS region (default: from the execute-api URL, then AWS_REGION)');

type IssuerFlags = { url: string; key?: string; sigv4?: boolean; function?: string; region?: string };

/**
 * The transport follows the flags: an API key, SigV4, or the admin Lambda (cli/client.ts).
 * With none of them the call could only be refused, so it is not made: the message says which
 * key the command needs and where it goes. `caller` is the kind of principal the command is.
 */
const client = (opts: IssuerFlags, caller: 'admin' | 'agent' = 'admin'): IssuerClientOptions => {
  const region = opts.region ?? regionOfApiUrl(opts.url) ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (opts.sigv4 && region === undefined) throw new InvalidArgumentError('--sigv4 needs a region: --region, an execute-api URL, or AWS_REGION');
  if (!opts.key && !opts.sigv4 && !(caller === 'admin' && opts.function)) {
    throw new InvalidArgumentError(
      `no API key: this needs ${withArticle(caller)} key, given with --key <key> or LANYARD_KEY (a deployed stack: --sigv4${caller === 'admin' ? ' or --function <name>' : ''})`,
    );
  }
  return {
    url: opts.url,
    ...(opts.key && { key: opts.key }),
    ...(opts.sigv4 && region !== undefined && { sigv4: { region } }),
    ...(opts.function && { adminFunction: opts.function }),
    ...(opts.function && region !== undefined && { region }),
  };
};

withIssuer(program.command('apply <file>').description('apply a policy file to a running issuer (an admin key)'))
  .option('--dry-run', 'print what applying would change, and write nothing')
  .action(async (file: string, opts: { url: string; key?: string; dryRun?: boolean }) => {
    const policy: unknown = parseYaml(await readFile(file, 'utf8'));
    const result = (await adminCommand(client(opts), { command: 'policy.apply', policy, ...(opts.dryRun && { dryRun: true }) })) as {
      changes: string[];
      generatedKeys: { principal: string; apiKey: string }[];
    };
    if (opts.dryRun && result.changes.length > 0) console.log('dry run, nothing written; applying would make these changes:');
    for (const line of result.changes) console.log(opts.dryRun ? `  ${line}` : line);
    if (result.changes.length === 0) console.log('no changes');
    for (const { principal, apiKey } of result.generatedKeys) console.log(`API key for ${principal} (shown once): ${apiKey}`);
  });

for (const [noun, field] of [
  ['identity', 'identities'],
  ['role', 'roles'],
  ['tool', 'tools'],
  ['principal', 'principals'],
  ['grant', 'grants'],
] as const) {
  const group = program.command(noun).description(`${field} of a running issuer`);
  const list = withIssuer(group.command('list').description(`list ${field}`));
  if (noun === 'grant') list.option('--identity <id>', 'only this identity');
  list.action(async (opts: { url: string; key?: string; identity?: string }) => {
    const result = (await adminCommand(client(opts), { command: `${noun}.list`, ...(opts.identity && { identity: opts.identity }) })) as Record<string, unknown>;
    console.log(JSON.stringify(result[field], null, 2));
  });
}

withIssuer(program.command('issue').description('ask for a credential for one lane, as the given key'))
  .requiredOption('--tool <tool>', 'tool id')
  .requiredOption('--action <action...>', 'actions, e.g. tickets:read')
  .option('--tenant <tenant>', 'tenant')
  .option('--kind <kind>', 'jwt or sts')
  .option('--ttl <seconds>', 'lifetime in seconds', (v) => Number(v))
  .option('--task-id <id>', 'task id')
  .option('--purpose <text>', 'task purpose')
  .option('--on-behalf-of <user>', 'the user the agent acts for')
  .action(async (opts: { url: string; key?: string; tool: string; action: string[]; tenant?: string; kind?: string; ttl?: number; taskId?: string; purpose?: string; onBehalfOf?: string }) => {
    const body = {
      tool: opts.tool,
      actions: opts.action,
      ...(opts.tenant && { tenant: opts.tenant }),
      ...(opts.kind && { kind: opts.kind }),
      ...(opts.ttl !== undefined && { ttlSeconds: opts.ttl }),
      ...(opts.taskId && { task: { id: opts.taskId, ...(opts.purpose && { purpose: opts.purpose }) } }),
      ...(opts.onBehalfOf && { onBehalfOf: opts.onBehalfOf }),
    };
    console.log(JSON.stringify(await callIssuer(client(opts, 'agent'), 'POST', '/v1/credentials', body), null, 2));
  });

const admin = program.command('admin').description('admin commands (an admin key): revoke, reinstate, change a grant, set an upstream secret');

const targetOptions = (command: Command) =>
  command
    .option('--credential <id>', 'one credential')
    .option('--lane <lane>', 'a lane: <identity>:<tool>:<level>:<tenant or *>')
    .option('--identity <id>', 'an identity (an agent class cuts its instances too)')
    .option('--tenant <tenant>', 'a tenant')
    .option('--tool <tool>', 'a tool (kill switch; with --identity, for that identity only)')
    .option('--key-id <kid>', 'a signing key')
    .requiredOption('--reason <text>', 'why (audited)');

type TargetFlags = { credential?: string; lane?: string; identity?: string; tenant?: string; tool?: string; keyId?: string };

/** Exactly one target, as the admin command takes it; the issuer validates it again. */
function targetOf(opts: TargetFlags): Record<string, string> {
  if (opts.tool) return { tool: opts.tool, ...(opts.identity && { identity: opts.identity }) };
  const given = Object.entries({ credential: opts.credential, lane: opts.lane, identity: opts.identity, tenant: opts.tenant, key: opts.keyId }).filter(([, v]) => v);
  if (given.length !== 1) throw new InvalidArgumentError('name exactly one target: --credential, --lane, --identity, --tenant, --tool or --key-id');
  return Object.fromEntries(given) as Record<string, string>;
}

for (const verb of ['revoke', 'reinstate'] as const) {
  withIssuer(targetOptions(admin.command(verb).description(verb === 'revoke' ? 'cut off a target (and block new issuance for it)' : 'lift the block on a target'))).action(
    async (opts: TargetFlags & { url: string; key?: string; reason: string }) => {
      const result = await adminCommand(client(opts), { command: verb, target: targetOf(opts), reason: opts.reason });
      console.log(JSON.stringify(result, null, 2));
    },
  );
}

withIssuer(admin.command('grant-change').description('change a grant; widening it needs --approved-by'))
  .requiredOption('--identity <id>', 'the identity')
  .requiredOption('--grant <id>', 'the grant id (e.g. support-triage@1)')
  .option('--status <status>', 'active or demoted')
  .option('--role-version <n>', 'role version', (v) => Number(v))
  .option('--tenants <tenant...>', 'tenants')
  .option('--max-ttl <seconds>', 'TTL cap', (v) => Number(v))
  .requiredOption('--reason <text>', 'why (audited)')
  .option('--approved-by <who>', 'who approved a promotion')
  .action(async (opts: { url: string; key?: string; identity: string; grant: string; status?: string; roleVersion?: number; tenants?: string[]; maxTtl?: number; reason: string; approvedBy?: string }) => {
    const set = {
      ...(opts.status && { status: opts.status }),
      ...(opts.roleVersion !== undefined && { roleVersion: opts.roleVersion }),
      ...(opts.tenants && { tenants: opts.tenants }),
      ...(opts.maxTtl !== undefined && { maxTtlSeconds: opts.maxTtl }),
    };
    const result = await adminCommand(client(opts), {
      command: 'grant.change',
      identity: opts.identity,
      grant: opts.grant,
      set,
      reason: opts.reason,
      ...(opts.approvedBy && { approvedBy: opts.approvedBy }),
    });
    console.log(JSON.stringify(result, null, 2));
  });

/**
 * The secret never comes from argv (any user can read it in `ps` and the shell keeps it in its
 * history): it is read from an environment variable or piped in. One trailing newline, as
 * `echo` or a file adds, is dropped; anything else is sent as it is and checked by the issuer.
 */
async function readSecret(opts: { fromEnv?: string; fromStdin?: boolean }): Promise<string> {
  if ((opts.fromEnv === undefined) === (opts.fromStdin !== true)) throw new InvalidArgumentError('name exactly one source of the secret: --from-env <VAR> or --from-stdin');
  if (opts.fromEnv !== undefined) {
    const value = process.env[opts.fromEnv];
    if (value === undefined || value === '') throw new InvalidArgumentError(`environment variable ${opts.fromEnv} is not set or empty`);
    return value;
  }
  // Typed at a terminal it would be echoed on screen: only a pipe or a file is read.
  if (process.stdin.isTTY) throw new InvalidArgumentError('--from-stdin reads a pipe or a file, not a terminal: lanyard admin set-secret … --from-stdin < key.txt');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
}

const seconds = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('a whole number of seconds');
  return n;
};

withIssuer(admin.command('set-secret <provider>').description("set a new version of an upstream provider's secret (the broker presents it; no agent sees it)"))
  .requiredOption('--reason <text>', 'why (audited)')
  .option('--from-env <var>', 'read the secret from this environment variable')
  .option('--from-stdin', 'read the secret from standard input (a pipe or a file; one trailing newline is dropped)')
  .option('--overlap-seconds <n>', 'how long requests begun before the rotation may still present the previous version (0 to 3600; default 60)', seconds)
  .action(async (provider: string, opts: IssuerFlags & { reason: string; fromEnv?: string; fromStdin?: boolean; overlapSeconds?: number }) => {
    const secret = await readSecret(opts);
    const result = (await adminCommand(client(opts), {
      command: 'upstream.secret.set',
      provider,
      secret,
      reason: opts.reason,
      ...(opts.overlapSeconds !== undefined && { overlapSeconds: opts.overlapSeconds }),
    })) as { provider: string; version: string; previousVersion?: string; rotatedAt: string; overlapUntil: string; takesEffectWithinMs: number };
    console.log(`secret of ${result.provider} set: version ${result.version}${result.previousVersion ? ` (was ${result.previousVersion})` : ' (its first)'} at ${result.rotatedAt}`);
    console.log(`new broker requests present it within ${result.takesEffectWithinMs} ms`);
    if (result.previousVersion) console.log(`requests begun before may present ${result.previousVersion} until ${result.overlapUntil}`);
  });

withIssuer(admin.command('upstreams').description('upstream providers behind the broker: base URL, and whether a secret is set (never the secret)')).action(async (opts: IssuerFlags) => {
  const result = (await adminCommand(client(opts), { command: 'upstream.list' })) as { upstreams: unknown[] };
  console.log(JSON.stringify(result.upstreams, null, 2));
});

withIssuer(admin.command('usage <provider>').description("whose budget burns: the broker's calls to a provider, summed from the audit"))
  .option('--by <group>', 'identity | lane | task | budgetOwner | quotaBucket', 'identity')
  .option('--from <iso>', 'from this instant')
  .option('--to <iso>', 'to this instant')
  .action(async (provider: string, opts: IssuerFlags & { by: string; from?: string; to?: string }) => {
    const report = await adminCommand(client(opts), {
      command: 'usage.report',
      provider,
      by: opts.by,
      ...(opts.from && { from: opts.from }),
      ...(opts.to && { to: opts.to }),
    });
    console.log(JSON.stringify(report, null, 2));
  });

withIssuer(admin.command('quota <bucket>').description("a quota bucket's limits, what its current window has used, and when it resets")).action(
  async (bucket: string, opts: IssuerFlags) => {
    console.log(JSON.stringify(await adminCommand(client(opts), { command: 'quota.status', bucket }), null, 2));
  },
);

withIssuer(program.command('audit').description('decisions for an identity, lane, tenant, task or tool; or what an identity could do at an instant'))
  .option('--identity <id>', 'decisions of this identity')
  .option('--lane <lane>', 'decisions on this lane')
  .option('--tenant <tenant>', 'decisions for this tenant')
  .option('--task <id>', 'decisions for this task')
  .option('--tool <tool>', 'decisions about this tool')
  .option('--from <iso>', 'from this instant')
  .option('--to <iso>', 'to this instant')
  .option('--limit <n>', 'at most this many', (v) => Number(v))
  .option('--at <iso>', 'with --identity: what could it do at this instant')
  .action(async (opts: { url: string; key?: string; identity?: string; lane?: string; tenant?: string; task?: string; tool?: string; from?: string; to?: string; limit?: number; at?: string }) => {
    if (opts.at) {
      if (!opts.identity) throw new InvalidArgumentError('--at needs --identity');
      console.log(JSON.stringify(await adminCommand(client(opts), { command: 'audit.at', identity: opts.identity, at: opts.at }), null, 2));
      return;
    }
    const dims = Object.entries({ identity: opts.identity, lane: opts.lane, tenant: opts.tenant, task: opts.task, tool: opts.tool }).filter(([, v]) => v);
    if (dims.length !== 1) throw new InvalidArgumentError('name exactly one of --identity, --lane, --tenant, --task, --tool');
    const [by, value] = dims[0]!;
    const result = await adminCommand(client(opts), {
      command: 'audit.query',
      by,
      value,
      ...(opts.from && { from: opts.from }),
      ...(opts.to && { to: opts.to }),
      ...(opts.limit !== undefined && { limit: opts.limit }),
    });
    console.log(JSON.stringify(result, null, 2));
  });

program
  .command('drill')
  .description('the revocation drill: cut one write lane while a read task keeps calling, and check the fleet sees exactly that')
  .option('--url <url>', 'issuer URL (a deployed stack: its ApiUrl output)', process.env.LANYARD_URL ?? 'http://127.0.0.1:8787')
  .option('--agent-key <key>', 'local: an agent key (the drill mints its lanes as this agent)')
  .option('--admin-key <key>', 'local: an admin key (to revoke and audit)')
  .option('--verifier-key <key>', 'local: a verifier key (the resource-server side)')
  .option('--sigv4', 'deployed stack: call the API with SigV4 (--agent-profile and --verifier-profile name AWS profiles bound to an agent and a verifier principal)')
  .option('--agent-profile <profile>', 'deployed stack: AWS profile of the agent principal')
  .option('--verifier-profile <profile>', 'deployed stack: AWS profile of the verifier principal')
  .option('--function <name>', 'deployed stack: the admin Lambda (AdminFunctionName output)', process.env.LANYARD_ADMIN_FUNCTION)
  .option('--region <region>', 'deployed stack: AWS region (default: from the execute-api URL, then AWS_REGION)')
  .option('--tool <tool>', 'tool', 'tickets')
  .option('--read-action <action>', 'a read action of the tool', 'tickets:read')
  .option('--write-action <action>', 'a write action of the tool', 'tickets:reply')
  .option('--tenant <tenant>', 'tenant', 'acme')
  .option('--keep-revoked', 'leave the write lane revoked afterwards')
  .option('--bound-ms <ms>', 'how soon after the revoke the verifier must refuse the write side (default 1000 locally, 3000 deployed)', (v) => Number(v))
  .action(
    async (opts: {
      url: string;
      agentKey?: string;
      adminKey?: string;
      verifierKey?: string;
      sigv4?: boolean;
      agentProfile?: string;
      verifierProfile?: string;
      function?: string;
      region?: string;
      tool: string;
      readAction: string;
      writeAction: string;
      tenant: string;
      keepRevoked?: boolean;
      boundMs?: number;
    }) => {
      const { runDrill } = await import('./drill.ts');
      const region = opts.region ?? regionOfApiUrl(opts.url) ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
      let roles: Pick<Parameters<typeof runDrill>[0], 'agent' | 'admin' | 'verifier'>;
      if (opts.sigv4) {
        if (region === undefined || !opts.function) throw new InvalidArgumentError('a deployed drill needs --function and a region (--region or an execute-api URL)');
        const signing = (profile?: string) => ({ region, ...(profile && { profile }) });
        roles = {
          agent: { url: opts.url, sigv4: signing(opts.agentProfile) },
          admin: { url: opts.url, adminFunction: opts.function, region },
          // No SSE stream on AWS: the verifier polls the feed every second, signing as its own profile.
          verifier: { aws: signing(opts.verifierProfile), pollIntervalMs: 1_000 },
        };
      } else {
        if (!opts.agentKey || !opts.adminKey || !opts.verifierKey) throw new InvalidArgumentError('a local drill needs --agent-key, --admin-key and --verifier-key');
        roles = { agent: { url: opts.url, key: opts.agentKey }, admin: { url: opts.url, key: opts.adminKey }, verifier: { apiKey: opts.verifierKey } };
      }
      const boundMs = opts.boundMs ?? (opts.sigv4 ? 3_000 : 1_000);
      const report = await runDrill({ ...opts, ...roles, boundMs, reinstate: !opts.keepRevoked });
      if (report.verdict !== 'PASS') process.exitCode = 1;
    },
  );

program
  .command('decode <token>')
  .description("show a token's header and claims, whether it verifies against its issuer's JWKS, and, with a key, whether it is revoked")
  .option('--url <url>', "issuer URL (default: the token's iss)")
  .option('--key <key>', 'a verifier or admin key, to ask the issuer whether the token is revoked (or LANYARD_KEY)', process.env.LANYARD_KEY)
  .option('--sigv4', 'deployed stack: ask with SigV4 (execute-api) using the default AWS credentials, as a verifier principal')
  .option('--region <region>', 'deployed stack: AWS region (default: from the execute-api URL, then AWS_REGION)')
  .action(async (token: string, opts: { url?: string; key?: string; sigv4?: boolean; region?: string }) => {
    try {
      await decode(token, opts);
    } catch (error) {
      // Whatever failed, and whoever wrote its message, the token is not repeated.
      throw new Error(withoutToken((error as Error).message, token), { cause: error });
    }
  });

/**
 * Header and claims; the signature against the issuer's JWKS; then revocation. Revocation is
 * only known to the issuer (`POST /v1/introspect`, RFC 7662) and to its feed
 * (`GET /v1/revocations`), and both answer verifier and admin principals only: without a key
 * the output says plainly that revocation was not checked. Exit code 1: it does not verify, or
 * it is no longer active.
 */
async function decode(token: string, opts: { url?: string; key?: string; sigv4?: boolean; region?: string }): Promise<void> {
  const header = decodeProtectedHeader(token);
  const claims = decodeJwt(token);
  console.log(JSON.stringify({ header, claims }, null, 2));
  const issuer = opts.url ?? claims.iss;
  if (!issuer) throw new InvalidArgumentError('the token has no iss; pass --url');
  const jwks = (await callIssuer({ url: issuer }, 'GET', '/.well-known/jwks.json')) as Parameters<typeof createLocalJWKSet>[0];
  try {
    await jwtVerify(token, createLocalJWKSet(jwks), { algorithms: ['ES256'], typ: 'at+jwt', ...(claims.iss && { issuer: claims.iss }) });
  } catch (error) {
    console.log(`NOT verified: ${(error as Error).message}`);
    process.exitCode = 1;
    return;
  }
  console.log(`signature verified: key ${header.kid ?? '?'} from ${issuer}; expires ${new Date((claims.exp ?? 0) * 1000).toISOString()}`);
  if (!opts.key && !opts.sigv4) {
    console.log('revocation NOT checked: the issuer answers that to a verifier or admin key only; pass --key <key> or set LANYARD_KEY');
    return;
  }
  const region = opts.region ?? regionOfApiUrl(issuer) ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (opts.sigv4 && region === undefined) throw new InvalidArgumentError('--sigv4 needs a region: --region, an execute-api URL, or AWS_REGION');
  const asker: IssuerClientOptions = { url: issuer, ...(opts.sigv4 && region !== undefined ? { sigv4: { region } } : { key: opts.key! }) };
  let answer: { active?: unknown };
  try {
    answer = (await callIssuer(asker, 'POST', '/v1/introspect', { token })) as { active?: unknown };
  } catch (error) {
    if (error instanceof IssuerCallError) throw new Error(`revocation NOT checked: the issuer refused to introspect: ${error.message}${error.status === 401 ? KEY_HINT : ''}`, { cause: error });
    throw error;
  }
  if (answer.active === true) {
    console.log(`not revoked: ${issuer} says the token is active`);
  } else {
    // The signature and the lifetime held above, so what is left is a revocation (or no issuance record).
    console.log(`REVOKED: ${issuer} says the token is no longer active (a revocation covers it, or the issuer has no record of issuing it)`);
    process.exitCode = 1;
  }
}

/** `message` with every copy of the token replaced: errors may quote what was sent. */
function withoutToken(message: string, token: string): string {
  return token === '' ? message : message.split(token).join('<token>');
}

const KEY_HINT = '; the key was not accepted: check --key (or LANYARD_KEY)';

program.parseAsync().catch((error: unknown) => {
  const hint = error instanceof IssuerCallError && error.status === 401 ? KEY_HINT : '';
  console.error(`lanyard: ${(error as Error).message}${hint}`);
  process.exitCode = 1;
});
