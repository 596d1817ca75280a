/** The broker's pure policies: routes, headers, units and masking (the auth-failure circuit is in circuit.test.ts). */
import { describe, expect, it } from 'vitest';
import type { UpstreamConfig } from '../../../shared/domain/model.ts';
import { agentResponseHeaders, brokerToken, checkQuery, checkRequestHeaders, unreadableCoding, upstreamRequestHeaders } from '../../../shared/broker/headers.ts';
import { matchRoutes } from '../../../shared/broker/routes.ts';
import { UnitsCollector, unitsFromHeaders } from '../../../shared/broker/units.ts';
import { SecretRedactor } from '../../../shared/broker/redact.ts';
import { rejection } from '../../helpers/errors.ts';

const stripe: UpstreamConfig = {
  baseUrl: 'https://api.stripe.com',
  key: { header: 'authorization', scheme: 'Bearer' },
  routes: {
    'charges.read': [{ method: 'GET', path: '/v1/charges*' }],
    'charges.create': [{ method: 'POST', path: '/v1/charges' }],
    'customers.read': [{ method: 'GET', path: '/v1/customers/*/sources' }],
  },
  forwardHeaders: ['stripe-version'],
};
const queryKeyed: UpstreamConfig = { ...stripe, key: { query: 'api_key' } };
const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';
const refused = async (fn: () => void) => rejection(Promise.resolve().then(fn));

describe('matchRoutes', () => {
  it('maps method and path to the declared actions, with * spanning any run of characters', () => {
    expect(matchRoutes('stripe', stripe, 'GET', '/v1/charges')).toEqual([{ action: 'stripe:charges.read', pattern: '/v1/charges*' }]);
    expect(matchRoutes('stripe', stripe, 'GET', '/v1/charges/ch_1/refunds')[0]?.action).toBe('stripe:charges.read');
    expect(matchRoutes('stripe', stripe, 'POST', '/v1/charges')[0]?.action).toBe('stripe:charges.create');
    expect(matchRoutes('stripe', stripe, 'GET', '/v1/customers/cus_1/sources')[0]?.action).toBe('stripe:customers.read');
  });

  it('matches nothing for another method, a longer path without a wildcard, or a regex metacharacter', () => {
    expect(matchRoutes('stripe', stripe, 'DELETE', '/v1/charges')).toEqual([]);
    expect(matchRoutes('stripe', stripe, 'POST', '/v1/charges/ch_1')).toEqual([]);
    expect(matchRoutes('stripe', { ...stripe, routes: { x: [{ method: 'GET', path: '/v1/a.b' }] } }, 'GET', '/v1/aXb')).toEqual([]);
    expect(matchRoutes('stripe', stripe, 'GET', '/v2/charges')).toEqual([]);
  });
});

describe('brokerToken', () => {
  it('takes exactly one Bearer JWT', () => {
    expect(brokerToken({ authorization: `Bearer ${JWT}` })).toBe(JWT);
    expect(brokerToken({})).toBeUndefined();
  });

  it.each([
    ['Bearer sk_live_upstreamkey'],
    [`Basic ${Buffer.from('user:pass').toString('base64')}`],
    [[`Bearer ${JWT}`, 'Bearer sk_live_x']],
    [`Bearer ${JWT}, Basic abc`],
  ])('refuses a credential meant for the upstream: %s', async (authorization) => {
    const error = await refused(() => brokerToken({ authorization }));
    expect(error.code).toBe('invalid_request');
    expect(error.context.field).toBe('header:authorization');
    expect(error.message).not.toContain('sk_live');
  });
});

describe('checkRequestHeaders', () => {
  it.each(['upgrade', 'te', 'trailer', 'keep-alive', 'proxy-authorization', 'cookie', 'x-api-key', 'proxy-connection'])('refuses %s', async (name) => {
    const error = await refused(() => checkRequestHeaders({ [name]: 'x' }, stripe));
    expect(error.context.field).toBe(`header:${name}`);
  });

  it('refuses the provider key header and a Connection that nominates other headers', async () => {
    expect((await refused(() => checkRequestHeaders({ 'x-key': 'k' }, { ...stripe, key: { header: 'x-key' } }))).context.field).toBe('header:x-key');
    expect((await refused(() => checkRequestHeaders({ connection: 'keep-alive, x-lanyard-request-id' }, stripe))).context.field).toBe('header:connection');
    expect((await refused(() => checkRequestHeaders({ 'transfer-encoding': 'gzip, chunked' }, stripe))).context.field).toBe('header:transfer-encoding');
  });

  it('lets an ordinary client through', () => {
    expect(() =>
      checkRequestHeaders({ connection: 'keep-alive', 'transfer-encoding': 'chunked', 'content-type': 'application/json', host: 'evil.example' }, stripe),
    ).not.toThrow();
  });

  it('refuses the key parameter in the query, however it is encoded', async () => {
    expect((await refused(() => checkQuery('a=1&api_key=x', queryKeyed))).context.field).toBe('query:api_key');
    expect((await refused(() => checkQuery('api%5Fkey=x', queryKeyed))).context.field).toBe('query:api_key');
    for (const query of ['API_KEY=x', 'a=1;api_key=x', 'api_key[]=x', 'api_key[0]=x', 'Api%5FKey=x']) {
      expect((await refused(() => checkQuery(query, queryKeyed))).context.field, query).toBe('query:api_key');
    }
    expect(() => checkQuery('api_keys=x&my_api_key=y', queryKeyed)).not.toThrow();
    expect(() => checkQuery('api_key=x', stripe)).not.toThrow();
  });
});

