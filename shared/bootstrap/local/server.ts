/**
 * The local HTTP server behind `lanyard dev`. It turns each request into an API Gateway HTTP
 * API payload 2.0 event and calls the very handler that runs on Lambda, so there is one code
 * path. Like API Gateway it caps the body it will read before any handler sees it.
 */
import { randomUUID } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LanyardError } from '../../domain/errors.ts';
import { errorResponse, json } from '../../http/responses.ts';
import type { HttpEvent, HttpResult } from '../../http/types.ts';
import { describeError } from '../../ports/log.ts';
import type { EventStream } from '../../ports/index.ts';
import type { IssuerServices } from '../../ports/services.ts';
import { authenticate, requireKind } from '../../http/authenticate.ts';
import { createAdminHandler } from '../../../lambdas/admin.ts';
import { createIssueCredentialHandler, INSTANCE_CREDENTIALS_PATH } from '../../../lambdas/issue-credential.ts';
import { createJwksHandler } from '../../../lambdas/jwks.ts';
import { createMetadataHandler } from '../../../lambdas/metadata.ts';
import { createIntrospectHandler } from '../../../lambdas/introspect.ts';
import { createRevocationsHandler } from '../../../lambdas/revocations.ts';
import { createSpawnHandler } from '../../../lambdas/spawn.ts';
import { createBroker, type BrokerService } from '../../broker/service.ts';
import { PROXY_PREFIX, type Broker } from '../../broker/types.ts';

/** API Gateway refuses payloads over 10 MB; the local server refuses anything over 1 MiB unread. */
export const MAX_REQUEST_BYTES = 1024 * 1024;

export type RouteHandler = (event: HttpEvent) => Promise<HttpResult>;

export function defaultRoutes(runtime: IssuerServices): Record<string, RouteHandler> {
  const admin = createAdminHandler(runtime);
  const issue = createIssueCredentialHandler(runtime);
  return {
    'POST /v1/credentials': issue,
    // Agent instances refresh here with their refresh token, as on AWS (only lr_… is accepted).
    [`POST ${INSTANCE_CREDENTIALS_PATH}`]: issue,
    'GET /.well-known/jwks.json': createJwksHandler(runtime),
    'GET /.well-known/oauth-authorization-server': createMetadataHandler(runtime),
    'POST /v1/admin': (event) => admin(event) as Promise<HttpResult>,
    'GET /v1/revocations': createRevocationsHandler(runtime),
    'POST /v1/introspect': createIntrospectHandler(runtime),
    'POST /v1/spawn': createSpawnHandler(runtime),
  };
}

export interface DevServer {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

export async function startDevServer(options: {
  runtime: IssuerServices;
  host?: string;
  port?: number;
  routes?: Record<string, RouteHandler>;
  /** The broker behind `/v1/proxy/…`. @default one built on `runtime` */
  broker?: BrokerService;
}): Promise<DevServer> {
  const routes = options.routes ?? defaultRoutes(options.runtime);
  const broker = options.broker ?? createBroker(options.runtime);
  const server = createServer((req, res) => {
    if (isProxyRequest(req)) void proxy(broker, options.runtime, req, res);
    else void serve(routes, options.runtime, req, res);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8787, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
        broker.close();
      }),
  };
}

async function serve(routes: Record<string, RouteHandler>, runtime: IssuerServices, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const requestId = randomUUID();
  const url = new URL(req.url ?? '/', 'http://localhost');
  const method = (req.method ?? 'GET').toUpperCase();
  let result: HttpResult;
  try {
    if (method === 'GET' && url.pathname === EVENTS_PATH && runtime.events) {
      await streamEvents(runtime, runtime.events, toEvent(req, method, url, Buffer.alloc(0), requestId), req, res);
      return;
    }
    const route = routes[`${method} ${url.pathname}`];
    if (!route) {
      const known = Object.keys(routes).some((key) => key.endsWith(` ${url.pathname}`));
      throw new LanyardError(known ? 'method_not_allowed' : 'not_found', known ? `${method} is not allowed on ${url.pathname}` : `no route ${url.pathname}`);
    }
    const body = await readBody(req);
    result = await route(toEvent(req, method, url, body, requestId));
  } catch (error) {
    if (error instanceof LanyardError) {
      result = errorResponse(error, requestId);
    } else {
      runtime.log.error('local server failed a request', { requestId, error: describeError(error) });
      result = json(503, { error: { code: 'issuer_unavailable', message: 'the issuer cannot decide right now; retry with backoff', retryable: true, requestId } });
    }
  }
  res.writeHead(result.statusCode, { ...result.headers, 'x-request-id': requestId });
  res.end(result.body);
}

/** Whether the broker takes this request: its path is under the prefix, however the target was written. */
function isProxyRequest(req: IncomingMessage): boolean {
  const raw = req.url ?? '/';
  if (raw.startsWith(PROXY_PREFIX)) return true;
  try {
    return new URL(raw, 'http://localhost').pathname.startsWith(PROXY_PREFIX);
  } catch {
    return false;
  }
}

