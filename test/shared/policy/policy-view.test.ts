/**
 * The broker's reads through the policy view: a bucket's quota policy and a provider's secret
 * pointer are cached for `ttlMs` (the stated bound on a rotation reaching new requests) and
 * forgotten by `invalidate()`. The store is a stub that counts reads; the clock is frozen.
 */
import { describe, expect, it } from 'vitest';
import type { QuotaPolicy, RoleVersion, Tool, UpstreamSecretRef } from '../../../shared/domain/model.ts';
import type { PolicyItemKeys, Store } from '../../../shared/ports/index.ts';
import { PolicyView } from '../../../shared/policy/policy-view.ts';

const NOW = Date.parse('2026-11-22T12:00:00.000Z');

function setup(ttlMs = 1_000) {
  const quotas = new Map<string, QuotaPolicy>();
  const refs = new Map<string, UpstreamSecretRef>();
  const reads = { quota: 0, secret: 0 };
  const store = {
    getQuota: (bucket: string) => {
      reads.quota++;
      return Promise.resolve(quotas.get(bucket));
    },
    getUpstreamSecretRef: (provider: string) => {
      reads.secret++;
      return Promise.resolve(refs.get(provider));
    },
  } as Partial<Store> as Store;
  const clock = { ms: NOW, now: () => clock.ms };
  const view = new PolicyView({ store, clock, ttlMs });
  return { view, quotas, refs, reads, clock };
}

const quota = (requests: number): QuotaPolicy => ({ bucket: 'support-llm', windowSeconds: 60, requests, updatedAt: '2026-11-22T12:00:00.000Z' });
const ref = (version: string): UpstreamSecretRef => ({
  provider: 'stripe',
  version,
  rotatedAt: '2026-11-22T12:00:00.000Z',
  actor: 'alice@example.com',
  reason: 'rotation',
  requestId: 'req-1',
});

