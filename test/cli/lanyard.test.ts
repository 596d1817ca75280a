import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tool } from '../../shared/domain/model.ts';
import { KEYS, startTestIssuer, type TestIssuer } from '../helpers/issuer.ts';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../cli/lanyard.ts');
/** One CLI run takes a third of a second alone; this bounds a hang on a loaded machine, not speed. */
const CLI_MS = 120_000;
/** The environment without the caller's LANYARD_URL / LANYARD_KEY, so each test says what it passes. */
const cleanEnv = (extra: Record<string, string> = {}) => ({ ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('LANYARD_'))), ...extra });
const lanyard = (args: string[]) => run(process.execPath, [CLI, ...args], { timeout: CLI_MS, env: cleanEnv() });
/** Runs the CLI and resolves with its exit code and output, whether it failed or not. */
const outcome = (args: string[], env: Record<string, string> = {}) =>
  run(process.execPath, [CLI, ...args], { timeout: CLI_MS, env: cleanEnv(env) }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );

const POLICY = `
tools:
  - id: wiki
    audience: https://wiki.example.internal
    actions: { read: read, edit: write }
roles:
  - id: wiki-reader
    version: 1
    actions: [wiki:read]
    approvedBy: alice@example.com
identities:
  - id: docs-bot/prod
    owner: team-docs
    purpose: answer questions from the wiki
grants:
  - identity: docs-bot/prod
    role: wiki-reader@1
    tenants: ["*"]
    maxTtlSeconds: 600
    kinds: [jwt]
    quotaBucket: docs
principals:
  - id: docs-worker
    kind: agent
    identity: docs-bot/prod
    apiKey: lk_docs_worker_key_000000000000001
`;

describe('Command: lanyard', () => {
  let issuer: TestIssuer;
  let policyFile: string;

  beforeAll(async () => {
    issuer = await startTestIssuer();
    policyFile = join(await mkdtemp(join(tmpdir(), 'lanyard-cli-')), 'policy.yaml');
    await writeFile(policyFile, POLICY);
  });
  afterAll(() => issuer.stop());

  it('apply prints what changed, and nothing the second time', async () => {
    const first = await lanyard(['apply', policyFile, '--url', issuer.url, '--key', KEYS.admin]);
    const second = await lanyard(['apply', policyFile, '--url', issuer.url, '--key', KEYS.admin]);

    expect(first.stdout).toContain('created tool wiki');
    expect(first.stdout).toContain('published role wiki-reader@1 (approved by alice@example.com)');
    expect(second.stdout.trim()).toBe('no changes');
  });

  it('lists identities and grants', async () => {
    await lanyard(['apply', policyFile, '--url', issuer.url, '--key', KEYS.admin]);

    const identities = JSON.parse((await lanyard(['identity', 'list', '--url', issuer.url, '--key', KEYS.admin])).stdout) as { id: string }[];
    const grants = JSON.parse((await lanyard(['grant', 'list', '--identity', 'docs-bot/prod', '--url', issuer.url, '--key', KEYS.admin])).stdout) as { id: string }[];

    expect(identities.map((i) => i.id)).toContain('docs-bot/prod');
    expect(grants.map((g) => g.id)).toEqual(['wiki-reader@1']);
  });

  it('issues a credential as a key, and decode verifies it against the issuer', async () => {
    await lanyard(['apply', policyFile, '--url', issuer.url, '--key', KEYS.admin]);

    const issued = JSON.parse((await lanyard(['issue', '--url', issuer.url, '--key', 'lk_docs_worker_key_000000000000001', '--tool', 'wiki', '--action', 'wiki:read', '--task-id', 't-1'])).stdout) as { token: string; lane: string };
    const decoded = await lanyard(['decode', issued.token]);

    expect(issued.lane).toBe('docs-bot/prod:wiki:read:*');
    expect(decoded.stdout).toContain('"typ": "at+jwt"');
    expect(decoded.stdout).toContain(`signature verified: key`);
  });

  it('says why, and exits non-zero, when the issuer refuses', async () => {
    const refused = await lanyard(['apply', policyFile, '--url', issuer.url, '--key', KEYS.agent]).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );

    expect(refused?.code).toBe(1);
    expect(refused?.stderr).toContain('403 forbidden: principal triage-worker-1 is an agent; this needs an admin principal');
  });

  it('names the field at fault when the issuer refuses a policy file', async () => {
    // Prepare
    const dir = await mkdtemp(join(tmpdir(), 'lanyard-cli-'));
    const unknownIdentity = join(dir, 'unknown-identity.yaml');
    const conflicting = join(dir, 'conflicting.yaml');
    await writeFile(unknownIdentity, POLICY.replace('- identity: docs-bot/prod', '- identity: ghost-bot/prod'));
    await writeFile(conflicting, POLICY.replace('actions: [wiki:read]', 'actions: [wiki:read, wiki:edit]'));
    await lanyard(['apply', policyFile, '--url', issuer.url, '--key', KEYS.admin]);

    // Act
    const unknown = await outcome(['apply', unknownIdentity, '--url', issuer.url, '--key', KEYS.admin]);
    const conflict = await outcome(['apply', conflicting, '--url', issuer.url, '--key', KEYS.admin]);

    // Assess
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('lanyard: 400 invalid_request: grants[0].identity: unknown identity ghost-bot/prod');
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toContain('lanyard: 409 conflict: roles[0]: role wiki-reader@1 already exists with other actions');
  });

  it('decode reports a token that does not verify', async () => {
    const issued = await issuer.post('/v1/credentials', { tool: 'tickets', actions: ['read'], tenant: 'acme' }, KEYS.agent);
    const [h, p, s] = (issued.body.token as string).split('.') as [string, string, string];
    const tampered = `${h}.${p}.${s.slice(0, -4)}AAAA`;

    const outcome = await lanyard(['decode', tampered]).then(
      () => undefined,
      (error: { code: number; stdout: string }) => error,
    );

    expect(outcome?.code).toBe(1);
    expect(outcome?.stdout).toContain('NOT verified');
  });
});

