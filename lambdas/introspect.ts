/**
 * `POST /v1/introspect` (RFC 7662): `token=<jwt>` as application/x-www-form-urlencoded (or
 * `{ "token": … }` as JSON), for verifier and admin principals.
 */
import { authenticate, requireKind } from '../shared/http/authenticate.ts';
import { LanyardError, invalidRequest } from '../shared/domain/errors.ts';
import { httpHandler, type HttpHandler } from '../shared/http/handler.ts';
import { header } from '../shared/http/middleware.ts';
import { json } from '../shared/http/responses.ts';
import type { HttpEvent } from '../shared/http/types.ts';
import { introspect } from '../shared/introspection/introspect.ts';
import type { IssuerServices } from '../shared/ports/services.ts';
import { onAws } from '../shared/bootstrap/aws/lambda-entry.ts';

export const INTROSPECT_MAX_BYTES = 16 * 1024;

export function createIntrospectHandler(runtime: IssuerServices): HttpHandler {
  return httpHandler({ log: runtime.log }, async (event) => {
    const principal = await authenticate(runtime.policy, runtime.config.authMode, event);
    requireKind(principal, 'verifier', 'admin');
    return json(200, await introspect(runtime, tokenParameter(event)));
  });
}

function tokenParameter(event: HttpEvent): string {
  const type = header(event, 'content-type')?.split(';')[0]?.trim().toLowerCase();
  const raw = event.body ?? '';
  const bytes = event.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
  if (bytes.length > INTROSPECT_MAX_BYTES) {
    throw new LanyardError('request_too_large', `the body is over ${INTROSPECT_MAX_BYTES} bytes`, { context: { maxBytes: INTROSPECT_MAX_BYTES } });
  }
  let token: unknown;
  if (type === 'application/x-www-form-urlencoded') {
    token = new URLSearchParams(bytes.toString('utf8')).get('token');
  } else if (type === 'application/json') {
    try {
      token = (JSON.parse(bytes.toString('utf8')) as { token?: unknown } | null)?.token;
    } catch {
      throw invalidRequest('body', 'the body is not valid JSON');
    }
  } else {
    throw new LanyardError('unsupported_media_type', 'send token=… as application/x-www-form-urlencoded', { context: { field: 'content-type' } });
  }
  if (typeof token !== 'string' || token.length === 0 || token.length > 8192) throw invalidRequest('token', 'token must be the access token to introspect');
  return token;
}

export const handler = onAws(createIntrospectHandler);
