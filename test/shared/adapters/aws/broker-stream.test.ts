/**
 * The function URL ↔ broker adapter, without a Lambda runtime: a fake response stream (a
 * Writable collecting chunks) and a fake `HttpResponseStream.from` that, like the runtime's,
 * sends the prelude only on the first write(). The broker is a small echo fake, so these tests
 * do not depend on the broker core.
 */
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  brokerRequestFromEvent,
  onAwsStreaming,
  streamifyResponse,
  type FunctionUrlEvent,
  type StreamingHandler,
} from '../../../../shared/adapters/aws/broker-stream.ts';
import type { Broker, BrokerRequest, BrokerResponse } from '../../../../shared/broker/types.ts';
import type { Log } from '../../../../shared/ports/log.ts';
import type { IssuerServices } from '../../../../shared/ports/services.ts';
import { Sink, from } from '../../../helpers/lambda-stream.ts';

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl';

/** A function URL event as Lambda builds it (shape of a captured event: rawPath encoded, http.path decoded). */
function urlEvent(overrides: Partial<FunctionUrlEvent> & Record<string, unknown> = {}): FunctionUrlEvent & Record<string, unknown> {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: '/v1/proxy/stripe/v1/charges',
    rawQueryString: 'limit=3',
    headers: { host: 'abc.lambda-url.eu-west-1.on.aws', authorization: `Bearer ${TOKEN}`, 'x-forwarded-for': '198.51.100.7' },
    requestContext: {
      requestId: 'req-1',
      http: { method: 'GET', path: '/v1/proxy/stripe/v1/charges', protocol: 'HTTP/1.1', sourceIp: '198.51.100.7', userAgent: 'agent' },
    },
    isBase64Encoded: false,
    ...overrides,
  } as FunctionUrlEvent & Record<string, unknown>;
}

function chunks(...parts: (string | Uint8Array)[]): AsyncIterable<Uint8Array> {
  return Readable.from(parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : part)));
}

/** One turn of the event loop, as between two reads of an upstream socket. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

async function readAll(body: AsyncIterable<Uint8Array> | null): Promise<Buffer | null> {
  if (body === null) return null;
  const parts: Uint8Array[] = [];
  for await (const part of body) parts.push(part);
  return Buffer.concat(parts);
}

/** A broker that records what it was handed and answers with `answer` (by default an echo of the request). */
class FakeBroker implements Broker {
  readonly requests: { request: BrokerRequest; body: Buffer | null; signal: AbortSignal | undefined }[] = [];
  private readonly answer: ((request: BrokerRequest, signal?: AbortSignal) => Promise<BrokerResponse>) | undefined;
  constructor(answer?: (request: BrokerRequest, signal?: AbortSignal) => Promise<BrokerResponse>) {
    this.answer = answer;
  }

  async handle(request: BrokerRequest, signal?: AbortSignal): Promise<BrokerResponse> {
    if (this.answer) {
      this.requests.push({ request, body: null, signal });
      return this.answer(request, signal);
    }
    const body = await readAll(request.body);
    this.requests.push({ request, body, signal });
    return { status: 200, headers: { 'content-type': 'text/plain' }, body: chunks(`echo ${request.method} ${request.target}`) };
  }
}

interface Logged {
  readonly level: string;
  readonly message: string;
  readonly extra?: Record<string, unknown>;
}

function harness(broker: Broker, options: { deadlineMarginMs?: number } = {}) {
  const logged: Logged[] = [];
  const log: Log = {
    info: (message, extra) => logged.push({ level: 'info', message, ...(extra && { extra }) }),
    warn: (message, extra) => logged.push({ level: 'warn', message, ...(extra && { extra }) }),
    error: (message, extra) => logged.push({ level: 'error', message, ...(extra && { extra }) }),
  };
  let builds = 0;
  let factories = 0;
  const handler = onAwsStreaming(
    () => {
      factories += 1;
      return broker;
    },
    {
      build: () => {
        builds += 1;
        return Promise.resolve({ log } as IssuerServices);
      },
      from,
      ...options,
    },
  );
  return { handler, logged, counts: () => ({ builds, factories }) };
}