describe('Command: lanyard apply --dry-run', () => {
  let issuer: TestIssuer;
  let policyFile: string;
  beforeAll(async () => {
    issuer = await startTestIssuer();
    policyFile = join(await mkdtemp(join(tmpdir(), 'lanyard-cli-')), 'policy.yaml');
    await writeFile(policyFile, POLICY);
  });
  afterAll(() => issuer.stop());

  /** The verbs a plan line starts with (`would create …`), as the apply reports them once made. */
  const PAST_TENSE: Record<string, string> = { create: 'created', update: 'updated', publish: 'published', bind: 'bound', set: 'set', generate: 'generated' };
  const tools = async () => JSON.parse((await lanyard(['tool', 'list', '--url', issuer.url, '--key', KEYS.admin])).stdout) as { id: string }[];

  it('prints the plan and writes nothing; the real apply then makes exactly that change', async () => {
    // Act
    const plan = await lanyard(['apply', policyFile, '--dry-run', '--url', issuer.url, '--key', KEYS.admin]);
    const toolsAfterPlan = await tools();
    const applied = await lanyard(['apply', policyFile, '--url', issuer.url, '--key', KEYS.admin]);

    // Assess
    const [header, ...planned] = plan.stdout.trimEnd().split('\n');
    expect(header).toBe('dry run, nothing written; applying would make these changes:');
    // A dry run speaks in the conditional; the apply then reports the same changes as made.
    expect(planned).toContain('  would create tool wiki');
    expect(planned).toContain('  would publish role wiki-reader@1 (approved by alice@example.com)');
    expect(planned.every((line) => line.startsWith('  would '))).toBe(true);
    expect(toolsAfterPlan.map((t) => t.id)).not.toContain('wiki');
    expect(applied.stdout.trimEnd().split('\n')).toEqual(planned.map((line) => line.trim().replace(/^would (\w+)/, (_, verb: string) => PAST_TENSE[verb] ?? `?${verb}`)));
    expect((await tools()).map((t) => t.id)).toContain('wiki');
  });

  it('reports no changes for a policy already applied', async () => {
    await lanyard(['apply', policyFile, '--url', issuer.url, '--key', KEYS.admin]);

    const plan = await lanyard(['apply', policyFile, '--dry-run', '--url', issuer.url, '--key', KEYS.admin]);

    expect(plan.stdout.trim()).toBe('no changes');
  });
});

