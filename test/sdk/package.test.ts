/**
 * `@lanyard/sdk` as a user gets it: `npm pack` (which builds it), installed with npm into a
 * fresh project outside the repository, imported by package name under the machine's plain
 * Node 20 and under Node 24, getting a credential from a running local issuer and verifying it.
 * Nothing here passes the `@lanyard/source` condition: the children see only the tarball.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEYS, startTestIssuer, TICKETS_AUDIENCE, type TestIssuer } from '../helpers/issuer.ts';

const run = promisify(execFile);
const SDK_DIR = resolve(import.meta.dirname, '../../packages/sdk');
/** The machine's plain Node 20, outside the repository's node_modules. */
const NODE_20 = '/usr/bin/node';
/** Packing builds the SDK and installing may touch the registry: generous, on a loaded machine. */
const SLOW = 240_000;

/** Runs in the temp project: imports by package name only, gets a credential, verifies it. */
const AGENT_SCRIPT = `
import { createCredentialSource } from '@lanyard/sdk/agent';
import { createVerifier } from '@lanyard/sdk/verifier';
import { isVerificationError } from '@lanyard/sdk';
import { createAwsSigner } from '@lanyard/sdk/aws';

const [issuer, apiKey, verifierKey, audience] = process.argv.slice(2);
const source = createCredentialSource({ issuer, auth: { apiKey }, request: { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' } });
const verifier = createVerifier({ issuer, audience, revocations: { mode: 'stream', apiKey: verifierKey } });
const credential = await source.get();
const claims = await verifier.verify(credential.token, { action: 'tickets:read' });
const refused = await verifier.verify(credential.token, { action: 'tickets:purge' }).then(() => 'accepted', (e) => isVerificationError(e) ? e.code : 'other');
source.close();
verifier.close();
// The /aws entry loads with its own dependency (the signer) from the tarball's install.
const signer = createAwsSigner({ region: 'eu-west-1', credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'example/secret' } });
const { authorization } = await signer.sign({ method: 'GET', url: issuer + '/v1/revocations' });
console.log(JSON.stringify({ node: process.version, sub: claims.sub, scope: claims.scope, jti: claims.jti, credentialId: credential.credentialId, refused, signed: authorization.split(' ')[0] }));
`;

describe('Package: @lanyard/sdk installed from its tarball', () => {
  let work: string;
  let project: string;
  let issuer: TestIssuer;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'lanyard-sdk-pack-'));
    const env = { ...process.env, NODE_OPTIONS: '' };
    await run('npm', ['pack', '--silent', '--pack-destination', work], { cwd: SDK_DIR, env, timeout: SLOW });
    const tarball = (await readdir(work)).find((f) => f.endsWith('.tgz'));
    if (!tarball) throw new Error('npm pack wrote no tarball');
    project = join(work, 'project');
    await run('mkdir', [project]);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'sdk-consumer', private: true, type: 'module' }));
    await writeFile(join(project, 'agent.mjs'), AGENT_SCRIPT);
    // The SDK's runtime dependencies (zod, @smithy/signature-v4) are in npm's cache after the repo's own install.
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(work, tarball)], { cwd: project, env, timeout: SLOW });
    issuer = await startTestIssuer();
  }, SLOW * 2);

  afterAll(async () => {
    await issuer?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it.each([
    ['plain Node 20', NODE_20, 'v20.'],
    ['Node 24', process.execPath, 'v24.'],
  ])('gets a credential from the local issuer and verifies it under %s, importing only @lanyard/sdk', async (_name, node, version) => {
    const { stdout } = await run(node, ['agent.mjs', issuer.url, KEYS.agent, KEYS.verifier, TICKETS_AUDIENCE], { cwd: project, env: { ...process.env, NODE_OPTIONS: '' }, timeout: SLOW });

    const result = JSON.parse(stdout) as { node: string; sub: string; scope: string; jti: string; credentialId: string; refused: string; signed: string };
    expect(result.node.startsWith(version)).toBe(true);
    expect(result.sub).toBe('support-triage/prod');
    expect(result.scope.split(' ')).toContain('tickets:read');
    expect(result.jti).toBe(result.credentialId);
    expect(result.refused).toBe('insufficient_scope');
    expect(result.signed).toBe('AWS4-HMAC-SHA256');
  }, SLOW);
});
