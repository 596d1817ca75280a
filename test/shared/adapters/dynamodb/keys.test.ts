/**
 * The key layout's recogniser (`eventSourceItemOf`, what the stream publisher reads items by)
 * against the keys the store writes: every event-bearing item is recognised by the key the
 * store gives it, and the items beside it in the same partitions are not.
 */
import { describe, expect, it } from 'vitest';
import { eventSourceItemOf, keys, REVOCATION_SEQ_DIGITS } from '../../../../shared/adapters/dynamodb/keys.ts';

describe('Function: eventSourceItemOf', () => {
  it('recognises the revocation, block, grant and upstream-pointer items by the keys the store writes', () => {
    // Act + Assess
    expect(eventSourceItemOf(keys.revocation(42))).toBe('revocation');
    expect(eventSourceItemOf(keys.block('identity:support-triage/prod'))).toBe('block');
    expect(eventSourceItemOf(keys.grant('support-triage/prod', 'support-triage@1'))).toBe('grant');
    expect(eventSourceItemOf(keys.upstreamSecretRef('openai'))).toBe('upstreamSecretRef');
  });

  it('recognises nothing else, not even the neighbours in the same partitions', () => {
    // Prepare: the feed counter (sort key REVOCATION), an identity beside its grants, every other kind.
    const others = [
      keys.revocationCounter,
      keys.identity('support-triage/prod'),
      keys.tool('tickets'),
      keys.role('support-triage', 1),
      keys.principal('triage-worker-1'),
      keys.keyRef('triage-worker-1', 'arn'),
      keys.principalKey('arn', 'arn:aws:iam::123456789012:role/triage-worker'),
      keys.credential('c1'),
      keys.deniedDecision('d1'),
      keys.quota('support-llm'),
      keys.quotaWindow('support-llm', { startMs: 1_700_000_000_000, seconds: 3600 }),
      keys.signingKeyRegistry('alias/lanyard/Lanyard/signing'),
      { PK: 'REVOCATION', SK: 'not-a-sequence' },
    ];

    // Act + Assess
    for (const key of others) expect(eventSourceItemOf(key), JSON.stringify(key)).toBeUndefined();
  });

  it('pads the revocation sequence so string order is feed order', () => {
    // Act
    const sortKeys = [9, 10, 100].map((seq) => keys.revocation(seq).SK);

    // Assess
    expect(sortKeys.every((sk) => sk.length === REVOCATION_SEQ_DIGITS)).toBe(true);
    expect([...sortKeys].sort()).toEqual(sortKeys);
  });
});
