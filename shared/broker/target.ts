/**
 * The request target of a proxied call, checked as it was sent. The broker never resolves a
 * path: a dot segment, an encoded slash or backslash, an empty segment, a control character or
 * an absolute URL is refused, so nothing an agent writes can climb out of the provider's base
 * path or reach another host. What passes is forwarded byte for byte.
 *
 * A segment is judged by its name, the part before any `;`: Tomcat, Jetty and Spring strip
 * path parameters (RFC 3986 §3.3) before they resolve dot segments, so `..;x` climbs like
 * `..`. A `;` is refused outright unless the provider declares `allowPathParameters`.
 */
import type { UpstreamConfig } from '../domain/model.ts';
import { TOOL_ID } from '../domain/model.ts';
import { LanyardError, invalidRequest } from '../domain/errors.ts';
import { PROXY_PREFIX } from './types.ts';

export interface ProxyTarget {
  readonly provider: string;
  /** The upstream path, relative to the provider's base URL, always starting with `/`. */
  readonly path: string;
  /** The raw query string without `?`; empty when there is none. */
  readonly query: string;
}

/** Longest target the broker reads; API Gateway and most servers stop far below. */
export const MAX_TARGET_LENGTH = 8192;

// RFC 3986 pchar plus `/` (the `%` of an escape is checked separately), and the query's `?`.
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
const QUERY_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%[\]]*$/;
/**
 * In a path: an encoded slash, backslash or dot, NUL, a broken escape, or an encoded escape
 * (`%252e`). The broker forwards the path as sent, so what it checks is what the upstream's
 * first decoding sees; an encoded escape is harmless only if nothing decodes twice. A gateway
 * in front of the upstream that decodes and passes on, or a framework that decodes again,
 * turns `%252e%252e` into `..` behind every check here. Refusing `%25` followed by two hex
 * digits closes every deeper level at once (`%25252e` starts with `%2525`); a literal `%`
 * before two hex digits is the price, and no API we know puts one in a path.
 */
const PATH_ESCAPE = /%(?![0-9A-Fa-f]{2})|%(2[Ff]|5[Cc]|2[Ee]|00)|%25[0-9A-Fa-f]{2}/;
/** A path parameter delimiter, as sent or encoded (a server that decodes before it strips parameters reads `%3B` as `;`). */
const PATH_PARAMETER = /;|%3[Bb]/;
/** In a query encoded slashes are ordinary data; NUL and broken escapes are not. */
const QUERY_ESCAPE = /%(?![0-9A-Fa-f]{2})|%00/;

export function parseProxyTarget(target: string): ProxyTarget {
  if (!target.startsWith('/')) {
    // Absolute-form (`GET http://evil.example/…`) or asterisk-form: the host is never the agent's to choose.
    throw invalidRequest('target', 'the request target must be a path on the broker, not an absolute URL');
  }
  if (target.length > MAX_TARGET_LENGTH) throw invalidRequest('target', `the request target is over ${MAX_TARGET_LENGTH} characters`);
  if (!target.startsWith(PROXY_PREFIX)) throw new LanyardError('not_found', 'proxied requests go to /v1/proxy/{provider}/{path}');
  const hash = target.indexOf('#');
  if (hash !== -1) throw invalidRequest('target', 'a request target carries no fragment');
  const question = target.indexOf('?');
  const pathPart = question === -1 ? target : target.slice(0, question);
  const query = question === -1 ? '' : target.slice(question + 1);

  const rest = pathPart.slice(PROXY_PREFIX.length);
  const slash = rest.indexOf('/');
  const provider = slash === -1 ? rest : rest.slice(0, slash);
  if (!TOOL_ID.test(provider)) throw invalidRequest('provider', 'the provider segment is not a tool id');
  const path = slash === -1 ? '/' : rest.slice(slash);

  checkPath(path);
  if (!QUERY_CHARS.test(query) || QUERY_ESCAPE.test(query)) {
    throw invalidRequest('query', 'the query holds a character or escape the broker does not forward');
  }
  return { provider, path, query };
}

function checkPath(path: string): void {
  if (!PATH_CHARS.test(path)) throw invalidRequest('path', 'the path holds a character the broker does not forward (a backslash, a space or a control character)');
  // Encoded slash, backslash or dot, and NUL: each is a way to make two servers disagree about the path.
  if (PATH_ESCAPE.test(path)) throw invalidRequest('path', 'the path holds an encoded slash, backslash, dot, NUL or escape, or a broken escape');
  const segments = path.split('/').slice(1);
  for (const [index, segment] of segments.entries()) {
    const name = segmentName(segment);
    if (isDotSegment(name)) throw invalidRequest('path', 'the path holds a dot segment (with or without ;parameters)');
    // An empty segment other than a trailing slash: `//` is read as a new authority by some
    // parsers, and `/;x/` becomes `//` once its parameters are stripped.
    if (name === '' && (segment !== '' || index !== segments.length - 1)) throw invalidRequest('path', 'the path holds an empty segment (// or /;)');
  }
}

/** A segment as a server that strips path parameters reads it: the part before the first `;`. */
function segmentName(segment: string): string {
  const parameters = PATH_PARAMETER.exec(segment);
  return parameters === null ? segment : segment.slice(0, parameters.index);
}

function isDotSegment(name: string): boolean {
  return name === '.' || name === '..';
}

/** Refuses a `;` in the path unless the provider declares that its API uses path parameters. */
export function checkPathParameters(path: string, upstream: UpstreamConfig): void {
  if (upstream.allowPathParameters !== true && PATH_PARAMETER.test(path)) {
    throw invalidRequest('path', 'the path holds a ; (path parameters), which this provider does not accept');
  }
}

/**
 * The upstream URL: the provider's base URL with the checked path appended. Belt and braces:
 * the result must keep the base URL's origin and path prefix, or nothing is sent.
 */
export function upstreamUrl(baseUrl: string, target: ProxyTarget, extraQuery?: string): URL {
  const base = new URL(baseUrl);
  const prefix = base.pathname.replace(/\/+$/, '');
  const query = [target.query, extraQuery].filter((q) => q !== undefined && q !== '').join('&');
  const url = new URL(`${prefix}${target.path}${query === '' ? '' : `?${query}`}`, base.origin);
  const climbs = url.pathname.split('/').some((segment) => isDotSegment(segmentName(segment)));
  if (url.origin !== base.origin || !url.pathname.startsWith(`${prefix}/`) || climbs) {
    throw invalidRequest('path', 'the path does not stay under the provider base URL');
  }
  return url;
}
