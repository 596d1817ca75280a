/**
 * The admin use cases called directly on the real local services: a policy apply audits each
 * grant it writes, a dry run writes and audits nothing, and the commands answer from the store.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPolicyAudited, parseAdminCommand, planPolicy, runAdminCommand } from '../../../shared/admin/admin.ts';
import { openLocalServices, type LocalServices } from '../../../shared/bootstrap/local/runtime.ts';
import type { PolicyDocument } from '../../../shared/policy/policy-file.ts';
import { silentLog } from '../../../shared/ports/log.ts';
import { rejection } from '../../helpers/errors.ts';
import { testPolicy } from '../../helpers/issuer.ts';

const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);
const CTX = { actor: 'oncall', requestId: 'req-admin' };

/** The test policy with one more tool, identity and grant. */
function widened(): PolicyDocument {
  const doc = testPolicy();
  return {
    ...doc,
    tools: [...doc.tools, { id: 'wiki', audience: 'https://wiki.example.internal', actions: { read: 'read' }, enabled: true }],
    roles: [...doc.roles, { id: 'wiki-reader', version: 1, actions: ['wiki:read'], approvedBy: 'alice@example.com' }],
    identities: [...doc.identities, { id: 'docs-bot/prod', owner: 'team-docs', purpose: 'answer from the wiki', status: 'active' }],
    grants: [...doc.grants, { identity: 'docs-bot/prod', role: 'wiki-reader@1', tenants: ['*'], maxTtlSeconds: 300, kinds: ['jwt'], quotaBucket: 'docs' }],
  };
}

describe('Use cases: admin', () => {
  let runtime: LocalServices;
  let dataDir: string;
  let now = T0;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lanyard-admin-'));
    runtime = await openLocalServices({ dataDir, issuer: 'http://127.0.0.1:1', inMemory: true, clock: { now: () => now }, log: silentLog });
    await applyPolicyAudited(runtime, testPolicy(), { actor: 'bootstrap', reason: 'policy apply', requestId: 'req-bootstrap' });
  });
  afterAll(async () => {
    await runtime.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const auditOf = async (identity: string) => (await runtime.store.queryDecisions({ by: 'identity', value: identity, limit: 100 })).items;

  it('audits every grant a policy apply writes, by the actor who applied it', async () => {
    // Act (the apply ran in beforeAll)
    const records = await auditOf('support-triage/prod');

    // Assess
    const grants = records.filter((r) => r.decision === 'grant_changed');
    expect(grants).toHaveLength(2);
    expect(grants.every((r) => r.actor === 'bootstrap' && r.requestId === 'req-bootstrap')).toBe(true);
  });

  it('plans a policy without writing or auditing anything', async () => {
    // Prepare
    now += 60_000;

    // Act
    const plan = await planPolicy(runtime, widened());

    // Assess
    expect(plan.dryRun).toBe(true);
    expect(plan.changes).toEqual(expect.arrayContaining(['would create tool wiki', 'would create identity docs-bot/prod']));
    expect(await runtime.store.getTool('wiki')).toBeUndefined();
    expect(await runtime.store.getIdentity('docs-bot/prod')).toBeUndefined();
    expect(await auditOf('docs-bot/prod')).toEqual([]);
  });

  it('applies a policy through the policy.apply command, then lists what it wrote', async () => {
    // Prepare
    now += 60_000;
    const command = parseAdminCommand({ command: 'policy.apply', policy: widened() });

    // Act
    const applied = (await runAdminCommand(runtime, command, CTX)) as { changes: string[] };
    const grants = (await runAdminCommand(runtime, parseAdminCommand({ command: 'grant.list', identity: 'docs-bot/prod' }), CTX)) as { grants: unknown[] };

    // Assess
    expect(applied.changes).toContain('created tool wiki');
    expect(grants.grants).toEqual([expect.objectContaining({ identity: 'docs-bot/prod', role: 'wiki-reader', roleVersion: 1, quotaBucket: 'docs' })]);
    expect((await auditOf('docs-bot/prod')).map((r) => [r.decision, r.actor])).toEqual([['grant_changed', 'oncall']]);
  });

  it('revokes and reinstates an identity through the commands, each audited under the caller', async () => {
    // Prepare
    now += 60_000;
    const target = { identity: 'billing-bot/prod' };

    // Act
    const revoked = (await runAdminCommand(runtime, parseAdminCommand({ command: 'revoke', target, reason: 'leaked key' }), CTX)) as { blocksIssuance: boolean };
    const standing = (await runtime.store.listBlocks()).map((b) => b.targetKey);
    now += 1_000;
    await runAdminCommand(runtime, parseAdminCommand({ command: 'reinstate', target, reason: 'key rotated' }), { ...CTX, requestId: 'req-admin-2' });

    // Assess
    expect(revoked.blocksIssuance).toBe(true);
    expect(standing).toContain('identity:billing-bot/prod');
    expect((await runtime.store.listBlocks()).map((b) => b.targetKey)).not.toContain('identity:billing-bot/prod');
    const decisions = (await auditOf('billing-bot/prod')).filter((r) => r.decision === 'revoked' || r.decision === 'reinstated');
    expect(decisions.map((r) => [r.decision, r.actor, r.reason])).toEqual([
      ['reinstated', 'oncall', 'key rotated'],
      ['revoked', 'oncall', 'leaked key'],
    ]);
  });

  it('answers a quota status of a bucket without a quota with no limits and no usage', async () => {
    // Act
    const status = await runAdminCommand(runtime, parseAdminCommand({ command: 'quota.status', bucket: 'support-llm' }), CTX);

    // Assess
    expect(status).toStrictEqual({ bucket: 'support-llm' });
  });

  it('refuses an unknown command with invalid_request naming the field, before anything runs', async () => {
    // Act
    const error = await rejection(Promise.resolve().then(() => parseAdminCommand({ command: 'table.drop' })));

    // Assess
    expect(error.code).toBe('invalid_request');
    expect(error.context.field).toBe('command');
  });
});
