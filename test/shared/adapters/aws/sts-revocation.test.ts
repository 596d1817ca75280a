import { GetRolePolicyCommand, IAMClient, IAMServiceException, NoSuchEntityException, PutRolePolicyCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import {
  INLINE_POLICY_MAX_CHARS,
  REVOCATION_POLICY_NAME,
  roleNameFromArn,
  StsLaneRevoker,
} from '../../../../shared/adapters/aws/sts-revocation.ts';
import { LanyardError } from '../../../../shared/errors.ts';
import { rejection } from '../../../helpers/errors.ts';

const ROLE_ARN = 'arn:aws:iam::123456789012:role/lanyard/tools/tickets';
const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const HOUR = 3600_000;
const LANE = 'support-triage/prod#w7:tickets:write:acme';

interface Statement {
  Sid?: string;
  Effect: string;
  Condition?: { StringEquals?: Record<string, string>; DateLessThanEquals?: Record<string, string> };
}

/** An IAM that keeps inline role policies, answers them URL-encoded and enforces the size limit. */
function fakeIam(roles: readonly string[] = ['tickets']) {
  const client = new IAMClient({ region: 'us-east-1' });
  const mock = mockClient(client);
  const policies = new Map<string, string>();
  const key = (role?: string, name?: string) => `${role}/${name}`;
  const noSuchRole = (role?: string) => new NoSuchEntityException({ message: `The role with name ${role} cannot be found.`, $metadata: {} });

  mock.on(GetRolePolicyCommand).callsFake((input: { RoleName?: string; PolicyName?: string }) => {
    if (!roles.includes(input.RoleName ?? '')) throw noSuchRole(input.RoleName);
    const document = policies.get(key(input.RoleName, input.PolicyName));
    if (document === undefined) {
      throw new NoSuchEntityException({ message: `The role policy with name ${input.PolicyName} cannot be found.`, $metadata: {} });
    }
    return { RoleName: input.RoleName, PolicyName: input.PolicyName, PolicyDocument: encodeURIComponent(document) };
  });
  mock.on(PutRolePolicyCommand).callsFake((input: { RoleName?: string; PolicyName?: string; PolicyDocument?: string }) => {
    if (!roles.includes(input.RoleName ?? '')) throw noSuchRole(input.RoleName);
    const document = input.PolicyDocument ?? '';
    JSON.parse(document);
    if (document.replace(/\s/g, '').length > INLINE_POLICY_MAX_CHARS) {
      throw new IAMServiceException({ name: 'LimitExceededException', message: 'Maximum policy size exceeded', $fault: 'client', $metadata: {} });
    }
    policies.set(key(input.RoleName, input.PolicyName), document);
    return {};
  });

  const statements = (role = 'tickets'): Statement[] => {
    const document = policies.get(key(role, REVOCATION_POLICY_NAME));
    return document === undefined ? [] : (JSON.parse(document) as { Statement: Statement[] }).Statement;
  };
  return { client, mock, policies, statements, key };
}

function clock(now = NOW) {
  return { now: () => now };
}

describe('Class: StsLaneRevoker', () => {
  describe('Method: revokeLane', () => {
    it('creates the lanyard-revocations policy with a deny on the lane tag issued at or before the cut-off', async () => {
      // Prepare
      const iam = fakeIam();
      const revoker = new StsLaneRevoker({ client: iam.client, clock: clock() });

      // Act
      const result = await revoker.revokeLane({ roleArn: ROLE_ARN, lane: LANE, cutoff: '2026-11-22T11:59:00Z' });

      // Assess
      expect(result).toEqual({ roleName: 'tickets', changed: true, statements: 1, pruned: 0 });
      const put = iam.mock.commandCalls(PutRolePolicyCommand)[0]?.args[0].input;
      expect(put?.RoleName).toBe('tickets');
      expect(put?.PolicyName).toBe('lanyard-revocations');
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
    });

    it('keeps one statement per lane: a later cut-off replaces, an earlier one changes nothing', async () => {
      // Prepare
      const iam = fakeIam();
      const revoker = new StsLaneRevoker({ client: iam.client, clock: clock() });
      await revoker.revokeLane({ roleArn: ROLE_ARN, lane: LANE, cutoff: '2026-11-22T11:00:00Z' });
      await revoker.revokeLane({ roleArn: ROLE_ARN, lane: 'other/prod:tickets:read:*', cutoff: '2026-11-22T11:00:00Z' });

      // Act
      const later = await revoker.revokeLane({ roleArn: ROLE_ARN, lane: LANE, cutoff: '2026-11-22T11:30:00Z' });
      const earlier = await revoker.revokeLane({ roleArn: ROLE_ARN, lane: LANE, cutoff: '2026-11-22T10:00:00Z' });

      // Assess
      expect(later).toMatchObject({ changed: true, statements: 2 });
      expect(earlier).toMatchObject({ changed: false, statements: 2 });
      expect(iam.mock.commandCalls(PutRolePolicyCommand)).toHaveLength(3);
      const byLane = Object.fromEntries(
        iam.statements().map((s): [string, string] => [
          s.Condition?.StringEquals?.['aws:PrincipalTag/lanyard:lane'] ?? '',
          s.Condition?.DateLessThanEquals?.['aws:TokenIssueTime'] ?? '',
        ]),
      );
      expect(byLane).toEqual({
        'support-triage/prod@w7:tickets:write:acme': '2026-11-22T11:30:00.000Z',
        'other/prod:tickets:read:=': '2026-11-22T11:00:00.000Z',
      });
    });

    it('keeps statements Lanyard did not write', async () => {
      // Prepare
      const iam = fakeIam();
      const foreign = { Sid: 'BreakGlass', Effect: 'Deny', Action: 's3:DeleteObject', Resource: '*' };
      iam.policies.set(iam.key('tickets', REVOCATION_POLICY_NAME), JSON.stringify({ Version: '2012-10-17', Statement: [foreign] }));

      // Act
      await new StsLaneRevoker({ client: iam.client, clock: clock() }).revokeLane({ roleArn: ROLE_ARN, lane: LANE, cutoff: '2026-11-22T11:00:00Z' });

      // Assess
      expect(iam.statements()).toHaveLength(2);
      expect(iam.statements()).toContainEqual(foreign);
    });

    it('prunes lane statements whose cut-off is more than 12 hours old', async () => {
      // Prepare
      const iam = fakeIam();
      await new StsLaneRevoker({ client: iam.client, clock: clock(NOW - 13 * HOUR) }).revokeLane({
        roleArn: ROLE_ARN,
        lane: 'old/prod:tickets:read:acme',
        cutoff: new Date(NOW - 12 * HOUR - 1).toISOString(),
      });
      await new StsLaneRevoker({ client: iam.client, clock: clock(NOW - 11 * HOUR) }).revokeLane({
        roleArn: ROLE_ARN,
        lane: 'recent/prod:tickets:read:acme',
        cutoff: new Date(NOW - 11 * HOUR).toISOString(),
      });

      // Act
      const result = await new StsLaneRevoker({ client: iam.client, clock: clock() }).revokeLane({ roleArn: ROLE_ARN, lane: LANE, cutoff: new Date(NOW).toISOString() });

      // Assess
      expect(result).toMatchObject({ pruned: 1, statements: 2 });
      const lanes = iam.statements().map((s) => s.Condition?.StringEquals?.['aws:PrincipalTag/lanyard:lane']);
      expect(lanes).not.toContain('old/prod:tickets:read:acme');
      expect(lanes).toContain('recent/prod:tickets:read:acme');
    });

    it('refuses with a typed error when live statements no longer fit IAM’s 10,240 characters', async () => {
      // Prepare
      const iam = fakeIam();
      const revoker = new StsLaneRevoker({ client: iam.client, clock: clock() });
      let error: LanyardError | undefined;
      let revoked = 0;

      // Act
      for (let i = 0; i < 100 && !error; i++) {
        try {
          await revoker.revokeLane({ roleArn: ROLE_ARN, lane: `agent-${i}/prod:tickets:write:acme`, cutoff: new Date(NOW - i * 1000).toISOString() });
          revoked++;
        } catch (caught) {
          error = caught as LanyardError;
        }
      }

      // Assess
      expect(error).toBeInstanceOf(LanyardError);
      expect(error?.code).toBe('conflict');
      expect(error?.context).toMatchObject({ field: 'lane', maxPolicyChars: 10_240, liveStatements: revoked + 1 });
      expect(iam.statements()).toHaveLength(revoked);
      expect(revoked).toBeGreaterThan(20);
    });

    it('fails closed when IAM fails, and on a role that does not exist', async () => {
      // Prepare
      const iam = fakeIam([]);

      // Act
      const error = await rejection(new StsLaneRevoker({ client: iam.client, clock: clock() }).revokeLane({ roleArn: ROLE_ARN, lane: LANE, cutoff: '2026-11-22T11:00:00Z' }));

      // Assess
      expect(error.code).toBe('issuer_unavailable');
      expect(error.cause).toBeInstanceOf(NoSuchEntityException);
    });

    it('refuses a cut-off that is not an instant and an ARN that is not a role', async () => {
      // Prepare
      const iam = fakeIam();
      const revoker = new StsLaneRevoker({ client: iam.client, clock: clock() });

      // Act
      const badCutoff = await rejection(revoker.revokeLane({ roleArn: ROLE_ARN, lane: LANE, cutoff: 'yesterday' }));
      const badArn = await rejection(revoker.revokeLane({ roleArn: 'arn:aws:iam::123456789012:user/alice', lane: LANE, cutoff: '2026-11-22T11:00:00Z' }));

      // Assess
      expect([badCutoff.code, badCutoff.context.field]).toEqual(['invalid_request', 'cutoff']);
      expect([badArn.code, badArn.context.field]).toEqual(['invalid_request', 'roleArn']);
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
