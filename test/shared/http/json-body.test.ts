/**
 * The JSON body middleware (shared/http/middleware.ts `jsonBody`) on its own: the size cap in
 * bytes, not characters; text and base64 bodies; and `__proto__` / `constructor` keys dropped
 * however they are spelled, at any depth.
 */
import { describe, expect, it } from 'vitest';
import { jsonBody, type ParsedEvent } from '../../../shared/http/middleware.ts';
import { LanyardError } from '../../../shared/domain/errors.ts';

function event(body: string, options: { base64?: boolean; type?: string } = {}): ParsedEvent {
  return {
    headers: { 'content-type': options.type ?? 'application/json' },
    body,
    isBase64Encoded: options.base64 ?? false,
    requestContext: { requestId: 'r', http: { method: 'POST', path: '/' } },
  } as unknown as ParsedEvent;
}

function parse(e: ParsedEvent, maxBytes = 64): unknown {
  const before = jsonBody({ maxBytes }).before as (request: { event: ParsedEvent }) => void;
  before({ event: e });
  return e.parsedBody;
}

function refusal(run: () => unknown): LanyardError {
  try {
    run();
  } catch (error) {
    if (error instanceof LanyardError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('jsonBody', () => {
  it('parses a JSON object sent as text or base64', () => {
    const text = '{"tool":"tickets","tenant":"acmé"}';
    expect(parse(event(text))).toEqual({ tool: 'tickets', tenant: 'acmé' });
    expect(parse(event(Buffer.from(text).toString('base64'), { base64: true }))).toEqual({ tool: 'tickets', tenant: 'acmé' });
  });

  it('counts the cap in UTF-8 bytes, not characters', () => {
    const body = `{"a":"${'é'.repeat(30)}"}`; // 38 characters, 68 bytes
    expect(body.length).toBeLessThan(64);
    expect(refusal(() => parse(event(body))).code).toBe('request_too_large');
    expect(parse(event(body), 68)).toEqual({ a: 'é'.repeat(30) });
  });

  it('drops __proto__ and constructor keys, spelled out or escaped, at any depth', () => {
    const bodies = [
      '{"tool":"t","__proto__":{"admin":true}}',
      '{"tool":"t","\\u005f_proto__":{"admin":true}}',
      '{"tool":"t","task":{"constructor":{"prototype":{"admin":true}}}}',
      '{"tool":"t","task":{"\\u0063onstructor":1}}',
    ];
    for (const body of bodies) {
      const parsed = parse(event(body), 1024) as Record<string, unknown>;
      expect(parsed.tool).toBe('t');
      expect(Object.hasOwn(parsed, '__proto__')).toBe(false);
      expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
      const task = parsed.task as Record<string, unknown> | undefined;
      if (task) expect(Object.hasOwn(task, 'constructor')).toBe(false);
      expect(({} as Record<string, unknown>).admin).toBeUndefined();
    }
  });

  it('reads a lone surrogate as U+FFFD, as the bytes of the text would be read', () => {
    expect(parse(event('{"a":"x\uD800y"}'))).toEqual({ a: 'x\uFFFDy' });
    expect(parse(event('{"a":"🚀"}'))).toEqual({ a: '🚀' });
  });

  it('refuses other media types, malformed JSON and non-objects with typed errors', () => {
    expect(refusal(() => parse(event('{}', { type: 'text/plain' }))).code).toBe('unsupported_media_type');
    expect(refusal(() => parse(event('{"a":'))).code).toBe('invalid_request');
    expect(refusal(() => parse(event('[1,2]'))).code).toBe('invalid_request');
  });
});
