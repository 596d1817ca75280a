/**
 * The words of a policy plan: what a person reads after `lanyard apply` (past tense) and
 * `lanyard apply --dry-run` (conditional), and what a principal's line says changed.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openLocalServices, type LocalServices } from '../../../shared/bootstrap/local/runtime.ts';
import { silentLog } from '../../../shared/ports/log.ts';
import { applyPolicy, describeChanges, parsePolicyDocument, planChanges, planOnly } from '../../../shared/policy/policy-file.ts';
import { planPolicy } from '../../../shared/admin/admin.ts';
import { iamRoleKey } from '../../../shared/domain/caller-keys.ts';

const NOW = '2026-12-02T10:00:00.000Z';
const ROLE_ARN = 'arn:aws:iam::123456789012:role/support-triage-task';
const OTHER_ROLE_ARN = 'arn:aws:iam::123456789012:role/support-triage-pod';

const base = {
  identities: [
    { id: 'support-triage/dev', owner: 'team-support', purpose: 'triage (dev)' },
    { id: 'support-triage/prod', owner: 'team-support', purpose: 'triage (prod)' },
  ],
};

/** A document with the two identities and these principals. */
const withPrincipals = (principals: unknown[]) => parsePolicyDocument({ ...base, principals });

describe('Plan words', () => {
  let runtime: LocalServices;

  beforeEach(async () => {
    runtime = await openLocalServices({ dataDir: await mkdtemp(join(tmpdir(), 'lanyard-words-')), issuer: 'http://issuer.test', inMemory: true, log: silentLog });
  });
  afterEach(() => runtime.close());

  it('a dry run speaks in the conditional, and the apply reports the same changes as made', async () => {
    // Prepare
    const doc = parsePolicyDocument({
      tools: [{ id: 'tickets', audience: 'https://tickets.example.internal', actions: { read: 'read' } }],
      roles: [{ id: 'reader', version: 1, actions: ['tickets:read'], approvedBy: 'alice@example.com' }],
      ...base,
      grants: [{ identity: 'support-triage/dev', role: 'reader@1', tenants: ['acme'], quotaBucket: 'q' }],
      principals: [{ id: 'verifier', kind: 'verifier' }, { id: 'triage-service', kind: 'agent', identity: 'support-triage/prod', iamRole: ROLE_ARN }],
      quotas: [{ bucket: 'q', windowSeconds: 60, requests: 10 }],
    });

    // Act
    const planned = describeChanges(await planChanges(planOnly(runtime.store), doc, NOW), 'planned');
    const applied = await applyPolicy(runtime.store, doc, NOW);

    // Assess
    expect(planned).toEqual([
      'would create tool tickets',
      'would create quota q',
      'would publish role reader@1 (approved by alice@example.com)',
      'would create identity support-triage/dev',
      'would create identity support-triage/prod',
      'would create grant reader@1 for support-triage/dev',
      'would create principal verifier: kind verifier',
      'would generate API key for principal verifier',
      `would create principal triage-service: kind agent; identity support-triage/prod; iamRole ${ROLE_ARN}`,
      `would bind role ${ROLE_ARN} to principal triage-service`,
    ]);
    expect(applied.changes).toEqual(planned.map((line) => line.replace(/^would (\w+)/, (_, verb: string) => ({ create: 'created', publish: 'published', generate: 'generated', bind: 'bound' })[verb] ?? verb)));
  });

  it('plan a record the file lists twice as applying entry by entry does: once, and one generated key', async () => {
    // Prepare
    const tool = { id: 'tickets', audience: 'https://tickets.example.internal', actions: { read: 'read' } };
    const doc = parsePolicyDocument({ tools: [tool, tool], principals: [{ id: 'verifier', kind: 'verifier' }, { id: 'verifier', kind: 'verifier' }] });

    // Act
    const planned = describeChanges(await planChanges(planOnly(runtime.store), doc, NOW), 'planned');
    const applied = await applyPolicy(runtime.store, doc, NOW);

    // Assess
    expect(planned).toEqual(['would create tool tickets', 'would create principal verifier: kind verifier', 'would generate API key for principal verifier']);
    expect(applied.generatedKeys).toHaveLength(1);
  });

  it('the admin dry run (policy.apply with dryRun) answers the conditional lines and writes nothing', async () => {
    // Prepare
    const doc = withPrincipals([{ id: 'verifier', kind: 'verifier' }]);

    // Act
    const plan = await planPolicy(runtime, doc);

    // Assess
    expect(plan.changes).toContain('would create principal verifier: kind verifier');
    expect(plan.changes).toContain('would generate API key for principal verifier');
    expect(await runtime.store.getPrincipal('verifier')).toBeUndefined();
  });

  it('say which fields of a principal changed: kind, identity, the orchestrator classes', async () => {
    // Prepare
    await applyPolicy(runtime.store, withPrincipals([{ id: 'worker', kind: 'agent', identity: 'support-triage/dev', apiKey: 'lk_worker_key_00000000000000001' }]), NOW);
    const moved = withPrincipals([{ id: 'worker', kind: 'agent', identity: 'support-triage/prod', apiKey: 'lk_worker_key_00000000000000001' }]);
    const promoted = withPrincipals([{ id: 'worker', kind: 'orchestrator', spawns: ['support-triage/prod'], apiKey: 'lk_worker_key_00000000000000001' }]);

    // Act
    const planMove = describeChanges(await planChanges(planOnly(runtime.store), moved, NOW), 'planned');
    const planPromotion = describeChanges(await planChanges(planOnly(runtime.store), promoted, NOW), 'planned');
    const applied = await applyPolicy(runtime.store, moved, NOW);

    // Assess
    expect(planMove).toEqual(['would update principal worker: identity support-triage/dev → support-triage/prod']);
    expect(planPromotion).toEqual(['would update principal worker: kind agent → orchestrator; identity support-triage/dev → none; spawns none → support-triage/prod']);
    expect(applied.changes).toEqual(['updated principal worker: identity support-triage/dev → support-triage/prod']);
  });

  it('say when a principal API key from the file replaces the one it had, and that the old one stops working', async () => {
    // Prepare
    const first = await applyPolicy(runtime.store, withPrincipals([{ id: 'verifier', kind: 'verifier' }]), NOW);
    const rotated = withPrincipals([{ id: 'verifier', kind: 'verifier', apiKey: 'lk_verifier_key_0000000000000001' }]);

    // Act
    const planned = describeChanges(await planChanges(planOnly(runtime.store), rotated, NOW), 'planned');
    const applied = await applyPolicy(runtime.store, rotated, NOW);

    // Assess
    expect(first.changes).toContain('generated API key for principal verifier');
    expect(planned).toEqual(["would replace the API key of principal verifier with the file's (the old key would stop working)"]);
    expect(applied.changes).toEqual(["replaced the API key of principal verifier with the file's (the old key stops working)"]);
    expect(applied.changes.join('\n')).not.toContain('lk_verifier_key');
  });

  it('say which IAM role a principal is bound to instead, and which principal loses a role it takes', async () => {
    // Prepare
    await applyPolicy(
      runtime.store,
      withPrincipals([
        { id: 'triage-ecs', kind: 'agent', identity: 'support-triage/prod', iamRole: ROLE_ARN },
        { id: 'triage-eks', kind: 'agent', identity: 'support-triage/prod', iamRole: OTHER_ROLE_ARN },
      ]),
      NOW,
    );
    const rebound = withPrincipals([{ id: 'triage-ecs', kind: 'agent', identity: 'support-triage/prod', iamRole: OTHER_ROLE_ARN }]);

    // Act
    const applied = await applyPolicy(runtime.store, rebound, NOW);

    // Assess
    expect(applied.changes).toEqual([
      `updated principal triage-ecs: iamRole ${ROLE_ARN} → ${OTHER_ROLE_ARN}`,
      `bound role ${OTHER_ROLE_ARN} to principal triage-ecs instead of ${ROLE_ARN}; principal triage-eks loses it`,
    ]);
    expect((await runtime.store.getPrincipalByKey('iamRole', iamRoleKey(OTHER_ROLE_ARN)!))?.id).toBe('triage-ecs');
  });
});
