/**
 * The broker on AWS (issue 6): a Lambda function URL with `invokeMode: RESPONSE_STREAM`, whose
 * events become a `BrokerRequest` and whose `BrokerResponse` is streamed back through the
 * response stream the Node.js runtime hands a streamified handler. API Gateway HTTP APIs can
 * neither stream an answer nor keep a path as sent (they percent-decode `rawPath`), so the
 * broker is not behind the API.
 *
 * What arrives, and what this adapter does with it (the sources are in docs/deploy.md):
 * - `rawPath` is the path still percent-encoded as sent (`requestContext.http.path` is the
 *   decoded copy and is never read): the target is `rawPath` + `?` + `rawQueryString`, so the
 *   broker refuses `%2F`, `%2E` and dot segments instead of resolving them.
 * - Cookies arrive in a `cookies` array beside the headers; when no `cookie` header came with
 *   them they are joined into one, so the broker sees (and refuses) them like any header.
 *   Repeated headers arrive joined with `,`.
 * - The request body arrives whole in the event (at most the 6 MB invocation payload), base64
 *   when `isBase64Encoded`; it is handed on as a one-chunk stream. Only the answer streams.
 * - The status and headers go out as the JSON prelude of `awslambda.HttpResponseStream.from`,
 *   which the runtime writes before the first `write()` and never on `end()` alone
 *   (aws/aws-lambda-nodejs-runtime-interface-client#97): one empty write sends them at once,
 *   body or not. The body is piped with backpressure; the stream is ended (or, if the body
 *   breaks off, destroyed, so the agent sees a cut answer rather than a short one that looks
 *   whole) in every path, and the upstream call is aborted when writing fails or the
 *   function's deadline nears.
 *
 * The broker is built once per container from the AWS runtime; a runtime that fails to start
 * answers 503 `issuer_unavailable` (typed JSON, no cause on the wire) and is tried again on the
 * next request, like `onAws` (lambda-entry.ts).
 */
import { Readable, type Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import * as z from 'zod';
import type { Broker, BrokerRequest, BrokerResponse } from '../../broker/types.ts';
import { failClosed, invalidRequest, issuerUnavailable } from '../../domain/errors.ts';
import { errorResponse } from '../../http/responses.ts';
import { describeError, type Log } from '../../ports/log.ts';
import type { IssuerServices } from '../../ports/services.ts';

/** What `awslambda.HttpResponseStream.from` takes: the answer's metadata, sent before the body. */
export interface ResponsePrelude {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  /** `Set-Cookie` values: a function URL answer carries them here, not among the headers. */
  readonly cookies?: string[];
}

/** The runtime's `awslambda.HttpResponseStream.from`, injectable so tests need no Lambda runtime. */
export type HttpResponseStreamFrom = (stream: Writable, prelude: ResponsePrelude) => Writable;

/** The invocation context fields the adapter reads. */
export interface StreamingContext {
  readonly awsRequestId?: string;
  getRemainingTimeInMillis?(): number;
}

export type StreamingHandler = (event: unknown, responseStream: Writable, context?: StreamingContext) => Promise<void>;

export interface BrokerStreamOptions {
  /** @default `awsServicesFromEnv()`, imported on first use */
  readonly build?: () => Promise<IssuerServices>;
  /** @default the Lambda runtime's global `awslambda.HttpResponseStream.from` */
  readonly from?: HttpResponseStreamFrom;
  /**
   * How long before the function's deadline the upstream call is aborted, so the answer is
   * ended by the broker rather than cut by the Lambda timeout.
   * @default 1000
   */
  readonly deadlineMarginMs?: number;
}

/** Headers the function URL sets itself: the streamed answer is framed (chunked) by Lambda, not by the upstream's length. */
const FRAMING_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer']);

// Unknown fields are kept (AWS adds fields over time); only what the adapter reads is checked.
const FunctionUrlEventSchema = z.object({
  rawPath: z.string(),
  rawQueryString: z.string().optional(),
  cookies: z.array(z.string()).nullish(),
  headers: z.record(z.string(), z.string()).nullish(),
  body: z.string().nullish(),
  isBase64Encoded: z.boolean().optional(),
  requestContext: z.object({
    requestId: z.string().min(1),
    http: z.object({ method: z.string().min(1), sourceIp: z.string().optional() }),
  }),
});

export type FunctionUrlEvent = z.infer<typeof FunctionUrlEventSchema>;

/** A function URL event (payload 2.0) as the broker's transport-neutral request. */
export function brokerRequestFromEvent(event: FunctionUrlEvent): BrokerRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event.headers ?? {})) headers[name.toLowerCase()] = value;
  const cookies = event.cookies ?? [];
  // A function URL passes cookies beside the headers (and, in captured events, as a `cookie`
  // header too). Either way the broker must see them: an agent's cookie is a credential it refuses.
  if (headers['cookie'] === undefined && cookies.length > 0) headers['cookie'] = cookies.join('; ');
  const query = event.rawQueryString ?? '';
  const raw = event.body ?? '';
  const body = raw === '' ? null : oneChunk(event.isBase64Encoded === true ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8'));
  const sourceIp = event.requestContext.http.sourceIp;
  return {
    requestId: event.requestContext.requestId,
    method: event.requestContext.http.method.toUpperCase(),
    target: query === '' ? event.rawPath : `${event.rawPath}?${query}`,
    headers,
    body,
    ...(sourceIp !== undefined && { sourceIp }),
  };
}

