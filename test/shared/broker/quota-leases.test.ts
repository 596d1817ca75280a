/** Quota leases on a real store (SQLite, in memory): exact near the limit, one write per many calls far from it. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QuotaPolicy } from '../../../shared/domain/model.ts';
import type { Store } from '../../../shared/ports/index.ts';
import { SqliteStore } from '../../../shared/adapters/sqlite/sqlite-store.ts';
import { QuotaLeases } from '../../../shared/broker/quota-leases.ts';

const HOUR = { startMs: Date.parse('2026-11-22T10:00:00.000Z'), seconds: 3600 };
let store: SqliteStore;
let bucketSeq = 0;

beforeAll(() => {
  store = SqliteStore.open({ location: ':memory:' });
});
afterAll(() => store.close());

const policy = (limits: { requests?: number; units?: number }): QuotaPolicy => ({
  bucket: `bucket-${(bucketSeq += 1)}`,
  windowSeconds: 3600,
  updatedAt: '2026-11-22T10:00:00.000Z',
  ...limits,
});

/** The store, counting its takeQuota calls. */
function counted(inner: Store): { store: Store; takes: () => number } {
  let takes = 0;
  const wrapped = new Proxy(inner, {
    get(target, property, receiver) {
      if (property === 'takeQuota') {
        return (...args: Parameters<Store['takeQuota']>) => {
          takes += 1;
          return target.takeQuota(...args);
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store: wrapped, takes: () => takes };
}

describe('QuotaLeases', () => {
  it('admits exactly the limit of a small bucket, however many calls race', async () => {
    const small = policy({ requests: 5 });
    const leases = new QuotaLeases(store);
    const outcomes = await Promise.all(Array.from({ length: 12 }, () => leases.take(small, HOUR)));
    expect(outcomes.filter((o) => o.status === 'taken')).toHaveLength(5);
    const refused = outcomes.find((o) => o.status === 'exhausted');
    expect(refused).toMatchObject({ status: 'exhausted', usage: { requests: 5 } });
    expect((await store.getQuotaUsage(small.bucket, HOUR))?.requests).toBe(5);
  });

  it('reserves in leases while the bucket has room: far fewer writes than calls, and never more counted than a lease ahead', async () => {
    const big = policy({ requests: 1_000_000 });
    const { store: countedStore, takes } = counted(store);
    const leases = new QuotaLeases(countedStore, { maxLease: 32 });
    for (let i = 0; i < 200; i += 1) expect((await leases.take(big, HOUR)).status).toBe('taken');
    expect(takes()).toBeLessThanOrEqual(10);
    const counter = (await store.getQuotaUsage(big.bucket, HOUR))!.requests;
    expect(counter).toBeGreaterThanOrEqual(200);
    expect(counter - 200).toBeLessThan(32);
  });

  it('two processes drive a bucket to exactly its limit between them', async () => {
    const shared = policy({ requests: 3_000 });
    const [a, b] = [new QuotaLeases(store), new QuotaLeases(store)];
    const drain = async (leases: QuotaLeases) => {
      let taken = 0;
      while ((await leases.take(shared, HOUR)).status === 'taken') taken += 1;
      return taken;
    };
    const [fromA, fromB] = await Promise.all([drain(a), drain(b)]);
    expect(fromA + fromB).toBe(3_000);
    expect((await store.getQuotaUsage(shared.bucket, HOUR))?.requests).toBe(3_000);
  });

  it('takes a unit-limited bucket one request at a time, so each call sees the latest units', async () => {
    const units = policy({ requests: 1_000_000, units: 50 });
    const { store: countedStore, takes } = counted(store);
    const leases = new QuotaLeases(countedStore);
    expect((await leases.take(units, HOUR)).status).toBe('taken');
    expect((await leases.take(units, HOUR)).status).toBe('taken');
    expect(takes()).toBe(2);
    await store.addQuotaUnits(units.bucket, HOUR, 50);
    expect(await leases.take(units, HOUR)).toMatchObject({ status: 'exhausted', usage: { requests: 2, units: 50 } });
  });

  it('lets an unused lease lapse with its window', async () => {
    const big = policy({ requests: 1_000_000 });
    const leases = new QuotaLeases(store);
    for (let i = 0; i < 3; i += 1) await leases.take(big, HOUR);
    const next = { startMs: HOUR.startMs + 3_600_000, seconds: 3600 };
    expect((await leases.take(big, next)).status).toBe('taken');
    expect((await store.getQuotaUsage(big.bucket, next))?.requests).toBe(1);
  });
});
