/**
 * The local HTTP server behind `lanyard dev` and `lanyard serve`. It turns each request into an
 * API Gateway HTTP API payload 2.0 event and calls the very handler that runs on Lambda, so
 * there is one code path. Like API Gateway it caps the body it will read before any handler
 * sees it. Beside the API it answers the operator's routes (`/healthz`, `/readyz`, `/metrics`),
 * counts issuance and broker calls at this boundary, and drains gracefully on stop.
 */
import { randomUUID } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { invalidRequest, LanyardError } from '../../domain/errors.ts';
import { errorResponse, json } from '../../http/responses.ts';
import type { HttpEvent, HttpResult } from '../../http/types.ts';
import { describeError } from '../../ports/log.ts';
import type { BrokerOutcome, IssuanceOutcome } from '../../ports/metrics.ts';
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
import { PROXY_PREFIX, type Broker, type BrokerResponse } from '../../broker/types.ts';
import { PrometheusMetrics } from '../../adapters/local/prometheus-metrics.ts';

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

export const HEALTH_PATH = '/healthz';
export const READY_PATH = '/readyz';
export const METRICS_PATH = '/metrics';

export interface DevServer {
  readonly url: string;
  readonly server: Server;
  /** What `GET /metrics` renders; the composition root hands its `storeCommit` to the store. */
  readonly metrics: PrometheusMetrics;
  /** Stops at once: every connection is cut, answered or not (tests, a failed start). */
  close(): Promise<void>;
  /**
   * Stops gracefully: no new connection is accepted, idle ones and event streams are closed,
   * requests in flight are answered (each on a connection that then closes), and what is
   * still open after `deadlineMs` is cut. Resolves with how many unfinished answers were cut.
   */
  drain(deadlineMs: number): Promise<{ cut: number }>;
}

/** What the request handlers share: the services, the metrics, the readiness probe, and what a drain needs (the flag, the open answers and event streams). */
interface ServerState {
  readonly runtime: IssuerServices;
  readonly metrics: PrometheusMetrics;
  readonly ready: () => Promise<unknown>;
  draining: boolean;
  /** Answers not yet finished, so that a drain can make each one close its connection. */
  readonly open: Set<ServerResponse>;
  readonly streams: Set<ServerResponse>;
}

export async function startDevServer(options: {
  runtime: IssuerServices;
  host?: string;
  port?: number;
  routes?: Record<string, RouteHandler>;
  /** The broker behind `/v1/proxy/…`. @default one built on `runtime` */
  broker?: BrokerService;
  /** What `/metrics` renders and the boundary counts into. @default a fresh registry without process metrics */
  metrics?: PrometheusMetrics;
  /** `GET /readyz`: resolves when the issuer can issue, throws when not. @default the signing key loads */
  ready?: () => Promise<unknown>;
}): Promise<DevServer> {
  const metrics = options.metrics ?? new PrometheusMetrics({ processMetrics: false });
  const state: ServerState = {
    runtime: options.runtime,
    metrics,
    ready: options.ready ?? (() => options.runtime.signer.activeKid()),
    draining: false,
    open: new Set(),
    streams: new Set(),
  };
  const routes = { ...operatorRoutes(state), ...instrumentIssuance(options.routes ?? defaultRoutes(options.runtime), metrics) };
  const broker = options.broker ?? createBroker(options.runtime);
  const server = createServer((req, res) => {
    track(server, state, res);
    const handled = isProxyRequest(req) ? proxy(broker, state, req, res) : serve(routes, state, req, res);
    // Each handler answers its own failures; this is the last resort, so that no request can end the process.
    handled.catch((error: unknown) => lastResort(state, res, error));
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
    metrics,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
        broker.close();
      }),
    drain: (deadlineMs) => drain(server, state, broker, deadlineMs),
  };
}

/**
 * While draining, every answer closes its connection (`Connection: close`), and a connection
 * left idle by a finished answer is closed, so that the drain ends with the last answer.
 */
