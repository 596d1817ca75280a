/**
 * Agents and resource servers on AWS compute, end to end: the SDK signs with SigV4 as an IAM
 * role, a stand-in for API Gateway recomputes every signature and passes the assumed-role ARN
 * to the real handlers (test/helpers/iam-gateway.ts), and the issuer binds that role to its
 * principal. Covered: an ECS task, an EKS pod and a Lambda function getting credentials with
 * `auth: { aws }`; a verifier following revocations by polling the feed with
 * `revocations: { aws }`; the CLI's `--sigv4` transport; and what a refused signature does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCredentialSource, isIssuanceError } from '@lanyard/sdk/agent';
import { createVerifier, isVerificationError } from '@lanyard/sdk/verifier';
import { AwsSigningError } from '@lanyard/sdk/aws';
import { callIssuer } from '../../cli/client.ts';
import { GATEWAY_REGION, startIamGateway, type IamCaller, type IamGateway } from '../helpers/iam-gateway.ts';
import { KEYS, startTestIssuer, testPolicy, TICKETS_AUDIENCE, type TestIssuer } from '../helpers/issuer.ts';

const ACCOUNT = '123456789012';
const READ = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };
const REPLY = { tool: 'tickets', actions: ['tickets:reply'], tenant: 'acme' };

/** One temporary credential per compute, all sessions of the agent's role, as each service names them. */
const caller = (n: number, role: string, session: string): IamCaller => ({
  accessKeyId: `ASIA${String(n).padStart(16, '0')}`,
  secretAccessKey: `secret/${n}/${'x'.repeat(30)}`,
  sessionToken: `IQoJsession${n}`,
  arn: `arn:aws:sts::${ACCOUNT}:assumed-role/${role}/${session}`,
});
const ECS_TASK = caller(1, 'triage-worker', '3f2b6c0d9e8a4f7b8c1d2e3f4a5b6c7d');
const EKS_POD = caller(2, 'triage-worker', 'eks-prod-triage-wor-5f9c6c1b-0b6a-4d3e-9f21-6c2e1d7a8b90');
const LAMBDA_FN = caller(3, 'triage-worker', 'triage-worker-fn');
const RESOURCE_SERVER = caller(4, 'tickets-api', 'i-0abc123def4567890');
const UNBOUND = caller(5, 'someone-else', 'task');
/** Tasks of a role whose principal gives each session its own instance. */
const FLEET_TASK_A = caller(6, 'triage-fleet', '0d9e8a4f7b8c1d2e3f4a5b6c7d3f2b6c');
const FLEET_TASK_B = caller(7, 'triage-fleet', '7b8c1d2e3f4a5b6c7d3f2b6c0d9e8a4f');
const FLEET_BY_EMAIL = caller(8, 'triage-fleet', 'alice@example.com');

const credentialsOf = ({ accessKeyId, secretAccessKey, sessionToken }: IamCaller) => ({ accessKeyId, secretAccessKey, sessionToken });

