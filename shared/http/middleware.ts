/**
 * middy middlewares, one concern each: the JSON body (type, size, syntax) and the mapping of
 * every error to its HTTP answer. A foreign error is a failed dependency: the issuer fails
 * closed with 503 `issuer_unavailable`, and the cause goes to the log, never to the wire.
 */
import type { MiddlewareObj } from '@middy/core';
import { LanyardError, failClosed, invalidRequest } from '../domain/errors.ts';
import { describeError, type Log } from '../ports/log.ts';
import { errorResponse } from './responses.ts';
import type { HttpEvent, HttpResult } from './types.ts';

export type ParsedEvent = HttpEvent & { parsedBody?: unknown };

/** An API Gateway HTTP API event (payload 2.0), as opposed to a direct invocation's payload. */
export function isHttpEvent(event: unknown): event is HttpEvent {
  return typeof event === 'object' && event !== null && typeof (event as { requestContext?: { http?: unknown } }).requestContext?.http === 'object';
}

export function requestIdOf(event: HttpEvent): string {
  return event.requestContext?.requestId ?? 'unknown';
}

export function header(event: HttpEvent, name: string): string | undefined {
  const headers = event.headers ?? {};
  const wanted = name.toLowerCase();
  // API Gateway and the local server give lower-case names: one lookup, no scan, in practice.
  if (Object.hasOwn(headers, wanted)) return headers[wanted];
  for (const key in headers) if (key.toLowerCase() === wanted) return headers[key];
  return undefined;
}

/** Parses a JSON object body of at most `maxBytes`, sent as `application/json`. */
export function jsonBody(options: { maxBytes: number }): MiddlewareObj<ParsedEvent, HttpResult> {
  return {
    name: 'jsonBody',
    before: (request) => {
      const event = request.event;
      const type = header(event, 'content-type')?.split(';')[0]?.trim().toLowerCase();
      if (type !== 'application/json') {
        throw new LanyardError('unsupported_media_type', 'send the body as application/json', { context: { field: 'content-type' } });
      }
      const raw = event.body ?? '';
      const bytes = event.isBase64Encoded ? Buffer.from(raw, 'base64') : undefined;
      const size = bytes ? bytes.length : Buffer.byteLength(raw, 'utf8');
      if (size > options.maxBytes) {
        throw new LanyardError('request_too_large', `the body is over ${options.maxBytes} bytes`, { context: { maxBytes: options.maxBytes } });
      }
      // Read as UTF-8 bytes would be: a lone surrogate becomes U+FFFD (no copy for text without surrogates).
      const text = bytes ? bytes.toString('utf8') : SURROGATE.test(raw) ? Buffer.from(raw, 'utf8').toString('utf8') : raw;
      let parsed: unknown;
      try {
        parsed = mayHoldProtoKeys(text) ? JSON.parse(text, dropProtoKeys) : JSON.parse(text);
      } catch {
        throw invalidRequest('body', 'the body is not valid JSON');
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        throw invalidRequest('body', 'the body must be a JSON object');
      }
      event.parsedBody = parsed;
    },
  };
}

const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * Whether the text could name a `__proto__` or `constructor` key: spelled out, or with a JSON
 * escape (`\u005f_proto__`). Only then is the reviver needed, which costs a call per value.
 */
function mayHoldProtoKeys(text: string): boolean {
  return text.includes('__proto__') || text.includes('constructor') || text.includes('\\u');
}

/** `__proto__` and `constructor` keys never reach a schema or an object spread. */
function dropProtoKeys(key: string, value: unknown): unknown {
  return key === '__proto__' || key === 'constructor' ? undefined : value;
}

export function errorResponder(log: Log): MiddlewareObj<HttpEvent, HttpResult> {
  return {
    name: 'errorResponder',
    onError: (request) => {
      const requestId = requestIdOf(request.event);
      const error = failClosed(request.error);
      if (error.status >= 500) log.error('request failed closed', { requestId, error: describeError(request.error) });
      request.response = errorResponse(error, requestId);
    },
  };
}
