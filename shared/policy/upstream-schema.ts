/**
 * The `upstream` of a tool behind the broker (issue 6), as the policy file declares it: where the
 * provider is, how its key is presented, and which requests each action covers. Those
 * declarations are the broker's allow-list, so they are checked strictly here, where an admin
 * reads the error, rather than on an agent's request (docs/broker.md gives the reasons).
 */
import * as z from 'zod';
import { VERB } from '../domain/model.ts';

/** An HTTP field name (RFC 9110 §5.1: a token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;

/**
 * Headers the broker owns on the way upstream: framing, hop-by-hop (RFC 9110 §7.6.1) and the
 * host. Neither the key nor an agent may set them.
 */
const BROKER_OWNED_HEADERS: ReadonlySet<string> = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'te', 'upgrade', 'cookie', 'keep-alive', 'trailer']);

function isBrokerOwned(name: string): boolean {
  return BROKER_OWNED_HEADERS.has(name) || name.startsWith('proxy-');
}

/** Headers an agent may never pass through: the broker's own, credentials, and claims about where the request came from. */
function isUnforwardable(name: string): boolean {
  return isBrokerOwned(name) || name === 'authorization' || name === 'forwarded' || name.startsWith('x-forwarded-');
}

const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', '[::1]', 'localhost']);

export const UPSTREAM_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/**
 * A path pattern: RFC 3986 `pchar`s and `/`, with `*` (any run of characters) the only
 * wildcard. No `%` (an encoded `/` or `.` would let one pattern mean two paths), no `\`, no
 * empty or dot segment: the broker compares patterns with normalised request paths.
 */
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;

function pathProblem(path: string, wildcard: boolean): string | undefined {
  if (!path.startsWith('/')) return 'a path starts with /';
  if (path.length > 512) return 'a path is at most 512 characters';
  if (path.includes('%')) return 'a path may not contain % (percent-encoding)';
  if (path.includes('\\')) return 'a path may not contain \\';
  if (!PATH_CHARS.test(path)) return 'a path is made of RFC 3986 path characters' + (wildcard ? ' and *' : '');
  if (!wildcard && path.includes('*')) return 'the base URL path may not contain *';
  if (path.includes('//')) return 'a path may not contain //';
  // A segment's name is the part before `;`: servers that strip path parameters read `..;x` as `..`, and `/;x/` as `//`.
  const names = path.split('/').slice(1).map((segment) => segment.split(';', 1)[0]);
  if (names.some((name) => name === '.' || name === '..')) return 'a path may not contain a . or .. segment (with or without ;parameters)';
  if (names.some((name, i) => name === '' && i !== names.length - 1)) return 'a path may not contain an empty segment (// or /;)';
  return undefined;
}

/**
 * An absolute https URL, or http on a loopback host; no credentials, query or fragment; an
 * optional path prefix. Normalised to `scheme://host[:port][/prefix]`, no trailing slash.
 */
const BaseUrl = z
  .string()
  .max(2048)
  .transform((value, ctx) => {
    const fail = (message: string) => {
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    };
    // Checked as written too: the URL parser forgives (`https:host`, `\` for `/`, dot segments) what an allow-list should not.
    const written = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#\\\s]+(\/[^?#]*)?(?:[?#].*)?$/.exec(value);
    let url: URL;
    try {
      if (written === null) throw new TypeError('not scheme://host[/path]');
      url = new URL(value);
    } catch {
      return fail('an absolute URL, e.g. https://api.example.com');
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) {
      return fail('https, or http only on a loopback host (127.0.0.1, ::1, localhost)');
    }
    if (url.username !== '' || url.password !== '') return fail('a base URL may not carry credentials: the key is set as a secret');
    if (value.includes('?') || value.includes('#')) return fail('a base URL may not have a query or fragment');
    const prefix = (written?.[1] ?? '').replace(/\/+$/, '');
    if (prefix !== '') {
      const problem = pathProblem(prefix, false);
      if (problem !== undefined) return fail(problem);
    }
    return `${url.protocol}//${url.host}${prefix}`;
  });

