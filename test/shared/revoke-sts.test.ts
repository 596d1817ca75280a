import { describe, expect, it, vi } from 'vitest';
import type { Revocation, RevocationTarget, Tool } from '../../shared/domain.ts';
import { silentLog } from '../../shared/log.ts';
import { revoke } from '../../shared/revoke.ts';
import type { IssuerRuntime } from '../../shared/runtime.ts';

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const ROLE_ARN = 'arn:aws:iam::123456789012:role/tickets-tool';
const tools: Record<string, Tool> = {
  tickets: { id: 'tickets', audience: 'https://tickets', actions: { read: 'read', reply: 'write' }, enabled: true, aws: { roleArn: ROLE_ARN, permissions: {} }, updatedAt: '2026-01-01T00:00:00Z' },
  crm: { id: 'crm', audience: 'https://crm', actions: { read: 'read' }, enabled: true, updatedAt: '2026-01-01T00:00:00Z' },
};

/** Just the parts of a runtime `revoke` touches, with the store answering like the real one. */
function runtime(withRevoker: boolean) {
  let seq = 0;
  const revokeLane = vi.fn(() => Promise.resolve({ changed: true }));
  const rt = {
    clock: { now: () => NOW },
    log: silentLog,
    store: {
      putBlock: () => Promise.resolve(),
      appendRevocation: (r: Omit<Revocation, 'seq'>) => Promise.resolve({ ...r, seq: ++seq }),
      getTool: (id: string) => Promise.resolve(tools[id]),
    },
    policy: { invalidate: () => {} },
    revocations: { invalidate: () => {} },
    decisions: { append: () => Promise.resolve() },
    ...(withRevoker && { stsRevoker: { revokeLane } }),
  } as unknown as IssuerRuntime;
  return { rt, revokeLane };
}

const action = { actor: 'alice@example.com', reason: 'wrong tenant', requestId: 'req-1' };

describe('Function: revoke (STS lanes)', () => {
  it('attaches the deny to the tool role when a lane of a tool with an IAM role is revoked', async () => {
    // Prepare
    const { rt, revokeLane } = runtime(true);
    const lane = 'support-triage/prod:tickets:write:acme';

    // Act
    const { revocation } = await revoke(rt, { lane }, action);

    // Assess
    expect(revokeLane).toHaveBeenCalledExactlyOnceWith({ roleArn: ROLE_ARN, lane, cutoff: revocation.cutoff });
    expect(revocation.cutoff).toBe(new Date(NOW).toISOString());
  });

  it.each<[string, RevocationTarget]>([
    ['a lane of a tool without an IAM role', { lane: 'support-triage/prod:crm:read:*' }],
    ['an identity', { identity: 'support-triage/prod' }],
    ['a tool', { tool: 'tickets' }],
  ])('leaves IAM alone for %s', async (_name, target) => {
    // Prepare
    const { rt, revokeLane } = runtime(true);

    // Act
    await revoke(rt, target, action);

    // Assess
    expect(revokeLane).not.toHaveBeenCalled();
  });

  it('revokes as before when the runtime has no STS revoker', async () => {
    // Prepare
    const { rt } = runtime(false);

    // Act
    const result = await revoke(rt, { lane: 'support-triage/prod:tickets:write:acme' }, action);

    // Assess
    expect(result.blocksIssuance).toBe(true);
  });

  it('fails the call when the deny cannot be attached, after the revocation is committed', async () => {
    // Prepare
    const { rt } = runtime(true);
    const appended = vi.spyOn(rt.store, 'appendRevocation');
    (rt.stsRevoker as { revokeLane: () => Promise<unknown> }).revokeLane = () => Promise.reject(Object.assign(new Error('AccessDenied'), { name: 'AccessDenied' }));

    // Act + Assess
    await expect(revoke(rt, { lane: 'support-triage/prod:tickets:write:acme' }, action)).rejects.toThrow('AccessDenied');
    expect(appended).toHaveBeenCalledOnce();
  });
});
