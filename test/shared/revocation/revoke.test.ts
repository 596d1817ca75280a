/**
 * The revoke and reinstate use cases, called directly with in-memory fakes of the role ports
 * their deps interfaces name (RevokeDeps, ReinstateDeps): what is written, in which order,
 * what is invalidated and what is audited.
 */
import { describe, expect, it } from 'vitest';
import type { DecisionRecord, IssuanceBlock, Reinstatement, Revocation } from '../../../shared/domain/model.ts';
import { CLOCK_SKEW_MARGIN_SECONDS, MAX_CREDENTIAL_LIFETIME_SECONDS, reinstate, revoke, type ReinstateDeps, type RevokeDeps } from '../../../shared/revocation/revoke.ts';
import { rejection } from '../../helpers/errors.ts';

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0, 250);
const CUTOFF = new Date(NOW).toISOString();
const ACTION = { actor: 'alice@example.com', reason: 'leaked in a log', requestId: 'req-7' };
const CREDENTIAL: DecisionRecord = {
  id: 'crd_jwt0000000000000007',
  credentialId: 'crd_jwt0000000000000007',
  requestId: 'req-1',
  at: '2026-11-22T11:58:00.000Z',
  decision: 'issued',
  reason: 'granted',
  kind: 'jwt',
  principal: 'triage-worker-1',
  identity: 'support-triage/prod',
  lane: 'support-triage/prod:tickets:read:acme',
  tenant: 'acme',
  tool: 'tickets',
  quotaBucket: 'support-llm',
  expiresAt: '2026-11-22T12:03:00.000Z',
  actionsRequested: ['tickets:read'],
  actionsGranted: ['tickets:read'],
};

/** Fakes of exactly what RevokeDeps and ReinstateDeps name, keeping a log of every write and invalidation in order. */
function fakes(options: { standing?: IssuanceBlock } = {}) {
  const steps: string[] = [];
  const blocks: IssuanceBlock[] = [];
  const feed: Revocation[] = [];
  const records: DecisionRecord[] = [];
  let standing = options.standing;
  const common = {
    clock: { now: () => NOW },
    policy: { invalidate: () => void steps.push('policy.invalidate') },
    decisions: {
      append: (record: DecisionRecord) => {
        steps.push(`decision:${record.decision}`);
        records.push(record);
        return Promise.resolve();
      },
    },
  };
  const revokeDeps: RevokeDeps = {
    ...common,
    revocations: { invalidate: () => void steps.push('revocations.invalidate') },
    store: {
      getCredential: (id) => Promise.resolve(id === CREDENTIAL.credentialId ? CREDENTIAL : undefined),
      getTool: () => Promise.resolve(undefined),
      listTools: () => Promise.resolve([]),
      putBlock: (block) => {
        steps.push('putBlock');
        blocks.push(block);
        return Promise.resolve();
      },
      appendRevocation: (revocation) => {
        steps.push('appendRevocation');
        const stored = { ...revocation, seq: feed.length + 1 };
        feed.push(stored);
        return Promise.resolve(stored);
      },
    },
  };
  const reinstateDeps: ReinstateDeps = {
    ...common,
    store: {
      reinstateBlock: (targetKey: string, reinstatement: Reinstatement) => {
        steps.push(`reinstateBlock:${targetKey}:${reinstatement.at}`);
        const lifted = standing?.targetKey === targetKey ? standing : undefined;
        standing = undefined;
        return Promise.resolve(lifted);
      },
    },
  };
  return { revokeDeps, reinstateDeps, steps, blocks, feed, records };
}

