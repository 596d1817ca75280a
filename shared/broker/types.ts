/**
 * The broker's transport-neutral shape (issue 6). The local server hands it the raw Node
 * request; the broker Lambda (a response-streaming function URL) hands it its event. Either
 * way the broker sees the request target exactly as sent, before any normalization, so a dot
 * segment or an encoded slash is refused rather than resolved.
 */

export interface BrokerRequest {
  /** Ties the answer, the log lines and the audit record together. */
  readonly requestId: string;
  /** Upper case. */
  readonly method: string;
  /**
   * The request target exactly as received: `/v1/proxy/<provider>/<path>?<query>`. Anything
   * else (an absolute URL, `*`) is refused.
   */
  readonly target: string;
  /** Header names in lower case; a repeated header as an array (or joined with `, `). */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  /** The body as it arrives, streamed; `null` when the request has none. */
  readonly body: AsyncIterable<Uint8Array> | null;
  readonly sourceIp?: string;
}

export interface BrokerResponse {
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string | readonly string[]>>;
  /** The upstream's answer streamed through, or a typed JSON error; `null` for none (HEAD, 204). */
  readonly body: AsyncIterable<Uint8Array> | null;
  /**
   * For a forwarded call: resolves (never rejects) once the call's audit record is durable,
   * after the body has been read to its end or given back. A transport whose process may be
   * frozen once the answer is sent (Lambda) waits for it. Absent on refusals, which are on
   * record before they are answered.
   */
  readonly settled?: Promise<void>;
}

export interface Broker {
  /**
   * Answers one proxied request. Never throws for a refusal: every refusal is a typed JSON
   * error response. `signal` aborts the upstream call when the caller goes away.
   */
  handle(request: BrokerRequest, signal?: AbortSignal): Promise<BrokerResponse>;
}

/** Where proxied requests come in: `ANY /v1/proxy/{provider}/{path+}`. */
export const PROXY_PREFIX = '/v1/proxy/';
