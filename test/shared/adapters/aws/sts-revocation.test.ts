import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { NoSuchEntityException, PutRolePolicyCommand } from '@aws-sdk/client-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  INLINE_POLICY_MAX_CHARS,
  PRUNE_AFTER_SECONDS,
  REVOCATION_POLICY_NAME,
  roleNameFromArn,
  StsSessionRevoker,
} from '../../../../shared/adapters/aws/sts-revocation.ts';
import type { RevocationTarget } from '../../../../shared/domain/model.ts';
import { LanyardError } from '../../../../shared/domain/errors.ts';
import { startDynaliteEngine, type Engine } from '../../../helpers/engines.ts';
import { rejection } from '../../../helpers/errors.ts';
import { deferred, fakeIam } from '../../../helpers/fake-iam.ts';

const ROLE_ARN = 'arn:aws:iam::123456789012:role/lanyard/tools/tickets';
const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const SECOND = 1000;
const LANE = 'support-triage/prod#w7:tickets:write:acme';
const LANE_TAG = 'aws:PrincipalTag/lanyard:lane';

interface Statement {
  Sid?: string;
  Effect: string;
  Condition?: Record<string, Record<string, string | string[]>>;
}

let engine: Engine;
beforeAll(async () => {
  engine = await startDynaliteEngine();
});
afterAll(() => engine.close());

async function setup(roles: readonly string[] = ['tickets']) {
  const iam = fakeIam(roles);
  const tableName = await engine.createTable('stsdeny');
  const revoker = (now = NOW) => new StsSessionRevoker({ iam: iam.client, dynamo: engine.client, tableName, clock: { now: () => now } });
  const lanyard = () => iam.statements<Statement>(REVOCATION_POLICY_NAME);
  const lanes = () => lanyard().map((s) => s.Condition?.['StringEquals']?.[LANE_TAG]);
  const version = async () =>
    (await engine.client.send(new GetItemCommand({ TableName: tableName, Key: { PK: { S: `STSDENY#${ROLE_ARN}` }, SK: { S: 'STSDENY' } }, ConsistentRead: true }))).Item?.['version']?.N;
  return { iam, revoker, lanyard, lanes, version };
}

const lane = (i: number) => `agent-${i}/prod:tickets:write:acme`;
const revokeLane = (revoker: StsSessionRevoker, laneId: string, cutoffMs = NOW) =>
  revoker.revokeSessions({ roleArn: ROLE_ARN, target: { lane: laneId }, cutoff: new Date(cutoffMs).toISOString() });

