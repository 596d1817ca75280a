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
import { createAwsSigner, type AwsRequestSigner } from '@lanyard/sdk/aws';

/** An error answer's body (docs/http.md): `field` names the part of the request at fault, when one is. */
interface ErrorBody {
  readonly code?: string;
  readonly message?: string;
  readonly field?: unknown;
  readonly retryable?: boolean;
  readonly requestId?: string;
}

/**
 * The message with the field at fault in front (`roles[0]: role … already exists`), so a person
 * reading a refused `lanyard apply` knows where in the file to look. A message that already
 * starts with its field (`tools[0].id: …`, `unknown field: tool …`) is left as it is.
 */
export function withField(message: string, field: unknown): string {
  if (typeof field !== 'string' || field === '' || message.startsWith(`${field}:`) || message.startsWith(`unknown field: ${field}`)) return message;
  return `${field}: ${message}`;
}

export class IssuerCallError extends Error {
  override readonly name = 'IssuerCallError';
  readonly status: number;
  readonly body: unknown;
  /** The field of the request at fault, as the issuer named it. */
  readonly field?: string;
  constructor(status: number, body: unknown) {
    const error = (body as { error?: ErrorBody } | undefined)?.error;
    super(error ? `${status} ${error.code ?? ''}: ${withField(error.message ?? '', error.field)}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
    if (typeof error?.field === 'string') this.field = error.field;
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
  /** The field of the command at fault, as the issuer named it. */
  readonly field?: string;
  readonly body: unknown;
  constructor(code: string, message: string, options: { retryable?: boolean; requestId?: string; field?: string; body?: unknown } = {}) {
    super(`${code}: ${withField(message, options.field)}${options.requestId ? ` (request ${options.requestId})` : ''}`);
    this.code = code;
    this.retryable = options.retryable ?? false;
    if (options.requestId !== undefined) this.requestId = options.requestId;
    if (options.field !== undefined) this.field = options.field;
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
  if (options.sigv4) sent = await signerOf(options.sigv4).sign({ method, url, headers, ...(payload !== undefined && { body: payload }) });
  else if (options.key) headers.authorization = `Bearer ${options.key}`;
  try {
    return await doFetch(url, { method, headers: sent, ...(payload !== undefined && { body: payload }) });
  } catch (error) {
    throw new IssuerUnreachableError(method, url, error);
  }
}

/** The SDK's signer (`@lanyard/sdk/aws`), so the CLI, agents and verifiers sign alike. */
function signerOf(sigv4: NonNullable<IssuerClientOptions['sigv4']>): AwsRequestSigner {
  return createAwsSigner({
    region: sigv4.region,
    ...(sigv4.credentials !== undefined && { credentials: sigv4.credentials }),
    ...(sigv4.profile !== undefined && { profile: sigv4.profile }),
  });
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
    const result = answer as { ok?: boolean; result?: unknown; error?: ErrorBody } | undefined;
    if (result?.ok === true) return result.result;
    const error = result?.error;
    throw new AdminInvokeError(error?.code ?? 'unexpected_answer', error?.message ?? 'the admin function answered neither ok nor an error', {
      ...(error?.retryable !== undefined && { retryable: error.retryable }),
      ...(error?.requestId !== undefined && { requestId: error.requestId }),
      ...(typeof error?.field === 'string' && { field: error.field }),
      body: answer,
    });
  } finally {
    client.destroy();
  }
}
