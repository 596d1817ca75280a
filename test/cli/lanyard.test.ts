import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEYS, startTestIssuer, type TestIssuer } from '../helpers/issuer.ts';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../cli/lanyard.ts');
const lanyard = (args: string[]) => run(process.execPath, [CLI, ...args], { timeout: 20_000 });

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
    expect(decoded.stdout).toContain(`verified: signature by key`);
  });

  it('says why, and exits non-zero, when the issuer refuses', async () => {
    const refused = await lanyard(['apply', policyFile, '--url', issuer.url, '--key', KEYS.agent]).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );

    expect(refused?.code).toBe(1);
    expect(refused?.stderr).toContain('403 forbidden');
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