describe('Command: lanyard decode, revocation', () => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startTestIssuer();
  });
  afterAll(() => issuer.stop());

  const mint = async () => (await issuer.post('/v1/credentials', { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' }, KEYS.agent)).body as { token: string; credentialId: string };

  it('with a verifier key, says a revoked token is revoked and exits 1', async () => {
    // Prepare
    const { token, credentialId } = await mint();
    const revoked = await issuer.post('/v1/admin', { command: 'revoke', target: { credential: credentialId }, reason: 'leaked in a log' }, KEYS.admin);
    expect(revoked.status).toBe(200);

    // Act
    const out = await outcome(['decode', token, '--key', KEYS.verifier]);

    // Assess
    expect(out.code).toBe(1);
    expect(out.stdout).toContain('signature verified: key');
    expect(out.stdout).toContain(`REVOKED: ${issuer.url} says the token is no longer active`);
    expect(out.stdout).not.toContain('not revoked');
  });

  it('with LANYARD_KEY, says a live token is not revoked', async () => {
    const { token } = await mint();

    const out = await outcome(['decode', token], { LANYARD_KEY: KEYS.verifier });

    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`not revoked: ${issuer.url} says the token is active`);
  });

  it('without a key, says plainly that revocation was not checked', async () => {
    const { token } = await mint();

    const out = await outcome(['decode', token]);

    expect(out.code).toBe(0);
    expect(out.stdout).toContain('signature verified: key');
    expect(out.stdout).toContain('revocation NOT checked: the issuer answers that to a verifier or admin key only; pass --key <key> or set LANYARD_KEY');
  });

  it('with a key the issuer will not introspect for, says why revocation was not checked, exits 1 and never prints the token', async () => {
    const { token } = await mint();

    const out = await outcome(['decode', token, '--key', KEYS.agent]);

    expect(out.code).toBe(1);
    expect(out.stderr).toContain('lanyard: revocation NOT checked: the issuer refused to introspect: 403 forbidden: principal triage-worker-1 is an agent; this needs a verifier or an admin principal');
    expect(out.stderr).not.toContain(token);
  });

  it('never prints the token in an error, even when the issuer quotes it back', async () => {
    // Prepare: an issuer whose JWKS verifies the token and whose introspection echoes the request.
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const echo = createServer((req, res) => {
      if (req.url === '/.well-known/jwks.json') {
        void exportJWK(publicKey).then((jwk) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [{ ...jwk, kid: 'k1', alg: 'ES256' }] })));
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const sent = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { token: string }).token;
        if (req.headers.authorization === 'Bearer lk_echo_json_000000000000000001') res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'invalid_request', message: `bad token ${sent}` } }));
        else res.writeHead(502, { 'content-type': 'text/html' }).end(`<html>${sent}</html>`);
      });
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(echo.address() as AddressInfo).port}`;
    const token = await new SignJWT({ scope: 'tickets:read' }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' }).setIssuer(url).setExpirationTime('5m').sign(privateKey);

    try {
      // Act
      const json = await outcome(['decode', token, '--key', 'lk_echo_json_000000000000000001']);
      const html = await outcome(['decode', token, '--key', 'lk_echo_html_000000000000000001']);

      // Assess
      expect(json.code).toBe(1);
      expect(json.stderr).toContain('400 invalid_request: bad token <token>');
      expect(html.code).toBe(1);
      expect(html.stderr).toContain(`the issuer at ${url} answered POST /v1/introspect with HTTP 502 and a body that is not JSON`);
      for (const out of [json, html]) expect(out.stdout + out.stderr).not.toContain(token.split('.')[2]);
    } finally {
      await new Promise((resolve) => echo.close(resolve));
    }
  });
});

describe('Command: lanyard, messages', () => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startTestIssuer();
  });
  afterAll(() => issuer.stop());

  it('prints its version', async () => {
    const { version } = JSON.parse(await readFile(join(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string };

    const out = await outcome(['--version']);

    expect(out.stdout.trim()).toBe(version);
  });

  it('with no key, names the key the command needs and where it goes, and calls nothing', async () => {
    const before = await issuer.runtime.store.listTools();

    const admin = await outcome(['identity', 'list', '--url', issuer.url]);
    const agent = await outcome(['issue', '--url', issuer.url, '--tool', 'tickets', '--action', 'tickets:read']);

    expect(admin.code).toBe(1);
    expect(admin.stderr).toContain('lanyard: no API key: this needs an admin key, given with --key <key> or LANYARD_KEY (a deployed stack: --sigv4 or --function <name>)');
    expect(agent.code).toBe(1);
    expect(agent.stderr).toContain('lanyard: no API key: this needs an agent key, given with --key <key> or LANYARD_KEY (a deployed stack: --sigv4)');
    expect(await issuer.runtime.store.listTools()).toEqual(before);
  });

  it('with a key the issuer does not know, says to check --key or LANYARD_KEY', async () => {
    const out = await outcome(['identity', 'list', '--url', issuer.url], { LANYARD_KEY: 'lk_not_a_key_of_this_issuer_000001' });

    expect(out.code).toBe(1);
    expect(out.stderr).toContain('lanyard: 401 unauthenticated: authentication required; the key was not accepted: check --key (or LANYARD_KEY)');
  });

  it('names the URL it could not reach, and why', async () => {
    // Prepare: a port that was free a moment ago and has no listener now.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));

    // Act
    const out = await outcome(['identity', 'list', '--url', `http://127.0.0.1:${port}`, '--key', KEYS.admin]);

    // Assess
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(`lanyard: cannot reach the issuer at http://127.0.0.1:${port} (POST /v1/admin): connect ECONNREFUSED 127.0.0.1:${port}; is it running, and is --url (or LANYARD_URL) right?`);
    expect(out.stderr).not.toContain('fetch failed');
  });
});

