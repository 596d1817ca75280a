/**
 * What the IAM documents Lanyard writes mean, asked of a real policy evaluator
 * (@cloud-copilot/iam-simulate) rather than read as JSON: the revocation denies refuse exactly
 * the sessions they cover, a session policy allows exactly the lane's actions, and the tool
 * role's trust lets the issuer's role assume it with tags and a source identity.
 */
import { runSimulation, type Simulation } from '@cloud-copilot/iam-simulate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REVOCATION_POLICY_NAME, StsSessionRevoker } from '../../../../shared/adapters/aws/sts-revocation.ts';
import { buildSessionPolicy, toSessionTagValue } from '../../../../shared/adapters/aws/sts-sessions.ts';
import { laneId, type AccessLevel, type RevocationTarget } from '../../../../shared/domain/model.ts';
import { sessionPolicy } from '../../../../shared/issuance/issue-credential.ts';
import { startDynaliteEngine, type Engine } from '../../../helpers/engines.ts';
import { fakeIam } from '../../../helpers/fake-iam.ts';

const ACCOUNT = '123456789012';
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/lanyard/tools/tickets`;
const ISSUER_ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/Lanyard-IssueFunctionRole`;
const CUTOFF = '2026-11-22T12:00:00.000Z';
const BUCKET = 'arn:aws:s3:::tickets-attachments';
/** The tool role's own permissions: sessions get at most these, narrowed by their session policy. */
const TOOL_ROLE_POLICY = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: [BUCKET, `${BUCKET}/*`] }] };

interface Session {
  readonly identity: string;
  readonly tool?: string;
  readonly level?: AccessLevel;
  readonly tenant: string;
  readonly credential?: string;
  /** ISO instant: `aws:TokenIssueTime`. */
  readonly issuedAt: string;
}

type Result = 'Allowed' | 'ExplicitlyDenied' | 'ImplicitlyDenied';

/** Evaluates one request of a session of the tool role, with the session tags STS would give it. */
async function request(session: Session, policies: { revocations?: unknown; sessionPolicy?: unknown; action?: string; resource?: string } = {}): Promise<Result> {
  const lane = laneId({ identity: session.identity, tool: session.tool ?? 'tickets', level: session.level ?? 'write', tenant: session.tenant });
  const simulation: Simulation = {
    request: {
      principal: `arn:aws:sts::${ACCOUNT}:assumed-role/tickets/${session.credential ?? 'crd_0000000000000000'}`,
      action: policies.action ?? 's3:GetObject',
      resource: { resource: policies.resource ?? `${BUCKET}/report.pdf`, accountId: ACCOUNT },
      contextVariables: {
        'aws:PrincipalTag/lanyard:identity': toSessionTagValue(session.identity),
        'aws:PrincipalTag/lanyard:lane': toSessionTagValue(lane),
        'aws:PrincipalTag/lanyard:tenant': toSessionTagValue(session.tenant),
        'aws:PrincipalTag/lanyard:credential': session.credential ?? 'crd_0000000000000000',
        'aws:TokenIssueTime': session.issuedAt,
      },
    },
    identityPolicies: [
      { name: 'tool-permissions', policy: TOOL_ROLE_POLICY },
      ...(policies.revocations ? [{ name: REVOCATION_POLICY_NAME, policy: policies.revocations }] : []),
    ],
    sessionPolicy: policies.sessionPolicy ?? { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] },
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  };
  const result = await runSimulation(simulation, {});
  if (result.resultType === 'error') throw new Error(`the simulation refused its input: ${JSON.stringify(result.errors)}`);
  return result.overallResult;
}

let engine: Engine;
beforeAll(async () => {
  engine = await startDynaliteEngine();
});
afterAll(() => engine.close());

/** The `lanyard-revocations` policy exactly as StsSessionRevoker writes it for these revocations. */
async function revocationPolicy(...targets: RevocationTarget[]): Promise<unknown> {
  const iam = fakeIam(['tickets']);
  const revoker = new StsSessionRevoker({ iam: iam.client, dynamo: engine.client, tableName: await engine.createTable('semantics'), clock: { now: () => Date.parse(CUTOFF) } });
  for (const target of targets) await revoker.revokeSessions({ roleArn: ROLE_ARN, target, cutoff: CUTOFF });
  return JSON.parse(iam.policies.get('tickets')!.get(REVOCATION_POLICY_NAME)!);
}

