/**
 * SigV4 signing of requests to a Lanyard issuer deployed on AWS, where API Gateway's IAM
 * authorizer guards `POST /v1/credentials`, the revocation feed and the admin route.
 *
 * One signer serves every caller in this repository: the agent's credential source
 * (`auth: { aws }`), the verifier's revocation feed polling (`revocations: { aws }`) and the
 * CLI's `--sigv4`. The signature itself is computed by AWS's own `@smithy/signature-v4`, over
 * WebCrypto's SHA-256 (no `node:crypto`, so it also runs where only WebCrypto exists).
 *
 * AWS credentials come from, in order: `credentials` (a value or a provider function), else
 * the AWS SDK's default chain (`@aws-sdk/credential-provider-node`: environment, SSO and
 * profiles, web identity for EKS IRSA, the container endpoint for ECS task roles and EKS Pod
 * Identity, the instance profile on EC2). The chain memoizes what it resolved and resolves
 * again shortly before the credentials expire, so a long-running agent keeps signing with
 * fresh role credentials; each request asks the chain, never a copy taken at start-up.
 */
import type { Fetch } from './lib/fetch.ts';

/** AWS credentials as the AWS SDK v3 describes them. */
export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiration?: Date;
}

/** A function the AWS SDK would accept as `credentials`: called before every signature. */
export type AwsCredentialsProvider = () => Promise<AwsCredentials>;

export interface AwsSigningOptions {
  /**
   * The API's region. @default the region in an `execute-api` URL
   * (`https://<id>.execute-api.<region>.amazonaws.com`), else `AWS_REGION` or
   * `AWS_DEFAULT_REGION`; a custom domain name needs it set.
   */
  readonly region?: string;
  /** @default the AWS SDK's default credential chain */
  readonly credentials?: AwsCredentials | AwsCredentialsProvider;
  /** A named profile for the default chain (ignored with `credentials`). */
  readonly profile?: string;
  /** The signing name. @default 'execute-api' (API Gateway) */
  readonly service?: string;
}

/** A request to sign: what is sent, as it is sent. */
export interface SignableRequest {
  readonly method: string;
  readonly url: string | URL;
  /** Header names in any case; `host` is added from the URL. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

export interface AwsRequestSigner {
  /** The headers to send: the request's own plus `host`, `x-amz-date`, `x-amz-security-token` and `authorization`. */
  sign(request: SignableRequest): Promise<Record<string, string>>;
}

/**
 * The AWS credentials or the signature could not be obtained; nothing was sent. `retryable`
 * is false for what only a change of configuration can fix (no region, the credential chain's
 * package missing); true for what may pass (the container endpoint or IMDS unreachable).
 */
export class AwsSigningError extends Error {
  override readonly name = 'AwsSigningError';
  readonly retryable: boolean;
  constructor(message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retryable = options.retryable ?? true;
  }
}

const SIGNING_OPTION_KEYS = ['region', 'credentials', 'profile', 'service'];
const EXECUTE_API_HOST = /^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$/;
const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d$/;

/** The region in an API Gateway endpoint (`https://<id>.execute-api.<region>.amazonaws.com`), if it is one. */
export function regionOfApiUrl(url: string | URL): string | undefined {
  try {
    return EXECUTE_API_HOST.exec(new URL(url).hostname)?.[1];
  } catch {
    return undefined;
  }
}

/**
 * A signer for one issuer's API. Nothing is loaded or resolved until the first `sign`.
 *
 * @example
 * ```ts
 * const signer = createAwsSigner({ region: 'eu-west-1' });
 * const headers = await signer.sign({ method: 'GET', url: `${issuer}/v1/revocations` });
 * ```
 */
export function createAwsSigner(options: AwsSigningOptions = {}): AwsRequestSigner {
  assertSigningOptions(options);
  const service = options.service ?? 'execute-api';
  let credentials: AwsCredentialsProvider | undefined;
  const signers = new Map<string, Promise<SignatureV4Like>>();

  const credentialsProvider = async (): Promise<AwsCredentialsProvider> => {
    credentials ??= await resolveCredentialsProvider(options);
    return credentials;
  };

  const signerFor = (region: string): Promise<SignatureV4Like> => {
    let signer = signers.get(region);
    if (signer === undefined) {
      signer = (async () => {
        const { SignatureV4 } = await import('@smithy/signature-v4');
        const provider = await credentialsProvider();
        return new SignatureV4({ service, region, credentials: provider, sha256: WebCryptoSha256 });
      })();
      // A failed load is not kept: the next request tries again.
      signer.catch(() => signers.delete(region));
      signers.set(region, signer);
    }
    return signer;
  };

  return {
    async sign(request) {
      const url = new URL(request.url);
      const region = signingRegion(options, url);
      if (region === undefined) throw noRegion(url);
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(request.headers ?? {})) headers[name.toLowerCase()] = value;
      // `host` is signed, so it is sent as signed (fetch sends the same value).
      headers.host = url.host;
      delete headers.authorization;
      try {
        const signer = await signerFor(region);
        const signed = await signer.sign({
          method: request.method.toUpperCase(),
          protocol: url.protocol,
          hostname: url.hostname,
          ...(url.port !== '' && { port: Number(url.port) }),
          path: url.pathname,
          query: queryOf(url),
          headers,
          ...(request.body !== undefined && { body: request.body }),
        });
        return signed.headers;
      } catch (error) {
        if (error instanceof AwsSigningError) throw error;
        const chain = options.credentials === undefined ? ` from the default chain${options.profile === undefined ? '' : ` (profile ${options.profile})`}` : '';
        throw new AwsSigningError(`no AWS credentials${chain} to sign the request to ${url.origin}: ${reasonOf(error)}`, { cause: error });
      }
    },
  };
}

