import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AdminInvokeError, IssuerCallError, adminCommand, callIssuer } from '../../cli/client.ts';
import { checkSigV4 } from '../helpers/sigv4-check.ts';

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

  it('puts the field the issuer names in front of the message, so a refused apply says where to look', async () => {
    // Prepare
    lambda.on(InvokeCommand).resolves({
      StatusCode: 200,
      Payload: encode({ ok: false, error: { field: 'grants[0].identity', code: 'invalid_request', message: 'unknown identity ghost/prod', retryable: false, requestId: 'req-7' } }) as never,
    });

    // Act
    const call = adminCommand({ url: 'unused', adminFunction: FUNCTION, region: REGION }, { command: 'policy.apply', policy: {} });

    // Assess
    await expect(call).rejects.toMatchObject({ code: 'invalid_request', field: 'grants[0].identity', message: 'invalid_request: grants[0].identity: unknown identity ghost/prod (request req-7)' });
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

describe('Class: IssuerCallError', () => {
  it('names the field at fault before the message, once', () => {
    const refused = new IssuerCallError(409, { error: { field: 'roles[0]', code: 'conflict', message: 'role support-triage@1 already exists with other actions; publish a new version' } });
    const invalid = new IssuerCallError(400, { error: { field: 'grants[0].quotaBucket', code: 'invalid_request', message: 'grants[0].quotaBucket: missing' } });
    const unfielded = new IssuerCallError(403, { error: { code: 'forbidden', message: 'this needs an admin principal' } });
    const unknownField = new IssuerCallError(400, { error: { field: 'tool', code: 'invalid_request', message: 'unknown field: tool' } });

    expect(refused.message).toBe('409 conflict: roles[0]: role support-triage@1 already exists with other actions; publish a new version');
    expect(refused.field).toBe('roles[0]');
    expect(invalid.message).toBe('400 invalid_request: grants[0].quotaBucket: missing');
    expect(unfielded.message).toBe('403 forbidden: this needs an admin principal');
    expect(unfielded.field).toBeUndefined();
    expect(unknownField.message).toBe('400 invalid_request: unknown field: tool');
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
  const secrets = new Map([[CREDENTIALS.accessKeyId, CREDENTIALS]]);
  const verdictOf = (request: Received) =>
    checkSigV4({ method: request.method, target: request.url, headers: request.headers, body: request.body }, { region: REGION, service: 'execute-api', secrets });

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
    expect(request.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, /);
    expect(JSON.parse(request.body)).toEqual(body);
    // Recomputed from the request as received, as API Gateway does.
    expect(verdictOf(request)).toEqual({ ok: true, accessKeyId: CREDENTIALS.accessKeyId });
    expect(request.headers['x-amz-security-token']).toBeUndefined();
  });

  it('sends the session token of temporary credentials, and no API key', async () => {
    // Act
    await callIssuer({ url: base, key: 'lk_ignored', sigv4: { region: REGION, credentials: { ...CREDENTIALS, sessionToken: 'FwoGZXIvYXdzEXAMPLE' } } }, 'GET', '/v1/revocations?after=0');

    // Assess
    const request = received.at(-1)!;
    expect(request.headers['x-amz-security-token']).toBe('FwoGZXIvYXdzEXAMPLE');
    expect(request.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 /);
    expect(request.headers.authorization).not.toContain('lk_ignored');
    expect(request.url).toBe('/v1/revocations?after=0');
    expect(verdictOf(request).ok).toBe(true);
  });
});