const BEFORE = '2026-11-22T11:30:00Z';
const AT = '2026-11-22T12:00:00Z';
const AFTER = '2026-11-22T12:00:01Z';

describe('IAM semantics of the STS revocation policy', () => {
  it('denies a session of the revoked lane issued at or before the cut-off, and allows the neighbour lane and a later session', async () => {
    // Prepare
    const revocations = await revocationPolicy({ lane: 'support-triage/prod#w7:tickets:write:acme' });
    const revoked = { identity: 'support-triage/prod#w7', tenant: 'acme' };

    // Act
    const results = {
      before: await request({ ...revoked, issuedAt: BEFORE }, { revocations }),
      at: await request({ ...revoked, issuedAt: AT }, { revocations }),
      after: await request({ ...revoked, issuedAt: AFTER }, { revocations }),
      otherTenant: await request({ ...revoked, tenant: 'globex', issuedAt: BEFORE }, { revocations }),
      otherLevel: await request({ ...revoked, level: 'read', issuedAt: BEFORE }, { revocations }),
      otherInstance: await request({ ...revoked, identity: 'support-triage/prod#w8', issuedAt: BEFORE }, { revocations }),
    };

    // Assess
    expect(results).toEqual({ before: 'ExplicitlyDenied', at: 'ExplicitlyDenied', after: 'Allowed', otherTenant: 'Allowed', otherLevel: 'Allowed', otherInstance: 'Allowed' });
  });

  it('denies every session of a revoked class identity and of its instances, and no other identity’s', async () => {
    // Prepare
    const revocations = await revocationPolicy({ identity: 'support-triage/prod' });

    // Act
    const results = {
      theClass: await request({ identity: 'support-triage/prod', tenant: '*', issuedAt: BEFORE }, { revocations }),
      anInstance: await request({ identity: 'support-triage/prod#a1', tool: 'tickets', level: 'read', tenant: 'acme', issuedAt: BEFORE }, { revocations }),
      afterCutoff: await request({ identity: 'support-triage/prod#a1', tenant: 'acme', issuedAt: AFTER }, { revocations }),
      otherEnvironment: await request({ identity: 'support-triage/staging', tenant: 'acme', issuedAt: BEFORE }, { revocations }),
      longerName: await request({ identity: 'support-triage-2/prod', tenant: 'acme', issuedAt: BEFORE }, { revocations }),
    };

    // Assess
    expect(results).toEqual({ theClass: 'ExplicitlyDenied', anInstance: 'ExplicitlyDenied', afterCutoff: 'Allowed', otherEnvironment: 'Allowed', longerName: 'Allowed' });
  });

  it('denies a revoked tenant’s sessions only', async () => {
    // Prepare
    const revocations = await revocationPolicy({ tenant: 'acme' });

    // Act + Assess
    expect(await request({ identity: 'billing-bot/prod', tenant: 'acme', issuedAt: AT }, { revocations })).toBe('ExplicitlyDenied');
    expect(await request({ identity: 'billing-bot/prod', tenant: 'globex', issuedAt: AT }, { revocations })).toBe('Allowed');
    expect(await request({ identity: 'billing-bot/prod', tenant: 'acme', issuedAt: AFTER }, { revocations })).toBe('Allowed');
  });

  it('denies a disabled tool’s sessions on a role it shares with another tool, and not the other tool’s', async () => {
    // Prepare
    const revocations = await revocationPolicy({ tool: 'tickets' }, { tool: 'read' });

    // Act
    const results = {
      tickets: await request({ identity: 'support-triage/prod', tool: 'tickets', level: 'admin', tenant: 'acme', issuedAt: BEFORE }, { revocations }),
      archive: await request({ identity: 'support-triage/prod', tool: 'archive', level: 'read', tenant: 'tickets', issuedAt: BEFORE }, { revocations }),
      // A tool named like an access level matches by tool, never by level.
      readTool: await request({ identity: 'billing-bot/prod', tool: 'read', level: 'read', tenant: 'acme', issuedAt: BEFORE }, { revocations }),
      readLevelOfAnotherTool: await request({ identity: 'billing-bot/prod', tool: 'archive', level: 'read', tenant: 'acme', issuedAt: BEFORE }, { revocations }),
    };

    // Assess
    expect(results).toEqual({ tickets: 'ExplicitlyDenied', archive: 'Allowed', readTool: 'ExplicitlyDenied', readLevelOfAnotherTool: 'Allowed' });
  });

  it('denies a revoked sts credential and not another credential of the same lane', async () => {
    // Prepare
    const revocations = await revocationPolicy({ credential: 'crd_revokedrevokedrevoked' });
    const lane = { identity: 'support-triage/prod', tenant: 'acme', issuedAt: BEFORE };

    // Act + Assess
    expect(await request({ ...lane, credential: 'crd_revokedrevokedrevoked' }, { revocations })).toBe('ExplicitlyDenied');
    expect(await request({ ...lane, credential: 'crd_anotheranotheranother' }, { revocations })).toBe('Allowed');
  });
});

