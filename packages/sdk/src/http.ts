/**
 * Bearer-token authentication for any Node `http` (or `http2` compatibility) server.
 *
 * @example
 * ```ts
 * const verifier = createVerifier({ issuer, audience, revocations: { mode: 'stream', apiKey } });
 * createServer(async (req, res) => {
 *   try {
 *     const claims = await authenticate(verifier, req, { action: 'tickets:read' });
 *     res.end(JSON.stringify({ hello: claims.sub }));
 *   } catch (error) {
 *     sendVerificationError(res, error);
 *   }
 * });
 * ```
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { VerificationError } from './errors.ts';
import { toErrorResponse } from './lib/challenge.ts';
import type { LanyardClaims, Verifier, VerifyOptions } from './verifier.ts';

// RFC 6750 §2.1: `Bearer` (case-insensitive scheme, RFC 9110 §11.1) then the token.
const BEARER = /^Bearer +(\S+) *$/i;

/**
 * The bearer token of a request's `Authorization` header, or `undefined` when there is none
 * (or another scheme is used). Tokens in the query string or body (RFC 6750 §2.2–2.3) are
 * deliberately not read: they end up in logs.
 */
export function bearerToken(req: Pick<IncomingMessage, 'headers'>): string | undefined {
  return bearerFromHeader(req.headers.authorization);
}

/**
 * Verifies the request's bearer token and returns its claims; throws a
 * {@link VerificationError} (a request without a token is `token_malformed` with
 * `context.missing`, answered with the bare challenge of RFC 6750 §3.1).
 */
export async function authenticate(
  verifier: Pick<Verifier, 'verify'>,
  req: Pick<IncomingMessage, 'headers'>,
  options: VerifyOptions = {},
): Promise<LanyardClaims> {
  const token = bearerToken(req);
  if (token === undefined) throw missingToken();
  return verifier.verify(token, options);
}

/**
 * Answers a failed authentication: 401 / 403 JSON `{ error: { code, message } }` with the
 * RFC 6750 `WWW-Authenticate` challenge, or 503 when the token could not be checked.
 */
export function sendVerificationError(res: ServerResponse, error: unknown): void {
  const response = toErrorResponse(error);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(response.status, response.headers);
  res.end(response.body);
}

/** @internal shared with the middy middleware. */
export function bearerFromHeader(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return BEARER.exec(value)?.[1];
}

/** @internal */
export function missingToken(): VerificationError {
  return new VerificationError('token_malformed', 'the request carries no bearer token', { missing: true });
}