const KeySpec = z
  .object({
    header: z.string().regex(HEADER_NAME, 'an HTTP header name').transform((h) => h.toLowerCase()).optional(),
    scheme: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$/, 'an auth scheme such as Bearer, Basic or Token').optional(),
    query: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a query parameter name: letters, digits, _, . and -').optional(),
  })
  .strict()
  .superRefine((key, ctx) => {
    if ((key.header === undefined) === (key.query === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'the key is presented either in a header ({ header, scheme? }) or in a query parameter ({ query })', path: ['header'] });
    } else if (key.query !== undefined && key.scheme !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'a scheme goes with a header, not a query parameter', path: ['scheme'] });
    } else if (key.header !== undefined && isBrokerOwned(key.header)) {
      ctx.addIssue({ code: 'custom', message: `the key cannot be presented in ${key.header}: the broker owns that header`, path: ['header'] });
    }
  })
  .transform((key) => (key.query !== undefined ? { query: key.query } : { header: key.header!, ...(key.scheme !== undefined && { scheme: key.scheme }) }));

const RouteSpec = z
  .object({
    method: z
      .string()
      .transform((m) => m.toUpperCase())
      .pipe(z.enum(UPSTREAM_METHODS)),
    path: z.string().superRefine((path, ctx) => {
      const problem = pathProblem(path, true);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    }),
  })
  .strict();

const UnitsSpec = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,32}$/, 'what a unit is, e.g. tokens or cents'),
    header: z.string().regex(HEADER_NAME, 'an HTTP header name').transform((h) => h.toLowerCase()).optional(),
    json: z
      .string()
      .max(256)
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'a dot path into the JSON answer, e.g. usage.total_tokens')
      .optional(),
  })
  .strict()
  .superRefine((units, ctx) => {
    if ((units.header === undefined) === (units.json === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'units are read from either a response header or a JSON path', path: ['header'] });
    }
  });

export const UpstreamSpec = z
  .object({
    baseUrl: BaseUrl,
    key: KeySpec,
    routes: z
      .record(z.string().regex(VERB), z.array(RouteSpec).min(1).max(64))
      .refine((routes) => Object.keys(routes).length > 0, 'an upstream needs the routes of at least one action'),
    units: UnitsSpec.optional(),
    forwardHeaders: z
      .array(
        z
          .string()
          .regex(HEADER_NAME, 'an HTTP header name')
          .transform((h) => h.toLowerCase())
          .refine((h) => !isUnforwardable(h), 'the broker owns this header, or it carries credentials or origin claims: an agent may not set it'),
      )
      .max(32)
      .superRefine((headers, ctx) => {
        for (const [i, header] of headers.entries()) {
          if (headers.indexOf(header) !== i) ctx.addIssue({ code: 'custom', message: `${header} is listed twice`, path: [i] });
        }
      })
      .optional(),
    timeoutMs: z.number().int().min(100).max(300_000).optional(),
    maxRequestBytes: z.number().int().min(1).max(6 * 1024 * 1024).optional(),
    maxResponseBytes: z.number().int().min(1).max(100 * 1024 * 1024).optional(),
    allowPathParameters: z.boolean().optional(),
  })
  .strict()
  .superRefine((upstream, ctx) => {
    // A `;` is refused in request paths unless the provider uses path parameters: a pattern
    // or base path with one would otherwise never match, or be the only `;` let through.
    if (upstream.allowPathParameters !== true) {
      if (String(upstream.baseUrl).split('/').slice(3).join('/').includes(';')) {
        ctx.addIssue({ code: 'custom', message: 'the base URL path has a ; (path parameters): set allowPathParameters: true if the API uses them', path: ['baseUrl'] });
      }
      for (const [verb, routes] of Object.entries(upstream.routes)) {
        for (const [i, route] of routes.entries()) {
          if (route.path.includes(';')) ctx.addIssue({ code: 'custom', message: 'the path has a ; (path parameters): set allowPathParameters: true if the API uses them', path: ['routes', verb, i, 'path'] });
        }
      }
    }
    // Letting an agent send the key header would let it choose the credential the upstream sees.
    const keyHeader = 'header' in upstream.key ? upstream.key.header : undefined;
    const index = keyHeader === undefined ? -1 : (upstream.forwardHeaders ?? []).indexOf(keyHeader);
    if (index !== -1) ctx.addIssue({ code: 'custom', message: `${keyHeader} carries the upstream key: an agent may not set it`, path: ['forwardHeaders', index] });
  });
