/**
 * The SDK's SigV4 signer (`@lanyard/sdk/aws`), checked by an independent recomputation of the
 * signature (test/helpers/sigv4-check.ts), which is itself checked against the worked example
 * in AWS's documentation first. The default credential chain is exercised for real: a local
 * container-credentials endpoint behaves like the one ECS and EKS Pod Identity give a task or
 * pod, including handing out new credentials when the old ones near their expiry.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AwsSigningError, awsSigningFetch, createAwsSigner, regionOfApiUrl } from '@lanyard/sdk/aws';
import { canonicalRequest, checkSigV4, signature } from '../helpers/sigv4-check.ts';
import { createHash } from 'node:crypto';

const REGION = 'eu-west-1';
const TASK_ROLE = { accessKeyId: 'ASIATASKROLE000000001', secretAccessKey: 'task/role/secret+0000000000000000000000001', sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLE1' };

interface Received {
  method: string;
  target: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A server that keeps what it received, so the signature is checked on the bytes that arrived. */
async function recordingServer(): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ method: req.method ?? '', target: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const check = (request: Received, secrets: Iterable<readonly [string, { secretAccessKey: string; sessionToken?: string }]>, region = REGION) =>
  checkSigV4({ method: request.method, target: request.target, headers: request.headers, body: request.body }, { region, service: 'execute-api', secrets: new Map(secrets) });