describe('upstream headers', () => {
  it('forwards the allow-list and the declared extras, never Host, cookies or forwarding headers, and injects the key', () => {
    const out = upstreamRequestHeaders(
      {
        'content-type': 'application/json',
        'stripe-version': '2024-06-20',
        host: 'evil.example',
        'x-forwarded-host': 'evil.example',
        forwarded: 'host=evil.example',
        'x-custom': 'dropped',
        accept: ['a/b', 'c/d'],
        'accept-encoding': 'gzip, br',
      },
      stripe,
      'api.stripe.com',
      'sk_test_secret',
      'req-1',
    );
    expect(out).toEqual({
      'content-type': 'application/json',
      'stripe-version': '2024-06-20',
      accept: 'a/b, c/d',
      // Never what the agent asked for: a compressed answer would pass the key mask unread.
      'accept-encoding': 'identity',
      host: 'api.stripe.com',
      'x-lanyard-request-id': 'req-1',
      authorization: 'Bearer sk_test_secret',
    });
  });

  it('asks for identity even when a provider forwards Accept-Encoding', () => {
    const out = upstreamRequestHeaders({ 'accept-encoding': 'gzip' }, { ...stripe, forwardHeaders: ['accept-encoding'] }, 'api.stripe.com', 'sk_test_secret', 'req-1');
    expect(out['accept-encoding']).toBe('identity');
  });

  it('names a coding the broker cannot read, and never echoes an unknown one', () => {
    expect(unreadableCoding({ 'content-type': 'text/plain' })).toBeUndefined();
    expect(unreadableCoding({ 'content-encoding': 'identity', 'transfer-encoding': 'chunked' })).toBeUndefined();
    expect(unreadableCoding({ 'content-encoding': 'GZIP' })).toBe('gzip');
    expect(unreadableCoding({ 'content-encoding': 'identity, br' })).toBe('br');
    expect(unreadableCoding({ 'transfer-encoding': 'gzip, chunked' })).toBe('gzip');
    expect(unreadableCoding({ 'content-encoding': 'sk_live_quoted' })).toBe('unknown');
  });

  it('drops hop-by-hop and cookie headers from the answer, and those Connection names', () => {
    const out = agentResponseHeaders(
      { 'content-type': 'text/plain', 'set-cookie': ['s=1'], connection: 'x-internal', 'x-internal': 'y', 'transfer-encoding': 'chunked', 'x-ok': 'z' },
      'req-2',
    );
    expect(out).toEqual({ 'content-type': 'text/plain', 'x-ok': 'z', 'x-lanyard-request-id': 'req-2' });
  });

  it('redacts the key wherever an answer header quotes it: a redirect to the request URL, Content-Location, an echo', () => {
    const secret = 'sk_live+k/ey=1';
    const out = agentResponseHeaders(
      {
        location: `https://api.example.com/v1/x?a=1&api_key=${encodeURIComponent(secret)}`,
        'content-location': `/v1/x?api_key=${encodeURIComponent(secret).toLowerCase()}`,
        'x-echo': [`Bearer ${secret}`, 'fine'],
        'x-form': 'api_key=sk_live%2Bk%2fey%3d1',
        // A login redirect that carries the request URL in its own query: the key encoded twice.
        refresh: `0; url=/login?next=${encodeURIComponent(`/v1/x?api_key=${encodeURIComponent(secret)}`)}`,
        // An encoder that leaves / alone (Python's quote()).
        'x-quoted': `k=${encodeURIComponent(secret).replace(/%2F/g, '/')}`,
      },
      'req-3',
      secret,
    );
    expect(JSON.stringify(out)).not.toMatch(/sk_live/i);
    expect(out).toEqual({
      location: 'https://api.example.com/v1/x?a=1&api_key=[redacted]',
      'content-location': '/v1/x?api_key=[redacted]',
      'x-echo': ['Bearer [redacted]', 'fine'],
      'x-form': 'api_key=[redacted]',
      refresh: '0; url=/login?next=%2Fv1%2Fx%3Fapi_key%3D[redacted]',
      'x-quoted': 'k=[redacted]',
      'x-lanyard-request-id': 'req-3',
    });
  });
});

