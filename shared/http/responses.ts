/**
 * Errors reach HTTP here and only here. The body is always
 * `{ error: { code, message, retryable, requestId, …context } }` (docs/http.md).
 */
import { bearerChallenge } from '@lanyard/sdk/challenge';
import type { LanyardError } from '../domain/errors.ts';
import type { HttpResult } from './types.ts';

const JSON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  // Credentials and decisions are never cached by anything in between (RFC 6749 §5.1).
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
};

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResult {
  return { statusCode, headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) };
}

export function errorResponse(error: LanyardError, requestId: string): HttpResult {
  const headers: Record<string, string> = {};
  if (error.retryAfter !== undefined) headers['retry-after'] = String(error.retryAfter);
  // RFC 6750 §3: a Bearer challenge for missing or unusable credentials, with no detail.
  if (error.status === 401) headers['www-authenticate'] = bearerChallenge();
  return json(
    error.status,
    { error: { ...error.context, code: error.code, message: error.message, retryable: error.retryable, requestId } },
    headers,
  );
}
