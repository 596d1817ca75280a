import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SignatureV4 } from '@smithy/signature-v4';
import { createHash, createHmac } from 'node:crypto';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AdminInvokeError, adminCommand, callIssuer, regionOfApiUrl, sigv4Fetch } from '../../cli/client.ts';

const REGION = 'eu-west-1';
const FUNCTION = 'Lanyard-IssuerAdminFunction-AbC123';
const CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

describe('Function: adminCommand (admin Lambda)', () => {
  const lambda = mockClient(LambdaClient);
  afterEach(() => {
    lambda.reset();
  });
  afterAll(() => {
    lambda.restore();
  });

  it('invokes the admin function with the command object as its event and returns the result', async () => {
    // Prepare
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: encode({ ok: true, result: { changes: ['+ tool tickets'], generatedKeys: [] } }) as never });
    const command = { command: 'revoke', target: { lane: 'support-triage/prod:tickets:write:acme' }, reason: 'wrong tenant' };

    // Act
    const result = await adminCommand({ url: 'unused', adminFunction: FUNCTION, region: REGION }, command);

    // Assess
    expect(result).toEqual({ changes: ['+ tool tickets'], generatedKeys: [] });
    const [call] = lambda.commandCalls(InvokeCommand);
    expect(call!.args[0].input.FunctionName).toBe(FUNCTION);
    expect(JSON.parse(new TextDecoder().decode(call!.args[0].input.Payload as Uint8Array))).toEqual(command);
    expect(await lambda.call(0).thisValue.config.region()).toBe(REGION);
  });

  it('turns an { ok: false, error } answer into an AdminInvokeError with the issuer code', async () => {
    // Prepare
    lambda.on(InvokeCommand).resolves({
      StatusCode: 200,
      Payload: encode({ ok: false, error: { code: 'not_found', message: 'a standing block on lane:x not found', retryable: false, requestId: 'req-9' } }) as never,
    });

    // Act
    const call = adminCommand({ url: 'unused', adminFunction: FUNCTION, region: REGION }, { command: 'reinstate', target: { lane: 'x' }, reason: 'fixed' });

    // Assess
    await expect(call).rejects.toBeInstanceOf(AdminInvokeError);
    await expect(call).rejects.toMatchObject({ code: 'not_found', retryable: false, requestId: 'req-9', message: 'not_found: a standing block on lane:x not found (request req-9)' });
  });

  it('reports a crashed function (FunctionError) as function_error', async () => {
    // Prepare
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, FunctionError: 'Unhandled', Payload: encode({ errorType: 'Error', errorMessage: 'environment variable LANYARD_TABLE is required' }) as never });

    // Act + Assess
    await expect(adminCommand({ url: 'unused', adminFunction: FUNCTION, region: REGION }, { command: 'tool.list' })).rejects.toMatchObject({
      code: 'function_error',
      message: 'function_error: Error: environment variable LANYARD_TABLE is required',
    });
  });
});

describe('Function: callIssuer (SigV4)', () => {
  interface Received {
    method: string;
    url: string;
    headers: IncomingHttpHeaders;
    body: string;
  }
  let server: Server;
  let base: string;
  const received: Received[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ credentialId: 'crd_x' }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('signs POST /v1/credentials for execute-api with the given credentials, and the signature covers what arrived', async () => {
    // Prepare
    const body = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };

    // Act
    const answer = await callIssuer({ url: base, sigv4: { region: REGION, credentials: CREDENTIALS } }, 'POST', '/v1/credentials', body);

    // Assess
    expect(answer).toEqual({ credentialId: 'crd_x' });
    const request = received.at(-1)!;
    const amzDate = request.headers['x-amz-date'] as string;
    expect(amzDate).toMatch(/^\d{8}T\d{6}Z$/);
    expect(request.headers.authorization).toMatch(
      new RegExp(`^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/${amzDate.slice(0, 8)}/${REGION}/execute-api/aws4_request, SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*x-amz-date[a-z0-9;-]*, Signature=[0-9a-f]{64}$`),
    );
    expect(JSON.parse(request.body)).toEqual(body);
    // Re-sign the request as received, at its own x-amz-date: API Gateway would compute the same signature.
    const signedHeaders = /SignedHeaders=([^,]+)/.exec(request.headers.authorization!)![1]!.split(';');
    const resigned = await new SignatureV4({ service: 'execute-api', region: REGION, credentials: CREDENTIALS, sha256: NodeSha256 }).sign(
      {
        method: request.method,
        protocol: 'http:',
        hostname: '127.0.0.1',
        path: request.url,
        query: {},
        headers: Object.fromEntries(signedHeaders.map((name) => [name, String(request.headers[name])])),
        body: request.body,
      },
      { signingDate: new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`) },
    );
    expect(resigned.headers['authorization']).toBe(request.headers.authorization);
    expect(request.headers['x-amz-security-token']).toBeUndefined();
  });

  it('sends the session token of temporary credentials, and no API key', async () => {
    // Act
    await callIssuer({ url: base, key: 'lk_ignored', sigv4: { region: REGION, credentials: { ...CREDENTIALS, sessionToken: 'FwoGZXIvYXdzEXAMPLE' } } }, 'GET', '/v1/revocations?after=0');

    // Assess
    const request = received.at(-1)!;
    expect(request.headers['x-amz-security-token']).toBe('FwoGZXIvYXdzEXAMPLE');
    expect(request.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 /);
    expect(request.url).toBe('/v1/revocations?after=0');
  });

  it('sigv4Fetch signs what the verifier SDK sends and drops its bearer (the deployed drill)', async () => {
    // Act: the SDK's request, with the bearer it always sets.
    const signedFetch = sigv4Fetch({ region: REGION, credentials: CREDENTIALS });
    const response = await signedFetch(`${base}/v1/revocations?limit=500`, { headers: { authorization: 'Bearer sigv4', accept: 'application/json' } });

    // Assess
    const request = received.at(-1)!;
    expect(response.status).toBe(201);
    expect(request.url).toBe('/v1/revocations?limit=500');
    expect(request.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request/);
    expect(request.headers.authorization).not.toContain('Bearer');
    expect(request.headers.accept).toBe('application/json');
  });
});

describe('Function: regionOfApiUrl', () => {
  it('reads the region of an execute-api endpoint and nothing else', () => {
    expect(regionOfApiUrl('https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com')).toBe('eu-west-1');
    expect(regionOfApiUrl('https://issuer.example.com')).toBeUndefined();
    expect(regionOfApiUrl('not a url')).toBeUndefined();
  });
});

/** An independent SHA-256 for the re-signing check (the client's own stays private). */
type Data = string | ArrayBuffer | ArrayBufferView;
const asBytes = (data: Data): string | Buffer => (typeof data === 'string' ? data : ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data));
class NodeSha256 {
  readonly #secret: Data | undefined;
  #chunks: Data[] = [];
  constructor(secret?: Data) {
    this.#secret = secret;
  }
  update(data: Data): void {
    this.#chunks.push(data);
  }
  digest(): Promise<Uint8Array> {
    const hash = this.#secret === undefined ? createHash('sha256') : createHmac('sha256', asBytes(this.#secret));
    for (const chunk of this.#chunks) hash.update(asBytes(chunk));
    return Promise.resolve(new Uint8Array(hash.digest()));
  }
  reset(): void {
    this.#chunks = [];
  }
}