/**
 * A `fetch` that signs every request with SigV4, replacing any `Authorization` the caller
 * set. Bodies are signed when they are strings (all the SDK sends); a request with another
 * body is refused rather than sent with an unsigned payload.
 */
export function awsSigningFetch(signer: AwsRequestSigner, inner: Fetch = (input, init) => globalThis.fetch(input, init)): Fetch {
  return async (input, init) => {
    const body = init?.body;
    if (body !== undefined && body !== null && typeof body !== 'string') {
      throw new AwsSigningError('only string bodies can be signed');
    }
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((value, name) => {
      headers[name] = value;
    });
    const signed = await signer.sign({ method: init?.method ?? 'GET', url: input, headers, ...(typeof body === 'string' && { body }) });
    return inner(input, { ...init, headers: signed });
  };
}

/**
 * @internal checks `auth.aws` / `revocations.aws` at construction, not on the first request;
 * with the URL it will sign for, also that a region can be found for it.
 */
export function assertSigningOptions(options: unknown, name = 'aws', url?: string | URL): asserts options is AwsSigningOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError(`${name} must be an object of signing options ({} for the defaults)`);
  for (const key of Object.keys(options)) {
    if (!SIGNING_OPTION_KEYS.includes(key)) throw new TypeError(`${name}: unknown option "${key}"`);
  }
  const { region, credentials, profile, service } = options as Record<string, unknown>;
  if (region !== undefined && (typeof region !== 'string' || !REGION.test(region))) throw new TypeError(`${name}.region must be an AWS region such as eu-west-1`);
  if (profile !== undefined && (typeof profile !== 'string' || profile === '')) throw new TypeError(`${name}.profile must be a profile name`);
  if (service !== undefined && (typeof service !== 'string' || !/^[a-z0-9-]+$/.test(service))) throw new TypeError(`${name}.service must be a signing name such as execute-api`);
  if (credentials !== undefined && typeof credentials !== 'function' && !isCredentials(credentials)) {
    throw new TypeError(`${name}.credentials must be { accessKeyId, secretAccessKey, sessionToken? } or a function returning them`);
  }
  if (url !== undefined && signingRegion(options, new URL(url)) === undefined) {
    throw new TypeError(`${name}.region is needed: ${new URL(url).host} is not an execute-api host that names its region, and AWS_REGION is not set`);
  }
}

function signingRegion(options: AwsSigningOptions, url: URL): string | undefined {
  return options.region ?? regionOfApiUrl(url) ?? regionFromEnvironment();
}

function noRegion(url: URL): AwsSigningError {
  return new AwsSigningError(`no region to sign for ${url.origin}: set aws.region (a custom domain does not name one), or AWS_REGION`, { retryable: false });
}

async function resolveCredentialsProvider(options: AwsSigningOptions): Promise<AwsCredentialsProvider> {
  const given = options.credentials;
  if (typeof given === 'function') return given;
  if (given !== undefined) return () => Promise.resolve(given);
  const chain = await import('@aws-sdk/credential-provider-node').catch((error: unknown) => {
    throw new AwsSigningError('the default AWS credential chain needs @aws-sdk/credential-provider-node (npm install @aws-sdk/credential-provider-node), or pass aws.credentials', { cause: error, retryable: false });
  });
  return chain.defaultProvider(options.profile === undefined ? {} : { profile: options.profile });
}

function regionFromEnvironment(): string | undefined {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const region = env?.AWS_REGION ?? env?.AWS_DEFAULT_REGION;
  return region === undefined || region === '' ? undefined : region;
}

/** The query as SignatureV4 takes it: repeated names keep every value. */
function queryOf(url: URL): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const name of new Set(url.searchParams.keys())) {
    const values = url.searchParams.getAll(name);
    query[name] = values.length === 1 ? values[0]! : values;
  }
  return query;
}

function isCredentials(value: unknown): value is AwsCredentials {
  const candidate = value as Partial<AwsCredentials> | null;
  return typeof candidate === 'object' && candidate !== null && typeof candidate.accessKeyId === 'string' && typeof candidate.secretAccessKey === 'string';
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The part of `@smithy/signature-v4`'s SignatureV4 used here (it is loaded lazily). */
interface SignatureV4Like {
  sign(request: {
    method: string;
    protocol: string;
    hostname: string;
    port?: number;
    path: string;
    query: Record<string, string | string[]>;
    headers: Record<string, string>;
    body?: string;
  }): Promise<{ headers: Record<string, string> }>;
}

type SourceData = string | ArrayBuffer | ArrayBufferView;

const toBytes = (data: SourceData): Uint8Array =>
  typeof data === 'string'
    ? new TextEncoder().encode(data)
    : ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(data);

/** SHA-256, or HMAC-SHA-256 when given a secret, on WebCrypto, in the shape SignatureV4 expects (`@smithy/types` Checksum). */
class WebCryptoSha256 {
  readonly #secret: Uint8Array | undefined;
  #chunks: Uint8Array[] = [];
  constructor(secret?: SourceData) {
    this.#secret = secret === undefined ? undefined : toBytes(secret).slice();
  }
  update(data: SourceData): void {
    this.#chunks.push(toBytes(data).slice());
  }
  async digest(): Promise<Uint8Array> {
    const message = concat(this.#chunks);
    if (this.#secret === undefined) return new Uint8Array(await crypto.subtle.digest('SHA-256', message));
    const key = await crypto.subtle.importKey('raw', this.#secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    return new Uint8Array(await crypto.subtle.sign('HMAC', key, message));
  }
  reset(): void {
    this.#chunks = [];
  }
}

function concat(chunks: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
