import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLocalServices, type LocalServices } from '../../../shared/bootstrap/local/runtime.ts';
import { DecisionLog } from '../../../shared/audit/decision-log.ts';
import type { DecisionRecord } from '../../../shared/domain/model.ts';
import { silentLog } from '../../../shared/ports/log.ts';
import type { Store } from '../../../shared/ports/index.ts';

const record = (i: number): DecisionRecord => ({
  id: `deny_req-${i}`,
  requestId: `req-${i}`,
  at: new Date(Date.UTC(2026, 10, 22, 10, 0, 0, i)).toISOString(),
  decision: 'denied',
  reason: 'not_granted',
  identity: 'batch/prod',
  actionsRequested: ['tickets:read'],
  actionsGranted: [],
});

describe('Class: DecisionLog', () => {
  let runtime: LocalServices;
  beforeAll(async () => {
    runtime = await openLocalServices({ dataDir: await mkdtemp(join(tmpdir(), 'lanyard-log-')), issuer: 'http://issuer.test', inMemory: true, log: silentLog });
  });
  afterAll(() => runtime.close());

  describe('Method: append', () => {
    it('gathers concurrent records into few writes, and every record is durable when its promise resolves', async () => {
      // Prepare: count the writes the real store receives.
      let writes = 0;
      const counting: Store = new Proxy(runtime.store, {
        get(target, property) {
          const value = Reflect.get(target, property) as (...args: unknown[]) => unknown;
          if (property === 'putDecisions') {
            return (records: readonly DecisionRecord[]) => {
              writes += 1;
              return target.putDecisions(records);
            };
          }
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const log = new DecisionLog({ store: counting });

      // Act
      await Promise.all(Array.from({ length: 200 }, (_, i) => log.append(record(i))));

      // Assess
      expect(writes).toBeLessThanOrEqual(8);
      const stored = await runtime.store.queryDecisions({ by: 'identity', value: 'batch/prod', limit: 1000 });
      expect(stored.items).toHaveLength(200);
    });

    it('writes a lone record at once, in a batch of one', async () => {
      const log = new DecisionLog({ store: runtime.store });

      await log.append({ ...record(1000), identity: 'lone/prod' });

      const stored = await runtime.store.queryDecisions({ by: 'identity', value: 'lone/prod' });
      expect(stored.items.map((r) => r.requestId)).toEqual(['req-1000']);
    });

    it('rejects every record of a batch whose write failed, and keeps working afterwards', async () => {
      let fail = true;
      const flaky = new Proxy(runtime.store, {
        get(target, property) {
          if (property === 'putDecisions' && fail) return () => Promise.reject(new Error('throttled'));
          const value = Reflect.get(target, property) as (...args: unknown[]) => unknown;
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const log = new DecisionLog({ store: flaky });

      const results = await Promise.allSettled([log.append(record(2000)), log.append(record(2001))]);
      fail = false;
      await log.append({ ...record(2002), identity: 'after/prod' });

      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
      expect((await runtime.store.queryDecisions({ by: 'identity', value: 'after/prod' })).items).toHaveLength(1);
    });
  });
});