describe('Use case: revoke', () => {
  it('blocks a lane before appending its revocation, then drops the caches and audits it', async () => {
    // Prepare
    const { revokeDeps, steps, blocks, feed, records } = fakes();
    const lane = 'support-triage/prod:tickets:write:acme';

    // Act
    const result = await revoke(revokeDeps, { lane }, ACTION);

    // Assess
    expect(steps).toEqual(['putBlock', 'appendRevocation', 'policy.invalidate', 'revocations.invalidate', 'decision:revoked']);
    expect(result.blocksIssuance).toBe(true);
    expect(blocks).toEqual([{ targetKey: `lane:${lane}`, targetType: 'lane', revocationId: 'rev_req-7', since: CUTOFF, actor: ACTION.actor, reason: ACTION.reason }]);
    expect(result.revocation).toEqual(feed[0]);
    expect(result.revocation).toMatchObject({ id: 'rev_req-7', seq: 1, cutoff: CUTOFF, targetKey: `lane:${lane}`, requestId: 'req-7' });
    // A lane's cut-off matters for as long as any credential can live, plus the skew verifiers allow.
    expect(Date.parse(result.revocation.relevantUntil) - NOW).toBe((MAX_CREDENTIAL_LIFETIME_SECONDS + CLOCK_SKEW_MARGIN_SECONDS) * 1000);
    expect(records).toEqual([
      expect.objectContaining({
        id: 'revoked_req-7',
        decision: 'revoked',
        actor: ACTION.actor,
        reason: ACTION.reason,
        lane,
        identity: 'support-triage/prod',
        tool: 'tickets',
        tenant: 'acme',
        revocationId: 'rev_req-7',
        cutoff: CUTOFF,
      }),
    ]);
  });

  it('keeps a credential revocation only until that credential would have expired, without a block', async () => {
    // Prepare
    const { revokeDeps, steps, records } = fakes();

    // Act
    const result = await revoke(revokeDeps, { credential: CREDENTIAL.credentialId! }, ACTION);

    // Assess
    expect(result.blocksIssuance).toBe(false);
    expect(steps).not.toContain('putBlock');
    expect(result.revocation.relevantUntil).toBe(new Date(Date.parse(CREDENTIAL.expiresAt!) + CLOCK_SKEW_MARGIN_SECONDS * 1000).toISOString());
    // The audit record is indexed by the credential's own lane, identity and bucket.
    expect(records[0]).toMatchObject({ credentialId: CREDENTIAL.credentialId, identity: 'support-triage/prod', lane: CREDENTIAL.lane, quotaBucket: 'support-llm' });
  });

  it('refuses an unknown credential with not_found and writes nothing', async () => {
    // Prepare
    const { revokeDeps, steps } = fakes();

    // Act
    const error = await rejection(revoke(revokeDeps, { credential: 'crd_unknown000000000001' }, ACTION));

    // Assess
    expect(error.code).toBe('not_found');
    expect(steps).toEqual([]);
  });

  it('does not invalidate or audit when the feed append fails, but the block already stops issuance', async () => {
    // Prepare
    const { revokeDeps, steps } = fakes();
    const failing: RevokeDeps = {
      ...revokeDeps,
      store: { ...revokeDeps.store, appendRevocation: () => Promise.reject(new Error('the table is gone')) },
    };

    // Act
    await expect(revoke(failing, { identity: 'support-triage/prod' }, ACTION)).rejects.toThrow('the table is gone');

    // Assess
    expect(steps).toEqual(['putBlock']);
  });
});

describe('Use case: reinstate', () => {
  const block: IssuanceBlock = {
    targetKey: 'identity:support-triage/prod',
    targetType: 'identity',
    revocationId: 'rev_req-3',
    since: '2026-11-22T11:00:00.000Z',
    actor: 'alice@example.com',
    reason: 'leaked in a log',
  };

  it('lifts the standing block, drops the policy cache and audits who lifted it', async () => {
    // Prepare
    const { reinstateDeps, steps, records } = fakes({ standing: block });

    // Act
    const { lifted } = await reinstate(reinstateDeps, { identity: 'support-triage/prod' }, ACTION);

    // Assess
    expect(lifted).toEqual(block);
    expect(steps).toEqual([`reinstateBlock:identity:support-triage/prod:${CUTOFF}`, 'policy.invalidate', 'decision:reinstated']);
    expect(records[0]).toMatchObject({ id: 'reinstated_req-7', decision: 'reinstated', identity: 'support-triage/prod', revocationId: 'rev_req-3', at: CUTOFF });
  });

  it('answers not_found when nothing stands on the target, and audits nothing', async () => {
    // Prepare
    const { reinstateDeps, steps } = fakes();

    // Act
    const error = await rejection(reinstate(reinstateDeps, { tenant: 'acme' }, ACTION));

    // Assess
    expect(error.code).toBe('not_found');
    expect(steps).toEqual([`reinstateBlock:tenant:acme:${CUTOFF}`]);
  });

  it.each([
    ['a credential', { credential: 'crd_jwt0000000000000007' }],
    ['a signing key', { key: 'kid-00000001' }],
  ])('refuses to reinstate %s (final) with invalid_request naming the target, before any write', async (_name, target) => {
    // Prepare
    const { reinstateDeps, steps } = fakes({ standing: block });

    // Act
    const error = await rejection(reinstate(reinstateDeps, target, ACTION));

    // Assess
    expect(error.code).toBe('invalid_request');
    expect(error.context.field).toBe('target');
    expect(steps).toEqual([]);
  });
});
