/**
 * The introspection use case called directly on the real local services: a token is active
 * exactly while the verifier accepts it, its record exists and no revocation covers it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLocalServices, type LocalServices } from '../../../shared/bootstrap/local/runtime.ts';
import type { Principal } from '../../../shared/domain/model.ts';
import { issueCredential } from '../../../shared/issuance/issue-credential.ts';
import { introspect } from '../../../shared/introspection/introspect.ts';
import { silentLog } from '../../../shared/ports/log.ts';
import { applyPolicy } from '../../../shared/policy/policy-file.ts';
import { revoke } from '../../../shared/revocation/revoke.ts';
import { TICKETS_AUDIENCE, testPolicy } from '../../helpers/issuer.ts';

const READ = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };

describe('Use case: introspect', () => {
  let runtime: LocalServices;
  let dataDir: string;
  let agent: Principal;
  let request = 0;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lanyard-introspect-'));
    runtime = await openLocalServices({ dataDir, issuer: 'http://127.0.0.1:1', inMemory: true, log: silentLog });
    await applyPolicy(runtime.store, testPolicy(), new Date().toISOString());
    agent = (await runtime.store.getPrincipal('triage-worker-1'))!;
  });
  afterAll(async () => {
    await runtime.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const issue = () => issueCredential({ ...runtime, issuer: runtime.config.issuer }, { requestId: `req-introspect-${(request += 1)}`, principal: agent }, READ);

  it('answers an issued token as active, with its claims and the lane, tenant and role of its record', async () => {
    // Prepare
    const issued = await issue();

    // Act
    const answer = await introspect(runtime, issued.token!);

    // Assess
    expect(answer).toMatchObject({
      active: true,
      token_type: 'Bearer',
      jti: issued.credentialId,
      sub: 'support-triage/prod',
      client_id: 'triage-worker-1',
      aud: TICKETS_AUDIENCE,
      iss: 'http://127.0.0.1:1',
      lane: 'support-triage/prod:tickets:read:acme',
      tenant: 'acme',
      role: 'support-triage@1',
      quota_bucket: 'support-llm',
    });
  });

  it('answers inactive, and nothing else, once the credential is revoked', async () => {
    // Prepare
    const issued = await issue();
    await revoke(runtime, { credential: issued.credentialId }, { actor: 'oncall', reason: 'test revocation', requestId: `req-revoke-${request}` });

    // Act
    const answer = await introspect(runtime, issued.token!);

    // Assess
    expect(answer).toStrictEqual({ active: false });
  });

  it.each([
    ['a string that is no JWS', 'not-a-token'],
    ['a token with its signature cut off', 'SIGNED'],
  ])('answers inactive for %s', async (_name, kind) => {
    // Prepare
    const token = kind === 'SIGNED' ? (await issue()).token!.split('.').slice(0, 2).join('.') + '.' : kind;

    // Act
    const answer = await introspect(runtime, token);

    // Assess
    expect(answer).toStrictEqual({ active: false });
  });
});