describe('Class: PolicyView', () => {
  describe('Method: quota', () => {
    it('reads a bucket once per ttl, sharing concurrent misses, and sees a change after the ttl', async () => {
      // Prepare
      const { view, quotas, reads, clock } = setup();
      quotas.set('support-llm', quota(10));

      // Act
      const [first, second] = await Promise.all([view.quota('support-llm'), view.quota('support-llm')]);
      quotas.set('support-llm', quota(20));
      clock.ms += 999;
      const cached = await view.quota('support-llm');
      clock.ms += 1;
      const fresh = await view.quota('support-llm');

      // Assess
      expect(first).toStrictEqual(quota(10));
      expect(second).toStrictEqual(quota(10));
      expect(cached).toStrictEqual(quota(10));
      expect(fresh).toStrictEqual(quota(20));
      expect(reads.quota).toBe(2);
    });

    it('caches an unmetered bucket (no policy) too', async () => {
      // Prepare
      const { view, reads } = setup();

      // Act
      const answers = [await view.quota('nobody'), await view.quota('nobody')];

      // Assess
      expect(answers).toStrictEqual([undefined, undefined]);
      expect(reads.quota).toBe(1);
    });
  });

  describe('Method: upstreamSecret', () => {
    it('serves the cached pointer within the ttl and the rotated one after it', async () => {
      // Prepare
      const { view, refs, reads, clock } = setup(5_000);
      refs.set('stripe', ref('v-1'));
      await view.upstreamSecret('stripe');
      refs.set('stripe', ref('v-2'));

      // Act
      const within = await view.upstreamSecret('stripe');
      clock.ms += 5_000;
      const after = await view.upstreamSecret('stripe');

      // Assess
      expect(within?.version).toBe('v-1');
      expect(after?.version).toBe('v-2');
      expect(reads.secret).toBe(2);
      expect(view.ttlMs).toBe(5_000);
    });
  });

  describe('Method: invalidate', () => {
    it('forgets cached quotas and secret pointers at once', async () => {
      // Prepare
      const { view, quotas, refs, reads } = setup();
      quotas.set('support-llm', quota(10));
      refs.set('stripe', ref('v-1'));
      await view.quota('support-llm');
      await view.upstreamSecret('stripe');
      quotas.set('support-llm', quota(20));
      refs.set('stripe', ref('v-2'));

      // Act
      view.invalidate();

      // Assess
      expect(await view.quota('support-llm')).toStrictEqual(quota(20));
      expect((await view.upstreamSecret('stripe'))?.version).toBe('v-2');
      expect(reads).toStrictEqual({ quota: 2, secret: 2 });
    });
  });

  describe('Method: prefetch', () => {
    function batchSetup() {
      const base = setup();
      const tools = new Map<string, Tool>([['tickets', { id: 'tickets', audience: 'https://tickets.example', permissions: { read: ['tickets:read'] }, enabled: true, updatedAt: '2026-11-22T12:00:00.000Z' } as unknown as Tool]]);
      const roles = new Map<string, RoleVersion>([['triage@1', { id: 'triage', version: 1, actions: ['tickets:read'] } as unknown as RoleVersion]]);
      const asked: PolicyItemKeys[] = [];
      const single = { tool: 0, role: 0 };
      Object.assign(base.view.store, {
        getPolicyItems: (wanted: PolicyItemKeys) => {
          asked.push(wanted);
          return Promise.resolve({
            tools: new Map((wanted.tools ?? []).flatMap((id) => (tools.has(id) ? [[id, tools.get(id)!] as const] : []))),
            roles: new Map((wanted.roles ?? []).flatMap((r) => (roles.has(`${r.id}@${r.version}`) ? [[`${r.id}@${r.version}`, roles.get(`${r.id}@${r.version}`)!] as const] : []))),
            quotas: new Map((wanted.quotas ?? []).flatMap((b) => (base.quotas.has(b) ? [[b, base.quotas.get(b)!] as const] : []))),
          });
        },
        getTool: (id: string) => {
          single.tool++;
          return Promise.resolve(tools.get(id));
        },
        getRoleVersion: (id: string, version: number) => {
          single.role++;
          return Promise.resolve(roles.get(`${id}@${version}`));
        },
      });
      return { ...base, asked, single, tools };
    }

    it('reads tools, roles and quotas in one store call, after which the single reads come from the cache, absent ones too', async () => {
      // Prepare
      const { view, quotas, reads, asked, single } = batchSetup();
      quotas.set('support-llm', quota(10));

      // Act
      await view.prefetch({ tools: ['tickets', 'tickets', 'wiki'], roles: [{ id: 'triage', version: 1 }], quotas: ['support-llm', 'nobody'] });
      const answers = [await view.tool('tickets'), await view.tool('wiki'), await view.role('triage', 1), await view.quota('support-llm'), await view.quota('nobody')];

      // Assess
      expect(asked).toStrictEqual([{ tools: ['tickets', 'wiki'], roles: [{ id: 'triage', version: 1 }], quotas: ['support-llm', 'nobody'] }]);
      expect(answers.map((a) => (a === undefined ? undefined : 'found'))).toStrictEqual(['found', undefined, 'found', 'found', undefined]);
      expect(single).toStrictEqual({ tool: 0, role: 0 });
      expect(reads.quota).toBe(0);
    });

    it('asks only for what is not cached, and nothing at all when everything is', async () => {
      // Prepare
      const { view, asked } = batchSetup();
      await view.tool('tickets');

      // Act
      await view.prefetch({ tools: ['tickets'], quotas: ['support-llm'] });
      await view.prefetch({ tools: ['tickets'], quotas: ['support-llm'] });

      // Assess
      expect(asked).toStrictEqual([{ tools: [], roles: [], quotas: ['support-llm'] }]);
    });

    it('reads again once the ttl has passed, and sees the change', async () => {
      // Prepare
      const { view, asked, clock, tools } = batchSetup();
      await view.prefetch({ tools: ['tickets'] });
      tools.delete('tickets');

      // Act
      clock.ms += 1_000;
      await view.prefetch({ tools: ['tickets'] });

      // Assess
      expect(asked).toHaveLength(2);
      expect(await view.tool('tickets')).toBeUndefined();
    });
  });
});
