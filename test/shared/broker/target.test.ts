import { describe, expect, it } from 'vitest';
import { parseProxyTarget, upstreamUrl } from '../../../shared/broker/target.ts';
import { rejection } from '../../helpers/errors.ts';

describe('parseProxyTarget', () => {
  it('splits provider, path and query without touching them', () => {
    expect(parseProxyTarget('/v1/proxy/stripe/v1/charges/ch_1?limit=3&expand[]=x')).toEqual({
      provider: 'stripe',
      path: '/v1/charges/ch_1',
      query: 'limit=3&expand[]=x',
    });
    expect(parseProxyTarget('/v1/proxy/stripe')).toEqual({ provider: 'stripe', path: '/', query: '' });
    expect(parseProxyTarget('/v1/proxy/llm/v1/models/a%20b/')).toEqual({ provider: 'llm', path: '/v1/models/a%20b/', query: '' });
  });

  it.each([
    ['/v1/proxy/stripe/v1/../admin', 'path'],
    ['/v1/proxy/stripe/v1/./charges', 'path'],
    ['/v1/proxy/stripe/..', 'path'],
    ['/v1/proxy/stripe/v1/%2e%2e/admin', 'path'],
    ['/v1/proxy/stripe/v1/%2E%2E/admin', 'path'],
    ['/v1/proxy/stripe/v1/charges%2F..%2Fadmin', 'path'],
    ['/v1/proxy/stripe/v1/charges%2fx', 'path'],
    ['/v1/proxy/stripe/v1/charges%5Cx', 'path'],
    ['/v1/proxy/stripe/v1/charges\\..\\admin', 'path'],
    ['/v1/proxy/stripe//evil.example/v1', 'path'],
    ['/v1/proxy/stripe/v1/charges%00', 'path'],
    ['/v1/proxy/stripe/v1/charges%zz', 'path'],
    ['/v1/proxy/stripe/v1/char ges', 'path'],
    ['/v1/proxy/stripe/v1/charges?x=%2', 'query'],
    ['/v1/proxy/stripe/v1/charges#frag', 'target'],
    ['http://evil.example/v1/proxy/stripe/v1/charges', 'target'],
    ['*', 'target'],
    ['/v1/proxy/Stripe!/v1', 'provider'],
  ])('refuses %s (field %s)', async (target, field) => {
    const error = await rejection(Promise.resolve().then(() => parseProxyTarget(target)));
    expect(error.code).toBe('invalid_request');
    expect(error.context.field).toBe(field);
  });

  it.each(['/v1/credentials', '//evil.example/v1/proxy/stripe/v1/charges'])('is not found outside the prefix: %s', async (target) => {
    expect((await rejection(Promise.resolve().then(() => parseProxyTarget(target)))).code).toBe('not_found');
  });
});

describe('upstreamUrl', () => {
  it('appends the path to the base path and keeps the origin', () => {
    const url = upstreamUrl('https://api.example.com/base', { provider: 'p', path: '/v1/x', query: 'a=1' }, 'key=s%20t');
    expect(url.href).toBe('https://api.example.com/base/v1/x?a=1&key=s%20t');
  });

  it('keeps a trailing-slash base and an empty query', () => {
    expect(upstreamUrl('http://127.0.0.1:9/', { provider: 'p', path: '/', query: '' }).href).toBe('http://127.0.0.1:9/');
  });
});
