/**
 * The audit queries called directly on the real local services: "what could X do at T" is
 * answered from the decision records alone, before and after a tenant kill switch.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPolicyAudited } from '../../../shared/admin/admin.ts';
import { authorityAt, queryAudit } from '../../../shared/audit/audit.ts';
import { openLocalServices, type LocalServices } from '../../../shared/bootstrap/local/runtime.ts';
import { issueCredential, type IssuedCredential } from '../../../shared/issuance/issue-credential.ts';
import { silentLog } from '../../../shared/ports/log.ts';
import { revoke } from '../../../shared/revocation/revoke.ts';
import { testPolicy } from '../../helpers/issuer.ts';

const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);
const IDENTITY = 'support-triage/prod';
const iso = (ms: number) => new Date(ms).toISOString();

describe('Use cases: the audit queries', () => {
  let runtime: LocalServices;
  let dataDir: string;
  let now = T0;
  let issued: IssuedCredential;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lanyard-audit-'));
    runtime = await openLocalServices({ dataDir, issuer: 'http://127.0.0.1:1', inMemory: true, clock: { now: () => now }, log: silentLog });
    await applyPolicyAudited(runtime, testPolicy(), { actor: 'bootstrap', reason: 'policy apply', requestId: 'req-apply' });
    now = T0 + 60_000;
    const agent = (await runtime.store.getPrincipal('triage-worker-1'))!;
    issued = await issueCredential(
      { ...runtime, issuer: runtime.config.issuer },
      { requestId: 'req-issue', principal: agent },
      { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme', ttlSeconds: 600 },
    );
    now = T0 + 120_000;
    await revoke(runtime, { tenant: 'globex' }, { actor: 'oncall', reason: 'tenant offboarded', requestId: 'req-kill' });
  });
  afterAll(async () => {
    await runtime.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('finds the issued credential by its lane', async () => {
    // Act
    const page = await queryAudit(runtime.store, { by: 'lane', value: `${IDENTITY}:tickets:read:acme` });

    // Assess
    expect(page.items.map((r) => [r.decision, r.credentialId])).toEqual([['issued', issued.credentialId]]);
  });

  it('answers, before the kill switch, both grants, the live credential and every lane the grants allow', async () => {
    // Act
    const authority = await authorityAt(runtime.store, IDENTITY, iso(T0 + 90_000));

    // Assess
    expect(authority.grants.map((g) => `${g.role}@${g.roleVersion}`).sort()).toEqual(['crm-reader@1', 'support-triage@1']);
    expect(authority.liveCredentials.map((r) => r.credentialId)).toEqual([issued.credentialId]);
    expect(authority.revocations).toEqual([]);
    expect(authority.couldIssue).toEqual(expect.arrayContaining(['tickets:read@acme', 'tickets:read@globex', 'crm:read@*']));
  });

  it('answers, after the kill switch, the standing tenant revocation and no lane of that tenant, the other tenant untouched', async () => {
    // Act
    const authority = await authorityAt(runtime.store, IDENTITY, iso(T0 + 150_000));

    // Assess
    expect(authority.revocations.map((r) => [r.targetKey, r.standingAt])).toEqual([['tenant:globex', true]]);
    expect(authority.couldIssue.filter((lane) => lane.endsWith('@globex'))).toEqual([]);
    expect(authority.couldIssue).toContain('tickets:read@acme');
    expect(authority.liveCredentials.map((r) => r.credentialId)).toEqual([issued.credentialId]);
  });

  it('answers nothing for an instant before the policy was applied', async () => {
    // Act
    const authority = await authorityAt(runtime.store, IDENTITY, iso(T0 - 1_000));

    // Assess
    expect(authority.grants).toEqual([]);
    expect(authority.couldIssue).toEqual([]);
  });
});
