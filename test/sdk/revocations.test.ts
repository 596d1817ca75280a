import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createRevocationFollower, createVerifier } from '@lanyard/sdk';
import type { Verifier, VerifierOptions } from '@lanyard/sdk';
import { AUDIENCE, createSigningKey, NOW, NOW_MS, startFakeIssuer, VERIFIER_KEY } from './fixtures/fake-issuer.ts';
import type { FakeIssuer, RevocationInput } from './fixtures/fake-issuer.ts';
import { closedPort, refusal } from './fixtures/refusal.ts';
import { claims, header, IDENTITY, LANE, sign } from './fixtures/tokens.ts';

const INSTANCE = `${IDENTITY}#inst1`;
/** The fixture tokens are issued at NOW - 10 s. */
const IAT_MS = (NOW - 10) * 1000;

describe('Function: createVerifier', () => {
  let issuer: FakeIssuer;
  let now: number;
  const verifiers: Verifier[] = [];
  const errors: Error[] = [];

  function follow(mode: 'poll' | 'stream' | 'off', overrides: Partial<VerifierOptions> = {}): Verifier {
    const verifier = createVerifier({
      issuer: issuer.url,
      audience: AUDIENCE,
      revocations: mode === 'off' ? { mode } : { mode, apiKey: VERIFIER_KEY, pollIntervalMs: 100, onError: (error) => errors.push(error) },
      clock: () => now,
      ...overrides,
    });
    verifiers.push(verifier);
    return verifier;
  }

  const token = (overrides: Record<string, unknown> = {}): Promise<string> =>
    sign(issuer.key, header(issuer.key), claims(issuer.url, overrides));

  beforeEach(async () => {
    issuer = await startFakeIssuer();
    now = NOW_MS;
    errors.length = 0;
  });

  afterEach(async () => {
    for (const verifier of verifiers.splice(0)) verifier.close();
    await issuer.close();
  });

  describe('revocations from the feed (poll mode)', () => {
    const cases: [string, () => RevocationInput, Record<string, unknown>][] = [
      ['the credential', () => ({ targetType: 'credential', targetKey: 'credential:cred_01' }), {}],
      ['the lane', () => ({ targetType: 'lane', targetKey: `lane:${LANE}` }), {}],
      ['the identity', () => ({ targetType: 'identity', targetKey: `identity:${IDENTITY}` }), {}],
      ['the instance identity', () => ({ targetType: 'identity', targetKey: `identity:${INSTANCE}` }), { sub: INSTANCE }],
      ['the class identity of an instance', () => ({ targetType: 'identity', targetKey: `identity:${IDENTITY}` }), { sub: INSTANCE }],
      ['the tenant', () => ({ targetType: 'tenant', targetKey: 'tenant:acme' }), {}],
      ['the tool (global kill switch)', () => ({ targetType: 'tool', targetKey: 'tool:tickets' }), {}],
      ['the tool for this identity', () => ({ targetType: 'tool', targetKey: `tool:tickets@${IDENTITY}` }), {}],
      ['the tool for the class of an instance', () => ({ targetType: 'tool', targetKey: `tool:tickets@${IDENTITY}` }), { sub: INSTANCE }],
      ['the tool for this instance', () => ({ targetType: 'tool', targetKey: `tool:tickets@${INSTANCE}` }), { sub: INSTANCE }],
      ['the signing key', () => ({ targetType: 'key', targetKey: `key:${issuer.key.kid}` }), {}],
    ];

    it.each(cases)('refuses a token when %s is revoked', async (_name, input, overrides) => {
      // Prepare
      const revocation = input();
      issuer.addToFeed(revocation);
      const verifier = follow('poll');
      await verifier.ready();

      // Act
      const error = await refusal(verifier.verify(await token(overrides)));

      // Assess
      expect(error.code).toBe('credential_revoked');
      expect(error.status).toBe(401);
      expect(error.message).toBe('the credential has been revoked');
      expect(error.context.revokedTarget).toEqual({ type: revocation.targetType, key: revocation.targetKey });
    });

    it.each([
      ['another credential', 'credential', 'credential:cred_99'],
      ['another tenant', 'tenant', 'tenant:globex'],
      ['another tool', 'tool', 'tool:billing'],
      ['the tool for another identity', 'tool', 'tool:tickets@billing-bot/prod'],
      ['an instance, for its class token', 'identity', `identity:${INSTANCE}`],
      ['another key', 'key', 'key:other'],
    ] as const)('accepts a token when only %s is revoked', async (_name, targetType, targetKey) => {
      // Prepare
      issuer.addToFeed({ targetType, targetKey });
      const verifier = follow('poll');
      await verifier.ready();

      // Act
      const result = await verifier.verify(await token());

      // Assess
      expect(result.jti).toBe('cred_01');
    });

    it('refuses a token revoked after the verifier started, at the next poll', async () => {
      // Prepare
      const verifier = follow('poll');
      const credential = await token();
      await verifier.verify(credential);

      // Act
      issuer.addToFeed({ targetType: 'lane', targetKey: `lane:${LANE}` });

      // Assess
      await vi.waitFor(async () => expect((await refusal(verifier.verify(credential))).code).toBe('credential_revoked'), {
        timeout: 60_000,
        interval: 20,
      });
    });

    it('pages through the feed until hasMore is false before it is ready', async () => {
      // Prepare
      issuer.pageSize = 2;
      for (let i = 0; i < 4; i += 1) issuer.addToFeed({ targetType: 'credential', targetKey: `credential:other_${i}` });
      issuer.addToFeed({ targetType: 'credential', targetKey: 'credential:cred_01' });
      const verifier = follow('poll');

      // Act
      await verifier.ready();
      const error = await refusal(verifier.verify(await token()));

      // Assess
      expect(error.code).toBe('credential_revoked');
      expect(issuer.requests.feed).toBe(3);
    });

    it('accepts a token issued after the cut-off', async () => {
      // Prepare
      issuer.addToFeed({ targetType: 'lane', targetKey: `lane:${LANE}`, cutoffMs: IAT_MS - 1_000 });
      const verifier = follow('poll');
      await verifier.ready();

      // Act
      const result = await verifier.verify(await token());

      // Assess
      expect(result.lane).toBe(LANE);
    });

    it('refuses a token issued in the same second as the cut-off (conservative)', async () => {
      // Prepare
      issuer.addToFeed({ targetType: 'lane', targetKey: `lane:${LANE}`, cutoffMs: IAT_MS + 999 });
      const verifier = follow('poll');
      await verifier.ready();

      // Act
      const error = await refusal(verifier.verify(await token()));

      // Assess
      expect(error.code).toBe('credential_revoked');
    });

    it('keeps the latest cut-off when an older revocation of the same target arrives later', async () => {
      // Prepare
      issuer.addToFeed({ targetType: 'lane', targetKey: `lane:${LANE}`, cutoffMs: IAT_MS + 5_000 });
      issuer.addToFeed({ targetType: 'lane', targetKey: `lane:${LANE}`, cutoffMs: IAT_MS - 5_000 });
      const verifier = follow('poll');
      await verifier.ready();

      // Act
      const error = await refusal(verifier.verify(await token()));

      // Assess
      expect(error.code).toBe('credential_revoked');
    });

    it('forgets a revocation once relevantUntil has passed', async () => {
      // Prepare
      issuer.addToFeed({ targetType: 'lane', targetKey: `lane:${LANE}`, relevantUntilMs: NOW_MS + 60_000 });
      const verifier = follow('poll');
      await verifier.ready();
      const credential = await token({ exp: NOW + 3_600 });
      const before = await refusal(verifier.verify(credential));

      // Act
      now = NOW_MS + 60_000;
      const result = await verifier.verify(credential);

      // Assess
      expect(before.code).toBe('credential_revoked');
      expect(result.jti).toBe('cred_01');
    });

    it('ignores a revocation whose relevantUntil has already passed', async () => {
      // Prepare
      issuer.addToFeed({ targetType: 'lane', targetKey: `lane:${LANE}`, relevantUntilMs: NOW_MS - 1 });
      const verifier = follow('poll');
      await verifier.ready();

      // Act
      const result = await verifier.verify(await token());

      // Assess
      expect(result.jti).toBe('cred_01');
    });

    it('skips an unreadable revocation and applies the others', async () => {
      // Prepare
      issuer.addToFeed({ targetType: 'lane', targetKey: 'credential:mismatched' });
      issuer.addToFeed({ targetType: 'credential', targetKey: 'credential:cred_01' });
      const verifier = follow('poll');
      await verifier.ready();

      // Act
      const error = await refusal(verifier.verify(await token()));

      // Assess
      expect(error.code).toBe('credential_revoked');
      expect(errors.map((e) => e.message)).toContain('skipped an unreadable revocation');
    });
  });

  describe('failing closed', () => {
    it('refuses with verifier_unavailable when the feed is unreachable at start', async () => {
      // Prepare
      const port = await closedPort();
      const verifier = follow('poll', {
        issuer: `http://127.0.0.1:${port}`,
        jwksUri: `${issuer.url}/.well-known/jwks.json`,
      });
      const credential = await sign(issuer.key, header(issuer.key), claims(`http://127.0.0.1:${port}`));

      // Act
      const error = await refusal(verifier.verify(credential));
      const notReady = await refusal(verifier.ready());

      // Assess
      expect(error.code).toBe('verifier_unavailable');
      expect(error.status).toBe(503);
      expect(notReady.code).toBe('verifier_unavailable');
    });

    it('refuses with verifier_unavailable while the feed answers 503, and recovers when it is back', async () => {
      // Prepare
      issuer.feedUp = false;
      const verifier = follow('stream');
      const credential = await token();
      const down = await refusal(verifier.verify(credential));

      // Act
      issuer.feedUp = true;

      // Assess
      expect(down.code).toBe('verifier_unavailable');
      await vi.waitFor(() => verifier.verify(credential), { timeout: 60_000, interval: 20 });
    });

    it('accepts for less than maxStalenessMs after the last contact, refuses with verifier_unavailable from then on, and accepts again once the feed answers', async () => {
      // Prepare: synced at NOW_MS, then the feed goes down.
      const verifier = follow('poll');
      const credential = await token({ exp: NOW + 3_600 });
      await verifier.verify(credential);
      issuer.feedUp = false;

      // Act
      now = NOW_MS + 119_999;
      const within = await verifier.verify(credential);
      now = NOW_MS + 120_000;
      const past = await refusal(verifier.verify(credential));
      issuer.feedUp = true;

      // Assess
      expect(within.jti).toBe('cred_01');
      expect(past.code).toBe('verifier_unavailable');
      expect(past.status).toBe(503);
      await vi.waitFor(() => verifier.verify(credential), { timeout: 10_000, interval: 20 });
    });

    it('does not accept a token whose lane was revoked while the feed was down, and refuses it as revoked once the feed is back', async () => {
      // Prepare
      const verifier = follow('poll', { revocations: { mode: 'poll', apiKey: VERIFIER_KEY, pollIntervalMs: 100, maxStalenessMs: 60_000, onError: (error) => errors.push(error) } });
      const credential = await token({ exp: NOW + 3_600 });
      await verifier.verify(credential);
      issuer.feedUp = false;
      issuer.addToFeed({ targetType: 'lane', targetKey: `lane:${LANE}` });

      // Act
      now = NOW_MS + 60_000;
      const down = await refusal(verifier.verify(credential));
      issuer.feedUp = true;

      // Assess
      expect(down.code).toBe('verifier_unavailable');
      await vi.waitFor(async () => expect((await refusal(verifier.verify(credential))).code).toBe('credential_revoked'), {
        timeout: 10_000,
        interval: 20,
      });
    });

    it('counts a keep-alive on a quiet event stream as contact', async () => {
      // Prepare: connected, with the stream read up to a revocation event.
      const verifier = follow('stream');
      const credential = await token({ exp: NOW + 3_600 });
      await verifier.verify(credential);
      await issuer.waitForStreams(1);
      issuer.revoke({ targetType: 'credential', targetKey: 'credential:cred_other' });
      const other = await token({ jti: 'cred_other', exp: NOW + 3_600 });
      await vi.waitFor(async () => expect((await refusal(verifier.verify(other))).code).toBe('credential_revoked'), { timeout: 10_000, interval: 20 });

      // Act
      now = NOW_MS + 120_000;
      const quiet = await refusal(verifier.verify(credential));
      issuer.pushRaw(': keep-alive\n\n');

      // Assess
      expect(quiet.code).toBe('verifier_unavailable');
      await vi.waitFor(() => verifier.verify(credential), { timeout: 10_000, interval: 20 });
    });

    it('refuses a staleness bound shorter than two polls', () => {
      expect(() => follow('poll', { revocations: { mode: 'poll', apiKey: VERIFIER_KEY, pollIntervalMs: 20_000, maxStalenessMs: 30_000 } })).toThrow(
        'revocations.maxStalenessMs must be at least twice pollIntervalMs',
      );
    });

    it('does not need the feed when revocations are off', async () => {
      // Prepare
      issuer.feedUp = false;
      const verifier = follow('off');

      // Act
      const result = await verifier.verify(await token());

      // Assess
      expect(result.jti).toBe('cred_01');
      expect(issuer.requests.feed).toBe(0);
    });
  });

  describe('revocations from the event stream (stream mode)', () => {
    it.each([
      ['credential', 'credential:cred_01'],
      ['lane', `lane:${LANE}`],
      ['identity', `identity:${IDENTITY}`],
      ['tenant', 'tenant:acme'],
      ['tool', 'tool:tickets'],
    ] as const)('refuses a token within 1 s of a %s revocation event', async (targetType, targetKey) => {
      // Prepare
      const verifier = follow('stream');
      const credential = await token();
      await verifier.verify(credential);
      await issuer.waitForStreams(1);

      // Act
      const started = performance.now();
      issuer.revoke({ targetType, targetKey });
      await vi.waitFor(async () => expect((await refusal(verifier.verify(credential))).code).toBe('credential_revoked'), {
        timeout: 1_000,
        interval: 5,
      });

      // Assess
      expect(performance.now() - started).toBeLessThan(1_000);
    });

    it('refuses a token within 1 s of a Signing Key Revoked event', async () => {
      // Prepare
      const verifier = follow('stream');
      const credential = await token();
      await verifier.verify(credential);
      await issuer.waitForStreams(1);

      // Act
      issuer.revoke({ targetType: 'key', targetKey: `key:${issuer.key.kid}` });

      // Assess
      await vi.waitFor(
        async () => expect((await refusal(verifier.verify(credential))).context.revokedTarget).toEqual({ type: 'key', key: `key:${issuer.key.kid}` }),
        { timeout: 1_000, interval: 5 },
      );
    });

    it('ignores keep-alives, unknown event types and unreadable events', async () => {
      // Prepare
      const verifier = follow('stream');
      const credential = await token();
      await verifier.verify(credential);
      await issuer.waitForStreams(1);

      // Act
      issuer.pushRaw(': keep-alive\n\n');
      issuer.push('Target Reinstated', { target: { lane: LANE } });
      issuer.push('Grant Changed', { grant: 'x' });
      issuer.pushRaw('event: Lane Revoked\ndata: {not json\n\n');
      issuer.revoke({ targetType: 'credential', targetKey: 'credential:cred_01' });

      // Assess
      await vi.waitFor(async () => expect((await refusal(verifier.verify(credential))).code).toBe('credential_revoked'), {
        timeout: 60_000,
        interval: 5,
      });
      expect(errors.map((e) => e.message)).toEqual(['skipped an unreadable event']);
    });

    it('reconnects with Last-Event-ID and fills the gap from the feed', async () => {
      // Prepare
      const verifier = follow('stream');
      const credential = await token();
      await verifier.verify(credential);
      await issuer.waitForStreams(1);
      issuer.revoke({ targetType: 'credential', targetKey: 'credential:cred_other' });
      await vi.waitFor(() => expect(issuer.requests.events).toBe(1), { timeout: 60_000 });
      await new Promise((resolve) => setTimeout(resolve, 50));

      // Act: drop the stream, revoke while disconnected (feed only)
      issuer.dropStreams();
      issuer.addToFeed({ targetType: 'lane', targetKey: `lane:${LANE}` });

      // Assess
      await vi.waitFor(async () => expect((await refusal(verifier.verify(credential))).code).toBe('credential_revoked'), {
        timeout: 60_000,
        interval: 10,
      });
      expect(issuer.requests.events).toBe(2);
      expect(issuer.requests.lastEventIds).toEqual([undefined, '1']);
    });

    it('drops the JWKS cool-down on Signing Key Rotated', async () => {
      // Prepare
      const verifier = follow('stream');
      await verifier.verify(await token());
      await issuer.waitForStreams(1);
      const next = await createSigningKey();
      issuer.jwks.push(next.publicJwk);
      const rotated = await sign(next, header(next), claims(issuer.url));

      // Act
      issuer.push('Signing Key Rotated', { kid: next.kid });

      // Assess
      await vi.waitFor(() => expect(issuer.requests.jwks).toBe(2), { timeout: 60_000, interval: 5 });
      const result = await verifier.verify(rotated);
      expect(result.jti).toBe('cred_01');
    });
  });
});