describe('Command: lanyard, help', () => {
  it('names each noun group in its plural', async () => {
    const help = (await lanyard(['--help'])).stdout;

    expect(help).toContain('identities of a running issuer');
    expect(help).toContain('principals of a running issuer');
    expect(help).not.toMatch(/identitys/);
  });
});

describe('Command: lanyard admin set-secret / upstreams', () => {
  const SECRET = 'sk_live_51HxQcliSecretNeverPrinted9z8y7x';
  const stripe: Tool = {
    id: 'stripe',
    audience: 'urn:lanyard:broker',
    actions: { 'charges.read': 'read' },
    enabled: true,
    upstream: { baseUrl: 'https://api.stripe.com', key: { header: 'authorization', scheme: 'Bearer' }, routes: { 'charges.read': [{ method: 'GET', path: '/v1/charges*' }] } },
    updatedAt: '2026-11-22T12:00:00.000Z',
  };
  let issuer: TestIssuer;

  beforeAll(async () => {
    issuer = await startTestIssuer();
    await issuer.runtime.store.putTool(stripe);
    issuer.runtime.policy.invalidate();
  });
  afterAll(() => issuer.stop());

  const base = () => ['--url', issuer.url, '--key', KEYS.admin];
  /** Runs the CLI with extra environment and, when given, `stdin` piped in; resolves with the exit code too. */
  const cli = async (args: string[], options: { env?: Record<string, string>; stdin?: string } = {}) => {
    const pending = run(process.execPath, [CLI, ...args], { timeout: CLI_MS, env: { ...process.env, ...options.env } });
    pending.child.stdin?.end(options.stdin ?? '');
    return pending.then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
    );
  };

  it('sets a secret from an environment variable, prints its version and the bound, never the secret', async () => {
    // Act
    const out = await cli(['admin', 'set-secret', 'stripe', '--reason', 'first key', '--from-env', 'STRIPE_KEY', ...base()], { env: { STRIPE_KEY: SECRET } });

    // Assess
    expect(out.code).toBe(0);
    const ref = await issuer.runtime.store.getUpstreamSecretRef('stripe');
    expect(out.stdout).toContain(`secret of stripe set: version ${ref?.version} (its first)`);
    expect(out.stdout).toContain(`new broker requests present it within ${issuer.runtime.policy.ttlMs} ms`);
    expect(await issuer.runtime.vault!.getSecret('stripe', ref!.version)).toBe(SECRET);
    expect(out.stdout + out.stderr).not.toContain(SECRET);
  });

  it('sets a secret piped on stdin, dropping the one trailing newline, and names the version it replaced and the overlap', async () => {
    // Prepare
    const before = await issuer.runtime.store.getUpstreamSecretRef('stripe');

    // Act
    const out = await cli(['admin', 'set-secret', 'stripe', '--reason', 'rotation', '--from-stdin', '--overlap-seconds', '30', ...base()], { stdin: `${SECRET}-piped\n` });

    // Assess
    expect(out.code).toBe(0);
    const ref = await issuer.runtime.store.getUpstreamSecretRef('stripe');
    expect(ref?.previousVersion).toBe(before?.version);
    expect(await issuer.runtime.vault!.getSecret('stripe', ref!.version)).toBe(`${SECRET}-piped`);
    expect(out.stdout).toContain(`(was ${before?.version})`);
    expect(out.stdout).toContain(`requests begun before may present ${before?.version} until ${ref?.overlapUntil}`);
    expect(Date.parse(ref!.overlapUntil!) - Date.parse(ref!.rotatedAt)).toBe(30_000);
    expect(out.stdout + out.stderr).not.toContain(SECRET);
  });

  it.each([
    ['no source', [], /name exactly one source of the secret/],
    ['two sources', ['--from-env', 'STRIPE_KEY', '--from-stdin'], /name exactly one source of the secret/],
    ['an unset variable', ['--from-env', 'LANYARD_TEST_UNSET_VARIABLE'], /environment variable LANYARD_TEST_UNSET_VARIABLE is not set or empty/],
    ['the secret as an argument', ['--secret', SECRET], /unknown option '--secret'/],
  ])('refuses %s, exits non-zero and changes nothing', async (_name, args, message) => {
    // Prepare
    const before = await issuer.runtime.store.getUpstreamSecretRef('stripe');

    // Act
    const out = await cli(['admin', 'set-secret', 'stripe', '--reason', 'rotation', ...args, ...base()], { env: { STRIPE_KEY: SECRET } });

    // Assess
    expect(out.code).not.toBe(0);
    expect(out.stderr).toMatch(message);
    expect(out.stdout).toBe('');
    expect(await issuer.runtime.store.getUpstreamSecretRef('stripe')).toEqual(before);
  });

  it("reports the issuer's refusal of a header-unsafe secret without printing it", async () => {
    const before = await issuer.runtime.store.getUpstreamSecretRef('stripe');

    const out = await cli(['admin', 'set-secret', 'stripe', '--reason', 'rotation', '--from-env', 'STRIPE_KEY', ...base()], { env: { STRIPE_KEY: `${SECRET}\r\nx-injected: 1` } });

    expect(out.code).toBe(1);
    expect(out.stderr).toContain('400 invalid_request: secret: a secret is 1 to 8192 printable ASCII characters');
    expect(out.stdout + out.stderr).not.toContain(SECRET);
    expect(await issuer.runtime.store.getUpstreamSecretRef('stripe')).toEqual(before);
  });

  it('lists the upstreams and their versions', async () => {
    const ref = await issuer.runtime.store.getUpstreamSecretRef('stripe');

    const out = await cli(['admin', 'upstreams', ...base()]);

    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual([{ provider: 'stripe', baseUrl: 'https://api.stripe.com', secretSet: true, version: ref?.version, rotatedAt: ref?.rotatedAt }]);
  });
});
