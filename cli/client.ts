/**
 * What the CLI sends to an issuer. One function, `send`, picks the transport, so commands
 * never care where the issuer runs:
 * - the embedded default: JSON over HTTP with a local API key (`Authorization: Bearer …`);
 * - a deployed stack, HTTP routes: the request signed with SigV4 for `execute-api`, with the
 *   default AWS credential chain (env, profile, SSO, IMDS …);
 * - a deployed stack, admin commands: the admin Lambda invoked directly with the command object
 *   as its event (it answers `{ ok, result } | { ok: false, error }`, lambdas/admin.ts).
 * AWS SDK modules are loaded only when an AWS transport is used, so `lanyard dev` stays light.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';

export class IssuerCallError extends Error {
  override readonly name = 'IssuerCallError';
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    const error = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
    super(error ? `${status} ${error.code ?? ''}: ${error.message ?? ''}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** The issuer could not be reached at all (refused, no such host, reset): the message names where. */
export class IssuerUnreachableError extends Error {
  override readonly name = 'IssuerUnreachableError';
  constructor(method: string, url: URL, cause: unknown) {
    // The origin and path only: no user-info, no query.
    super(`cannot reach the issuer at ${url.origin} (${method} ${url.pathname}): ${reasonOf(cause)}; is it running, and is --url (or LANYARD_URL) right?`, { cause });
  }
}

/** What went wrong under `fetch failed`: undici puts the network error in `cause`. */
function reasonOf(error: unknown): string {
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  if (cause instanceof Error) return cause.message;
  return error instanceof Error ? error.message : String(error);
}

/** The admin Lambda refused or failed a command: `code` is the issuer's error code, or `function_error` when the function itself crashed. */
export class AdminInvokeError extends Error {
  override readonly name = 'AdminInvokeError';
  readonly code: string;
  readonly retryable: boolean;
  readonly requestId?: string;
  readonly body: unknown;
  constructor(code: string, message: string, options: { retryable?: boolean; requestId?: string; body?: unknown } = {}) {
    super(`${code}: ${message}${options.requestId ? ` (request ${options.requestId})` : ''}`);
    this.code = code;
    this.retryable = options.retryable ?? false;
    if (options.requestId !== undefined) this.requestId = options.requestId;
    this.body = options.body;
  }
}

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface IssuerClientOptions {
  /** Base URL of the issuer (the local server, or the stack's `ApiUrl`). */
  readonly url: string;
  /** Local API key (embedded default). */
  readonly key?: string;
  readonly fetch?: typeof fetch;
  /** Sign HTTP requests with SigV4 (`execute-api`) instead of sending an API key. @default - the default credential chain */
  readonly sigv4?: { readonly region: string; readonly credentials?: AwsCredentials; readonly profile?: string };
  /** Admin commands go to this Lambda (name or ARN; the stack's `AdminFunctionName`) instead of `POST /v1/admin`. */
  readonly adminFunction?: string;
  /** Region of the admin function. @default - the SDK's (AWS_REGION, profile) */
  readonly region?: string;
}

/** The region in an API Gateway endpoint (`https://<id>.execute-api.<region>.amazonaws.com`), if it is one. */
export function regionOfApiUrl(url: string): string | undefined {
  try {
    return /^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(new URL(url).hostname)?.[1];
  } catch {
    return undefined;
  }
}

export async function callIssuer(options: IssuerClientOptions, method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await send(options, method, path, body);
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    // JSON.parse quotes the text it choked on, and the text may echo what was sent (a token).
    const url = new URL(path, options.url);
    throw new Error(`the issuer at ${url.origin} answered ${method} ${url.pathname} with HTTP ${response.status} and a body that is not JSON; is --url (or LANYARD_URL) an issuer?`);
  }
  if (!response.ok) throw new IssuerCallError(response.status, parsed);
  return parsed;
}

export async function adminCommand(options: IssuerClientOptions, command: Record<string, unknown>): Promise<unknown> {
  if (options.adminFunction !== undefined) return invokeAdmin(options.adminFunction, options.region, command);
  const answer = (await callIssuer(options, 'POST', '/v1/admin', command)) as { result: unknown };
  return answer.result;
}

/** The one place a transport is chosen for an HTTP call. */
async function send(options: IssuerClientOptions, method: string, path: string, body?: unknown): Promise<Response> {
  const doFetch = options.fetch ?? fetch;
  const url = new URL(path, options.url);
  const headers: Record<string, string> = { accept: 'application/json' };
  const payload = body === undefined ? undefined : JSON.stringify(body);
  if (payload !== undefined) headers['content-type'] = 'application/json';
  let sent: Record<string, string> = headers;
  if (options.sigv4) sent = await signRequest(url, method, headers, payload, options.sigv4);
  else if (options.key) headers.authorization = `Bearer ${options.key}`;
  try {
    return await doFetch(url, { method, headers: sent, ...(payload !== undefined && { body: payload }) });
  } catch (error) {
    throw new IssuerUnreachableError(method, url, error);
  }
}

