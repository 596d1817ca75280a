import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIssueCredentialHandler } from '../../lambdas/issue-credential.ts';
import type { HttpEvent } from '../../shared/http/types.ts';
import { parsePolicyDocument } from '../../shared/policy/policy-file.ts';
import { startTestIssuer, testPolicy, type TestIssuer } from '../helpers/issuer.ts';

const READ = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };
/** The agent principal's role, with a path: assumed-role ARNs never show it. */
const AGENT_ROLE = 'arn:aws:iam::123456789012:role/agents/triage-worker';

/** Assumed-role callers as API Gateway sees them, one per compute (session names as each service sets them). */
const CALLERS = {
  'an ECS task': 'arn:aws:sts::123456789012:assumed-role/triage-worker/3f2b6c0d9e8a4f7b8c1d2e3f4a5b6c7d',
  'an EKS pod (Pod Identity)': 'arn:aws:sts::123456789012:assumed-role/triage-worker/eks-prod-triage-wor-5f9c6c1b-0b6a-4d3e-9f21-6c2e1d7a8b90',
  'a Lambda function': 'arn:aws:sts::123456789012:assumed-role/triage-worker/triage-worker-fn',
} as const;

/** The payload 2.0 event API Gateway's HTTP API builds for an IAM-authorized route. */
function gatewayEvent(userArn: string, requestId: string): HttpEvent {
  const path = '/v1/credentials';
  return {
    version: '2.0',
    routeKey: `POST ${path}`,
    rawPath: path,
    rawQueryString: '',
    headers: { 'content-type': 'application/json' },
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'api.example',
      domainPrefix: 'api',
      http: { method: 'POST', path, protocol: 'HTTP/1.1', sourceIp: '10.0.0.1', userAgent: 'test' },
      requestId,
      routeKey: `POST ${path}`,
      stage: '$default',
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
      authorizer: { iam: { userArn } },
    },
    body: JSON.stringify(READ),
    isBase64Encoded: false,
  };
}

describe('IAM role callers (assumed-role sessions of a bound role)', () => {
  let issuer: TestIssuer;
  let handler: ReturnType<typeof createIssueCredentialHandler>;

  beforeAll(async () => {
    const policy = testPolicy();
    issuer = await startTestIssuer({
      policy: { ...policy, principals: policy.principals.map((p) => (p.id === 'triage-worker-1' ? { ...p, iamRole: AGENT_ROLE } : p)) },
    });
    handler = createIssueCredentialHandler({ ...issuer.runtime, config: { ...issuer.runtime.config, authMode: 'iam' } });
  });
  afterAll(() => issuer.stop());

  it.each(Object.entries(CALLERS))('authenticates %s of the bound role as its principal', async (_compute, arn) => {
    // Act
    const res = await handler(gatewayEvent(arn, `req-${arn.slice(-8)}`));

    // Assess
    expect(res.statusCode).toBe(201);
    expect(JSON.parse(res.body)).toMatchObject({ identity: 'support-triage/prod', tool: 'tickets' });
  });

  it.each([
    ['another account', 'arn:aws:sts::210987654321:assumed-role/triage-worker/task'],
    ['another partition', 'arn:aws-cn:sts::123456789012:assumed-role/triage-worker/task'],
    ['another role', 'arn:aws:sts::123456789012:assumed-role/triage-worker-2/task'],
    ['the role itself, not a session of it', 'arn:aws:iam::123456789012:role/agents/triage-worker'],
    ['a user of the same name', 'arn:aws:iam::123456789012:user/triage-worker'],
  ])('refuses a caller from %s with 401', async (_case, arn) => {
    // Act
    const res = await handler(gatewayEvent(arn, `req-refused-${arn.length}`));

    // Assess
    expect(res.statusCode).toBe(401);
    expect(JSON.parse(res.body).error.code).toBe('unauthenticated');
  });
});

describe('Policy file: iamRole', () => {
  const withPrincipals = (principals: unknown[]) => ({ ...testPolicy(), principals });

  it('refuses two principals bound to one role name in one account, even under different paths, naming the field', () => {
    // Act
    const parse = () =>
      parsePolicyDocument(
        withPrincipals([
          { id: 'a', kind: 'agent', identity: 'support-triage/prod', iamRole: 'arn:aws:iam::123456789012:role/team-a/worker' },
          { id: 'b', kind: 'agent', identity: 'support-triage/prod', iamRole: 'arn:aws:iam::123456789012:role/team-b/worker' },
        ]),
      );

    // Assess
    expect(parse).toThrow(expect.objectContaining({ code: 'invalid_request', context: { field: 'principals[1].iamRole' } }));
  });

  it('refuses an iamRole that is not a role ARN, naming the field', () => {
    // Act
    const parse = () => parsePolicyDocument(withPrincipals([{ id: 'a', kind: 'agent', identity: 'support-triage/prod', iamRole: 'arn:aws:sts::123456789012:assumed-role/worker/s' }]));

    // Assess
    expect(parse).toThrow(expect.objectContaining({ code: 'invalid_request', context: { field: 'principals[0].iamRole' } }));
  });

  it.each([
    ['without an iamRole', { id: 'a', kind: 'agent', identity: 'support-triage/prod', instancePerSession: true }],
    ['on an instance identity', { id: 'a', kind: 'agent', identity: 'support-triage/prod#x', iamRole: 'arn:aws:iam::123456789012:role/w', instancePerSession: true }],
    ['on a verifier', { id: 'a', kind: 'verifier', iamRole: 'arn:aws:iam::123456789012:role/w', instancePerSession: true }],
  ])('refuses instancePerSession %s, naming the field', (_case, principal) => {
    // Act
    const parse = () => parsePolicyDocument(withPrincipals([principal]));

    // Assess
    expect(parse).toThrow(expect.objectContaining({ code: 'invalid_request', context: { field: 'principals[0].instancePerSession' } }));
  });
});

