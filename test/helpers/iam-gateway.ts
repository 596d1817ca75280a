/**
 * A stand-in for the deployed stack's HTTP API, for tests of IAM callers: a loopback server
 * that does what API Gateway does on the stack's routes, then calls the very handlers that
 * run on Lambda with a payload 2.0 event.
 *
 * - IAM routes (`POST /v1/credentials`, `GET /v1/revocations`, `POST /v1/introspect`,
 *   `POST /v1/spawn`): the SigV4 signature is recomputed independently (sigv4-check.ts); a
 *   mismatch, an unknown access key or a stale date is answered 403 with `{ message }`, as API
 *   Gateway answers, and the handler never runs. A good signature puts the caller's ARN in
 *   `requestContext.authorizer.iam.userArn`, as the IAM authorizer does.
 * - Public routes (JWKS, metadata) and the refresh-token route pass through unsigned.
 *
 * The handlers run on the test issuer's runtime with `authMode: 'iam'` and this server's URL
 * as the issuer, so tokens name it in `iss` as they name the API URL on AWS.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { defaultRoutes, toEvent } from '../../shared/bootstrap/local/server.ts';
import type { HttpEvent } from '../../shared/http/types.ts';
import type { IssuerServices } from '../../shared/ports/services.ts';
import { checkSigV4, type SigV4Secret } from './sigv4-check.ts';

export const GATEWAY_REGION = 'eu-west-1';

/** Temporary credentials of one IAM caller, and the ARN API Gateway reports for it. */
export interface IamCaller extends SigV4Secret {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** e.g. `arn:aws:sts::123456789012:assumed-role/<role>/<session>` */
  readonly arn: string;
}

export interface GatewayCall {
  readonly route: string;
  /** The ARN the authorizer passed on, or why the request was refused before the handler. */
  readonly caller?: string;
  readonly refused?: string;
  readonly status: number;
}

export interface IamGateway {
  readonly url: string;
  readonly calls: GatewayCall[];
  /** Adds (or replaces) a caller's access key, e.g. after a role's credentials rotate. */
  addCaller(caller: IamCaller): void;
  close(): Promise<void>;
}

const IAM_ROUTES = new Set(['POST /v1/credentials', 'GET /v1/revocations', 'POST /v1/introspect', 'POST /v1/spawn']);

export async function startIamGateway(options: { runtime: IssuerServices; callers: readonly IamCaller[] }): Promise<IamGateway> {
  const callers = new Map<string, IamCaller>(options.callers.map((c) => [c.accessKeyId, c]));
  const calls: GatewayCall[] = [];
  /** Built once the port is known: the handlers' issuer is this server's URL. */
  const routing: { routes?: ReturnType<typeof defaultRoutes> } = {};

  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const method = (req.method ?? 'GET').toUpperCase();
      const url = new URL(req.url ?? '/', 'http://gateway');
      const route = `${method} ${url.pathname}`;
      const handler = routing.routes?.[route];
      if (!handler) {
        calls.push({ route, status: 404, refused: 'no route' });
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'Not Found' }));
        return;
      }
      let event: HttpEvent = toEvent(req, method, url, body, randomUUID());
      let caller: string | undefined;
      if (IAM_ROUTES.has(route)) {
        const verdict = checkSigV4(
          { method, target: req.url ?? '/', headers: req.headers, body: body.toString('utf8') },
          { region: GATEWAY_REGION, service: 'execute-api', secrets: callers },
        );
        if (!verdict.ok) {
          calls.push({ route, status: 403, refused: verdict.reason });
          res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ message: verdict.reason }));
          return;
        }
        caller = callers.get(verdict.accessKeyId)!.arn;
        event = { ...event, requestContext: { ...event.requestContext, authorizer: { iam: { userArn: caller } } } };
      }
      const result = await handler(event);
      calls.push({ route, status: result.statusCode, ...(caller && { caller }) });
      res.writeHead(result.statusCode, result.headers).end(result.body);
    })().catch((error: unknown) => {
      res.writeHead(500).end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  routing.routes = defaultRoutes({ ...options.runtime, config: { ...options.runtime.config, issuer: url, authMode: 'iam' } });
  return {
    url,
    calls,
    addCaller: (caller) => callers.set(caller.accessKeyId, caller),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
