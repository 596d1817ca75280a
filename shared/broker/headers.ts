/**
 * What crosses the broker in headers. Towards the upstream: an allow-list (plus what the
 * provider declares), never the agent's Host, cookies or forwarding headers, and the key the
 * broker injects. An agent that tries to steer the broker's own connection (hop-by-hop
 * headers) or to bring a credential of its own is refused, not silently cleaned up: that
 * request is either a bug or an attack, and either way the agent should know.
 */
import type { UpstreamConfig } from '../domain/model.ts';
import { invalidRequest } from '../domain/errors.ts';
import { SecretMatcher, redactText } from './redact.ts';

export type HeaderBag = Readonly<Record<string, string | readonly string[] | undefined>>;

/** End-to-end headers an agent may send to any upstream. */
const FORWARDED_BY_DEFAULT = new Set([
  'accept',
  'accept-language',
  'cache-control',
  'content-encoding',
  'content-language',
  'content-length',
  'content-type',
  'idempotency-key',
  'if-match',
  'if-modified-since',
  'if-none-match',
  'if-unmodified-since',
  'range',
  'user-agent',
]);

/** Hop-by-hop headers (RFC 9110 §7.6.1) that would steer the broker's connection to the upstream. */
const HOP_BY_HOP_REFUSED = new Set(['upgrade', 'te', 'trailer', 'keep-alive', 'proxy-connection', 'http2-settings']);

/** Headers that carry a credential: the only credential towards the upstream is the broker's. */
const CREDENTIAL_HEADERS = new Set(['cookie', 'proxy-authorization', 'x-api-key', 'api-key', 'x-auth-token', 'x-amz-security-token']);

/** Response headers that never reach the agent: hop-by-hop, and the upstream's session state. */
const RESPONSE_DROPPED = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'set-cookie',
  'alt-svc',
]);

const KNOWN_CODINGS = new Set(['gzip', 'x-gzip', 'deflate', 'br', 'zstd', 'compress', 'x-compress']);

/**
 * The content or transfer coding of an answer the broker cannot read, if any: its name when it
 * is a registered one, else `unknown` (the value is the upstream's and could quote anything).
 * Only `identity` and `chunked` (which node:http removes) leave the body readable.
 */
export function unreadableCoding(headers: NodeJS.Dict<string | string[]>): string | undefined {
  const codings = [...all(headers['content-encoding']), ...all(headers['transfer-encoding'])]
    .flatMap((v) => v.split(','))
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
  const coding = codings.find((c) => c !== 'identity' && c !== 'chunked');
  return coding === undefined ? undefined : KNOWN_CODINGS.has(coding) ? coding : 'unknown';
}

/** The first value of a header that may have arrived repeated. */
export function first(value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0];
}

function all(value: string | readonly string[] | undefined): readonly string[] {
  return value === undefined ? [] : typeof value === 'string' ? [value] : value;
}

/**
 * The Lanyard credential from `Authorization`. Exactly one `Bearer` JWT is accepted: any other
 * scheme, a second value or a token that is not a JWS is a credential meant for the upstream,
 * and the broker refuses it rather than pass it on.
 */
export function brokerToken(headers: HeaderBag): string | undefined {
  const values = all(headers.authorization);
  if (values.length === 0) return undefined;
  const value = values.length === 1 ? values[0]!.trim() : '';
  const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/i.exec(value);
  if (!match) {
    throw invalidRequest('header:authorization', 'Authorization carries only your Lanyard credential (Bearer JWT); the broker presents the upstream key itself');
  }
  return match[1];
}

