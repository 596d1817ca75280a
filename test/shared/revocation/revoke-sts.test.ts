import { describe, expect, it, vi } from 'vitest';
import type { DecisionRecord, Revocation, RevocationTarget, Tool } from '../../../shared/domain/model.ts';
import { revoke, type RevokeDeps } from '../../../shared/revocation/revoke.ts';

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const TICKETS_ROLE = 'arn:aws:iam::123456789012:role/tickets-tool';
const STORAGE_ROLE = 'arn:aws:iam::123456789012:role/storage-tool';
const aws = (roleArn: string) => ({ roleArn, permissions: {} });
const tools: Record<string, Tool> = {
  tickets: { id: 'tickets', audience: 'https://tickets', actions: { read: 'read', reply: 'write' }, enabled: true, aws: aws(TICKETS_ROLE), updatedAt: '2026-01-01T00:00:00Z' },
  // Shares the tickets role: an identity or tenant revocation writes that role once.
  archive: { id: 'archive', audience: 'https://archive', actions: { read: 'read' }, enabled: true, aws: aws(TICKETS_ROLE), updatedAt: '2026-01-01T00:00:00Z' },
  storage: { id: 'storage', audience: 'https://storage', actions: { read: 'read' }, enabled: true, aws: aws(STORAGE_ROLE), updatedAt: '2026-01-01T00:00:00Z' },
  crm: { id: 'crm', audience: 'https://crm', actions: { read: 'read' }, enabled: true, updatedAt: '2026-01-01T00:00:00Z' },
};
const credentials: Record<string, Partial<DecisionRecord>> = {
  crd_sts0000000000000001: { id: 'crd_sts0000000000000001', kind: 'sts', tool: 'tickets', identity: 'support-triage/prod', expiresAt: '2026-11-22T12:30:00.000Z' },
  crd_jwt0000000000000001: { id: 'crd_jwt0000000000000001', kind: 'jwt', tool: 'tickets', identity: 'support-triage/prod', expiresAt: '2026-11-22T12:30:00.000Z' },
};

/** Just the ports `revoke` declares (RevokeDeps), with the store answering like the real one. */
function runtime(withRevoker: boolean) {
  let seq = 0;
  const revokeSessions = vi.fn((_input: { roleArn: string; target: RevocationTarget; cutoff: string }) => Promise.resolve({ changed: true }));
  const rt: RevokeDeps = {
    clock: { now: () => NOW },
    store: {
      putBlock: () => Promise.resolve(),
      appendRevocation: (r: Omit<Revocation, 'seq'>) => Promise.resolve({ ...r, seq: ++seq }),
      getTool: (id: string) => Promise.resolve(tools[id]),
      listTools: () => Promise.resolve(Object.values(tools)),
      getCredential: (id: string) => Promise.resolve(credentials[id] as DecisionRecord | undefined),
    },
    policy: { invalidate: () => {} },
    revocations: { invalidate: () => {} },
    decisions: { append: () => Promise.resolve() },
    ...(withRevoker && { stsRevoker: { revokeSessions } }),
  };
  return { rt, revokeSessions };
}

const action = { actor: 'alice@example.com', reason: 'wrong tenant', requestId: 'req-1' };
const cutoff = new Date(NOW).toISOString();

describe('Function: revoke (STS sessions)', () => {
  it.each<[string, RevocationTarget, string[]]>([
    ['a lane of a tool with an IAM role: its role', { lane: 'support-triage/prod:tickets:write:acme' }, [TICKETS_ROLE]],
    ['an identity: every tool role once', { identity: 'support-triage/prod' }, [STORAGE_ROLE, TICKETS_ROLE]],
    ['an instance identity: every tool role once', { identity: 'support-triage/prod#a1' }, [STORAGE_ROLE, TICKETS_ROLE]],
    ['a tenant: every tool role once', { tenant: 'acme' }, [STORAGE_ROLE, TICKETS_ROLE]],
    ['a tool: its role', { tool: 'storage' }, [STORAGE_ROLE]],
    ['a tool of one identity: its role', { tool: 'tickets', identity: 'support-triage/prod' }, [TICKETS_ROLE]],
    ['an sts credential: its tool role', { credential: 'crd_sts0000000000000001' }, [TICKETS_ROLE]],
  ])('denies the sessions of %s', async (_name, target, roles) => {
    // Prepare
    const { rt, revokeSessions } = runtime(true);

    // Act
    const { revocation } = await revoke(rt, target, action);

    // Assess
    expect(revocation.cutoff).toBe(cutoff);
    expect(revokeSessions.mock.calls.map(([input]) => input)).toEqual(roles.map((roleArn) => ({ roleArn, target, cutoff })));
  });

  it.each<[string, RevocationTarget]>([
    ['a lane of a tool without an IAM role', { lane: 'support-triage/prod:crm:read:*' }],
    ['a tool without an IAM role', { tool: 'crm' }],
    ['a jwt credential', { credential: 'crd_jwt0000000000000001' }],
    ['a signing key', { key: 'kid-00000001' }],
  ])('leaves IAM alone for %s', async (_name, target) => {
    // Prepare
    const { rt, revokeSessions } = runtime(true);

    // Act
    await revoke(rt, target, action);

    // Assess
    expect(revokeSessions).not.toHaveBeenCalled();
  });

  it('revokes as before when the runtime has no STS revoker', async () => {
    // Prepare
    const { rt } = runtime(false);

    // Act
    const result = await revoke(rt, { identity: 'support-triage/prod' }, action);

    // Assess
    expect(result.blocksIssuance).toBe(true);
  });

  it('tries every role, then fails the call when a deny cannot be attached, after the revocation is committed', async () => {
    // Prepare
    const { rt, revokeSessions } = runtime(true);
    const appended = vi.spyOn(rt.store, 'appendRevocation');
    revokeSessions.mockImplementation(({ roleArn }) =>
      roleArn === STORAGE_ROLE ? Promise.reject(Object.assign(new Error('AccessDenied'), { name: 'AccessDenied' })) : Promise.resolve({ changed: true }),
    );

    // Act + Assess
    await expect(revoke(rt, { tenant: 'acme' }, action)).rejects.toThrow('AccessDenied');
    expect(appended).toHaveBeenCalledOnce();
    expect(revokeSessions.mock.calls.map(([input]) => input.roleArn)).toEqual([STORAGE_ROLE, TICKETS_ROLE]);
  });
});