/** The answer's headers as a function URL prelude: framing left to Lambda, `set-cookie` moved to `cookies`, repeats joined. */
export function preludeOf(response: BrokerResponse): ResponsePrelude {
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (const [rawName, value] of Object.entries(response.headers)) {
    const name = rawName.toLowerCase();
    if (FRAMING_HEADERS.has(name)) continue;
    const values = typeof value === 'string' ? [value] : [...value];
    if (name === 'set-cookie') cookies.push(...values);
    else headers[name] = values.join(', ');
  }
  return { statusCode: response.status, headers, ...(cookies.length > 0 && { cookies }) };
}

/**
 * Turns a broker factory into a streaming Lambda handler (wrap it with `streamifyResponse`).
 * The runtime and the broker are built once per container, on the first request.
 *
 * @example
 * ```ts
 * export const handler = streamifyResponse(onAwsStreaming((runtime) => createBroker(runtime)));
 * ```
 */
export function onAwsStreaming(factory: (runtime: IssuerServices) => Broker, options: BrokerStreamOptions = {}): StreamingHandler {
  const build = options.build ?? (async () => (await import('../../bootstrap/aws/runtime.ts')).awsServicesFromEnv());
  const margin = options.deadlineMarginMs ?? 1000;
  let built: Promise<{ broker: Broker; log: Log }> | undefined;

  return async (event, responseStream, context) => {
    const from = options.from ?? lambdaHttpResponseStreamFrom();
    const parsed = FunctionUrlEventSchema.safeParse(event);
    const requestId = parsed.success ? parsed.data.requestContext.requestId : (context?.awsRequestId ?? 'unknown');

    built ??= build()
      .then((runtime) => ({ broker: factory(runtime), log: runtime.log }))
      .catch((error: unknown) => {
        // A failed start is not cached: the next request tries again.
        built = undefined;
        throw error;
      });
    let broker: Broker;
    let log: Log;
    try {
      ({ broker, log } = await built);
    } catch (error) {
      // The cause goes to the function's log (Powertools is not up: a JSON line by hand), never to the wire.
      console.error(JSON.stringify({ level: 'ERROR', message: 'broker runtime failed to start', requestId, error: error instanceof Error ? error.message : String(error) }));
      await send(responseStream, from, jsonAnswer(errorResponse(issuerUnavailable(error), requestId)), new AbortController(), null);
      return;
    }

    if (!parsed.success) {
      // Not a function URL request (a direct invocation with some other payload): a typed 400, never a 500.
      await send(responseStream, from, jsonAnswer(errorResponse(invalidRequest('event', 'the broker takes function URL requests only'), requestId)), new AbortController(), log);
      return;
    }

    const abort = new AbortController();
    // Lambda does not stop a streaming function when the client goes away, and cuts it at the
    // timeout: stop the upstream call a little before that, so the answer ends on our terms.
    const remaining = context?.getRemainingTimeInMillis?.();
    let deadlineReached = () => {};
    const pastDeadline = new Promise<void>((resolve) => (deadlineReached = resolve));
    const deadline =
      remaining === undefined
        ? undefined
        : setTimeout(() => {
            deadlineReached();
            abort.abort();
          }, Math.max(0, remaining - margin));
    deadline?.unref();
    try {
      let response: BrokerResponse;
      try {
        response = await broker.handle(brokerRequestFromEvent(parsed.data), abort.signal);
      } catch (error) {
        // The broker answers refusals itself; a throw is a failed dependency, and it fails closed.
        const closed = failClosed(error);
        if (closed.status >= 500) log.error('broker request failed closed', { requestId, error: describeError(error) });
        response = jsonAnswer(errorResponse(closed, requestId));
      }
      await send(responseStream, from, response, abort, log, requestId);
      // The record of a forwarded call is written once its answer has streamed. Lambda may
      // freeze the container as soon as this handler resolves, so wait for it (never past
      // the function's deadline).
      if (response.settled) await Promise.race([response.settled, pastDeadline]);
    } finally {
      if (deadline !== undefined) clearTimeout(deadline);
    }
  };
}