function track(server: Server, state: ServerState, res: ServerResponse): void {
  if (state.draining) res.setHeader('connection', 'close');
  state.open.add(res);
  res.once('close', () => {
    state.open.delete(res);
    if (state.draining) setImmediate(() => server.closeIdleConnections());
  });
}

async function drain(server: Server, state: ServerState, broker: BrokerService, deadlineMs: number): Promise<{ cut: number }> {
  state.draining = true;
  for (const res of state.open) if (!res.headersSent) res.setHeader('connection', 'close');
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  // An event stream never ends by itself; its subscribers reconnect to another issuer and
  // re-read the revocation feed, so nothing is lost by ending it now.
  for (const stream of state.streams) stream.end();
  let cut = 0;
  const deadline = setTimeout(() => {
    cut = state.open.size;
    server.closeAllConnections();
  }, deadlineMs);
  try {
    await closed;
  } finally {
    clearTimeout(deadline);
    broker.close();
  }
  return { cut };
}

/**
 * The operator's routes. `/healthz` says the process answers; `/readyz` whether it can issue
 * (the store answers, the signing key is loaded, not draining), for a load balancer or
 * systemd-style supervisor; `/metrics` is Prometheus text for a verifier or admin key
 * (docs/decisions.md says why it is not public).
 */
function operatorRoutes(state: ServerState): Record<string, RouteHandler> {
  return {
    [`GET ${HEALTH_PATH}`]: () => Promise.resolve(json(200, { status: 'ok' }, { 'cache-control': 'no-store' })),
    [`GET ${READY_PATH}`]: (event) => readiness(state, event.requestContext.requestId),
    [`GET ${METRICS_PATH}`]: async (event) => {
      const principal = await authenticate(state.runtime.policy, state.runtime.config.authMode, event);
      requireKind(principal, 'verifier', 'admin');
      return { statusCode: 200, headers: { 'content-type': state.metrics.contentType, 'cache-control': 'no-store' }, body: await state.metrics.render() };
    },
  };
}

async function readiness(state: ServerState, requestId: string): Promise<HttpResult> {
  const notReady = (reason: string) =>
    json(503, { error: { code: 'issuer_unavailable', message: `not ready: ${reason}`, retryable: true, requestId } }, { 'cache-control': 'no-store', 'retry-after': '1' });
  if (state.draining) return notReady('the issuer is stopping');
  try {
    await state.ready();
  } catch (error) {
    state.runtime.log.warn('readiness probe failed', { requestId, error: describeError(error) });
    return notReady('the store or the signing key is not available');
  }
  return json(200, { status: 'ready' }, { 'cache-control': 'no-store' });
}

/** The routes that issue credentials, counted by outcome and timed, with denials by code. */
function instrumentIssuance(routes: Record<string, RouteHandler>, metrics: PrometheusMetrics): Record<string, RouteHandler> {
  const instrumented = { ...routes };
  for (const key of ['POST /v1/credentials', `POST ${INSTANCE_CREDENTIALS_PATH}`]) {
    const route = routes[key];
    if (!route) continue;
    instrumented[key] = async (event) => {
      const started = performance.now();
      const result = await route(event);
      const { outcome, code } = issuanceOutcome(result);
      metrics.issuance(outcome, performance.now() - started, code);
      return result;
    };
  }
  return instrumented;
}

function issuanceOutcome(result: HttpResult): { outcome: IssuanceOutcome; code?: string } {
  if (result.statusCode < 400) return { outcome: 'issued' };
  return { outcome: result.statusCode >= 500 ? 'error' : 'denied', ...codeOf(result) };
}

