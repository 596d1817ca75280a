/**
 * The grant-change use case called directly on the real local services: a demotion revokes at
 * once the live credentials the narrower grant no longer covers, and only those; a widening
 * must name who approved it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLocalServices, type LocalServices } from '../../../shared/bootstrap/local/runtime.ts';
import type { Grant, Principal } from '../../../shared/domain/model.ts';
import { issueCredential } from '../../../shared/issuance/issue-credential.ts';
import { silentLog } from '../../../shared/ports/log.ts';
import { changeGrant } from '../../../shared/policy/grant-change.ts';
import { applyPolicy } from '../../../shared/policy/policy-file.ts';
import { rejection } from '../../helpers/errors.ts';
import { testPolicy } from '../../helpers/issuer.ts';

const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);
const BILLING = 'billing-bot/prod';
const IDENTITY = 'support-triage/prod';
const ACTION = { actor: 'oncall', reason: 'least privilege', requestId: 'req-change' };

describe('Use case: changeGrant', () => {
  let runtime: LocalServices;
  let dataDir: string;
  let now = T0;
  let agent: Principal;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lanyard-grant-change-'));
    runtime = await openLocalServices({ dataDir, issuer: 'http://127.0.0.1:1', inMemory: true, clock: { now: () => now }, log: silentLog });
    await applyPolicy(runtime.store, testPolicy(), new Date(now).toISOString());
    agent = (await runtime.store.getPrincipal('triage-worker-1'))!;
  });
  afterAll(async () => {
    await runtime.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const grantOf = async (identity: string, role: string): Promise<Grant> => (await runtime.store.listGrants(identity)).find((g) => g.role === role)!;
  const issue = (request: { tool: string; actions: string[]; tenant: string }, requestId: string) =>
    issueCredential({ ...runtime, issuer: runtime.config.issuer }, { requestId, principal: agent }, { ...request, ttlSeconds: 600 });

  it('narrows the tenants of a grant and revokes only the live credentials it no longer covers', async () => {
    // Prepare
    now += 60_000;
    const grant = await grantOf(IDENTITY, 'support-triage');
    const acme = await issue({ tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' }, 'req-acme');
    const globex = await issue({ tool: 'tickets', actions: ['tickets:read'], tenant: 'globex' }, 'req-globex');
    const crm = await issue({ tool: 'crm', actions: ['crm:read'], tenant: 'acme' }, 'req-crm');
    now += 1_000;

    // Act
    const result = await changeGrant(runtime, IDENTITY, grant.id, { tenants: ['acme'] }, ACTION);

    // Assess
    expect(result.widened).toBe(false);
    expect(result.after.tenants).toEqual(['acme']);
    expect(result.revokedCredentials).toEqual([globex.credentialId]);
    expect((await runtime.store.listGrants(IDENTITY)).find((g) => g.id === grant.id)?.tenants).toEqual(['acme']);
    const revoked = async (credentialId: string) => (await runtime.revocations.revokedBy((await runtime.store.getCredential(credentialId))!)) !== undefined;
    expect(await revoked(globex.credentialId)).toBe(true);
    expect(await revoked(acme.credentialId)).toBe(false);
    expect(await revoked(crm.credentialId)).toBe(false);
  });

  it('refuses a widening that names no approver with invalid_request on approvedBy, and leaves the grant as it was', async () => {
    // Prepare
    now += 60_000;
    const before = await grantOf(BILLING, 'support-triage');

    // Act
    const error = await rejection(changeGrant(runtime, BILLING, before.id, { tenants: ['acme', 'globex'] }, ACTION));

    // Assess
    expect(error.code).toBe('invalid_request');
    expect(error.context.field).toBe('approvedBy');
    expect(await grantOf(BILLING, 'support-triage')).toEqual(before);
  });

  it('records the approver on a widening that names one', async () => {
    // Prepare
    now += 60_000;
    const before = await grantOf(BILLING, 'support-triage');

    // Act
    const result = await changeGrant(runtime, BILLING, before.id, { maxTtlSeconds: 600 }, { ...ACTION, requestId: 'req-widen', approvedBy: 'alice@example.com' });

    // Assess
    expect(result.widened).toBe(true);
    expect(await grantOf(BILLING, 'support-triage')).toMatchObject({ maxTtlSeconds: 600, approvedBy: 'alice@example.com', changedBy: 'oncall' });
  });

  it('answers not_found for a grant the identity does not have', async () => {
    // Act
    const error = await rejection(changeGrant(runtime, BILLING, 'no-such-grant', { status: 'demoted' }, ACTION));

    // Assess
    expect(error.code).toBe('not_found');
  });
});
