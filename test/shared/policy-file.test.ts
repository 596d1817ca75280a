import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLocalRuntime, type LocalRuntime } from '../../shared/adapters/local/runtime.ts';
import { silentLog } from '../../shared/log.ts';
import { applyPolicy, parsePolicyDocument } from '../../shared/policy-file.ts';
import { LanyardError } from '../../shared/errors.ts';
import { testPolicy } from '../helpers/issuer.ts';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NOW = '2026-11-22T10:00:00.000Z';

describe('Function: applyPolicy', () => {
  let runtime: LocalRuntime;

  beforeAll(async () => {
    runtime = await openLocalRuntime({ dataDir: await mkdtemp(join(tmpdir(), 'lanyard-policy-')), issuer: 'http://issuer.test', inMemory: true, log: silentLog });
  });
  afterAll(() => runtime.close());

  it('reports every change on the first apply and none on the second', async () => {
    // Act
    const first = await applyPolicy(runtime.store, testPolicy(), NOW);
    const second = await applyPolicy(runtime.store, testPolicy(), '2026-11-22T11:00:00.000Z');

    // Assess
    expect(first.changes).toContain('created tool tickets');
    expect(first.changes).toContain('published role support-triage@1 (approved by alice@example.com)');
    expect(first.changes).toContain('created grant support-triage@1 for support-triage/prod');
    expect(second.changes).toEqual([]);
    expect(second.generatedKeys).toEqual([]);
  });

  it('refuses a role version that exists with other actions, and writes nothing', async () => {
    // Prepare
    const doc = testPolicy();
    doc.roles[0] = { ...doc.roles[0]!, actions: ['tickets:read', 'tickets:purge'] };
    doc.tools[0] = { ...doc.tools[0]!, audience: 'https://changed.example.internal' };

    // Act
    const error = await applyPolicy(runtime.store, doc, NOW).catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(LanyardError);
    expect((error as LanyardError).code).toBe('conflict');
    expect((error as LanyardError).context.field).toBe('roles[0]');
    expect((await runtime.store.getTool('tickets'))?.audience).toBe('https://tickets.example.internal');
  });

  it('publishes a new version beside the old one rather than changing it', async () => {
    const doc = testPolicy();
    doc.roles = [{ id: 'support-triage', version: 2, actions: ['tickets:read'], approvedBy: 'carol@example.com' }];

    const result = await applyPolicy(runtime.store, doc, NOW);

    expect(result.changes).toContain('published role support-triage@2 (approved by carol@example.com)');
    expect((await runtime.store.getRoleVersion('support-triage', 1))?.actions).toContain('tickets:reply');
  });

  it.each([
    ['a role action no tool declares', (d: ReturnType<typeof testPolicy>) => (d.roles[0] = { ...d.roles[0]!, version: 9, actions: ['tickets:fly'] }), 'roles[0].actions[0]'],
    ['a grant for an unknown identity', (d: ReturnType<typeof testPolicy>) => (d.grants[0] = { ...d.grants[0]!, identity: 'ghost/prod' }), 'grants[0].identity'],
    ['a grant of an unknown role version', (d: ReturnType<typeof testPolicy>) => (d.grants[0] = { ...d.grants[0]!, role: 'support-triage@99' }), 'grants[0].role'],
    ['an agent bound to no identity', (d: ReturnType<typeof testPolicy>) => (d.principals[0] = { id: 'x', kind: 'agent' }), 'principals[0].identity'],
  ])('refuses %s, naming the field', async (_case, mutate, field) => {
    const doc = testPolicy();
    mutate(doc);

    const error = (await applyPolicy(runtime.store, doc, NOW).catch((e: unknown) => e)) as LanyardError;

    expect(error.code).toBe('invalid_request');
    expect(error.context.field).toBe(field);
  });

  it('generates a key once for a principal that has none, and never again', async () => {
    const doc = parsePolicyDocument({ principals: [{ id: 'new-verifier', kind: 'verifier' }] });

    const first = await applyPolicy(runtime.store, doc, NOW);
    const second = await applyPolicy(runtime.store, doc, NOW);

    expect(first.generatedKeys).toEqual([{ principal: 'new-verifier', apiKey: expect.stringMatching(/^lk_[A-Za-z0-9_-]{43}$/) }]);
    expect(second.generatedKeys).toEqual([]);
  });

  it('refuses unknown fields in the document', () => {
    const error = (() => {
      try {
        return parsePolicyDocument({ tools: [], rolez: [] });
      } catch (e) {
        return e;
      }
    })() as LanyardError;

    expect(error.code).toBe('invalid_request');
    expect(error.context.field).toBe('rolez');
  });
});
