/**
 * oidc-provider 9 as a benchmark child: one confidential client issuing ES256 JWT access
 * tokens by `client_credentials` for one resource server, with the library's default
 * in-memory adapter (it keeps no durable record of what it issued).
 *
 *   node bench/oidc-provider-process.ts <clientId> <clientSecret>
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import { onStopRequest, sendReady } from './child.ts';

export const RESOURCE = 'https://tickets.example.internal';
export const SCOPE = 'tickets:read';

const [clientId, clientSecret] = process.argv.slice(2);
if (!clientId || !clientSecret) throw new Error('usage: oidc-provider-process.ts <clientId> <clientSecret>');

let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
  res.writeHead(503).end();
};
const server = createServer((req, res) => handle(req, res));
server.keepAliveTimeout = 65_000;
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const signingKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });

const provider = new Provider(url, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: SCOPE,
    },
  ],
  jwks: { keys: [{ ...signingKey, kid: 'bench-es256', use: 'sig', alg: 'ES256' }] },
  enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  scopes: [SCOPE],
  ttl: { ClientCredentials: 300 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      getResourceServerInfo: () => ({
        scope: SCOPE,
        audience: RESOURCE,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
handle = provider.callback();

onStopRequest(
  () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
);
sendReady({ type: 'ready', url, tokenEndpoint: `${url}/token`, jwksUri: `${url}/jwks` });