async function invoke(handler: StreamingHandler, event: unknown, sink = new Sink(), context?: Parameters<StreamingHandler>[2]): Promise<Sink> {
  await handler(event, sink, context);
  return sink;
}

describe('Function: brokerRequestFromEvent', () => {
  it('takes the target from rawPath and rawQueryString exactly as sent, never the decoded http.path', () => {
    // Prepare: what a function URL delivers for /v1/proxy/stripe/a%2Fb/%2e%2e/c?x=%2F (rawPath stays encoded).
    const event = urlEvent({
      rawPath: '/v1/proxy/stripe/a%2Fb/%2e%2e/c',
      rawQueryString: 'x=%2F&y=1',
      requestContext: { requestId: 'req-enc', http: { method: 'get', sourceIp: '203.0.113.9' } },
    });
    (event.requestContext.http as Record<string, unknown>)['path'] = '/v1/proxy/stripe/a/b/../c';

    // Act
    const request = brokerRequestFromEvent(event);

    // Assess
    expect(request.target).toBe('/v1/proxy/stripe/a%2Fb/%2e%2e/c?x=%2F&y=1');
    expect(request.method).toBe('GET');
    expect(request.requestId).toBe('req-enc');
    expect(request.sourceIp).toBe('203.0.113.9');
  });

  it('leaves out the question mark when there is no query', () => {
    expect(brokerRequestFromEvent(urlEvent({ rawQueryString: '' })).target).toBe('/v1/proxy/stripe/v1/charges');
    expect(brokerRequestFromEvent(urlEvent({ rawQueryString: undefined })).target).toBe('/v1/proxy/stripe/v1/charges');
  });

  it('lower-cases header names and keeps their values', () => {
    const request = brokerRequestFromEvent(urlEvent({ headers: { 'Content-Type': 'application/json', 'X-Repeated': 'one,two' } }));

    expect(request.headers).toEqual({ 'content-type': 'application/json', 'x-repeated': 'one,two' });
  });

  it('surfaces the cookies array as a cookie header, so the broker can refuse it', () => {
    const request = brokerRequestFromEvent(urlEvent({ headers: { host: 'h' }, cookies: ['session=abc', 'theme=dark'] }));

    expect(request.headers['cookie']).toBe('session=abc; theme=dark');
  });

  it('keeps a cookie header that came with the cookies array as it is', () => {
    const request = brokerRequestFromEvent(urlEvent({ headers: { cookie: 'session=abc; theme=dark' }, cookies: ['session=abc', 'theme=dark'] }));

    expect(request.headers['cookie']).toBe('session=abc; theme=dark');
  });

  it('decodes a base64 body to its bytes, as one chunk', async () => {
    // Prepare: bytes that are not UTF-8, as Lambda sends a binary body.
    const bytes = Buffer.from([0x00, 0xff, 0xfe, 0x41, 0x0a]);

    // Act
    const request = brokerRequestFromEvent(urlEvent({ body: bytes.toString('base64'), isBase64Encoded: true }));

    // Assess
    const parts: Uint8Array[] = [];
    for await (const part of request.body!) parts.push(part);
    expect(parts).toHaveLength(1);
    expect(Buffer.from(parts[0]!).equals(bytes)).toBe(true);
  });

  it('reads a text body as UTF-8, and an absent or empty body as none', async () => {
    expect((await readAll(brokerRequestFromEvent(urlEvent({ body: '{"amount":"λ"}' })).body))?.toString('utf8')).toBe('{"amount":"λ"}');
    expect(brokerRequestFromEvent(urlEvent({ body: undefined })).body).toBeNull();
    expect(brokerRequestFromEvent(urlEvent({ body: '' })).body).toBeNull();
  });
});