describe('IAM semantics of the session policy', () => {
  it.each([
    ['buildSessionPolicy (sts-sessions.ts)', buildSessionPolicy],
    ['sessionPolicy (issue-credential.ts)', sessionPolicy],
  ])('allows exactly the lane’s actions on its resources with %s, within what the role allows', async (_name, build) => {
    // Prepare: the lane grants GetObject and ListBucket on the attachments bucket; the role allows all of s3 there.
    const policy = JSON.parse(build(['s3:GetObject', 's3:ListBucket'], [BUCKET, `${BUCKET}/*`])) as unknown;
    const session = { identity: 'support-triage/prod', tenant: 'acme', issuedAt: AT };
    const ask = (action: string, resource: string) => request(session, { sessionPolicy: policy, action, resource });

    // Act
    const results = {
      get: await ask('s3:GetObject', `${BUCKET}/report.pdf`),
      list: await ask('s3:ListBucket', BUCKET),
      put: await ask('s3:PutObject', `${BUCKET}/report.pdf`),
      delete: await ask('s3:DeleteObject', `${BUCKET}/report.pdf`),
      otherBucket: await ask('s3:GetObject', 'arn:aws:s3:::payroll/report.pdf'),
    };

    // Assess
    expect(results).toEqual({ get: 'Allowed', list: 'Allowed', put: 'ImplicitlyDenied', delete: 'ImplicitlyDenied', otherBucket: 'ImplicitlyDenied' });
  });
});

describe('IAM semantics of the tool role’s trust', () => {
  // The shape docs/deploy.md asks of a tool role the operator writes by hand (trust
  // `IssueFunctionRoleArn`); the trust `LanyardIssuer.trustToolRole` synthesizes is evaluated
  // the same way in test/cdk/two-stacks.test.ts.
  const trust = {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { AWS: ISSUER_ROLE_ARN }, Action: ['sts:AssumeRole', 'sts:TagSession', 'sts:SetSourceIdentity'] }],
  };
  // The issue function's own statement, as cdk/lanyard-issuer.ts grants it (STS_ASSUME on the listed roles).
  const issuerPolicy = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['sts:AssumeRole', 'sts:TagSession', 'sts:SetSourceIdentity'], Resource: ROLE_ARN }] };

  const assume = async (action: string, principal: string, identityPolicy: unknown = issuerPolicy): Promise<Result> => {
    const result = await runSimulation(
      {
        request: {
          principal,
          action,
          resource: { resource: ROLE_ARN, accountId: ACCOUNT },
          contextVariables: {
            'aws:RequestTag/lanyard:lane': 'support-triage/prod:tickets:write:acme',
            'aws:TagKeys': ['lanyard:identity', 'lanyard:lane', 'lanyard:tenant', 'lanyard:credential'],
            'sts:TransitiveTagKeys': ['lanyard:identity', 'lanyard:lane'],
            'sts:SourceIdentity': 'support-triage+prod',
          },
        },
        identityPolicies: [{ name: 'issuer', policy: identityPolicy }],
        resourcePolicy: trust,
        serviceControlPolicies: [],
        resourceControlPolicies: [],
      },
      {},
    );
    if (result.resultType === 'error') throw new Error(`the simulation refused its input: ${JSON.stringify(result.errors)}`);
    return result.overallResult;
  };

  it.each(['sts:AssumeRole', 'sts:TagSession', 'sts:SetSourceIdentity'])('lets a session of the issuer’s role call %s on the tool role', async (action) => {
    // Act + Assess
    expect(await assume(action, `arn:aws:sts::${ACCOUNT}:assumed-role/Lanyard-IssueFunctionRole/lanyard-issue`)).toBe('Allowed');
  });

  it('lets no other role assume the tool role, even one allowed to by its own policy', async () => {
    // Act + Assess
    expect(await assume('sts:AssumeRole', `arn:aws:sts::${ACCOUNT}:assumed-role/SomeOtherRole/session`)).not.toBe('Allowed');
  });
});
