/**
 * A middy middleware that authenticates API Gateway requests (HTTP API payload 2.0 and REST)
 * with a Lanyard verifier. One concern: on success the claims are put on
 * `request.context.lanyard`; on failure the 401 / 403 / 503 answer (same `WWW-Authenticate`
 * challenge as `sendVerificationError`) is returned early and the handler never runs.
 *
 * @example
 * ```ts
 * const verifier = createVerifier({ issuer, audience, revocations: { mode: 'stream', apiKey } }); // module scope
 * export const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyResultV2, Error, LanyardContext>()
 *   .use(lanyardAuth({ verifier, action: 'tickets:read' }))
 *   .handler(async (event, context) => ({ statusCode: 200, body: context.lanyard.sub }));
 * ```
 */
import type { MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import { assertKnownKeys } from './lib/fetch.ts';
import { toErrorResponse } from './lib/challenge.ts';
import { bearerFromHeader, missingToken } from './http.ts';
import type { LanyardClaims, Verifier } from './verifier.ts';

export interface LanyardAuthOptions {
  /** Created once at module scope. */
  readonly verifier: Pick<Verifier, 'verify'>;
  /** Action(s) the route needs; each must be in the token's `scope`. */
  readonly action?: string | readonly string[];
}

/** The Lambda context after `lanyardAuth` has run. */
export type LanyardContext = Context & { lanyard: LanyardClaims };

/** The part of an API Gateway event (REST or HTTP API) the middleware reads. */
export interface HeaderEvent {
  readonly headers?: Readonly<Record<string, string | undefined>> | null;
}

export interface ErrorResult {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Authenticates the request; see the module comment. */
export function lanyardAuth(options: LanyardAuthOptions): MiddlewareObj<HeaderEvent> {
  assertKnownKeys('lanyardAuth', options, ['verifier', 'action']);
  const { verifier, action } = options;
  if (typeof verifier?.verify !== 'function') throw new TypeError('lanyardAuth: verifier is required');
  return {
    name: 'lanyardAuth',
    async before(request): Promise<ErrorResult | undefined> {
      try {
        const token = bearerFromHeader(authorizationHeader(request.event.headers));
        if (token === undefined) throw missingToken();
        const claims = await verifier.verify(token, action === undefined ? {} : { action });
        (request.context as LanyardContext).lanyard = claims;
        return undefined;
      } catch (error) {
        const response = toErrorResponse(error);
        return { statusCode: response.status, headers: { ...response.headers }, body: response.body };
      }
    },
  };
}

// HTTP API lower-cases header names; REST keeps the client's spelling (RFC 9110 §5.1: case-insensitive).
function authorizationHeader(headers: HeaderEvent['headers']): string | undefined {
  if (!headers) return undefined;
  for (const name in headers) {
    if (name.toLowerCase() === 'authorization') return headers[name];
  }
  return undefined;
}