describe('Function: createRevocationFollower', () => {
  describe('Method: apply', () => {
    it('refuses a revocation whose targetKey does not match its targetType', () => {
      // Prepare
      const follower = createRevocationFollower({ issuer: 'https://issuer.example', apiKey: 'k', mode: 'poll', clock: () => NOW_MS });

      // Act & Assess
      expect(() =>
        follower.apply({
          id: 'rev_1',
          seq: 1,
          targetType: 'tenant',
          targetKey: 'lane:acme',
          cutoff: new Date(NOW_MS).toISOString(),
          relevantUntil: new Date(NOW_MS + 60_000).toISOString(),
        }),
      ).toThrow('targetKey does not match targetType');
    });
  });

  describe('Method: isRevoked', () => {
    it('answers from memory with the matching target', () => {
      // Prepare
      const follower = createRevocationFollower({ issuer: 'https://issuer.example', apiKey: 'k', mode: 'poll', clock: () => NOW_MS });
      follower.apply({
        id: 'rev_1',
        seq: 1,
        targetType: 'tool',
        targetKey: `tool:tickets@${IDENTITY}`,
        cutoff: new Date(NOW_MS).toISOString(),
        relevantUntil: new Date(NOW_MS + 60_000).toISOString(),
      });

      // Act
      const instance = follower.isRevoked({ jti: 'c', sub: INSTANCE, lane: LANE, iat: NOW - 1, tenant: 'acme' }, { kid: 'k' });
      const later = follower.isRevoked({ jti: 'c', sub: INSTANCE, lane: LANE, iat: NOW + 1, tenant: 'acme' }, { kid: 'k' });

      // Assess
      expect(instance).toEqual({ type: 'tool', key: `tool:tickets@${IDENTITY}` });
      expect(later).toBeUndefined();
    });
  });
});
