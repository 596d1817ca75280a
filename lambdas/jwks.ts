/**
 * `GET /.well-known/jwks.json`: every published signing key (staged, active, and retired
 * until its last token has expired). Public, and cacheable for a short while so verifiers
 * see a staged key well before anything is signed with it.
 */
import { httpHandler, type HttpHandler } from '../shared/http/handler.ts';
import { json } from '../shared/http/responses.ts';
import type { IssuerServices } from '../shared/ports/services.ts';
import { onAws } from '../shared/bootstrap/aws/lambda-entry.ts';

export const JWKS_MAX_AGE_SECONDS = 300;

export function createJwksHandler(runtime: IssuerServices): HttpHandler {
  return httpHandler({ log: runtime.log }, async () => {
    const keys = await runtime.signer.publicJwks();
    return json(200, { keys }, { 'cache-control': `public, max-age=${JWKS_MAX_AGE_SECONDS}` });
  });
}

export const handler = onAws(createJwksHandler);
