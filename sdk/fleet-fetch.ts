/**
 * `fetch` for an agent: every request carries the source's current credential, and a request
 * the resource server refused only because the token had just expired is retried once with a
 * fresh one.
 *
 * Rules:
 * - `Authorization: Bearer <token>` from `source.get()` replaces any the caller set;
 * - a 401 whose `WWW-Authenticate` says `error="invalid_token"` with
 *   `lanyard_code="token_expired"` (what the verifier SDK sends, RFC 6750 §3) forces one
 *   refresh and one retry, only when the body can be sent again (no streams);
 * - a 401 with `lanyard_code="credential_revoked"` means the authority is gone: the source
 *   stops (and tells `onAuthorityLost`) and the answer is returned as it is;
 * - any other answer is returned untouched: no retry loops against a resource server.
 */
import type { Credential, CredentialSource } from './credential-source.ts';
import { defaultFetch } from './lib/fetch.ts';
import type { Fetch } from './lib/fetch.ts';

export type FleetFetch = (input: string | URL, init?: RequestInit) => Promise<Response>;

/**
 * @example
 * ```ts
 * const call = lanyardFetch(ticketsSource);
 * const res = await call('https://tickets.example.internal/v1/tickets/42');
 * ```
 */
export function lanyardFetch(source: Pick<CredentialSource, 'get' | 'refresh' | 'reportAuthorityLost'>, fetch: Fetch = defaultFetch): FleetFetch {
  const send = (input: string | URL, init: RequestInit | undefined, credential: Credential) => {
    if (typeof credential.token !== 'string') throw new TypeError(`lanyardFetch needs a jwt credential; this source holds a ${credential.kind} credential`);
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${credential.token}`);
    return fetch(String(input), { ...init, headers });
  };
  return async (input, init) => {
    const response = await send(input, init, await source.get());
    if (response.status !== 401) return response;
    const challenge = parseChallenge(response.headers.get('www-authenticate'));
    if (challenge.error !== 'invalid_token') return response;
    if (challenge.lanyard_code === 'credential_revoked') {
      source.reportAuthorityLost({ code: 'credential_revoked', message: challenge.error_description ?? 'the resource server says the credential was revoked' });
      return response;
    }
    if (challenge.lanyard_code !== 'token_expired' || !replayable(init?.body)) return response;
    let fresh: Credential;
    try {
      fresh = await source.refresh();
    } catch {
      return response;
    }
    await response.body?.cancel();
    return send(input, init, fresh);
  };
}

/** Another name for {@link lanyardFetch}, for fleets that build one per agent. */
export const createFleetFetch = lanyardFetch;

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