/**
 * A `fetch` that signs every request with SigV4 for API Gateway, replacing any bearer the
 * caller set: how the verifier SDK reads the revocation feed of a deployed stack.
 */
export function sigv4Fetch(sigv4: NonNullable<IssuerClientOptions['sigv4']>, inner: typeof fetch = fetch): typeof fetch {
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const method = init?.method ?? 'GET';
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((value, name) => {
      if (name !== 'authorization') headers[name] = value;
    });
    const body = typeof init?.body === 'string' ? init.body : undefined;
    const signed = await signRequest(url, method, headers, body, sigv4);
    return inner(url, { ...init, method, headers: signed });
  };
}

/** SigV4 headers for an API Gateway IAM route (service `execute-api`). */
async function signRequest(url: URL, method: string, headers: Record<string, string>, body: string | undefined, sigv4: NonNullable<IssuerClientOptions['sigv4']>): Promise<Record<string, string>> {
  const { SignatureV4 } = await import('@smithy/signature-v4');
  const signer = new SignatureV4({
    service: 'execute-api',
    region: sigv4.region,
    credentials: sigv4.credentials ?? (await defaultCredentials(sigv4.region, sigv4.profile)),
    sha256: Sha256,
  });
  const signed = await signer.sign({
    method,
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port !== '' && { port: Number(url.port) }),
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    // `host` is signed, so it is sent as signed (fetch would send the same value).
    headers: { ...headers, host: url.host },
    ...(body !== undefined && { body }),
  });
  return signed.headers;
}

/** The default credential chain (or a named profile), as every SDK client resolves it (no extra dependency). */
async function defaultCredentials(region: string, profile?: string): Promise<AwsCredentials> {
  const { LambdaClient } = await import('@aws-sdk/client-lambda');
  const client = new LambdaClient({ region, ...(profile !== undefined && { profile }) });
  try {
    return await client.config.credentials();
  } finally {
    client.destroy();
  }
}

async function invokeAdmin(functionName: string, region: string | undefined, command: Record<string, unknown>): Promise<unknown> {
  const { InvokeCommand, LambdaClient } = await import('@aws-sdk/client-lambda');
  const client = new LambdaClient(region === undefined ? {} : { region });
  try {
    const output = await client.send(new InvokeCommand({ FunctionName: functionName, Payload: new TextEncoder().encode(JSON.stringify(command)) }));
    const text = output.Payload === undefined ? '' : new TextDecoder().decode(output.Payload);
    const answer: unknown = text === '' ? undefined : JSON.parse(text);
    if (output.FunctionError) {
      // The function itself failed (Lambda's error object: errorType, errorMessage).
      const crash = answer as { errorType?: string; errorMessage?: string } | undefined;
      throw new AdminInvokeError('function_error', `${crash?.errorType ?? output.FunctionError}: ${crash?.errorMessage ?? 'the admin function failed'}`, { retryable: true, body: answer });
    }
    const result = answer as { ok?: boolean; result?: unknown; error?: { code?: string; message?: string; retryable?: boolean; requestId?: string } } | undefined;
    if (result?.ok === true) return result.result;
    const error = result?.error;
    throw new AdminInvokeError(error?.code ?? 'unexpected_answer', error?.message ?? 'the admin function answered neither ok nor an error', {
      ...(error?.retryable !== undefined && { retryable: error.retryable }),
      ...(error?.requestId !== undefined && { requestId: error.requestId }),
      body: answer,
    });
  } finally {
    client.destroy();
  }
}

type SourceData = string | ArrayBuffer | ArrayBufferView;

const bytes = (data: SourceData): Buffer | string =>
  typeof data === 'string' ? data : ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data);

/** SHA-256 / HMAC-SHA-256 on node:crypto, in the shape SignatureV4 expects (`@smithy/types` Checksum). */
class Sha256 {
  readonly #secret: SourceData | undefined;
  #hash: Hash | Hmac;
  constructor(secret?: SourceData) {
    this.#secret = secret;
    this.#hash = this.#fresh();
  }
  update(data: SourceData): void {
    this.#hash.update(bytes(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.#hash.digest()));
  }
  reset(): void {
    this.#hash = this.#fresh();
  }
  #fresh(): Hash | Hmac {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(this.#secret));
  }
}