/** The typed error code of an error answer (`{ error: { code } }`), if it has one. */
function codeOf(result: HttpResult): { code?: string } {
  try {
    const code = (JSON.parse(result.body ?? '') as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? { code } : {};
  } catch {
    return {};
  }
}

async function serve(routes: Record<string, RouteHandler>, state: ServerState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { runtime } = state;
  const requestId = randomUUID();
  const method = (req.method ?? 'GET').toUpperCase();
  let result: HttpResult;
  try {
    const url = requestUrl(req.url);
    if (method === 'GET' && url.pathname === EVENTS_PATH && runtime.events) {
      await streamEvents(state, runtime.events, toEvent(req, method, url, Buffer.alloc(0), requestId), req, res);
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

/** The request target as a URL; a target no URL parser accepts (`//`, `/\\`) is a 400, never a crash. */
function requestUrl(target: string | undefined): URL {
  try {
    return new URL(target ?? '/', 'http://localhost');
  } catch {
    throw invalidRequest('path', 'the request target is not a valid path');
  }
}

/** A request whose handler threw past its own catch: logged, and answered 503 if nothing was sent yet. */
function lastResort(state: ServerState, res: ServerResponse, error: unknown): void {
  state.runtime.log.error('local server failed a request outside its handler', { error: describeError(error) });
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const result = json(503, { error: { code: 'issuer_unavailable', message: 'the issuer cannot decide right now; retry with backoff', retryable: true } });
  res.writeHead(result.statusCode, result.headers);
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
async function proxy(broker: Broker, state: ServerState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { runtime } = state;
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
    void countBrokerCall(state, req.url ?? '/', brokerOutcome(answer));
    // A body the broker stopped reading (too large, refused mid-stream) leaves bytes on the
    // connection that are not a next request: answer, then close it.
    const unread = hasBody && !req.complete ? { connection: 'close' } : {};
    res.writeHead(answer.status, { ...answer.headers, ...unread, 'x-request-id': requestId });
    if (answer.body) await pipeline(Readable.from(answer.body), res);
    else res.end();
  } catch (error) {
    // The answer broke off mid-stream (the upstream or the caller went away); the broker audited the call.
    if (!res.headersSent) {
      void countBrokerCall(state, req.url ?? '/', 'error');
      runtime.log.error('local server failed a proxied request', { requestId, error: describeError(error) });
      const result = json(503, { error: { code: 'issuer_unavailable', message: 'the issuer cannot decide right now; retry with backoff', retryable: true, requestId } });
      res.writeHead(result.statusCode, result.headers);
      res.end(result.body);
    } else {
      res.destroy();
    }
  }
}

function brokerOutcome(answer: BrokerResponse): BrokerOutcome {
  // Only a forwarded call has an audit record still settling; refusals are typed JSON errors.
  if (answer.settled) return 'forwarded';
  return answer.status >= 500 ? 'error' : 'refused';
}

/**
 * Counts a broker call under its provider, when the provider is a tool of the policy: the
 * label set stays bounded whatever paths callers send (an unknown one counts as `unknown`).
 */
async function countBrokerCall(state: ServerState, target: string, outcome: BrokerOutcome): Promise<void> {
  const name = target.startsWith(PROXY_PREFIX) ? target.slice(PROXY_PREFIX.length).split(/[/?#]/, 1)[0]! : '';
  let provider = 'unknown';
  if (outcome === 'forwarded') provider = name;
  else if (name !== '' && (await state.runtime.policy.tool(name).catch(() => undefined))) provider = name;
  state.metrics.brokerCall(provider, outcome);
}

export const EVENTS_PATH = '/v1/events';
/** Comment frames keep proxies and verifiers from taking a quiet stream for a dead one. */
export const KEEP_ALIVE_MS = 15_000;

/**
 * `GET /v1/events`: the local event bus as server-sent events, for verifier and admin
 * principals. `Last-Event-ID` replays what is still buffered; a verifier also re-reads the
 * revocation feed after reconnecting, so nothing is lost beyond the buffer.
 */
async function streamEvents(state: ServerState, bus: EventStream, event: HttpEvent, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { runtime } = state;
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
  state.streams.add(res);
  const stop = () => {
    clearInterval(keepAlive);
    unsubscribe();
    state.streams.delete(res);
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
