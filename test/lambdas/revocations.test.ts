import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEYS, startTestIssuer, type TestIssuer } from '../helpers/issuer.ts';

const REVOCATIONS = 25;
const laneOf = (i: number) => `support-triage/prod:tickets:read:tenant-${String(i).padStart(2, '0')}`;

describe('Handler: GET /v1/revocations', () => {
  let issuer: TestIssuer;
  /** Target keys in the order the admin revoked them. */
  const revokedKeys: string[] = [];

  beforeAll(async () => {
    issuer = await startTestIssuer();
    for (let i = 0; i < REVOCATIONS; i += 1) {
      const res = await issuer.post('/v1/admin', { command: 'revoke', target: { lane: laneOf(i) }, reason: `paging test ${i}` }, KEYS.admin);
      if (res.status !== 200) throw new Error(`revoke ${i} answered ${res.status}: ${JSON.stringify(res.body)}`);
      revokedKeys.push(res.body.result.revocation.targetKey);
    }
  });
  afterAll(() => issuer.stop());

  describe('when a verifier pages through the feed', () => {
    it('returns every revocation exactly once, in commit order, over pages of `limit` with the cursor', async () => {
      // Prepare
      const seen: any[] = [];
      const pages: { size: number; hasMore: boolean; cursor: string }[] = [];
      let cursor: string | undefined;

      // Act
      for (let page = 0; page < 10; page += 1) {
        const res = await issuer.get(`/v1/revocations?limit=7${cursor === undefined ? '' : `&after=${cursor}`}`, KEYS.verifier);
        expect(res.status).toBe(200);
        seen.push(...res.body.revocations);
        pages.push({ size: res.body.revocations.length, hasMore: res.body.hasMore, cursor: res.body.cursor });
        cursor = res.body.cursor;
        if (!res.body.hasMore) break;
      }

      // Assess
      expect(pages).toEqual([
        { size: 7, hasMore: true, cursor: '7' },
        { size: 7, hasMore: true, cursor: '14' },
        { size: 7, hasMore: true, cursor: '21' },
        { size: 4, hasMore: false, cursor: '25' },
      ]);
      expect(seen.map((r) => r.seq)).toEqual(Array.from({ length: REVOCATIONS }, (_, i) => i + 1));
      expect(seen.map((r) => r.targetKey)).toEqual(revokedKeys);
      expect(new Set(seen.map((r) => r.id)).size).toBe(REVOCATIONS);
      expect(seen[0]).toMatchObject({ targetType: 'lane', target: { lane: laneOf(0) }, actor: 'oncall', reason: 'paging test 0' });
      expect(Date.parse(seen[0].relevantUntil)).toBeGreaterThan(Date.parse(seen[0].cutoff));
    });

    it('answers an empty page with the same cursor once the reader has caught up', async () => {
      const res = await issuer.get(`/v1/revocations?after=${REVOCATIONS}&limit=7`, KEYS.verifier);

      expect(res.status).toBe(200);
      expect(res.body).toEqual({ revocations: [], cursor: String(REVOCATIONS), hasMore: false });
    });

    it('serves the whole feed in one page without a limit, to admins too', async () => {
      const res = await issuer.get('/v1/revocations', KEYS.admin);

      expect(res.status).toBe(200);
      expect(res.body.revocations.map((r: any) => r.targetKey)).toEqual(revokedKeys);
      expect(res.body).toMatchObject({ cursor: String(REVOCATIONS), hasMore: false });
    });

    it('shows a revocation committed after a reader caught up on its next read, and only that one', async () => {
      // Prepare
      const before = await issuer.get('/v1/revocations', KEYS.verifier);
      const lane = 'support-triage/prod:crm:read:late';

      // Act
      const revoked = await issuer.post('/v1/admin', { command: 'revoke', target: { lane }, reason: 'late entry' }, KEYS.admin);
      const after = await issuer.get(`/v1/revocations?after=${before.body.cursor}`, KEYS.verifier);

      // Assess
      expect(revoked.status).toBe(200);
      expect(after.body.revocations).toHaveLength(1);
      expect(after.body.revocations[0]).toMatchObject({ seq: Number(before.body.cursor) + 1, targetKey: `lane:${lane}` });
    });
  });

  describe('when the query is malformed', () => {
    it.each([
      ['after=abc', 'after'],
      ['after=-1', 'after'],
      ['after=1.5', 'after'],
      ['after=12345678901234567', 'after'],
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
      ['limit=abc', 'limit'],
      ['limit=-3', 'limit'],
    ])('answers 400 invalid_request naming the field for ?%s', async (query, field) => {
      const res = await issuer.get(`/v1/revocations?${query}`, KEYS.verifier);

      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_request', field, retryable: false });
      expect(typeof res.body.error.requestId).toBe('string');
    });
  });

  describe('when the caller may not read the feed', () => {
    it('answers 403 forbidden to an agent key', async () => {
      const res = await issuer.get('/v1/revocations', KEYS.agent);

      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
      expect(res.body.revocations).toBeUndefined();
    });

    it.each([
      ['no key', undefined],
      ['an unknown key', 'lk_test_nobody_key_0000000000000000009'],
      ['a malformed key', 'not-a-key'],
    ])('answers 401 unauthenticated with a Bearer challenge and no detail to %s', async (_name, key) => {
      const res = await issuer.get('/v1/revocations', key);

      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="lanyard"');
      expect(res.body.error.code).toBe('unauthenticated');
      expect(Object.keys(res.body.error).sort()).toEqual(['code', 'message', 'requestId', 'retryable']);
    });
  });
});