describe('Class: StsSessionRevoker', () => {
  describe('Method: revokeSessions', () => {
    it('creates the lanyard-revocations policy with a deny on the lane tag issued at or before the cut-off', async () => {
      // Prepare
      const { iam, revoker, version } = await setup();

      // Act
      const result = await revoker().revokeSessions({ roleArn: ROLE_ARN, target: { lane: LANE }, cutoff: '2026-11-22T11:59:00Z' });

      // Assess
      expect(result).toMatchObject({ roleName: 'tickets', changed: true, statements: 1, pruned: 0 });
      const put = iam.mock.commandCalls(PutRolePolicyCommand)[0]?.args[0].input;
      expect([put?.RoleName, put?.PolicyName]).toEqual(['tickets', 'lanyard-revocations']);
      const document = JSON.parse(put?.PolicyDocument ?? '') as { Statement: Statement[] };
      expect(document.Statement[0]?.Sid).toMatch(/^LanyardLane[0-9a-f]{24}$/);
      expect(document).toEqual({
        Version: '2012-10-17',
        Statement: [
          {
            Sid: document.Statement[0]?.Sid,
            Effect: 'Deny',
            Action: '*',
            Resource: '*',
            Condition: {
              StringEquals: { 'aws:PrincipalTag/lanyard:lane': 'support-triage/prod@w7:tickets:write:acme' },
              DateLessThanEquals: { 'aws:TokenIssueTime': '2026-11-22T11:59:00.000Z' },
            },
          },
        ],
      });
      expect(result.inlinePolicyChars).toBe((put?.PolicyDocument ?? '').length);
      expect(await version()).toBe('1');
    });

    it.each<[string, RevocationTarget, Record<string, Record<string, string | string[]>>]>([
      ['an identity class: itself and its instances', { identity: 'support-triage/prod' }, { StringLike: { 'aws:PrincipalTag/lanyard:identity': ['support-triage/prod', 'support-triage/prod@*'] } }],
      ['an instance: itself', { identity: 'support-triage/prod#a1' }, { StringEquals: { 'aws:PrincipalTag/lanyard:identity': 'support-triage/prod@a1' } }],
      ['a tenant', { tenant: 'acme' }, { StringEquals: { 'aws:PrincipalTag/lanyard:tenant': 'acme' } }],
      ['a credential', { credential: 'crd_0123456789abcdef' }, { StringEquals: { 'aws:PrincipalTag/lanyard:credential': 'crd_0123456789abcdef' } }],
      ['a tool: the lanes of that tool only', { tool: 'tickets' }, { StringLike: { [LANE_TAG]: ['*:tickets:read:*', '*:tickets:write:*', '*:tickets:admin:*'] } }],
    ])('denies by the matching session tag for %s', async (_name, target, match) => {
      // Prepare
      const { revoker, lanyard } = await setup();

      // Act
      await revoker().revokeSessions({ roleArn: ROLE_ARN, target, cutoff: '2026-11-22T11:00:00Z' });

      // Assess
      expect(lanyard()).toHaveLength(1);
      expect(lanyard()[0]?.Sid).toMatch(/^LanyardDeny[0-9a-f]{24}$/);
      expect(lanyard()[0]?.Condition).toEqual({ ...match, DateLessThanEquals: { 'aws:TokenIssueTime': '2026-11-22T11:00:00.000Z' } });
    });

    it('keeps one statement per target: a later cut-off replaces, an earlier one changes nothing', async () => {
      // Prepare
      const { iam, revoker, lanyard } = await setup();
      await revokeLane(revoker(), LANE, NOW - 3600 * SECOND);
      await revokeLane(revoker(), 'other/prod:tickets:read:*', NOW - 3600 * SECOND);

      // Act
      const later = await revokeLane(revoker(), LANE, NOW - 1800 * SECOND);
      const earlier = await revokeLane(revoker(), LANE, NOW - 7200 * SECOND);

      // Assess
      expect(later).toMatchObject({ changed: true, statements: 2 });
      expect(earlier).toMatchObject({ changed: false, statements: 2 });
      expect(iam.mock.commandCalls(PutRolePolicyCommand)).toHaveLength(3);
      const byLane = Object.fromEntries(lanyard().map((s) => [s.Condition?.['StringEquals']?.[LANE_TAG], s.Condition?.['DateLessThanEquals']?.['aws:TokenIssueTime']]));
      expect(byLane).toEqual({
        'support-triage/prod@w7:tickets:write:acme': '2026-11-22T11:30:00.000Z',
        'other/prod:tickets:read:=': '2026-11-22T11:00:00.000Z',
      });
    });

    it('keeps statements Lanyard did not write, and takes over lane denies written before the version item existed', async () => {
      // Prepare
      const { iam, revoker, lanes } = await setup();
      const foreign = { Sid: 'BreakGlass', Effect: 'Deny', Action: 's3:DeleteObject', Resource: '*' };
      await revokeLane(revoker(), lane(1));
      const written = iam.statements<Statement>(REVOCATION_POLICY_NAME);
      // The policy as an earlier Lanyard (no version item) and an operator left it, on a fresh table.
      const { revoker: fresh, iam: iam2 } = await setup();
      iam2.put('tickets', REVOCATION_POLICY_NAME, { Version: '2012-10-17', Statement: [foreign, ...written] });

      // Act
      await revokeLane(fresh(), LANE);

      // Assess
      const after = iam2.statements<Statement>(REVOCATION_POLICY_NAME);
      expect(after).toContainEqual(foreign);
      expect(after.map((s) => s.Condition?.['StringEquals']?.[LANE_TAG]).filter(Boolean).sort()).toEqual([lane(1), 'support-triage/prod@w7:tickets:write:acme']);
      expect(lanes()).toEqual([lane(1)]);
    });

    it('prunes denies once every session they cover has expired: the 1 h session maximum plus clock skew after the cut-off', async () => {
      // Prepare
      const { revoker, lanes } = await setup();
      await revokeLane(revoker(NOW - 2 * 3600 * SECOND), 'expired/prod:tickets:read:acme', NOW - PRUNE_AFTER_SECONDS * SECOND - 1);
      await revokeLane(revoker(NOW - 2 * 3600 * SECOND), 'live/prod:tickets:read:acme', NOW - PRUNE_AFTER_SECONDS * SECOND);

      // Act
      const result = await revokeLane(revoker(), LANE);

      // Assess
      expect(PRUNE_AFTER_SECONDS).toBe(3_660);
      expect(result).toMatchObject({ pruned: 1, statements: 2 });
      expect(lanes()).not.toContain('expired/prod:tickets:read:acme');
      expect(lanes()).toContain('live/prod:tickets:read:acme');
    });

    it('holds about 37 lane denies on a role with no other inline policy, then refuses with a typed conflict and writes nothing', async () => {
      // Prepare
      const { iam, revoker, lanyard, version } = await setup();
      let revoked = 0;
      let error: LanyardError | undefined;

      // Act
      for (let i = 0; i < 100 && !error; i++) {
        try {
          await revokeLane(revoker(), `support-triage-${String(i).padStart(2, '0')}/prod:tickets:write:acme`, NOW - i * SECOND);
          revoked++;
        } catch (caught) {
          error = caught as LanyardError;
        }
      }

      // Assess
      expect(error).toBeInstanceOf(LanyardError);
      expect(error?.code).toBe('conflict');
      expect(error?.context).toMatchObject({ field: 'target', role: 'tickets', maxPolicyChars: INLINE_POLICY_MAX_CHARS, liveStatements: revoked + 1 });
      expect(error?.message).toContain('revocation is recorded');
      expect(revoked).toBeGreaterThanOrEqual(35);
      expect(revoked).toBeLessThanOrEqual(40);
      expect(lanyard()).toHaveLength(revoked);
      expect(await version()).toBe(String(revoked));
      // Every refused write was refused here: IAM never had to.
      expect(iam.mock.commandCalls(PutRolePolicyCommand)).toHaveLength(revoked);
    });

    it('counts the role’s other inline policies against IAM’s 10,240 characters', async () => {
      // Prepare
      const { iam, revoker, lanyard } = await setup();
      const actions = Array.from({ length: 550 }, (_, i) => `s3:Action${String(i).padStart(3, '0')}`);
      iam.put('tickets', 'tool-permissions', { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: actions, Resource: '*' }] });
      let revoked = 0;
      let error: LanyardError | undefined;

      // Act
      for (let i = 0; i < 40 && !error; i++) {
        try {
          await revokeLane(revoker(), lane(i), NOW - i * SECOND);
          revoked++;
        } catch (caught) {
          error = caught as LanyardError;
        }
      }

      // Assess
      expect(error?.code).toBe('conflict');
      expect(Number(error?.context['neededPolicyChars'])).toBeGreaterThan(INLINE_POLICY_MAX_CHARS);
      expect(revoked).toBeGreaterThan(0);
      expect(revoked).toBeLessThan(10);
      expect(lanyard()).toHaveLength(revoked);
      expect(iam.mock.commandCalls(PutRolePolicyCommand)).toHaveLength(revoked);
    });

    it('loses neither of two revocations on one role that read the same policy at once', async () => {
      // Prepare: both writers read the role before either writes (the interleaving that loses one without a version check).
      const { iam, revoker, lanes, version } = await setup();
      const bothRead = deferred();
      let reads = 0;
      iam.hooks.before = async (call) => {
        if (call !== 'ListRolePolicies') return;
        if (++reads === 2) bothRead.resolve();
        if (reads <= 2) await bothRead.promise;
      };

      // Act
      await Promise.all([revokeLane(revoker(), lane(1)), revokeLane(revoker(), lane(2))]);

      // Assess
      expect(reads).toBeGreaterThan(2);
      expect(lanes().sort()).toEqual([lane(1), lane(2)]);
      expect(await version()).toBe('2');
    });

    it('rewrites the policy when its own PutRolePolicy lands after a newer writer’s, so IAM ends with both', async () => {
      // Prepare: writer A's PutRolePolicy is held until writer B has finished.
      const { iam, revoker, lanes } = await setup();
      const firstPutArrived = deferred();
      const releaseFirstPut = deferred();
      let puts = 0;
      iam.hooks.before = async (call) => {
        if (call !== 'PutRolePolicy' || ++puts !== 1) return;
        firstPutArrived.resolve();
        await releaseFirstPut.promise;
      };

      // Act
      const first = revokeLane(revoker(), lane(1));
      await firstPutArrived.promise;
      await revokeLane(revoker(), lane(2));
      expect(lanes().sort()).toEqual([lane(1), lane(2)]);
      releaseFirstPut.resolve();
      await first;

      // Assess
      expect(lanes().sort()).toEqual([lane(1), lane(2)]);
      expect(iam.mock.commandCalls(PutRolePolicyCommand)).toHaveLength(3);
    });

    it('writes IAM again when it lags the version item (a writer that stopped between its two writes)', async () => {
      // Prepare
      const { iam, revoker, lanes } = await setup();
      await revokeLane(revoker(), LANE);
      iam.policies.get('tickets')?.delete(REVOCATION_POLICY_NAME);

      // Act
      const result = await revokeLane(revoker(), LANE);

      // Assess
      expect(result.changed).toBe(false);
      expect(lanes()).toEqual(['support-triage/prod@w7:tickets:write:acme']);
    });

    it('fails closed when IAM fails, and on a role that does not exist', async () => {
      // Prepare
      const { revoker } = await setup([]);

      // Act
      const error = await rejection(revokeLane(revoker(), LANE));

      // Assess
      expect(error.code).toBe('issuer_unavailable');
      expect(error.cause).toBeInstanceOf(NoSuchEntityException);
    });

    it('refuses a cut-off that is not an instant, an ARN that is not a role, and a key target, calling nothing', async () => {
      // Prepare
      const { iam, revoker } = await setup();

      // Act
      const badCutoff = await rejection(revoker().revokeSessions({ roleArn: ROLE_ARN, target: { lane: LANE }, cutoff: 'yesterday' }));
      const badArn = await rejection(revoker().revokeSessions({ roleArn: 'arn:aws:iam::123456789012:user/alice', target: { lane: LANE }, cutoff: '2026-11-22T11:00:00Z' }));
      const key = await rejection(revoker().revokeSessions({ roleArn: ROLE_ARN, target: { key: 'kid-00000001' }, cutoff: '2026-11-22T11:00:00Z' }));

      // Assess
      expect([badCutoff.code, badCutoff.context.field]).toEqual(['invalid_request', 'cutoff']);
      expect([badArn.code, badArn.context.field]).toEqual(['invalid_request', 'roleArn']);
      expect([key.code, key.context.field]).toEqual(['invalid_request', 'target']);
      expect(iam.mock.calls()).toHaveLength(0);
    });
  });
});

describe('Function: roleNameFromArn', () => {
  it('takes the last segment of a role ARN, with or without a path', () => {
    // Act + Assess
    expect(roleNameFromArn('arn:aws:iam::123456789012:role/tickets')).toBe('tickets');
    expect(roleNameFromArn('arn:aws:iam::123456789012:role/lanyard/tools/tickets-rw')).toBe('tickets-rw');
    expect(roleNameFromArn('arn:aws-us-gov:iam::123456789012:role/a/b')).toBe('b');
  });
});
