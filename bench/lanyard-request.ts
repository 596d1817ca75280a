import type { RequestSpec } from './load.ts';

/** The credential request every Lanyard section of the bench sends: the example policy's agent lane. */
export const CREDENTIAL_BODY = JSON.stringify({ tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' });

/** `POST /v1/credentials` for that lane on the issuer at `issuerUrl`, with the agent's API key, answered 201. */
export function credentialRequest(issuerUrl: string, apiKey: string): RequestSpec {
  return {
    url: `${issuerUrl}/v1/credentials`,
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: CREDENTIAL_BODY,
    expectStatus: 201,
  };
}