/** Refuses the headers no agent may set on a proxied call. */
export function checkRequestHeaders(headers: HeaderBag, upstream: UpstreamConfig): void {
  const keyHeader = 'header' in upstream.key ? upstream.key.header.toLowerCase() : undefined;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP_REFUSED.has(lower)) throw invalidRequest(`header:${lower}`, `${lower} is a hop-by-hop header; the broker manages its own connection to the upstream`);
    if (CREDENTIAL_HEADERS.has(lower) || (lower === keyHeader && lower !== 'authorization')) {
      throw invalidRequest(`header:${lower}`, `${lower} carries a credential; the broker presents the upstream key itself`);
    }
    if (lower === 'connection') {
      // `keep-alive` and `close` concern the agent's own hop; naming other headers would make them hop-by-hop.
      const tokens = all(value).flatMap((v) => v.split(',')).map((t) => t.trim().toLowerCase()).filter(Boolean);
      if (tokens.some((t) => t !== 'keep-alive' && t !== 'close')) throw invalidRequest('header:connection', 'Connection may only say keep-alive or close');
    }
    if (lower === 'transfer-encoding' && all(value).some((v) => v.trim().toLowerCase() !== 'chunked')) {
      throw invalidRequest('header:transfer-encoding', 'only chunked transfer coding is accepted');
    }
  }
}

/** Refuses an agent that names the provider's key parameter in its own query. */
export function checkQuery(query: string, upstream: UpstreamConfig): void {
  if (!('query' in upstream.key) || query === '') return;
  const keyParam = upstream.key.query;
  // Servers differ in how they read a name: `;` as a separator, case, `name[]`. Any reading
  // that could make it the key's parameter is refused.
  for (const pair of query.split(/[&;]/)) {
    const name = pair.split('=', 1)[0] ?? '';
    let decoded = name;
    try {
      decoded = decodeURIComponent(name.replace(/\+/g, ' '));
    } catch {
      // A broken escape was refused by the target check already; compare the raw name then.
    }
    const base = decoded.trim().replace(/\[.*$/, '').toLowerCase();
    if (base === keyParam.toLowerCase()) throw invalidRequest(`query:${keyParam}`, `${keyParam} carries a credential; the broker presents the upstream key itself`);
  }
}

/** The headers sent upstream: the allow-list, the provider's extras, the broker's own, and the key. */
export function upstreamRequestHeaders(
  headers: HeaderBag,
  upstream: UpstreamConfig,
  host: string,
  secret: string,
  requestId: string,
): Record<string, string> {
  const extra = new Set((upstream.forwardHeaders ?? []).map((h) => h.toLowerCase()));
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    const v = first(value);
    if (v === undefined || !(FORWARDED_BY_DEFAULT.has(lower) || extra.has(lower))) continue;
    out[lower] = typeof value === 'string' ? value : all(value).join(', ');
  }
  out.host = host;
  out['x-lanyard-request-id'] = requestId;
  // Upstreams quote requests back, the key with them (in the URL, or an echoed header): the
  // broker must read every answer to mask it (redact.ts), so it never lets the agent ask for
  // a compressed one, even through `forwardHeaders`. An answer compressed anyway is refused.
  out['accept-encoding'] = 'identity';
  if ('header' in upstream.key) {
    out[upstream.key.header.toLowerCase()] = upstream.key.scheme ? `${upstream.key.scheme} ${secret}` : secret;
  }
  return out;
}

export const REDACTED = '[redacted]';

/** The upstream's response headers as the agent gets them; any quote of the key is redacted. */
export function agentResponseHeaders(headers: NodeJS.Dict<string | string[]>, requestId: string, secret?: string): Record<string, string | string[]> {
  // A redirect to the request URL (`Location`), a `Content-Location` or a debugging header
  // would otherwise hand a query-keyed provider's key (or a header key the upstream echoes)
  // to the agent, in any of the spellings redact.ts matches.
  const matcher = secret === undefined || secret === '' ? undefined : new SecretMatcher(secret);
  const redact = (value: string): string => (matcher ? redactText(value, matcher, REDACTED) : value);
  const named = new Set(
    all(headers.connection)
      .flatMap((v) => v.split(','))
      .map((t) => t.trim().toLowerCase()),
  );
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (value === undefined || RESPONSE_DROPPED.has(lower) || named.has(lower)) continue;
    out[lower] = typeof value === 'string' ? redact(value) : value.map(redact);
  }
  out['x-lanyard-request-id'] = requestId;
  return out;
}