/**
 * `awslambda.streamifyResponse(handler)` in the Lambda runtime. Elsewhere (tests, the bundle
 * benchmark) the handler is returned as it is; inside Lambda a missing global is a broken
 * runtime and fails the cold start rather than answering as a buffered function.
 */
export function streamifyResponse(handler: StreamingHandler): StreamingHandler {
  const global = lambdaGlobal();
  if (global !== undefined) return global.streamifyResponse(handler);
  if (process.env['AWS_LAMBDA_FUNCTION_NAME'] !== undefined) {
    throw new Error('awslambda.streamifyResponse is missing: the broker needs a Node.js managed runtime with response streaming');
  }
  return handler;
}

interface LambdaGlobal {
  streamifyResponse(handler: StreamingHandler): StreamingHandler;
  readonly HttpResponseStream: { from(stream: Writable, prelude: ResponsePrelude): Writable };
}

function lambdaGlobal(): LambdaGlobal | undefined {
  // Through `unknown`: @types/aws-lambda declares the global with looser types than the runtime's.
  return (globalThis as unknown as { awslambda?: LambdaGlobal }).awslambda;
}

function lambdaHttpResponseStreamFrom(): HttpResponseStreamFrom {
  const global = lambdaGlobal();
  if (global === undefined) throw new Error('awslambda.HttpResponseStream is missing: pass `from` outside the Lambda runtime');
  return (stream, prelude) => global.HttpResponseStream.from(stream, prelude);
}

/**
 * Writes one answer: the prelude, then the body with backpressure, then the end. Never throws:
 * a failure to write (the client or Lambda's side of the stream went away) or a body that
 * breaks off aborts the upstream call and leaves the stream destroyed, never open.
 */
async function send(stream: Writable, from: HttpResponseStreamFrom, response: BrokerResponse, abort: AbortController, log: Log | null, requestId?: string): Promise<void> {
  let out: Writable = stream;
  try {
    out = from(stream, preludeOf(response));
    // The prelude (status and headers) is written before the first write(), never on end().
    out.write('');
    if (response.body === null) {
      out.end();
      await finished(out);
    } else {
      await pipeline(response.body, out);
    }
  } catch (error) {
    abort.abort();
    // A body never read (the prelude failed) is given back, so the broker ends its call.
    void response.body?.[Symbol.asyncIterator]().return?.()?.catch(() => {});
    if (!out.destroyed) out.destroy();
    if (!stream.destroyed) stream.destroy();
    // Name and code only: a message from deep in a socket could quote more than it should.
    const described = describeError(error);
    log?.warn('broker answer cut off while streaming', { requestId, status: response.status, error: { name: described['name'], code: described['code'] } });
  }
}

function jsonAnswer(result: { statusCode: number; headers: Record<string, string>; body: string }): BrokerResponse {
  return { status: result.statusCode, headers: result.headers, body: oneChunk(Buffer.from(result.body, 'utf8')) };
}

function oneChunk(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  return Readable.from([bytes]);
}