describe('Function: onAwsStreaming', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  describe('when the broker answers', () => {
    it('writes status and headers as the prelude, then the body, then ends the stream', async () => {
      // Prepare
      const broker = new FakeBroker(() =>
        Promise.resolve({
          status: 207,
          headers: { 'content-type': 'application/json', 'x-request-id': 'up-1', vary: ['accept', 'origin'], 'set-cookie': ['a=1; Secure', 'b=2'], 'content-length': '11', 'transfer-encoding': 'chunked' },
          body: chunks('{"ok"', ':true}'),
        }),
      );
      const { handler } = harness(broker);

      // Act
      const sink = await invoke(handler, urlEvent());

      // Assess
      expect(sink.events[0]).toEqual({
        prelude: {
          statusCode: 207,
          headers: { 'content-type': 'application/json', 'x-request-id': 'up-1', vary: 'accept, origin' },
          cookies: ['a=1; Secure', 'b=2'],
        },
      });
      expect(sink.body.toString()).toBe('{"ok":true}');
      expect(sink.writableFinished).toBe(true);
      expect(sink.errored).toBeNull();
    });

    it('hands the broker the request the function URL received, with an abort signal', async () => {
      // Prepare
      const broker = new FakeBroker();
      const { handler } = harness(broker);

      // Act
      const sink = await invoke(handler, urlEvent({ rawPath: '/v1/proxy/stripe/v1/charges/ch_1', body: Buffer.from('amount=5').toString('base64'), isBase64Encoded: true, cookies: ['s=1'] }));

      // Assess
      expect(broker.requests).toHaveLength(1);
      const [seen] = broker.requests;
      expect(seen!.request).toMatchObject({ requestId: 'req-1', method: 'GET', target: '/v1/proxy/stripe/v1/charges/ch_1?limit=3', sourceIp: '198.51.100.7' });
      expect(seen!.request.headers).toMatchObject({ authorization: `Bearer ${TOKEN}`, cookie: 's=1' });
      expect(seen!.body?.toString()).toBe('amount=5');
      expect(seen!.signal).toBeInstanceOf(AbortSignal);
      expect(seen!.signal!.aborted).toBe(false);
      expect(sink.body.toString()).toBe('echo GET /v1/proxy/stripe/v1/charges/ch_1?limit=3');
    });

    it('sends the prelude and ends the stream for an answer without a body (HEAD, 204)', async () => {
      // Prepare
      const { handler } = harness(new FakeBroker(() => Promise.resolve({ status: 204, headers: { 'x-upstream': 'yes' }, body: null })));

      // Act
      const sink = await invoke(handler, urlEvent({ requestContext: { requestId: 'req-h', http: { method: 'HEAD', sourceIp: '198.51.100.7' } } }));

      // Assess: without the empty write the runtime would answer 200 with none of these headers.
      expect(sink.prelude).toEqual({ statusCode: 204, headers: { 'x-upstream': 'yes' } });
      expect(sink.body.length).toBe(0);
      expect(sink.writableFinished).toBe(true);
    });

    it('streams a large body chunk by chunk, the producer held back by the stream (backpressure)', async () => {
      // Prepare: 64 chunks of 64 KiB, produced as fast as asked for, into a slower stream that buffers 16 KiB.
      const chunkSize = 64 * 1024;
      const count = 64;
      let produced = 0;
      let maxAhead = 0;
      const sink = new Sink({ highWaterMark: 16 * 1024, slow: true });
      const body: AsyncIterable<Uint8Array> = {
        async *[Symbol.asyncIterator]() {
          for (let i = 0; i < count; i += 1) {
            const written = sink.events.filter((e) => 'chunk' in e).length;
            maxAhead = Math.max(maxAhead, produced - written);
            produced += 1;
            await Promise.resolve();
            yield Buffer.alloc(chunkSize, i);
          }
        },
      };
      const { handler } = harness(new FakeBroker(() => Promise.resolve({ status: 200, headers: { 'content-type': 'application/octet-stream' }, body })));

      // Act
      await invoke(handler, urlEvent(), sink);

      // Assess: every chunk written on its own, in order, and never more than a couple ahead of the consumer.
      const written = sink.events.flatMap((e) => ('chunk' in e ? [e.chunk] : []));
      expect(written).toHaveLength(count);
      written.forEach((chunk, i) => {
        expect(chunk.length).toBe(chunkSize);
        expect(chunk[0]).toBe(i);
      });
      expect(maxAhead).toBeLessThanOrEqual(2);
      expect(sink.writableFinished).toBe(true);
    });
  });

  describe('when streaming the answer fails', () => {
    it('aborts the upstream call and destroys the stream when writing fails', async () => {
      // Prepare: the stream fails on its second body write; the body would go on for much longer.
      let signal: AbortSignal | undefined;
      let closedUpstream = false;
      let yielded = 0;
      const body: AsyncIterable<Uint8Array> = {
        async *[Symbol.asyncIterator]() {
          try {
            for (let i = 0; i < 1000; i += 1) {
              yielded += 1;
              await tick();
              yield Buffer.alloc(1024, 1);
            }
          } finally {
            closedUpstream = true;
          }
        },
      };
      const broker = new FakeBroker((_request, s) => {
        signal = s;
        return Promise.resolve({ status: 200, headers: {}, body });
      });
      const { handler, logged } = harness(broker);

      // Act
      const sink = await invoke(handler, urlEvent(), new Sink({ failAfterWrites: 2 }));

      // Assess
      expect(signal?.aborted).toBe(true);
      expect(closedUpstream).toBe(true);
      expect(yielded).toBeLessThan(1000);
      expect(sink.destroyed).toBe(true);
      expect(sink.writableFinished).toBe(false);
      expect(logged).toEqual([{ level: 'warn', message: 'broker answer cut off while streaming', extra: { requestId: 'req-1', status: 200, error: { name: 'Error', code: undefined } } }]);
    });

    it('destroys the stream rather than ending it when the body breaks off, so the cut is visible', async () => {
      // Prepare: the upstream resets after the first chunk.
      let signal: AbortSignal | undefined;
      const body: AsyncIterable<Uint8Array> = {
        async *[Symbol.asyncIterator]() {
          yield Buffer.from('{"partial":');
          await tick();
          throw Object.assign(new Error(`read ECONNRESET Bearer ${TOKEN}`), { code: 'ECONNRESET' });
        },
      };
      const { handler, logged } = harness(new FakeBroker((_r, s) => {
        signal = s;
        return Promise.resolve({ status: 200, headers: { 'content-type': 'application/json' }, body });
      }));

      // Act
      const sink = await invoke(handler, urlEvent());

      // Assess
      expect(sink.prelude?.statusCode).toBe(200);
      // Whatever reached the stream is a prefix of what the upstream sent: nothing made up, nothing reordered.
      expect('{"partial":'.startsWith(sink.body.toString())).toBe(true);
      expect(sink.destroyed).toBe(true);
      expect(sink.writableFinished).toBe(false);
      expect(signal?.aborted).toBe(true);
      expect(logged).toHaveLength(1);
      expect(logged[0]!.extra).toEqual({ requestId: 'req-1', status: 200, error: { name: 'Error', code: 'ECONNRESET' } });
      expect(JSON.stringify(logged)).not.toContain(TOKEN);
    });

    it('aborts the upstream call shortly before the function deadline', async () => {
      // Prepare: 1.05 s left, margin 1 s: the broker's upstream call is aborted ~50 ms in.
      const started = Date.now();
      const { handler } = harness(
        new FakeBroker(
          (_request, signal) =>
            new Promise((resolve) => {
              signal!.addEventListener('abort', () => resolve({ status: 504, headers: { 'content-type': 'application/json' }, body: chunks('{"error":{"code":"upstream_timeout"}}') }));
            }),
        ),
      );

      // Act
      const sink = await invoke(handler, urlEvent(), new Sink(), { awsRequestId: 'aws-1', getRemainingTimeInMillis: () => 1050 });

      // Assess
      expect(Date.now() - started).toBeLessThan(900);
      expect(sink.prelude?.statusCode).toBe(504);
      expect(sink.writableFinished).toBe(true);
    });
  });

  describe('when something other than a refusal goes wrong', () => {
    it('answers 503 issuer_unavailable as typed JSON when the runtime cannot start, and tries again on the next request', async () => {
      // Prepare
      const consoleError = vi.spyOn(console, 'error').mockImplementation(() => {});
      let attempts = 0;
      const handler = onAwsStreaming(() => new FakeBroker(), {
        build: () => (++attempts === 1 ? Promise.reject(new Error('environment variable LANYARD_TABLE is required')) : Promise.resolve({ log: { info() {}, warn() {}, error() {} } } as unknown as IssuerServices)),
        from,
      });

      // Act
      const first = await invoke(handler, urlEvent());
      const second = await invoke(handler, urlEvent());

      // Assess
      expect(first.prelude).toEqual({
        statusCode: 503,
        headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'retry-after': '1' },
      });
      const answer = JSON.parse(first.body.toString());
      expect(answer).toEqual({ error: { code: 'issuer_unavailable', message: expect.any(String), retryable: true, requestId: 'req-1' } });
      expect(first.body.toString()).not.toContain('LANYARD_TABLE');
      expect(first.writableFinished).toBe(true);
      expect(second.prelude?.statusCode).toBe(200);
      expect(attempts).toBe(2);
      // The cause is logged, the caller's token is not.
      expect(consoleError).toHaveBeenCalledTimes(1);
      expect(String(consoleError.mock.calls[0]![0])).toContain('LANYARD_TABLE');
      expect(String(consoleError.mock.calls[0]![0])).not.toContain(TOKEN);
    });

    it('builds the runtime and the broker once for every later request of the container', async () => {
      const { handler, counts } = harness(new FakeBroker());

      const sinks = await Promise.all([invoke(handler, urlEvent()), invoke(handler, urlEvent()), invoke(handler, urlEvent())]);

      expect(counts()).toEqual({ builds: 1, factories: 1 });
      for (const sink of sinks) expect(sink.prelude?.statusCode).toBe(200);
    });

    it('answers 503 issuer_unavailable, never a 500, when the broker throws, and logs no token', async () => {
      // Prepare
      const { handler, logged } = harness(new FakeBroker(() => Promise.reject(new Error('DynamoDB ProvisionedThroughputExceeded'))));

      // Act
      const sink = await invoke(handler, urlEvent());

      // Assess
      expect(sink.prelude?.statusCode).toBe(503);
      expect(JSON.parse(sink.body.toString()).error).toMatchObject({ code: 'issuer_unavailable', retryable: true, requestId: 'req-1' });
      expect(sink.body.toString()).not.toContain('DynamoDB');
      expect(logged.map((l) => [l.level, l.message, l.extra?.['requestId']])).toEqual([['error', 'broker request failed closed', 'req-1']]);
      expect(JSON.stringify(logged)).not.toContain(TOKEN);
    });

    it.each([
      ['a direct invocation payload', { command: 'tool.list' }],
      ['an event without a method', { rawPath: '/v1/proxy/x/y', requestContext: { requestId: 'r', http: {} } }],
      ['nothing at all', null],
    ])('answers %s with 400 invalid_request as typed JSON', async (_name, event) => {
      // Prepare
      const broker = new FakeBroker();
      const { handler } = harness(broker);

      // Act
      const sink = await invoke(handler, event, new Sink(), { awsRequestId: 'aws-req-7' });

      // Assess
      expect(sink.prelude?.statusCode).toBe(400);
      expect(JSON.parse(sink.body.toString()).error).toMatchObject({ code: 'invalid_request', field: 'event', retryable: false, requestId: 'aws-req-7' });
      expect(broker.requests).toHaveLength(0);
      expect(sink.writableFinished).toBe(true);
    });
  });
});

describe('Function: streamifyResponse', () => {
  afterEach(() => {
    delete (globalThis as { awslambda?: unknown }).awslambda;
    vi.unstubAllEnvs();
  });

  it('returns the handler itself outside the Lambda runtime', () => {
    const handler: StreamingHandler = () => Promise.resolve();

    expect(streamifyResponse(handler)).toBe(handler);
  });

  it('wraps the handler with the runtime global when there is one', () => {
    // Prepare
    const wrapped: StreamingHandler = () => Promise.resolve();
    const seen: StreamingHandler[] = [];
    (globalThis as { awslambda?: unknown }).awslambda = {
      streamifyResponse: (h: StreamingHandler) => {
        seen.push(h);
        return wrapped;
      },
    };
    const handler: StreamingHandler = () => Promise.resolve();

    // Act and assess
    expect(streamifyResponse(handler)).toBe(wrapped);
    expect(seen).toEqual([handler]);
  });

  it('fails the cold start inside Lambda when the runtime has no streaming global', () => {
    vi.stubEnv('AWS_LAMBDA_FUNCTION_NAME', 'Lanyard-BrokerFunction');

    expect(() => streamifyResponse(() => Promise.resolve())).toThrow(/awslambda\.streamifyResponse is missing/);
  });
});
