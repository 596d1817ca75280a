/**
 * The broker's relay: an admitted call (admission.ts) sent to the provider with the key
 * injected, its answer checked, then streamed back masked, with the call put on record once
 * the stream ends however it ends. Each function below decides one thing.
 */
import { LanyardError } from '../domain/errors.ts';
import { describeError } from '../ports/log.ts';
import type { Admitted, QuotaTaken } from './admission.ts';
import { callRecord, type BrokerContext, type CallDraft } from './call.ts';
import { agentResponseHeaders, unreadableCoding, upstreamRequestHeaders } from './headers.ts';
import { SecretRedactor } from './redact.ts';
import { upstreamUrl } from './target.ts';
import type { BrokerRequest, BrokerResponse } from './types.ts';
import { callUpstream, type UpstreamExchange } from './upstream.ts';
import { unitsFromHeaders, UnitsCollector } from './units.ts';

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024;

/** Sends the call, checks the answer, and streams it back (the call's record follows the stream). */
export async function relay(ctx: BrokerContext, request: BrokerRequest, call: Admitted, draft: CallDraft, started: number, signal?: AbortSignal): Promise<BrokerResponse> {
  const exchange = await forward(ctx, request, call, draft, signal);
  const status = exchange.response.statusCode ?? 502;
  draft.proxy.status = status;
  draft.proxy.bytesIn = exchange.bytesIn();
  checkKeyAccepted(ctx, exchange, status, call);
  const maxResponseBytes = checkAnswerRelayable(exchange, request.method, status, call);
  return streamAnswer(ctx, request, exchange, status, maxResponseBytes, call, draft, started);
}

/**
 * Sends the request to the provider's base URL with the key injected (header or query
 * parameter). From here on the call happened: it is `proxied` on record whatever comes of it.
 * A probe whose request could not be sent is released.
 */
async function forward(ctx: BrokerContext, request: BrokerRequest, call: Admitted, draft: CallDraft, signal?: AbortSignal): Promise<UpstreamExchange> {
  const { upstream, secret } = call;
  const url = upstreamUrl(upstream.baseUrl, call.target, 'query' in upstream.key ? `${encodeURIComponent(upstream.key.query)}=${encodeURIComponent(secret)}` : undefined);
  draft.forwarded = true;
  try {
    return await callUpstream(
      {
        url,
        method: request.method,
        headers: upstreamRequestHeaders(request.headers, upstream, url.host, secret, request.requestId),
        body: request.body,
        maxRequestBytes: call.maxRequestBytes,
        timeoutMs: upstream.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        ...(signal && { signal }),
      },
      ctx.agents,
    );
  } catch (error) {
    if (call.circuit.probe) ctx.circuits.release(call.circuit.key, call.circuit.caller);
    throw error;
  }
}

/**
 * Decides whether the upstream accepted the broker's key: a 401 (the key is bad) counts
 * towards opening the circuit; a 403 (this request made with it) does not. Either way the
 * answer is `upstream_auth_failed` and its body, which may quote the key back, is dropped with
 * the connection (draining it after the deadline is cleared would have no end).
 */
function checkKeyAccepted(ctx: BrokerContext, exchange: UpstreamExchange, status: number, call: Admitted): void {
  const { circuit, tool, keyRef, claims } = call;
  if (status !== 401 && status !== 403) {
    ctx.circuits.success(circuit.key);
    return;
  }
  exchange.response.resume();
  exchange.abort();
  if (status === 401) {
    const opened = ctx.circuits.failure(circuit.key, circuit.caller);
    if (opened === 'provider') ctx.deps.log.warn('upstream refused the broker key; circuit open for every lane', { provider: tool.id, secretVersion: keyRef.version });
    if (opened === 'lane') ctx.deps.log.warn("upstream refused the broker key on one lane's calls; circuit open for that lane", { provider: tool.id, secretVersion: keyRef.version, lane: claims.lane });
  } else {
    ctx.circuits.success(circuit.key);
  }
  const refused = status === 401 ? "the broker's key" : "this request made with the broker's key";
  throw new LanyardError('upstream_auth_failed', `the upstream refused ${refused} for ${tool.id} (HTTP ${status}); your credential is fine`, {
    context: { provider: tool.id, upstreamStatus: status },
  });
}

/**
 * Decides whether the answer can be passed on: a declared length within the response limit,
 * and a body the broker can read to mask its key. The broker asked for identity coding: a
 * compressed answer is refused rather than passed on unread; an answer without a body has
 * nothing to hide. Returns the response limit the stream is held to.
 */
