/**
 * The event source mapping's filter against sample stream records: every record that becomes an
 * event passes it, and the records that never can (decisions, tools, keys, refresh tokens, quota
 * counters, pruned revocations, block INSERTs and expiries, pointer removals) do not. The matcher
 * below implements the part of Lambda's filter syntax the patterns use (AWS Lambda Developer
 * Guide, "Control which events Lambda sends to your function": patterns are ORed; in a pattern
 * every field must match; a field's array matches when any of its values does: an exact string,
 * `{ prefix }`, or `{ exists: true }` on a leaf).
 */
import { marshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { changeOf, PUBLISHED_RECORD_FILTERS } from '../../lambdas/publish-events.ts';
import { eventsFromChange } from '../../shared/domain/events.ts';

type Rule = string | { readonly prefix: string } | { readonly exists: boolean };

function fieldMatches(pattern: unknown, value: unknown): boolean {
  if (Array.isArray(pattern)) {
    return (pattern as Rule[]).some((rule) => {
      if (typeof rule === 'string') return value === rule;
      if ('prefix' in rule) return typeof value === 'string' && value.startsWith(rule.prefix);
      return rule.exists === (value !== undefined);
    });
  }
  if (typeof pattern !== 'object' || pattern === null) throw new Error(`unsupported pattern ${JSON.stringify(pattern)}`);
  const object = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  return Object.entries(pattern).every(([key, inner]) => fieldMatches(inner, object[key]));
}

const passes = (record: DynamoDBRecord) => PUBLISHED_RECORD_FILTERS.some((pattern) => fieldMatches(pattern, record));
const becomesEvent = (record: DynamoDBRecord) => {
  const change = changeOf(record);
  return change !== undefined && eventsFromChange(change).length > 0;
};

let sequence = 0;
function record(eventName: 'INSERT' | 'MODIFY' | 'REMOVE', images: { old?: Record<string, unknown>; new?: Record<string, unknown> }): DynamoDBRecord {
  const any = (images.new ?? images.old)!;
  const image = (item: Record<string, unknown>) => marshall(item, { removeUndefinedValues: true }) as never;
  sequence += 1;
  return {
    eventName,
    eventSource: 'aws:dynamodb',
    dynamodb: {
      Keys: image({ PK: any['PK'], SK: any['SK'] }),
      ...(images.new && { NewImage: image(images.new) }),
      ...(images.old && { OldImage: image(images.old) }),
      SequenceNumber: String(sequence),
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    },
  };
}

const AT = '2026-11-22T12:00:00.000Z';
const revocation = { PK: 'REVOCATION', SK: '0000000000000007', id: 'rev_1', seq: 7, targetType: 'lane', targetKey: 'lane:a/prod:t:r:acme', cutoff: AT };
const block = { PK: 'BLOCK', SK: 'lane:a/prod:t:r:acme', targetKey: 'lane:a/prod:t:r:acme', targetType: 'lane', revocationId: 'rev_1', since: AT };
const reinstated = { ...block, reinstatedAt: '2026-11-22T13:00:00.000Z', reinstatedBy: 'bob' };
const grant = { PK: 'IDENTITY#a/prod', SK: 'GRANT#a@1', id: 'a@1', identity: 'a/prod', role: 'a', roleVersion: 1, status: 'active', updatedAt: AT };
const pointer = (version: string) => ({ PK: 'UPSTREAM#stripe', SK: 'SECRETREF', provider: 'stripe', version, rotatedAt: AT, actor: 'alice', reason: 'rotation', requestId: 'r1' });

/** Records that become events. */
const eventful: [string, DynamoDBRecord][] = [
  ['revocation INSERT', record('INSERT', { new: revocation })],
  ['block MODIFY that reinstates', record('MODIFY', { old: block, new: reinstated })],
  ['grant INSERT', record('INSERT', { new: grant })],
  ['grant MODIFY', record('MODIFY', { old: grant, new: { ...grant, status: 'suspended' } })],
  ['grant REMOVE', record('REMOVE', { old: grant })],
  ['pointer INSERT', record('INSERT', { new: pointer('v-1') })],
  ['pointer MODIFY to a new version', record('MODIFY', { old: pointer('v-1'), new: pointer('v-2') })],
];

/** Records that never become events. */
const eventless: [string, DynamoDBRecord][] = [
  ['issued decision', record('INSERT', { new: { PK: 'CRED#crd_1', SK: 'DECISION', id: 'crd_1', decision: 'issued', GSI_AT: AT } })],
  ['denied decision', record('INSERT', { new: { PK: 'DECISION#dec_1', SK: 'DECISION', id: 'dec_1', decision: 'denied' } })],
  ['decision expiry (TTL)', record('REMOVE', { old: { PK: 'CRED#crd_1', SK: 'DECISION', id: 'crd_1' } })],
  ['tool', record('INSERT', { new: { PK: 'TOOL#tickets', SK: 'TOOL', id: 'tickets' } })],
  ['principal key', record('INSERT', { new: { PK: 'KEY#apiKey#9f2c', SK: 'KEY', principalId: 'worker' } })],
  ['refresh token', record('MODIFY', { old: { PK: 'REFRESH#ab12', SK: 'REFRESH' }, new: { PK: 'REFRESH#ab12', SK: 'REFRESH', spent: true } })],
  ['quota counter', record('MODIFY', { old: { PK: 'QUOTA#b', SK: 'W#0000360', requests: 1 }, new: { PK: 'QUOTA#b', SK: 'W#0000360', requests: 2 } })],
  ['revocation counter', record('MODIFY', { old: { PK: 'COUNTER', SK: 'REVOCATION', seq: 6 }, new: { PK: 'COUNTER', SK: 'REVOCATION', seq: 7 } })],
  ['revocation pruning', record('REMOVE', { old: revocation })],
  ['block INSERT', record('INSERT', { new: block })],
  ['reinstated block expiry (TTL)', record('REMOVE', { old: reinstated })],
  ['pointer REMOVE', record('REMOVE', { old: pointer('v-2') })],
  ['signing-key registry (rotation)', record('MODIFY', { old: { PK: 'SIGNING_KEYS', SK: 'alias/lanyard/L/signing', keys: [] }, new: { PK: 'SIGNING_KEYS', SK: 'alias/lanyard/L/signing', keys: [{ arn: 'arn:aws:kms:eu-west-1:123456789012:key/k', publishedAt: AT }] } })],
  ['grant-like key outside an identity', record('INSERT', { new: { PK: 'ROLE#a', SK: 'GRANT#x' } })],
];

describe('Constant: PUBLISHED_RECORD_FILTERS', () => {
  it.each(eventful)('lets a %s through, which becomes an event', (_name, sample) => {
    expect(becomesEvent(sample)).toBe(true);
    expect(passes(sample)).toBe(true);
  });

  it.each(eventless)('keeps a %s away from the publisher, which would yield nothing', (_name, sample) => {
    expect(becomesEvent(sample)).toBe(false);
    expect(passes(sample)).toBe(false);
  });

  it('lets through only two kinds of record that yield nothing: those the filter syntax cannot tell (two fields compared)', () => {
    // Prepare
    const rewrite = record('MODIFY', { old: pointer('v-2'), new: { ...pointer('v-2'), requestId: 'r2' } });
    const reReinstated = record('MODIFY', { old: reinstated, new: { ...reinstated, reinstateReason: 'again' } });

    // Assess: they pass, and the handler drops them.
    for (const sample of [rewrite, reReinstated]) {
      expect(passes(sample)).toBe(true);
      expect(becomesEvent(sample)).toBe(false);
    }
  });

  it('stays within Lambda’s default of five filters per event source mapping', () => {
    expect(PUBLISHED_RECORD_FILTERS.length).toBeLessThanOrEqual(5);
  });
});
