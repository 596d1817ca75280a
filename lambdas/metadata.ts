/**
 * `GET /.well-known/oauth-authorization-server` (RFC 8414): where the keys are and what
 * this issuer signs with, so standard OAuth tooling can find them.
 */
import { httpHandler, type HttpHandler } from '../shared/http/handler.ts';
import { json } from '../shared/http/responses.ts';
import type { IssuerServices } from '../shared/ports/services.ts';
import { onAws } from '../shared/bootstrap/aws/lambda-entry.ts';

export function authorizationServerMetadata(issuer: string): Record<string, unknown> {
  const base = issuer.replace(/\/+$/, '');
  return {
    issuer,
    jwks_uri: `${base}/.well-known/jwks.json`,
    token_endpoint: `${base}/v1/credentials`,
    introspection_endpoint: `${base}/v1/introspect`,
    revocation_feed_endpoint: `${base}/v1/revocations`,
    grant_types_supported: ['urn:lanyard:params:grant-type:lane'],
    token_endpoint_auth_methods_supported: ['bearer_api_key', 'aws_sigv4'],
    access_token_signing_alg_values_supported: ['ES256'],
    response_types_supported: [],
    scopes_supported: [],
  };
}

export function createMetadataHandler(runtime: IssuerServices): HttpHandler {
  return httpHandler({ log: runtime.log }, () =>
    Promise.resolve(json(200, authorizationServerMetadata(runtime.config.issuer), { 'cache-control': 'public, max-age=3600' })),
  );
}

export const handler = onAws(createMetadataHandler);
