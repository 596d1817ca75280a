import { describe, expect, it } from 'vitest';
import type { UpstreamConfig } from '../../../shared/domain/model.ts';
import { checkPathParameters, parseProxyTarget, upstreamUrl } from '../../../shared/broker/target.ts';
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
    // Tomcat, Jetty and Spring strip ;parameters before resolving dot segments: `..;` climbs.
    ['/v1/proxy/stripe/v1/charges/..;/..;/..;/admin/keys', 'path'],
    ['/v1/proxy/stripe/v1/charges/..;jsessionid=x/admin', 'path'],
    ['/v1/proxy/stripe/v1/.;x/charges', 'path'],
    ['/v1/proxy/stripe/v1/charges/..%3B/admin', 'path'],
    ['/v1/proxy/stripe/v1/charges/..%3b', 'path'],
    ['/v1/proxy/stripe/v1/;x/charges', 'path'],
    ['/v1/proxy/stripe/v1/charges/;x', 'path'],
    // An encoded escape: harmless only where nothing decodes twice.
    ['/v1/proxy/stripe/v1/charges/%252e%252e/admin', 'path'],
    ['/v1/proxy/stripe/v1/charges%252Fadmin', 'path'],
    ['/v1/proxy/stripe/v1/charges/%25252e%25252e/admin', 'path'],
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

describe('checkPathParameters', () => {
  const upstream: UpstreamConfig = { baseUrl: 'https://api.example.com', key: { header: 'authorization' }, routes: { read: [{ method: 'GET', path: '/v1/*' }] } };

  it.each(['/v1/charges;v=2', '/v1/charges%3Bv=2', '/v1/a;b/c'])('refuses a ; from a provider that does not allow path parameters: %s', async (path) => {
    const error = await rejection(Promise.resolve().then(() => checkPathParameters(path, upstream)));
    expect(error.code).toBe('invalid_request');
    expect(error.context.field).toBe('path');
  });

  it('lets path parameters through where the provider allows them, and plain paths everywhere', () => {
    expect(parseProxyTarget('/v1/proxy/stripe/v1/charges;v=2/x;y').path).toBe('/v1/charges;v=2/x;y');
    expect(() => checkPathParameters('/v1/charges;v=2/x;y', { ...upstream, allowPathParameters: true })).not.toThrow();
    expect(() => checkPathParameters('/v1/charges/ch_1', upstream)).not.toThrow();
  });

  it('accepts a percent sign that does not start an escape of an escape', () => {
    expect(parseProxyTarget('/v1/proxy/stripe/v1/50%25off').path).toBe('/v1/50%25off');
  });
});

describe('upstreamUrl', () => {
  it('appends the path to the base path and keeps the origin', () => {
    const url = upstreamUrl('https://api.example.com/base', { provider: 'p', path: '/v1/x', query: 'a=1' }, 'key=s%20t');
    expect(url.href).toBe('https://api.example.com/base/v1/x?a=1&key=s%20t');
  });

  it('refuses a URL whose path a server stripping ;parameters would climb out of', async () => {
    const error = await rejection(Promise.resolve().then(() => upstreamUrl('https://api.example.com/api', { provider: 'p', path: '/v1/..;/..;/admin', query: '' })));
    expect(error.context.field).toBe('path');
  });

  it('keeps a trailing-slash base and an empty query', () => {
    expect(upstreamUrl('http://127.0.0.1:9/', { provider: 'p', path: '/', query: '' }).href).toBe('http://127.0.0.1:9/');
  });
});