describe('units', () => {
  it('reads a header or a JSON dot path, and nothing from a non-JSON or broken body', () => {
    expect(unitsFromHeaders({ 'x-usage': '42' }, 'X-Usage')).toBe(42);
    expect(unitsFromHeaders({ 'x-usage': '-1' }, 'x-usage')).toBeUndefined();
    const json = new UnitsCollector('usage.total_tokens', 'application/json; charset=utf-8');
    json.push(Buffer.from('{"usage":{"total_'));
    json.push(Buffer.from('tokens":137}}'));
    expect(json.units()).toBe(137);
    const events = new UnitsCollector('usage.total_tokens', 'text/event-stream');
    events.push(Buffer.from('{"usage":{"total_tokens":1}}'));
    expect(events.units()).toBeUndefined();
    const proto = new UnitsCollector('constructor.name', 'application/json');
    proto.push(Buffer.from('{}'));
    expect(proto.units()).toBeUndefined();
  });
});

describe('SecretRedactor', () => {
  const secret = 'sk live/key+1';
  const run = (chunks: string[]) => {
    const redactor = new SecretRedactor(secret);
    const out = chunks.map((c) => redactor.push(Buffer.from(c)).toString());
    return { out, text: out.join('') + redactor.end().toString() };
  };

  it('masks the key as sent, percent-encoded in either case, and with + for a space, keeping the length', () => {
    const body = `a ${secret} b ${encodeURIComponent(secret)} c ${encodeURIComponent(secret).toLowerCase()} d sk+live%2Fkey%2B1 e`;
    const { text } = run([body]);
    expect(text).toHaveLength(body.length);
    expect(text).not.toContain('sk live');
    expect(text).not.toContain('sk%20live');
    expect(text).not.toContain('sk+live');
    expect(text.startsWith('a ***')).toBe(true);
  });

  it('masks a key split across chunks, holding back only a tail that could start it', () => {
    const { out, text } = run(['{"url":"/v1/x?api_key=sk%20li', 've%2Fkey%2B1&z=1"}\n\n', 'data: done\n\n']);
    expect(text).toBe(`{"url":"/v1/x?api_key=${'*'.repeat(encodeURIComponent(secret).length)}&z=1"}\n\ndata: done\n\n`);
    expect(out[0]).toBe('{"url":"/v1/x?api_key=');
    // An event stream's frame is passed on whole, at once.
    expect(out[2]).toBe('data: done\n\n');
  });

  it.each([
    ['upper-cased (a server that normalises the URL)', secret.toUpperCase()],
    ['left partly unescaped (/ kept, as Python quote() does)', encodeURIComponent(secret).replace(/%2F/g, '/')],
    ['percent-encoded twice', encodeURIComponent(encodeURIComponent(secret))],
    ['percent-encoded twice in lower case', encodeURIComponent(encodeURIComponent(secret)).toLowerCase()],
    ['form-encoded, then percent-encoded', encodeURIComponent(encodeURIComponent(secret).replace(/%20/g, '+'))],
    ['JSON-escaped with \\u and \\/', JSON.stringify(secret).slice(1, -1).replace(/\//g, '\\/').replace(/[ +]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)],
    ['JSON-escaped in upper-case hex', secret.replace(/[/+]/g, (c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`)],
  ])('masks the key %s, keeping the length', (_form, written) => {
    expect(written).not.toBe(secret);
    const body = `{"echo":"${written}"}`;
    const { text } = run([body.slice(0, 14), body.slice(14)]);
    expect(text).toBe(`{"echo":"${'*'.repeat(written.length)}"}`);
  });

  it('masks a key whose characters have spellings that start alike (% and %25, \\ and \\\\)', () => {
    const odd = 'k%25\\"x';
    const redactor = new SecretRedactor(odd);
    for (const written of [odd, encodeURIComponent(odd), JSON.stringify(odd).slice(1, -1), encodeURIComponent(encodeURIComponent(odd))]) {
      // Cut after every byte: the occurrence is found whatever the chunking.
      const out = [...Buffer.from(`a${written}b`)].map((byte) => redactor.push(Buffer.from([byte])).toString('latin1')).join('') + redactor.end().toString('latin1');
      expect(out, written).toBe(`a${'*'.repeat(Buffer.byteLength(written))}b`);
    }
  });

  it('passes a body without the key through untouched', () => {
    const { out, text } = run(['hello ', 'world']);
    expect(out).toEqual(['hello ', 'world']);
    expect(text).toBe('hello world');
  });
});
