/**
 * An independent SigV4 check, written from AWS's definition of the signature (IAM User
 * Guide, "Create a signed AWS API request",
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html),
 * on node:crypto and nothing of `@smithy/signature-v4`, so the SDK's signer is checked by a
 * second implementation rather than by itself. It recomputes the signature of a request as
 * received, the way API Gateway does before its IAM authorizer lets a request through.
 *
 * What it follows:
 * - canonical request = method, canonical URI, canonical query, canonical headers, signed
 *   header names, hex SHA-256 of the payload, joined by newlines;
 * - canonical URI: every path segment URI-encoded (RFC 3986 unreserved characters kept,
 *   uppercase hex) over the path as sent, which is itself encoded once: the "encoded twice"
 *   rule of every service but S3; an empty path is `/`;
 * - canonical query: names and values decoded, then URI-encoded, sorted by name then value;
 * - canonical headers: lowercase names, values trimmed with inner runs of spaces collapsed,
 *   sorted, each `name:value\n`; `host` and `x-amz-date` must be among the signed headers;
 * - string to sign = `AWS4-HMAC-SHA256`, the `x-amz-date`, the scope
 *   `<yyyymmdd>/<region>/<service>/aws4_request`, hex SHA-256 of the canonical request;
 * - signing key = HMAC chain over `AWS4<secret>`, the date, region, service, `aws4_request`.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export interface SigV4Secret {
  readonly secretAccessKey: string;
  /** Temporary credentials: the request must carry this `x-amz-security-token`. */
  readonly sessionToken?: string;
}

export interface ReceivedRequest {
  readonly method: string;
  /** The request target as sent: path and query, still percent-encoded. */
  readonly target: string;
  /** Header names in lowercase (as node's `IncomingMessage.headers`). */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

export type SigV4Verdict = { readonly ok: true; readonly accessKeyId: string } | { readonly ok: false; readonly reason: string };

const AUTHORIZATION = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;
/** AWS refuses a signature more than 15 minutes from its own clock ("Signature expired"). */
const MAX_SKEW_MS = 15 * 60_000;

const sha256Hex = (data: string): string => createHash('sha256').update(data, 'utf8').digest('hex');
const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();

/** RFC 3986 percent-encoding of every byte outside the unreserved set, uppercase hex. */
export function uriEncode(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const char = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function canonicalRequest(method: string, target: string, headers: ReceivedRequest['headers'], signedHeaders: readonly string[], body: string): string {
  const queryAt = target.indexOf('?');
  const path = queryAt === -1 ? target : target.slice(0, queryAt);
  const query = queryAt === -1 ? '' : target.slice(queryAt + 1);
  const canonicalUri = path === '' ? '/' : path.split('/').map(uriEncode).join('/');
  const canonicalQuery = query
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const equals = pair.indexOf('=');
      const [name, value] = equals === -1 ? [pair, ''] : [pair.slice(0, equals), pair.slice(equals + 1)];
      return [uriEncode(decodeURIComponent(name)), uriEncode(decodeURIComponent(value))] as const;
    })
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
  const canonicalHeaders = signedHeaders
    .map((name) => {
      const value = headers[name];
      const joined = Array.isArray(value) ? value.join(',') : (value ?? '');
      return `${name}:${joined.trim().replace(/ +/g, ' ')}\n`;
    })
    .join('');
  return [method.toUpperCase(), canonicalUri, canonicalQuery, canonicalHeaders, signedHeaders.join(';'), sha256Hex(body)].join('\n');
}

export function signature(secretAccessKey: string, amzDate: string, region: string, service: string, canonical: string): string {
  const day = amzDate.slice(0, 8);
  const scope = `${day}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonical)].join('\n');
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, day), region), service), 'aws4_request');
  return createHmac('sha256', signingKey).update(stringToSign, 'utf8').digest('hex');
}

/** Recomputes the request's signature; refuses anything AWS would refuse before the authorizer. */
export function checkSigV4(
  request: ReceivedRequest,
  expected: { readonly region: string; readonly service: string; readonly secrets: ReadonlyMap<string, SigV4Secret>; readonly now?: number },
): SigV4Verdict {
  const authorization = header(request, 'authorization');
  if (authorization === undefined) return refuse('Missing Authentication Token');
  const parts = AUTHORIZATION.exec(authorization);
  if (!parts) return refuse('the Authorization header is not AWS4-HMAC-SHA256');
  const [, accessKeyId, day, region, service, signedList, given] = parts as unknown as [string, string, string, string, string, string, string];
  const secret = expected.secrets.get(accessKeyId);
  if (!secret) return refuse('The security token included in the request is invalid');
  if (region !== expected.region || service !== expected.service) return refuse(`credential scope ${region}/${service} is not ${expected.region}/${expected.service}`);
  const signedHeaders = signedList.split(';');
  if ([...signedHeaders].sort().join(';') !== signedList) return refuse('SignedHeaders are not sorted');
  for (const required of ['host', 'x-amz-date']) if (!signedHeaders.includes(required)) return refuse(`${required} is not signed`);
  const amzDate = header(request, 'x-amz-date') ?? '';
  if (!/^\d{8}T\d{6}Z$/.test(amzDate) || amzDate.slice(0, 8) !== day) return refuse('x-amz-date is missing or does not match the credential scope');
  const at = Date.UTC(+amzDate.slice(0, 4), +amzDate.slice(4, 6) - 1, +amzDate.slice(6, 8), +amzDate.slice(9, 11), +amzDate.slice(11, 13), +amzDate.slice(13, 15));
  if (Math.abs((expected.now ?? Date.now()) - at) > MAX_SKEW_MS) return refuse('Signature expired');
  if (secret.sessionToken !== undefined && header(request, 'x-amz-security-token') !== secret.sessionToken) return refuse('The security token included in the request is invalid');
  const contentSha = header(request, 'x-amz-content-sha256');
  if (contentSha !== undefined && contentSha !== sha256Hex(request.body)) return refuse('x-amz-content-sha256 does not match the body');
  const computed = signature(secret.secretAccessKey, amzDate, region, service, canonicalRequest(request.method, request.target, request.headers, signedHeaders, request.body));
  const same = timingSafeEqual(Buffer.from(computed, 'hex'), Buffer.from(given, 'hex'));
  return same ? { ok: true, accessKeyId } : refuse('The request signature we calculated does not match the signature you provided');
}

function header(request: ReceivedRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

function refuse(reason: string): SigV4Verdict {
  return { ok: false, reason };
}