describe('IAM auth: SDK and CLI through a SigV4-checking gateway', () => {
  let issuer: TestIssuer;
  let gateway: IamGateway;

  beforeAll(async () => {
    const policy = testPolicy();
    const bound: Record<string, string> = {
      'triage-worker-1': `arn:aws:iam::${ACCOUNT}:role/agents/triage-worker`,
      'resource-server': `arn:aws:iam::${ACCOUNT}:role/tickets-api`,
    };
    const fleet = { id: 'triage-fleet', kind: 'agent' as const, identity: 'support-triage/prod', iamRole: `arn:aws:iam::${ACCOUNT}:role/triage-fleet`, instancePerSession: true as const };
    const principals = [...policy.principals.map((p) => (bound[p.id] ? { ...p, iamRole: bound[p.id] } : p)), fleet];
    issuer = await startTestIssuer({ policy: { ...policy, principals } });
    gateway = await startIamGateway({ runtime: issuer.runtime, callers: [ECS_TASK, EKS_POD, LAMBDA_FN, RESOURCE_SERVER, UNBOUND, FLEET_TASK_A, FLEET_TASK_B, FLEET_BY_EMAIL] });
  });
  afterAll(async () => {
    await gateway?.close();
    await issuer?.stop();
  });

  it.each([
    ['an ECS task', ECS_TASK],
    ['an EKS pod', EKS_POD],
    ['a Lambda function', LAMBDA_FN],
  ])('gets a credential for %s with auth: { aws }, signed so the gateway accepts it', async (_compute, compute) => {
    // Prepare
    const source = createCredentialSource({ issuer: gateway.url, auth: { aws: { region: GATEWAY_REGION, credentials: credentialsOf(compute) } }, request: READ });

    // Act
    const credential = await source.get();
    source.close();

    // Assess
    expect(credential).toMatchObject({ identity: 'support-triage/prod', tool: 'tickets', tenant: 'acme', kind: 'jwt' });
    expect(gateway.calls.filter((c) => c.caller === compute.arn)).toEqual([{ route: 'POST /v1/credentials', status: 201, caller: compute.arn }]);
  });

  it('follows a revocation with a verifier polling the feed as its own IAM role, while the neighbour lane keeps working', async () => {
    // Prepare
    const reader = createCredentialSource({ issuer: gateway.url, auth: { aws: { region: GATEWAY_REGION, credentials: credentialsOf(ECS_TASK) } }, request: READ });
    const replier = createCredentialSource({ issuer: gateway.url, auth: { aws: { region: GATEWAY_REGION, credentials: credentialsOf(ECS_TASK) } }, request: REPLY });
    const read = await reader.get();
    const reply = await replier.get();
    const verifier = createVerifier({
      issuer: gateway.url,
      audience: TICKETS_AUDIENCE,
      revocations: { mode: 'poll', aws: { region: GATEWAY_REGION, credentials: credentialsOf(RESOURCE_SERVER) }, pollIntervalMs: 100 },
    });
    await verifier.ready();
    await verifier.verify(reply.token!, { action: 'tickets:reply' });

    // Act
    const revoked = await issuer.post('/v1/admin', { command: 'revoke', target: { lane: reply.lane }, reason: 'drill: write lane' }, KEYS.admin);
    let outcome: string | undefined;
    for (let attempt = 0; attempt < 200 && outcome === undefined; attempt += 1) {
      outcome = await verifier.verify(reply.token!, { action: 'tickets:reply' }).then(
        () => undefined,
        (error: unknown) => (isVerificationError(error) ? error.code : 'other'),
      );
      if (outcome === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
    }

    // Assess
    expect(revoked.status).toBe(200);
    expect(outcome).toBe('credential_revoked');
    expect((await verifier.verify(read.token!, { action: 'tickets:read' })).sub).toBe('support-triage/prod');
    const feedCalls = gateway.calls.filter((c) => c.route === 'GET /v1/revocations');
    expect(feedCalls.length).toBeGreaterThan(0);
    expect(feedCalls.every((c) => c.caller === RESOURCE_SERVER.arn && c.status === 200)).toBe(true);
    verifier.close();
    reader.close();
    replier.close();
  });

  it('counts a refused signature as an auth failure (the circuit), never as a lost authority', async () => {
    // Prepare: the right key id with the wrong secret, as after a botched rotation.
    const lost: unknown[] = [];
    const source = createCredentialSource({
      issuer: gateway.url,
      auth: { aws: { region: GATEWAY_REGION, credentials: { ...credentialsOf(EKS_POD), secretAccessKey: 'not/the/secret' } } },
      request: READ,
      circuit: { failures: 2 },
      onAuthorityLost: (loss) => lost.push(loss),
    });

    // Act
    const first = await source.get().catch((error: unknown) => error);
    const second = await source.get().catch((error: unknown) => error);
    const third = await source.get().catch((error: unknown) => error);

    // Assess
    expect(isIssuanceError(first, 'unauthenticated')).toBe(true);
    expect((first as Error).message).toContain('signature');
    expect(isIssuanceError(second, 'unauthenticated')).toBe(true);
    expect(isIssuanceError(third, 'circuit_open')).toBe(true);
    expect(lost).toEqual([]);
    expect(gateway.calls.filter((c) => c.status === 403 && c.refused?.includes('does not match'))).toHaveLength(2);
    source.close();
  });

  it('refuses a validly signed caller whose role no principal is bound to, with 401 from the issuer', async () => {
    // Act
    const error = await createCredentialSource({ issuer: gateway.url, auth: { aws: { region: GATEWAY_REGION, credentials: credentialsOf(UNBOUND) } }, request: READ })
      .get()
      .catch((e: unknown) => e);

    // Assess
    expect(isIssuanceError(error, 'unauthenticated')).toBe(true);
    expect(gateway.calls.at(-1)).toEqual({ route: 'POST /v1/credentials', status: 401, caller: UNBOUND.arn });
  });

  it('signs the CLI transport (--sigv4) with the same signer', async () => {
    // Act
    const answer = (await callIssuer({ url: gateway.url, sigv4: { region: GATEWAY_REGION, credentials: credentialsOf(LAMBDA_FN) } }, 'POST', '/v1/credentials', READ)) as { identity: string };

    // Assess
    expect(answer.identity).toBe('support-triage/prod');
    expect(gateway.calls.at(-1)).toEqual({ route: 'POST /v1/credentials', status: 201, caller: LAMBDA_FN.arn });
  });

  it('backs off while no AWS credentials can be had, sends nothing meanwhile, and recovers when they come', async () => {
    // Prepare: the container endpoint is down for the first two asks.
    let asks = 0;
    const flaky = () => (++asks <= 2 ? Promise.reject(new Error('connect ECONNREFUSED 169.254.170.2:80')) : Promise.resolve(credentialsOf(ECS_TASK)));
    const before = gateway.calls.length;
    const source = createCredentialSource({ issuer: gateway.url, auth: { aws: { region: GATEWAY_REGION, credentials: flaky } }, request: READ, backoff: { baseMs: 1, maxMs: 5 } });

    // Act
    const first = await source.get().catch((error: unknown) => error);
    const sentMeanwhile = gateway.calls.length - before;
    const second = await source.get().catch((error: unknown) => error);
    const third = await source.get();

    // Assess
    expect(isIssuanceError(first, 'aws_credentials_unavailable')).toBe(true);
    expect((first as { retryAfterMs?: number }).retryAfterMs).toBeGreaterThanOrEqual(0);
    expect((first as Error).message).toContain('ECONNREFUSED');
    expect(sentMeanwhile).toBe(0);
    expect(isIssuanceError(second, 'aws_credentials_unavailable')).toBe(true);
    expect(third.identity).toBe('support-triage/prod');
    expect(source.state()).toMatchObject({ circuit: 'closed', consecutiveAuthFailures: 0 });
    source.close();
  });

  it('stops at once on what only configuration fixes (a signing error that is not retryable), without onAuthorityLost', async () => {
    // Prepare
    const lost: unknown[] = [];
    const broken = () => Promise.reject(new AwsSigningError('the default AWS credential chain needs @aws-sdk/credential-provider-node', { retryable: false }));
    const source = createCredentialSource({ issuer: gateway.url, auth: { aws: { region: GATEWAY_REGION, credentials: broken } }, request: READ, onAuthorityLost: (loss) => lost.push(loss) });

    // Act
    const first = await source.get().catch((error: unknown) => error);
    const second = await source.get().catch((error: unknown) => error);

    // Assess
    expect(isIssuanceError(first, 'aws_credentials_unavailable')).toBe(true);
    expect(second).toBe(first);
    expect(source.state().stopped).toEqual({ code: 'aws_credentials_unavailable' });
    expect(lost).toEqual([]);
    source.close();
  });

  it('refuses auth options that mix ways, or name a stream on AWS', () => {
    expect(() => createCredentialSource({ issuer: gateway.url, auth: { aws: {}, apiKey: 'lk_x' }, request: READ })).toThrow(/auth is/);
    expect(() => createCredentialSource({ issuer: gateway.url, auth: { aws: { region: 'nowhere' } }, request: READ })).toThrow(/auth\.aws\.region/);
    expect(() => createVerifier({ issuer: gateway.url, audience: TICKETS_AUDIENCE, revocations: { mode: 'stream', aws: {} } })).toThrow(/mode "poll"/);
    // A loopback URL names no region: without aws.region or AWS_REGION that is a configuration error, at construction.
    const saved = { AWS_REGION: process.env.AWS_REGION, AWS_DEFAULT_REGION: process.env.AWS_DEFAULT_REGION };
    delete process.env.AWS_REGION;
    delete process.env.AWS_DEFAULT_REGION;
    try {
      expect(() => createCredentialSource({ issuer: gateway.url, auth: { aws: {} }, request: READ })).toThrow(/auth\.aws\.region is needed/);
      expect(() => createVerifier({ issuer: gateway.url, audience: TICKETS_AUDIENCE, revocations: { mode: 'poll', aws: {} } })).toThrow(/revocations\.aws\.region is needed/);
    } finally {
      Object.assign(process.env, Object.fromEntries(Object.entries(saved).filter(([, v]) => v !== undefined)));
    }
  });

  describe('instancePerSession: each IAM session is its own instance', () => {
    const sourceFor = (task: IamCaller) => createCredentialSource({ issuer: gateway.url, auth: { aws: { region: GATEWAY_REGION, credentials: credentialsOf(task) } }, request: READ });
    const sessionOf = (task: IamCaller) => task.arn.split('/').at(-1)!;

    it('issues to <class>#<session name>, with the class grants and a lane of its own', async () => {
      // Act
      const a = await sourceFor(FLEET_TASK_A).get();
      const b = await sourceFor(FLEET_TASK_B).get();

      // Assess
      expect(a.identity).toBe(`support-triage/prod#${sessionOf(FLEET_TASK_A)}`);
      expect(b.identity).toBe(`support-triage/prod#${sessionOf(FLEET_TASK_B)}`);
      expect(a.lane).toBe(`support-triage/prod#${sessionOf(FLEET_TASK_A)}:tickets:read:acme`);
      expect(a.lane).not.toBe(b.lane);
      const audit = await issuer.post('/v1/admin', { command: 'audit.query', by: 'identity', value: a.identity }, KEYS.admin);
      expect(audit.body.result.items).toEqual(
        expect.arrayContaining([expect.objectContaining({ principal: 'triage-fleet', instance: sessionOf(FLEET_TASK_A), decision: 'issued', lane: a.lane })]),
      );
    });

    it('cuts off one task by revoking its instance, leaving the other task of the same role working', async () => {
      // Prepare
      const a = sourceFor(FLEET_TASK_A);
      const b = sourceFor(FLEET_TASK_B);
      const instanceA = `support-triage/prod#${sessionOf(FLEET_TASK_A)}`;

      // Act
      const revoked = await issuer.post('/v1/admin', { command: 'revoke', target: { identity: instanceA }, reason: 'task A misbehaved' }, KEYS.admin);
      const refusal = await a.refresh().catch((error: unknown) => error);
      const other = await b.refresh();

      // Assess
      expect(revoked.status).toBe(200);
      expect(isIssuanceError(refusal, 'identity_revoked')).toBe(true);
      expect(other.identity).toBe(`support-triage/prod#${sessionOf(FLEET_TASK_B)}`);
      a.close();
      b.close();
    });

    it('refuses a session name that cannot name an instance (forbidden, naming why), rather than rewrite it', async () => {
      // Act
      const error = await sourceFor(FLEET_BY_EMAIL).get().catch((e: unknown) => e);

      // Assess
      expect(isIssuanceError(error, 'forbidden')).toBe(true);
      expect((error as Error).message).toContain('session name');
      expect(gateway.calls.at(-1)).toMatchObject({ status: 403, caller: FLEET_BY_EMAIL.arn });
    });
  });
});
