import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { awsCredentialProvider } from '@lanyard/sdk/aws';
import {
  createCredentialSource,
  FleetFetchError,
  isFleetFetchError,
  isIssuanceError,
  lanyardFetch,
  type CredentialSourceOptions,
  type Fetch,
  type LanyardFetchOptions,
} from '@lanyard/sdk';

const T0 = Date.parse('2026-03-01T12:00:00.000Z');
const REQUEST = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };

type Reply = (req: IncomingMessage, res: ServerResponse) => void;

/** A loopback issuer whose answers each test scripts; it counts requests and notes when (on the fake clock) they came. */
function fakeIssuer() {
  let server: Server;
  let url = '';
  const state = {
    now: T0,
    ttlSeconds: 300,
    calls: [] as { at: number; authorization: string | undefined }[],
    script: [] as Reply[],
    delayMs: 0,
    kind: 'jwt' as 'jwt' | 'sts',
  };
  const mint = (res: ServerResponse, extra: Record<string, unknown> = {}) => {
    const issued = state.now;
    const n = state.calls.length - 1;
    res.writeHead(201, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        credentialId: `crd_${n}`,
        kind: state.kind,
        tokenType: state.kind === 'jwt' ? 'Bearer' : 'aws-sts',
        ...(state.kind === 'jwt'
          ? { token: `token-${n}` }
          : { aws: { accessKeyId: `AKIA${n}`, secretAccessKey: 's', sessionToken: 't', expiration: new Date(issued + state.ttlSeconds * 1000).toISOString() } }),
        identity: 'support-triage/prod',
        lane: 'support-triage/prod:tickets:read:acme',
        tool: 'tickets',
        tenant: 'acme',
        actions: ['tickets:read'],
        audience: 'https://tickets.example.internal',
        issuedAt: new Date(issued).toISOString(),
        expiresAt: new Date(issued + state.ttlSeconds * 1000).toISOString(),
        refreshAt: new Date(issued + state.ttlSeconds * 750).toISOString(),
        quotaBucket: 'support-llm',
        ...extra,
      }),
    );
  };
  const error = (status: number, code: string, headers: Record<string, string> = {}): Reply => (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify({ error: { code, message: `said ${code}`, retryable: status >= 429, requestId: 'r1' } }));
  };
  return {
    state,
    mint,
    error,
    get url() {
      return url;
    },
    async start() {
      server = createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          state.calls.push({ at: state.now, authorization: req.headers.authorization });
          const reply = state.script.shift() ?? ((_q: IncomingMessage, r: ServerResponse) => mint(r));
          if (state.delayMs > 0) setTimeout(() => reply(req, res), state.delayMs);
          else reply(req, res);
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('Function: createCredentialSource', () => {
  const issuer = fakeIssuer();
  beforeAll(() => issuer.start());
  afterAll(() => issuer.stop());
  beforeEach(() => {
    Object.assign(issuer.state, { now: T0, ttlSeconds: 300, calls: [], script: [], delayMs: 0, kind: 'jwt' });
  });

  const source = (extra: Partial<CredentialSourceOptions> = {}) =>
    createCredentialSource({
      issuer: issuer.url,
      auth: { apiKey: 'lk_test_agent_key_000000000000000001' },
      request: REQUEST,
      clock: () => issuer.state.now,
      sleep: (ms) => {
        issuer.state.now += ms;
        return Promise.resolve();
      },
      ...extra,
    });

  describe('when refreshing ahead of expiry', () => {
    it('refreshes inside the jitter window before refreshAt, never after it and never past expiry', async () => {
      // Prepare: 40 sources, one after another, each stepped through a lifetime a second at a time.
      const refreshOffsets: number[] = [];
      for (let i = 0; i < 40; i++) {
        issuer.state.now = T0;
        issuer.state.calls = [];
        const s = source({ jitter: 0.2 });
        await s.get();

        // Act
        while (issuer.state.calls.length < 2) {
          issuer.state.now += 1_000;
          await s.get();
        }
        refreshOffsets.push(issuer.state.calls[1]!.at - T0);
        s.close();
      }

      // Assess: refreshAt is at 225 s, the jitter window 20 % of that (45 s), checked to the second.
      for (const offset of refreshOffsets) {
        expect(offset).toBeGreaterThanOrEqual(180_000);
        expect(offset).toBeLessThanOrEqual(225_000);
      }
      expect(new Set(refreshOffsets).size).toBeGreaterThan(10);
    });

    it('hands out the held credential without asking the issuer until its refresh time', async () => {
      const s = source({ random: () => 0 });
      const first = await s.get();

      issuer.state.now += 224_000;
      const again = await s.get();

      expect(again).toStrictEqual(first);
      expect(issuer.state.calls).toHaveLength(1);
      expect(s.state()).toMatchObject({ validUntil: T0 + 270_000, nextRefresh: T0 + 225_000, lastRefresh: T0, circuit: 'closed' });
    });

    it('lets concurrent callers during a refresh share exactly one issuer call', async () => {
      // Prepare
      const s = source();
      await s.get();
      issuer.state.now += 230_000;
      issuer.state.delayMs = 50;

      // Act
      const all = await Promise.all(Array.from({ length: 50 }, () => s.get()));

      // Assess
      expect(issuer.state.calls).toHaveLength(2);
      expect(new Set(all.map((c) => c.credentialId))).toStrictEqual(new Set(['crd_1']));
    });

    it('starts from an initial credential (a spawn answer) without calling the issuer', async () => {
      const held = source();
      const initial = await held.get();
      issuer.state.calls = [];

      const s = source({ initial });
      const got = await s.get();

      expect(got.credentialId).toBe(initial.credentialId);
      expect(issuer.state.calls).toHaveLength(0);
    });
  });

  describe('when the issuer is unavailable, rate-limits or hangs', () => {
    it('backs off on 503 with full jitter, keeps the valid credential, and never counts it as an auth failure', async () => {
      // Prepare
      const s = source({ random: () => 1, backoff: { baseMs: 1_000, maxMs: 8_000 }, circuit: { failures: 1 } });
      await s.get();
      issuer.state.now += 230_000;
      issuer.state.script.push(issuer.error(503, 'issuer_unavailable'), issuer.error(503, 'issuer_unavailable'), issuer.error(502, 'bad_gateway'));

      // Act: a 503, then calls inside the 1 s backoff, then past it (2 s), then past that.
      const during = await s.get();
      issuer.state.now += 900;
      await s.get();
      const callsInBackoff = issuer.state.calls.length;
      issuer.state.now += 200;
      await s.get();
      issuer.state.now += 2_100;
      await s.get();
      issuer.state.now += 4_100;
      const recovered = await s.get();

      // Assess
      expect(during.credentialId).toBe('crd_0');
      expect(callsInBackoff).toBe(2);
      expect(issuer.state.calls.map((c) => c.at - T0 - 230_000)).toStrictEqual([-230_000, 0, 1_100, 3_200, 7_300]);
      expect(recovered.credentialId).toBe('crd_4');
      expect(s.state()).toMatchObject({ consecutiveFailures: 0, consecutiveAuthFailures: 0, circuit: 'closed' });
    });

    it('waits at least Retry-After after a 429 and does not count it as an auth failure', async () => {
      // Prepare
      const s = source({ random: () => 0, circuit: { failures: 1 } });
      await s.get();
      issuer.state.now += 230_000;
      issuer.state.script.push(issuer.error(429, 'rate_limited', { 'retry-after': '7' }));

      // Act
      await s.get();
      const stateAfter429 = s.state();
      issuer.state.now += 6_999;
      await s.get();
      const callsBefore = issuer.state.calls.length;
      issuer.state.now += 1;
      const fresh = await s.get();

      // Assess
      expect(stateAfter429).toMatchObject({ consecutiveFailures: 1, consecutiveAuthFailures: 0, circuit: 'closed', nextRefresh: T0 + 237_000 });
      expect(callsBefore).toBe(2);
      expect(fresh.credentialId).toBe('crd_2');
    });

    it('throws rate_limited with the wait when there is no credential to fall back on', async () => {
      issuer.state.script.push(issuer.error(429, 'rate_limited', { 'retry-after': '5' }));
      const s = source({ random: () => 0 });

      const error = await s.get().catch((e: unknown) => e);

      expect(isIssuanceError(error, 'rate_limited')).toBe(true);
      expect(error).toMatchObject({ retryAfterMs: 5_000 });
      expect(s.state().stopped).toBeUndefined();
    });

    it('times a hanging issuer out, keeps the valid credential, and counts no auth failure', async () => {
      // Prepare
      const s = source({ timeoutMs: 100, random: () => 0.5 });
      await s.get();
      issuer.state.now += 230_000;
      issuer.state.script.push(() => {}); // never answers

      // Act
      const started = performance.now();
      const kept = await s.get();
      const waitedMs = performance.now() - started;

      // Assess
      expect(kept.credentialId).toBe('crd_0');
      expect(waitedMs).toBeGreaterThanOrEqual(90);
      expect(waitedMs).toBeLessThan(5_000);
      expect(s.state()).toMatchObject({ consecutiveFailures: 1, consecutiveAuthFailures: 0, circuit: 'closed' });
    });

    it('throws issuer_unavailable from a dead issuer when nothing valid is held, and waits out the backoff before the next try', async () => {
      const dead = createCredentialSource({
        issuer: 'http://127.0.0.1:9',
        auth: { apiKey: 'lk_x_000000000000000000' },
        request: REQUEST,
        clock: () => issuer.state.now,
        random: () => 1,
        sleep: (ms) => {
          issuer.state.now += ms;
          return Promise.resolve();
        },
      });

      const first = await dead.get().catch((e: unknown) => e);
      const before = issuer.state.now;
      const second = await dead.get().catch((e: unknown) => e);

      expect(first).toMatchObject({ code: 'issuer_unavailable', retryAfterMs: 1_000 });
      expect(second).toMatchObject({ code: 'issuer_unavailable', retryAfterMs: 2_000 });
      expect(issuer.state.now - before).toBe(1_000);
      expect(dead.state()).toMatchObject({ consecutiveFailures: 2, consecutiveAuthFailures: 0, circuit: 'closed' });
    });
  });

  describe('when the issuer refuses authentication', () => {
    it('opens the circuit after N consecutive 401s and calls the issuer no more until reset()', async () => {
      // Prepare
      const s = source({ circuit: { failures: 3 } });
      issuer.state.script.push(...Array.from({ length: 3 }, () => issuer.error(401, 'unauthenticated')));

      // Act
      const codes: string[] = [];
      for (let i = 0; i < 6; i++) codes.push(await s.get().then(() => 'ok', (e: { code: string }) => e.code));
      const callsWhileOpen = issuer.state.calls.length;
      const openState = s.state();
      s.reset();
      const afterReset = await s.get();

      // Assess
      expect(codes).toStrictEqual(['unauthenticated', 'unauthenticated', 'unauthenticated', 'circuit_open', 'circuit_open', 'circuit_open']);
      expect(callsWhileOpen).toBe(3);
      expect(openState).toMatchObject({ circuit: 'open', consecutiveAuthFailures: 3 });
      expect(afterReset.credentialId).toBe('crd_3');
      expect(s.state()).toMatchObject({ circuit: 'closed', consecutiveAuthFailures: 0 });
    });

    it('does not open the circuit for 401s that are not consecutive', async () => {
      const s = source({ circuit: { failures: 2 } });
      issuer.state.script.push(issuer.error(401, 'unauthenticated'));
      await s.get().catch(() => undefined);
      await s.get();
      issuer.state.now += 230_000;
      issuer.state.script.push(issuer.error(401, 'unauthenticated'));

      await s.get().catch(() => undefined);

      expect(s.state()).toMatchObject({ circuit: 'closed', consecutiveAuthFailures: 1 });
    });
  });

  describe('when the authority is gone', () => {
    it.each(['credential_revoked', 'lane_revoked', 'identity_revoked', 'tenant_revoked', 'tool_disabled', 'not_granted', 'kind_not_allowed'])(
      'stops at once on %s and calls onAuthorityLost exactly once',
      async (code) => {
        // Prepare
        const onAuthorityLost = vi.fn();
        const s = source({ onAuthorityLost });
        await s.get();
        issuer.state.now += 230_000;
        issuer.state.script.push(issuer.error(403, code));

        // Act
        const errors = await Promise.all([s.get(), s.get(), s.get()].map((p) => p.catch((e: { code: string }) => e.code)));
        issuer.state.now += 60_000;
        const later = await s.get().catch((e: { code: string }) => e.code);

        // Assess
        expect(errors).toStrictEqual([code, code, code]);
        expect(later).toBe(code);
        expect(issuer.state.calls).toHaveLength(2);
        expect(onAuthorityLost).toHaveBeenCalledOnce();
        expect(onAuthorityLost).toHaveBeenCalledWith({ lane: 'support-triage/prod:tickets:read:acme', code, message: `said ${code}` });
        expect(s.state().stopped).toStrictEqual({ code });
      },
    );
  });

  describe('when authenticating with a refresh token', () => {
    it('presents each rotated token once, in order', async () => {
      // Prepare
      const tokens = ['lr_first_token_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'lr_second_token_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'lr_third_token_cccccccccccccccccccccccccccccccccc'];
      issuer.state.script.push((_q, r) => issuer.mint(r, { refreshToken: tokens[1] }), (_q, r) => issuer.mint(r, { refreshToken: tokens[2] }));
      const s = source({ auth: { refreshToken: tokens[0]! } });

      // Act
      const first = await s.get();
      issuer.state.now += 230_000;
      await s.get();

      // Assess
      expect(issuer.state.calls.map((c) => c.authorization)).toStrictEqual([`Bearer ${tokens[0]}`, `Bearer ${tokens[1]}`]);
      expect(first.refreshToken).toBeUndefined();
    });

    it('stops on the first 401, since a refused refresh token never becomes valid again', async () => {
      const onAuthorityLost = vi.fn();
      issuer.state.script.push(issuer.error(401, 'unauthenticated'));
      const s = source({ auth: { refreshToken: 'lr_spent_token_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' }, onAuthorityLost });

      await s.get().catch(() => undefined);
      await s.get().catch(() => undefined);

      expect(issuer.state.calls).toHaveLength(1);
      expect(onAuthorityLost).toHaveBeenCalledWith({ code: 'unauthenticated', message: 'said unauthenticated' });
    });
  });

  describe('when closed', () => {
    it('rejects with source_closed and aborts a request in flight', async () => {
      const s = source({ timeoutMs: 60_000 });
      issuer.state.script.push(() => {});

      const pending = s.get().catch((e: { code: string }) => e.code);
      await vi.waitFor(() => expect(issuer.state.calls).toHaveLength(1), { timeout: 60_000 });
      s.close();

      expect(await pending).toBe('source_closed');
      expect(await s.get().catch((e: { code: string }) => e.code)).toBe('source_closed');
    });
  });
});

describe('Function: lanyardFetch', () => {
  const issuer = fakeIssuer();
  type Answer = { status: number; challenge?: string; location?: string };
  /** A loopback server that records what reached it and answers from its script (200 by default). */
  const server = () => {
    let http: Server;
    const state = { url: '', seen: [] as { authorization: string | undefined; method: string | undefined; path: string | undefined }[], answers: [] as Answer[] };
    return {
      state,
      async start() {
        http = createServer((req, res) => {
          req.resume();
          state.seen.push({ authorization: req.headers.authorization, method: req.method, path: req.url });
          const answer = state.answers.shift() ?? { status: 200 };
          res
            .writeHead(answer.status, { ...(answer.challenge && { 'www-authenticate': answer.challenge }), ...(answer.location && { location: answer.location }) })
            .end('{}');
        });
        await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
        state.url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
      },
      async stop() {
        http.closeAllConnections();
        await new Promise<void>((resolve) => http.close(() => resolve()));
      },
    };
  };
  const resource = server();
  /** Another origin (another port on loopback): a page a prompt-injected agent might be sent to. */
  const foreign = server();
  const seen = resource.state.seen;

  beforeAll(async () => {
    await Promise.all([issuer.start(), resource.start(), foreign.start()]);
  });
  afterAll(async () => {
    await Promise.all([issuer.stop(), resource.stop(), foreign.stop()]);
  });
  beforeEach(() => {
    Object.assign(issuer.state, { now: T0, calls: [], script: [], delayMs: 0 });
    for (const s of [resource.state, foreign.state]) {
      s.seen.length = 0;
      s.answers = [];
    }
  });

  const source = (extra: Partial<CredentialSourceOptions> = {}) =>
    createCredentialSource({ issuer: issuer.url, auth: { apiKey: 'lk_test_agent_key_000000000000000001' }, request: REQUEST, clock: () => issuer.state.now, ...extra });
  /** A wrapper allowed to send to the resource server (its audience, https://tickets.example.internal, is elsewhere). */
  const wrap = (s = source(), options: LanyardFetchOptions = {}) => lanyardFetch(s, { origins: [resource.state.url], ...options });
  const expired = 'Bearer realm="lanyard", error="invalid_token", error_description="the token has expired", lanyard_code="token_expired"';
  const revoked = 'Bearer realm="lanyard", error="invalid_token", error_description="revoked", lanyard_code="credential_revoked"';
  const mintFor = (audience: string) => (_req: IncomingMessage, res: ServerResponse) => issuer.mint(res, { audience });
  /** An injected fetch that, when it follows redirects, keeps every header on every hop (as some fetch implementations do). */
  const keepsHeadersAcrossRedirects: Fetch = async (input, init) => {
    let response = await fetch(input, { ...init, redirect: 'manual' });
    if (init?.redirect === 'manual') return response;
    for (let hops = 0; hops < 5 && response.headers.has('location'); hops += 1) {
      response = await fetch(new URL(response.headers.get('location')!, input).href, { ...init, redirect: 'manual' });
    }
    return response;
  };

  it('attaches the bearer token', async () => {
    const call = wrap();

    const res = await call(`${resource.state.url}/tickets/1`, { headers: { authorization: 'Bearer stale' } });

    expect(res.status).toBe(200);
    expect(seen.map((r) => r.authorization)).toStrictEqual(['Bearer token-0']);
  });

  it('refreshes once and retries once on a token_expired challenge', async () => {
    resource.state.answers = [{ status: 401, challenge: expired }];
    const call = wrap();

    const res = await call(`${resource.state.url}/tickets/1`, { method: 'POST', body: '{"x":1}' });

    expect(res.status).toBe(200);
    expect(seen.map((r) => r.authorization)).toStrictEqual(['Bearer token-0', 'Bearer token-1']);
    expect(issuer.state.calls).toHaveLength(2);
  });

  it('does not retry twice when the fresh token is refused as expired too', async () => {
    resource.state.answers = [{ status: 401, challenge: expired }, { status: 401, challenge: expired }];
    const call = wrap();

    const res = await call(`${resource.state.url}/tickets/1`);

    expect(res.status).toBe(401);
    expect(seen).toHaveLength(2);
  });

  it('returns other refusals untouched, without refreshing', async () => {
    resource.state.answers = [{ status: 401, challenge: 'Bearer realm="lanyard", error="invalid_token", lanyard_code="signature_invalid"' }];
    const call = wrap();

    const res = await call(`${resource.state.url}/tickets/1`);

    expect(res.status).toBe(401);
    expect(issuer.state.calls).toHaveLength(1);
  });

  it('stops the source and tells onAuthorityLost when the resource server says credential_revoked', async () => {
    resource.state.answers = [{ status: 401, challenge: revoked }];
    const onAuthorityLost = vi.fn();
    const s = source({ onAuthorityLost });
    const call = wrap(s);

    await call(`${resource.state.url}/tickets/1`);

    expect(onAuthorityLost).toHaveBeenCalledWith({ lane: 'support-triage/prod:tickets:read:acme', code: 'credential_revoked', message: 'revoked' });
    expect(s.state().stopped).toStrictEqual({ code: 'credential_revoked' });
  });

  describe('binding to the lane\'s origins', () => {
    it('refuses a URL on another origin with origin_not_allowed naming that origin, and sends nothing there', async () => {
      const call = wrap();

      const error = await call(`${foreign.state.url}/collect?q=1`).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(FleetFetchError);
      expect(isFleetFetchError(error, 'origin_not_allowed')).toBe(true);
      expect((error as FleetFetchError).context).toStrictEqual({ origin: foreign.state.url, allowed: ['https://tickets.example.internal', resource.state.url] });
      expect((error as FleetFetchError).message).toContain(foreign.state.url);
      expect((error as FleetFetchError).message).not.toContain('token-0');
      expect((error as FleetFetchError).message).not.toContain('collect');
      expect(foreign.state.seen).toHaveLength(0);
    });

    it('sends to the credential\'s audience origin without any origins option', async () => {
      issuer.state.script = [mintFor(`${resource.state.url}/api`)];
      const call = lanyardFetch(source());

      const res = await call(`${resource.state.url}/tickets/1`);
      const elsewhere = await call(`${foreign.state.url}/tickets/1`).catch((e: unknown) => e);

      expect(res.status).toBe(200);
      expect(seen.map((r) => r.authorization)).toStrictEqual(['Bearer token-0']);
      expect(isFleetFetchError(elsewhere, 'origin_not_allowed')).toBe(true);
      expect(foreign.state.seen).toHaveLength(0);
    });

    it('refuses everything for a broker (URN) audience until origins names the broker', async () => {
      issuer.state.script = [mintFor('urn:lanyard:broker')];
      const s = source();

      const refused = await lanyardFetch(s)(`${resource.state.url}/v1/proxy/stripe/v1/charges`).catch((e: unknown) => e);
      const res = await lanyardFetch(s, { origins: [resource.state.url] })(`${resource.state.url}/v1/proxy/stripe/v1/charges`);

      expect((refused as FleetFetchError).context).toStrictEqual({ origin: resource.state.url, allowed: [] });
      expect(res.status).toBe(200);
      expect(seen.map((r) => r.authorization)).toStrictEqual(['Bearer token-0']);
    });

    it('does not stop the lane on a credential_revoked challenge from another origin (reached by a redirect)', async () => {
      resource.state.answers = [{ status: 302, location: `${foreign.state.url}/trap` }];
      foreign.state.answers = [{ status: 401, challenge: revoked }];
      const onAuthorityLost = vi.fn();
      const s = source({ onAuthorityLost });

      const res = await wrap(s)(`${resource.state.url}/tickets/1`);

      expect(res.status).toBe(401);
      expect(foreign.state.seen).toStrictEqual([{ authorization: undefined, method: 'GET', path: '/trap' }]);
      expect(onAuthorityLost).not.toHaveBeenCalled();
      expect(s.state().stopped).toBeUndefined();
      expect((await wrap(s)(`${resource.state.url}/tickets/2`)).status).toBe(200);
    });

    it('follows a redirect to another origin without the credential, even with a fetch that keeps headers across redirects', async () => {
      resource.state.answers = [{ status: 307, location: `${foreign.state.url}/elsewhere` }];
      const call = wrap(source(), { fetch: keepsHeadersAcrossRedirects });

      const res = await call(`${resource.state.url}/tickets/1`, { method: 'PUT', body: '{"x":1}', headers: { authorization: 'Bearer mine' } });

      expect(res.status).toBe(200);
      expect(seen.map((r) => r.authorization)).toStrictEqual(['Bearer token-0']);
      expect(foreign.state.seen).toStrictEqual([{ authorization: undefined, method: 'PUT', path: '/elsewhere' }]);
    });

    it('follows a redirect within the allowed origins with the credential, turning a POST into a GET on 303', async () => {
      resource.state.answers = [{ status: 303, location: '/tickets/1/result' }];
      const call = wrap();

      const res = await call(`${resource.state.url}/tickets`, { method: 'POST', body: '{"x":1}' });

      expect(res.status).toBe(200);
      expect(seen).toStrictEqual([
        { authorization: 'Bearer token-0', method: 'POST', path: '/tickets' },
        { authorization: 'Bearer token-0', method: 'GET', path: '/tickets/1/result' },
      ]);
    });

    it('refuses origins that are not bare origins, and a fetch passed where the options go', () => {
      expect(() => lanyardFetch(source(), { origins: ['https://broker.example/v1'] })).toThrow('origins[0] must be an origin');
      expect(() => lanyardFetch(source(), { origins: ['http://broker.example'] })).toThrow('origins[0] must use https:');
      expect(() => lanyardFetch(source(), fetch as never)).toThrow('pass fetch as an option');
      expect(() => lanyardFetch(source(), { origin: 'https://broker.example' } as never)).toThrow('lanyardFetch: unknown option "origin"');
    });
  });
});

describe('Function: awsCredentialProvider', () => {
  const issuer = fakeIssuer();
  beforeAll(() => issuer.start());
  afterAll(() => issuer.stop());

  it('returns the sts session with an expiration that brings the AWS client back at the refresh time, never after the session ends', async () => {
    // Prepare
    Object.assign(issuer.state, { now: T0, ttlSeconds: 3_600, kind: 'sts', calls: [], script: [] });
    const s = createCredentialSource({ issuer: issuer.url, auth: { apiKey: 'lk_x_000000000000000000' }, request: { ...REQUEST, kind: 'sts' }, clock: () => issuer.state.now, random: () => 0 });
    const provider = awsCredentialProvider(s);

    // Act
    const identity = await provider();

    // Assess: refresh at 2700 s; the AWS SDK refreshes 5 min before `expiration`.
    expect(identity).toMatchObject({ accessKeyId: 'AKIA0', secretAccessKey: 's', sessionToken: 't' });
    expect(identity.expiration).toBeInstanceOf(Date);
    expect(identity.expiration.getTime()).toBe(T0 + 2_700_000 + 300_000);
    expect(identity.expiration.getTime()).toBeLessThanOrEqual(T0 + 3_600_000);
  });
});
