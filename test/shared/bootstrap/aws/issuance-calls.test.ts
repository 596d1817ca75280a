/**
 * AWS calls per issuance on the AWS composition root, counted at the clients (dynalite for
 * DynamoDB, fake-kms.ts for KMS; test/helpers/issuance-calls.ts): what a cold container's first
 * issuance and a warm container's next one cost. Calls are behaviour here (each is latency and
 * money on Lambda), so the counts are exact; a change to them is a decision, made here and in
 * docs/deploy.md.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { countIssuanceCalls, kmsBesidesSignOf, readsOf, writesOf, type IssuanceCalls } from '../../../helpers/issuance-calls.ts';

describe('AWS calls per issuance (core services)', () => {
  let calls: IssuanceCalls;

  beforeAll(async () => {
    calls = await countIssuanceCalls();
  });

  it('signs a cold container’s first credential after one KMS call: the alias’s public key, no registry read, no staged or retired key', () => {
    // Assess
    expect(calls.cold.status).toBe(201);
    expect(calls.cold.kms).toEqual({ GetPublicKey: 1, Sign: 1 });
    expect(kmsBesidesSignOf(calls.cold)).toBe(1);
  });

  it('reads the policy of the caller on a cold container: principal key, identity and grants, one batch of tool, role and quota, blocks, revocation feed', () => {
    // Assess: GetItem principal key; Query identity+grants; BatchGetItem tool, role, quota; Query blocks, revocation feed.
    expect(calls.cold.dynamodb).toEqual({ GetItem: 1, BatchGetItem: 1, Query: 3, BatchWriteItem: 1 });
    expect(readsOf(calls.cold)).toBe(5);
    expect(writesOf(calls.cold)).toBe(1);
  });

  it('costs a warm container one Sign and one write (the decision record), nothing read', () => {
    // Assess
    expect(calls.warm.status).toBe(201);
    expect(calls.warm.kms).toEqual({ Sign: 1 });
    expect(calls.warm.dynamodb).toEqual({ BatchWriteItem: 1 });
  });
});