/**
 * `ANY /v1/proxy/{provider}/{path+}`: the raw request goes to the broker as it arrived (the
 * target unnormalized, the body streamed), and its answer streams back with backpressure. A
 * caller that goes away aborts the upstream call.
 */
async function proxy(broker: Broker, runtime: IssuerServices, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const requestId = randomUUID();
  const gone = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) gone.abort();
  });
  const hasBody = (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined;
  try {
    const answer = await broker.handle(
      {
        requestId,
        method: (req.method ?? 'GET').toUpperCase(),
        target: req.url ?? '/',
        // Every value of a repeated header, so that two Authorization headers are seen as two.
        headers: req.headersDistinct,
        body: hasBody ? req : null,
        ...(req.socket.remoteAddress !== undefined && { sourceIp: req.socket.remoteAddress }),
      },
      gone.signal,
    );
    // A body the broker stopped reading (too large, refused mid-stream) leaves bytes on the
    // connection that are not a next request: answer, then close it.
    const unread = hasBody && !req.complete ? { connection: 'close' } : {};
    res.writeHead(answer.status, { ...answer.headers, ...unread, 'x-request-id': requestId });
    if (answer.body) await pipeline(Readable.from(answer.body), res);
    else res.end();
  } catch (error) {
    // The answer broke off mid-stream (the upstream or the caller went away); the broker audited the call.
    if (!res.headersSent) {
      runtime.log.error('local server failed a proxied request', { requestId, error: describeError(error) });
      const result = json(503, { error: { code: 'issuer_unavailable', message: 'the issuer cannot decide right now; retry with backoff', retryable: true, requestId } });
      res.writeHead(result.statusCode, result.headers);
      res.end(result.body);
    } else {
      res.destroy();
    }
  }
}

export const EVENTS_PATH = '/v1/events';
/** Comment frames keep proxies and verifiers from taking a quiet stream for a dead one. */
export const KEEP_ALIVE_MS = 15_000;

/**
 * `GET /v1/events`: the local event bus as server-sent events, for verifier and admin
 * principals. `Last-Event-ID` replays what is still buffered; a verifier also re-reads the
 * revocation feed after reconnecting, so nothing is lost beyond the buffer.
 */
async function streamEvents(runtime: IssuerServices, bus: EventStream, event: HttpEvent, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const principal = await authenticate(runtime.policy, runtime.config.authMode, event);
  requireKind(principal, 'verifier', 'admin');
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.write(': connected\n\n');
  const lastEventId = req.headers['last-event-id'];
  const unsubscribe = bus.subscribe(
    (e) => res.write(`id: ${e.id}\nevent: ${e.detailType}\ndata: ${JSON.stringify(e)}\n\n`),
    typeof lastEventId === 'string' ? lastEventId : undefined,
  );
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), KEEP_ALIVE_MS);
  const stop = () => {
    clearInterval(keepAlive);
    unsubscribe();
  };
  req.once('close', stop);
  res.once('close', stop);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_REQUEST_BYTES) {
      req.resume();
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        req.removeAllListeners('data');
        req.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function tooLarge(): LanyardError {
  return new LanyardError('request_too_large', `the body is over ${MAX_REQUEST_BYTES} bytes`, { context: { maxBytes: MAX_REQUEST_BYTES } });
}

/** The payload 2.0 event API Gateway would build for this request. */
export function toEvent(req: IncomingMessage, method: string, url: URL, body: Buffer, requestId: string): HttpEvent {
  const headers: Record<string, string> = {};
  const incoming = req.headers;
  for (const name in incoming) {
    const value = incoming[name];
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams) query[name] = name in query ? `${query[name]},${value}` : value;
  const now = Date.now();
  // Bodies that are not valid UTF-8 travel base64-encoded, as API Gateway does for binary.
  const binary = !isUtf8(body);
  return {
    version: '2.0',
    routeKey: `${method} ${url.pathname}`,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    ...(Object.keys(query).length > 0 && { queryStringParameters: query }),
    requestContext: {
      accountId: 'local',
      apiId: 'lanyard-local',
      domainName: headers.host ?? 'localhost',
      domainPrefix: 'localhost',
      http: { method, path: url.pathname, protocol: `HTTP/${req.httpVersion}`, sourceIp: req.socket.remoteAddress ?? '127.0.0.1', userAgent: headers['user-agent'] ?? '' },
      requestId,
      routeKey: `${method} ${url.pathname}`,
      stage: '$default',
      time: new Date(now).toISOString(),
      timeEpoch: now,
    },
    ...(body.length > 0 && { body: body.toString(binary ? 'base64' : 'utf8') }),
    isBase64Encoded: binary,
  };
}