describe('Test helper: checkSigV4 (the independent recomputation)', () => {
  it("reproduces AWS's worked example (IAM ListUsers, 2015-08-30), canonical request hash and signature", () => {
    // Prepare: the example request of AWS's "Signature Version 4 signing process" documentation.
    const headers = { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', host: 'iam.amazonaws.com', 'x-amz-date': '20150830T123600Z' };

    // Act
    const canonical = canonicalRequest('GET', '/?Action=ListUsers&Version=2010-05-08', headers, ['content-type', 'host', 'x-amz-date'], '');
    const signed = signature('wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', '20150830T123600Z', 'us-east-1', 'iam', canonical);

    // Assess
    expect(createHash('sha256').update(canonical).digest('hex')).toBe('f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59');
    expect(signed).toBe('5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7');
  });
});

describe('Function: createAwsSigner', () => {
  let server: Awaited<ReturnType<typeof recordingServer>>;
  beforeAll(async () => {
    server = await recordingServer();
  });
  afterAll(() => server.close());

  const send = async (signerOptions: Parameters<typeof createAwsSigner>[0], method: string, path: string, body?: string) => {
    const fetch = awsSigningFetch(createAwsSigner(signerOptions));
    await fetch(`${server.url}${path}`, { method, headers: { 'content-type': 'application/json', authorization: 'Bearer lk_not_sent' }, ...(body !== undefined && { body }) });
    return server.received.at(-1)!;
  };

  it.each([
    ['a POST with a JSON body', 'POST', '/v1/credentials', JSON.stringify({ tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' })],
    ['a GET with a query (reserved characters, a repeated name)', 'GET', '/v1/revocations?limit=500&after=2026-12-01T10%3A00%3A00Z%2F7&a=2&a=1', undefined],
    ['a path with encoded characters', 'GET', '/v1/proxy/crm/accounts/a%20b%2Fc/notes', undefined],
  ])('signs %s so that the recomputed signature matches', async (_case, method, path, body) => {
    // Act
    const request = await send({ region: REGION, credentials: TASK_ROLE }, method, path, body);

    // Assess
    expect(check(request, [[TASK_ROLE.accessKeyId, TASK_ROLE]])).toEqual({ ok: true, accessKeyId: TASK_ROLE.accessKeyId });
    expect(request.headers['x-amz-security-token']).toBe(TASK_ROLE.sessionToken);
    expect(request.headers.authorization).not.toContain('lk_not_sent');
    expect(request.target).toBe(path);
  });

  it('is refused by the recomputation when the body, the path, the secret or the region differ', async () => {
    // Prepare
    const request = await send({ region: REGION, credentials: TASK_ROLE }, 'POST', '/v1/credentials', '{"tool":"tickets"}');
    const secrets = [[TASK_ROLE.accessKeyId, TASK_ROLE]] as const;

    // Act, Assess
    expect(check({ ...request, body: '{"tool":"crm"}' }, secrets)).toMatchObject({ ok: false, reason: expect.stringContaining('does not match') });
    expect(check({ ...request, target: '/v1/admin' }, secrets)).toMatchObject({ ok: false, reason: expect.stringContaining('does not match') });
    expect(check(request, [[TASK_ROLE.accessKeyId, { ...TASK_ROLE, secretAccessKey: 'another/secret' }]])).toMatchObject({ ok: false });
    expect(check(request, secrets, 'us-east-1')).toMatchObject({ ok: false, reason: expect.stringContaining('credential scope') });
    expect(check(request, [[TASK_ROLE.accessKeyId, { ...TASK_ROLE, sessionToken: 'another-session' }]])).toMatchObject({ ok: false });
  });

  it('asks a credentials provider before every signature, so rotated role credentials are used at once', async () => {
    // Prepare
    const keys = [TASK_ROLE, { ...TASK_ROLE, accessKeyId: 'ASIATASKROLE000000002', secretAccessKey: 'rotated/secret', sessionToken: 'IQoJrotated' }];
    let calls = 0;
    const provider = () => Promise.resolve(keys[Math.min(calls++, 1)]!);

    // Act
    const signer = createAwsSigner({ region: REGION, credentials: provider });
    const fetch = awsSigningFetch(signer);
    await fetch(`${server.url}/v1/revocations`);
    const first = server.received.at(-1)!;
    await fetch(`${server.url}/v1/revocations`);
    const second = server.received.at(-1)!;

    // Assess
    const secrets = keys.map((k) => [k.accessKeyId, k] as const);
    expect(check(first, secrets)).toEqual({ ok: true, accessKeyId: 'ASIATASKROLE000000001' });
    expect(check(second, secrets)).toEqual({ ok: true, accessKeyId: 'ASIATASKROLE000000002' });
  });

  it('takes the region from an execute-api URL, and refuses to guess one for another host', async () => {
    // Act
    const signed = await createAwsSigner({ credentials: TASK_ROLE }).sign({ method: 'GET', url: 'https://a1b2c3d4e5.execute-api.ap-southeast-2.amazonaws.com/v1/revocations' });
    const saved = { AWS_REGION: process.env.AWS_REGION, AWS_DEFAULT_REGION: process.env.AWS_DEFAULT_REGION };
    delete process.env.AWS_REGION;
    delete process.env.AWS_DEFAULT_REGION;
    const unknown = createAwsSigner({ credentials: TASK_ROLE }).sign({ method: 'GET', url: 'https://issuer.example.com/v1/revocations' });

    // Assess
    try {
      expect(signed.authorization).toContain('/ap-southeast-2/execute-api/aws4_request');
      await expect(unknown).rejects.toThrow(AwsSigningError);
      await expect(unknown).rejects.toThrow(/aws\.region/);
    } finally {
      Object.assign(process.env, Object.fromEntries(Object.entries(saved).filter(([, v]) => v !== undefined)));
    }
    expect(regionOfApiUrl('https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com')).toBe('eu-west-1');
    expect(regionOfApiUrl('https://issuer.example.com')).toBeUndefined();
    expect(regionOfApiUrl('not a url')).toBeUndefined();
  });

  it.each([
    [{ region: 'Europe' }, /aws\.region/],
    [{ credentials: { accessKeyId: 'A' } }, /aws\.credentials/],
    [{ profile: '' }, /aws\.profile/],
    [{ regoin: 'eu-west-1' }, /unknown option "regoin"/],
  ])('refuses bad options at construction (%o)', (options, message) => {
    expect(() => createAwsSigner(options as never)).toThrow(message);
  });

  it('refuses to sign a body it cannot hash, rather than send it unsigned', async () => {
    const fetch = awsSigningFetch(createAwsSigner({ region: REGION, credentials: TASK_ROLE }));
    await expect(fetch(`${server.url}/v1/credentials`, { method: 'POST', body: new Blob(['x']) })).rejects.toThrow(AwsSigningError);
  });
});

describe('Default credential chain: the container credentials endpoint of ECS task roles and EKS Pod Identity', () => {
  let endpoint: Server;
  let endpointUrl: string;
  let server: Awaited<ReturnType<typeof recordingServer>>;
  const served: { authorization: string | undefined }[] = [];
  /** What the endpoint hands out next; a test swaps it to rotate the role's credentials. */
  let current = { ...TASK_ROLE, expiresInMs: 3_600_000 };
  const saved: Record<string, string | undefined> = {};
  const ENV = ['AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_AUTHORIZATION_TOKEN', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_EC2_METADATA_DISABLED'];

  beforeAll(async () => {
    // The endpoint answers as ECS's and EKS Pod Identity's do: AccessKeyId, SecretAccessKey, Token, Expiration.
    endpoint = createServer((req, res) => {
      served.push({ authorization: req.headers.authorization });
      if (req.headers.authorization !== 'pod-identity-token') {
        res.writeHead(403).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          AccessKeyId: current.accessKeyId,
          SecretAccessKey: current.secretAccessKey,
          Token: current.sessionToken,
          Expiration: new Date(Date.now() + current.expiresInMs).toISOString(),
        }),
      );
    });
    await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
    endpointUrl = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/v1/credentials`;
    server = await recordingServer();
    for (const name of ENV) saved[name] = process.env[name];
    for (const name of ENV) delete process.env[name];
    // Nothing else in the chain may answer: no keys in the environment, no profile files, no IMDS.
    process.env.AWS_CONFIG_FILE = '/nonexistent/config';
    process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/credentials';
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI = endpointUrl;
    process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN = 'pod-identity-token';
  });
  afterEach(() => {
    served.length = 0;
  });
  afterAll(async () => {
    for (const name of ENV) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
    await server.close();
    await new Promise((resolve) => endpoint.close(resolve));
  });

  it('signs with the credentials the endpoint hands out, presenting its authorization token, and resolves them once while they last', async () => {
    // Act
    const fetch = awsSigningFetch(createAwsSigner({ region: REGION }));
    await fetch(`${server.url}/v1/credentials`, { method: 'POST', body: '{}' });
    await fetch(`${server.url}/v1/credentials`, { method: 'POST', body: '{}' });

    // Assess
    for (const request of server.received.slice(-2)) expect(check(request, [[TASK_ROLE.accessKeyId, TASK_ROLE]])).toMatchObject({ ok: true });
    expect(served).toEqual([{ authorization: 'pod-identity-token' }]);
  });

  it('moves to the new credentials once the old ones near their expiry, as the chain refreshes them', async () => {
    // Prepare: credentials four minutes from expiry (inside the SDK's five-minute refresh window).
    current = { ...TASK_ROLE, expiresInMs: 240_000 };
    const fetch = awsSigningFetch(createAwsSigner({ region: REGION }));
    await fetch(`${server.url}/v1/revocations`);
    const rotated = { accessKeyId: 'ASIATASKROLE000000009', secretAccessKey: 'rotated/by/ecs', sessionToken: 'IQoJrotatedByEcs' };
    current = { ...rotated, expiresInMs: 3_600_000 };

    // Act: the chain refreshes in the background and serves the old credentials meanwhile; ask until the new ones arrive.
    const secrets = [[TASK_ROLE.accessKeyId, TASK_ROLE], [rotated.accessKeyId, rotated]] as const;
    let signedWith: string | undefined;
    for (let attempt = 0; attempt < 50 && signedWith !== rotated.accessKeyId; attempt += 1) {
      await fetch(`${server.url}/v1/revocations`);
      const verdict = check(server.received.at(-1)!, secrets);
      expect(verdict.ok).toBe(true);
      signedWith = verdict.ok ? verdict.accessKeyId : undefined;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    // Assess
    expect(signedWith).toBe(rotated.accessKeyId);
    expect(served.length).toBeGreaterThanOrEqual(2);
  });
});
