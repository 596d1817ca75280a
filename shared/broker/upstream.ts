/**
 * One call to an upstream over `node:http`/`node:https`, streamed both ways. `fetch` is not
 * used on purpose: it decodes compressed bodies and hides the raw exchange, and the broker
 * passes bytes through exactly as the upstream sent them. One deadline (`timeoutMs`) covers
 * the whole exchange, from connecting to the last byte of the answer; the request body is
 * counted as it streams and cut off at `maxRequestBytes`.
 */
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { LanyardError } from '../domain/errors.ts';

export interface UpstreamCall {
  readonly url: URL;
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: AsyncIterable<Uint8Array> | null;
  readonly maxRequestBytes: number;
  readonly timeoutMs: number;
  /** The caller went away: stop the upstream call too. */
  readonly signal?: AbortSignal;
}

export interface UpstreamExchange {
  readonly response: IncomingMessage;
  /** Request body bytes sent so far. */
  bytesIn(): number;
  /** Whether the deadline passed (the answer was cut off by the timeout). */
  timedOut(): boolean;
  /** Stops the exchange (a relay that gives up early). */
  abort(): void;
  /** Releases the deadline once the answer has been read to its end. */
  done(): void;
}

export interface UpstreamAgents {
  readonly http: http.Agent;
  readonly https: https.Agent;
}

/** Keep-alive pools: a broker talks to few hosts, many times. */
export function upstreamAgents(): UpstreamAgents {
  return {
    http: new http.Agent({ keepAlive: true, maxSockets: 256 }),
    https: new https.Agent({ keepAlive: true, maxSockets: 256 }),
  };
}

class Deadline extends Error {
  override readonly name = 'Deadline';
}

export async function callUpstream(call: UpstreamCall, agents: UpstreamAgents): Promise<UpstreamExchange> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Deadline('the upstream did not answer in time'));
  }, call.timeoutMs);
  const onCallerGone = () => controller.abort(call.signal?.reason);
  call.signal?.addEventListener('abort', onCallerGone, { once: true });
  const finish = () => {
    clearTimeout(timer);
    call.signal?.removeEventListener('abort', onCallerGone);
  };

  const secure = call.url.protocol === 'https:';
  const request = (secure ? https : http).request(call.url, {
    method: call.method,
    headers: call.headers,
    agent: secure ? agents.https : agents.http,
    signal: controller.signal,
  });
  let sent = 0;
  let tooLarge = false;
  let bodySent = false;

  const responded = new Promise<IncomingMessage>((resolve, reject) => {
    request.once('response', resolve);
    request.once('error', reject);
  });
  const sending = (async () => {
    if (call.body) {
      for await (const chunk of call.body) {
        if (controller.signal.aborted) return;
        sent += chunk.length;
        if (sent > call.maxRequestBytes) {
          tooLarge = true;
          controller.abort();
          return;
        }
        if (!request.write(chunk)) await once(request, 'drain', { signal: controller.signal });
      }
    }
    request.end();
    bodySent = true;
  })();

  try {
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      responded.then(resolve, reject);
      sending.then(() => (tooLarge ? reject(new Error('request body too large')) : undefined), reject);
    });
    // A body still streaming when the answer came (an early 4xx) is cut when the answer ends.
    sending.catch(() => controller.abort());
    return {
      response,
      bytesIn: () => sent,
      timedOut: () => timedOut,
      abort: () => {
        controller.abort();
        finish();
      },
      done: () => {
        finish();
        // The answer is whole but the agent is still sending (an early answer): cut the
        // upload, or an agent that drips its body holds the upstream connection with no deadline.
        if (!bodySent) controller.abort();
      },
    };
  } catch (error) {
    finish();
    controller.abort();
    responded.catch(() => {});
    sending.catch(() => {});
    if (tooLarge) {
      throw new LanyardError('request_too_large', `the body is over ${call.maxRequestBytes} bytes`, { context: { maxBytes: call.maxRequestBytes } });
    }
    if (timedOut) throw new LanyardError('upstream_timeout', `the upstream did not answer within ${call.timeoutMs} ms`, { retryAfter: 1, context: { timeoutMs: call.timeoutMs } });
    throw new LanyardError('upstream_failed', 'the upstream could not be reached or broke off the exchange', { cause: error, retryAfter: 1 });
  }
}
