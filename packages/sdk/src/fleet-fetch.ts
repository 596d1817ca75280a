/**
 * `fetch` for an agent: every request carries the source's current credential, and a request
 * the resource server refused only because the token had just expired is retried once with a
 * fresh one.
 *
 * Rules:
 * - the credential goes only to the origins it is for: its audience's (when the audience is an
 *   `https:` URL, or `http:` on loopback) and the `origins` given (the broker's: a broker
 *   tool's audience is the URN `urn:lanyard:broker`). A request anywhere else is refused with
 *   `FleetFetchError` `origin_not_allowed` before anything is sent, so an agent talked into
 *   calling another URL cannot hand its token over;
 * - `Authorization: Bearer <token>` from `source.get()` replaces any the caller set;
 * - redirects (`redirect: 'follow'`, the default) are followed here, not by `fetch`: a hop to
 *   an allowed origin carries the credential, a hop anywhere else is sent, with the rest of
 *   its chain, without any `Authorization` (as the Fetch standard does for a cross-origin
 *   redirect, but without depending on the `fetch` injected). A redirect that cannot be
 *   followed (a streamed body on 307/308, more than 20 hops) is returned as it is;
 * - only an answer from an allowed origin is read as a challenge:
 *   - a 401 whose `WWW-Authenticate` says `error="invalid_token"` with
 *     `lanyard_code="token_expired"` (what the verifier SDK sends, RFC 6750 §3) forces one
 *     refresh and one retry, only when the body can be sent again (no streams);
 *   - a 401 with `lanyard_code="credential_revoked"` means the authority is gone: the source
 *     stops (and tells `onAuthorityLost`) and the answer is returned as it is;
 * - any other answer is returned untouched: no retry loops against a resource server.
 */
import type { Credential, CredentialSource } from './credential-source.ts';
import { FleetFetchError } from './errors.ts';
import { assertFetchableUrl, assertKnownKeys, defaultFetch } from './lib/fetch.ts';
import type { Fetch } from './lib/fetch.ts';

export type FleetFetch = (input: string | URL, init?: RequestInit) => Promise<Response>;

export interface LanyardFetchOptions {
  /**
   * Origins (`https://broker.example`: scheme, host, port, nothing else) the credential may be
   * sent to besides its audience's. Needed for the broker, and for a resource server whose
   * audience is not its URL.
   */
  readonly origins?: readonly string[];
  /** @default globalThis.fetch */
  readonly fetch?: Fetch;
}

const OPTION_KEYS = ['origins', 'fetch'] as const;
/** The Fetch standard's redirect limit (§4.4 HTTP-redirect fetch). */
const MAX_REDIRECTS = 20;
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
/** Headers that describe a body, dropped with it when a redirect turns the request into a GET. */
const BODY_HEADERS = ['content-encoding', 'content-language', 'content-location', 'content-type'];

/**
 * @example
 * ```ts
 * const call = lanyardFetch(ticketsSource); // audience https://tickets.example.internal
 * const res = await call('https://tickets.example.internal/v1/tickets/42');
 * ```
 */