function checkAnswerRelayable(exchange: UpstreamExchange, method: string, status: number, call: Admitted): number {
  const { response } = exchange;
  const maxResponseBytes = call.upstream.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const declaredOut = Number(response.headers['content-length'] ?? 0);
  if (declaredOut > maxResponseBytes) {
    exchange.abort();
    response.resume();
    throw new LanyardError('upstream_failed', `the upstream answer is over ${maxResponseBytes} bytes`, { context: { maxBytes: maxResponseBytes } });
  }
  const coding = unreadableCoding(response.headers);
  if (coding !== undefined && method !== 'HEAD' && status !== 204 && status !== 304) {
    exchange.abort();
    response.resume();
    throw new LanyardError('upstream_failed', `the upstream answered with ${coding} coding although the broker asked for identity; the broker reads every answer to mask its key`, {
      context: { provider: call.tool.id },
    });
  }
  return maxResponseBytes;
}

/**
 * The answer streamed back: every chunk counted against the response limit, fed to the units
 * collector and masked (an upstream may quote the key back: a 404 naming the URL, an echo).
 * The call goes on record once the stream ends, however it ends: read to the end, cut, or given
 * back (`return()`/`throw()`) before its first chunk, which would skip an async generator's
 * `finally`. `settled` says when the record is durable.
 */
function streamAnswer(
  ctx: BrokerContext,
  request: BrokerRequest,
  exchange: UpstreamExchange,
  status: number,
  maxResponseBytes: number,
  call: Admitted,
  draft: CallDraft,
  started: number,
): BrokerResponse {
  const { response } = exchange;
  const { upstream, secret } = call;
  const headerUnits = upstream.units?.header ? unitsFromHeaders(response.headers, upstream.units.header) : undefined;
  const collector = upstream.units?.json ? new UnitsCollector(upstream.units.json, response.headers['content-type']) : undefined;

  let recorded!: () => void;
  const settled = new Promise<void>((resolve) => (recorded = resolve));
  let finalized = false;
  const finalize = (completed: boolean, outcome: string): void => {
    if (finalized) return;
    finalized = true;
    if (completed) exchange.done();
    else exchange.abort();
    draft.proxy.bytesIn = exchange.bytesIn();
    const units = headerUnits ?? (completed ? collector?.units() : undefined);
    if (units !== undefined) draft.proxy.units = units;
    draft.proxy.durationMs = ctx.deps.clock.now() - started;
    void settle(ctx, draft, call.quota, outcome).then(recorded);
  };

  const redactor = new SecretRedactor(secret);
  const chunks = async function* (): AsyncGenerator<Uint8Array> {
    let outcome = 'forwarded';
    let completed = false;
    try {
      for await (const chunk of response as AsyncIterable<Buffer>) {
        draft.proxy.bytesOut += chunk.length;
        if (draft.proxy.bytesOut > maxResponseBytes) {
          outcome = 'upstream_failed';
          throw new Error('the upstream answer outgrew the response limit');
        }
        collector?.push(chunk);
        const safe = redactor.push(chunk);
        if (safe.length > 0) yield safe;
      }
      const rest = redactor.end();
      if (rest.length > 0) yield rest;
      completed = true;
    } catch (error) {
      if (outcome === 'forwarded') outcome = exchange.timedOut() ? 'upstream_timeout' : 'upstream_failed';
      throw error;
    } finally {
      finalize(completed, completed || outcome !== 'forwarded' ? outcome : 'client_closed');
    }
  };
  return {
    status,
    headers: agentResponseHeaders(response.headers, request.requestId, secret),
    body: finalizedOnGiveBack(chunks(), () => finalize(false, 'client_closed')),
    settled,
  };
}

/** The generator as an iterable whose `return()`/`throw()` before the first chunk still ends the call (a generator not begun skips its `finally`). */
function finalizedOnGiveBack(generator: AsyncGenerator<Uint8Array>, givenBack: () => void): AsyncIterable<Uint8Array> {
  let begun = false;
  const iterator: AsyncIterator<Uint8Array> = {
    next: () => {
      begun = true;
      return generator.next();
    },
    return: (value?: unknown) => {
      if (!begun) givenBack();
      return generator.return(value);
    },
    throw: (error?: unknown) => {
      if (!begun) givenBack();
      return generator.throw(error);
    },
  };
  return { [Symbol.asyncIterator]: () => iterator };
}

/** After the answer streamed: units into the bucket, the call into the audit. Nothing to fail closed for any more. */
async function settle(ctx: BrokerContext, draft: CallDraft, quota: QuotaTaken | undefined, outcome: string): Promise<void> {
  const units = draft.proxy.units;
  try {
    if (quota && units !== undefined && units > 0) await ctx.deps.store.addQuotaUnits(quota.policy.bucket, quota.window, units);
    await ctx.deps.decisions.append(callRecord(draft, 'proxied', outcome));
  } catch (error) {
    ctx.deps.log.error('recording a proxied call failed', { requestId: draft.record.requestId, error: describeError(error) });
  }
}