export function lanyardFetch(source: Pick<CredentialSource, 'get' | 'refresh' | 'reportAuthorityLost'>, options: LanyardFetchOptions = {}): FleetFetch {
  if (typeof options === 'function') throw new TypeError('lanyardFetch(source, { fetch, origins }): pass fetch as an option');
  assertKnownKeys('lanyardFetch', options, OPTION_KEYS);
  const fetch = options.fetch ?? defaultFetch;
  if (options.origins !== undefined && !Array.isArray(options.origins)) throw new TypeError('origins must be an array of origins');
  const explicit = (options.origins ?? []).map((value, i) => originOption(`origins[${i}]`, value));

  const allowedFor = (credential: Credential): readonly string[] => {
    const audience = audienceOrigin(credential.audience);
    return audience === undefined || explicit.includes(audience) ? explicit : [audience, ...explicit];
  };

  /** Sends with the credential, following redirects so that it never leaves the allowed origins. */
  async function send(url: URL, init: RequestInit, credential: Credential): Promise<{ response: Response; trusted: boolean }> {
    if (typeof credential.token !== 'string') throw new TypeError(`lanyardFetch needs a jwt credential; this source holds a ${credential.kind} credential`);
    const allowed = allowedFor(credential);
    if (!allowed.includes(url.origin)) {
      throw new FleetFetchError('origin_not_allowed', `lanyardFetch does not send this lane's credential to ${originOf(url)}`, { origin: originOf(url), allowed });
    }
    const follow = (init.redirect ?? 'follow') === 'follow';
    let current = { url, init };
    for (let hops = 0; ; hops += 1) {
      const headers = new Headers(current.init.headers);
      headers.set('authorization', `Bearer ${credential.token}`);
      const response = await fetch(current.url.href, { ...current.init, headers, ...(follow && { redirect: 'manual' }) });
      const target = follow && hops < MAX_REDIRECTS ? redirectTarget(response, current.url) : undefined;
      const next = target && redirectedInit(current.init, response.status);
      if (!target || !next) return { response, trusted: true };
      await response.body?.cancel();
      if (!allowed.includes(target.origin)) {
        // Leaving the lane's origins: this hop and the rest of its chain go without a credential.
        const bare = new Headers(next.headers);
        bare.delete('authorization');
        return { response: await fetch(target.href, { ...next, headers: bare, redirect: 'follow' }), trusted: false };
      }
      current = { url: target, init: next };
    }
  }

  return async (input, init = {}) => {
    const url = new URL(String(input));
    const { response, trusted } = await send(url, init, await source.get());
    // An answer from elsewhere (after a redirect) says nothing about this lane's credential.
    if (!trusted || response.status !== 401) return response;
    const challenge = parseChallenge(response.headers.get('www-authenticate'));
    if (challenge.error !== 'invalid_token') return response;
    if (challenge.lanyard_code === 'credential_revoked') {
      source.reportAuthorityLost({ code: 'credential_revoked', message: challenge.error_description ?? 'the resource server says the credential was revoked' });
      return response;
    }
    if (challenge.lanyard_code !== 'token_expired' || !replayable(init.body)) return response;
    let fresh: Credential;
    try {
      fresh = await source.refresh();
    } catch {
      return response;
    }
    await response.body?.cancel();
    return (await send(url, init, fresh)).response;
  };
}

/** Another name for {@link lanyardFetch}, for fleets that build one per agent. */
export const createFleetFetch = lanyardFetch;

/** An `origins` entry: a bare origin, so nobody reads it as binding a path. */
function originOption(name: string, value: unknown): string {
  if (typeof value !== 'string') throw new TypeError(`${name} must be an origin such as https://broker.example`);
  const url = assertFetchableUrl(name, value);
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new TypeError(`${name} must be an origin (scheme://host[:port]) without a path; the credential is bound to whole origins`);
  }
  return url.origin;
}

/** The audience's origin when the audience is a URL a credential may be sent to (not a URN). */
function audienceOrigin(audience: string): string | undefined {
  try {
    return assertFetchableUrl('audience', audience).origin;
  } catch {
    return undefined;
  }
}

/** An opaque origin serialises as "null"; name the scheme then. */
function originOf(url: URL): string {
  return url.origin === 'null' ? url.protocol : url.origin;
}

function redirectTarget(response: Response, from: URL): URL | undefined {
  const location = response.headers.get('location');
  if (!REDIRECT_STATUSES.has(response.status) || location === null) return undefined;
  try {
    return new URL(location, from);
  } catch {
    return undefined;
  }
}

/**
 * The request a redirect asks for (Fetch standard §4.4): 301/302 after a POST and 303 after
 * anything but GET/HEAD become a GET without a body; otherwise the same request, which needs a
 * body that can be sent again.
 */
function redirectedInit(init: RequestInit, status: number): RequestInit | undefined {
  const method = (init.method ?? 'GET').toUpperCase();
  if (((status === 301 || status === 302) && method === 'POST') || (status === 303 && method !== 'GET' && method !== 'HEAD')) {
    const headers = new Headers(init.headers);
    for (const name of BODY_HEADERS) headers.delete(name);
    return { ...init, method: 'GET', body: null, headers };
  }
  return replayable(init.body) ? init : undefined;
}

/** The auth-params of a `Bearer` challenge (RFC 6750 §3, quoted-string values). */
function parseChallenge(header: string | null): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  if (!header || !/^\s*Bearer\b/i.test(header)) return out;
  for (const match of header.matchAll(/([A-Za-z_][A-Za-z0-9_-]*)="([^"]*)"/g)) out[match[1]!.toLowerCase()] = match[2];
  return out;
}

function replayable(body: RequestInit['body']): boolean {
  return body === undefined || body === null || typeof body === 'string' || body instanceof URLSearchParams || body instanceof ArrayBuffer || ArrayBuffer.isView(body);
}
