import { AssumeRoleCommand, PackedPolicyTooLargeException, STSClient, STSServiceException } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import {
  buildSessionPolicy,
  STS_MIN_DURATION_SECONDS,
  StsSessions,
  toSessionTagValue,
  toSourceIdentity,
} from '../../../../shared/adapters/aws/sts-sessions.ts';
import { LanyardError } from '../../../../shared/domain/errors.ts';
import type { AssumeRoleRequest } from '../../../../shared/ports/index.ts';
import { rejection } from '../../../helpers/errors.ts';

const ROLE_ARN = 'arn:aws:iam::123456789012:role/lanyard/tools/tickets';
const EXPIRATION = new Date('2026-11-22T12:15:00.000Z');

function request(overrides: Partial<AssumeRoleRequest> = {}): AssumeRoleRequest {
  return {
    roleArn: ROLE_ARN,
    roleSessionName: 'cred-01JD8Z6Q3M',
    sourceIdentity: 'support-triage/prod#worker-7',
    durationSeconds: 300,
    sessionPolicy: buildSessionPolicy(['s3:GetObject', 's3:ListBucket']),
    tags: {
      'lanyard:identity': 'support-triage/prod#worker-7',
      'lanyard:lane': 'support-triage/prod#worker-7:tickets:read:*',
      'lanyard:tenant': '*',
      'lanyard:credential': 'cred-01JD8Z6Q3M',
    },
    ...overrides,
  };
}

function fakeSts() {
  const client = new STSClient({ region: 'eu-west-1' });
  const mock = mockClient(client);
  mock.on(AssumeRoleCommand).resolves({
    Credentials: { AccessKeyId: 'ASIAEXAMPLE', SecretAccessKey: 'secret', SessionToken: 'token', Expiration: EXPIRATION },
  });
  return { client, mock };
}

const stsError = (name: string, message: string) =>
  new STSServiceException({ name, message, $fault: 'client', $metadata: { httpStatusCode: 400 } });

describe('Class: StsSessions', () => {
  describe('Method: assumeRole', () => {
    it('sends every AssumeRole field as STS needs it and returns the session', async () => {
      // Prepare
      const sts = fakeSts();
      const sessions = new StsSessions({ client: sts.client });

      // Act
      const credentials = await sessions.assumeRole(request());

      // Assess
      expect(credentials).toEqual({
        accessKeyId: 'ASIAEXAMPLE',
        secretAccessKey: 'secret',
        sessionToken: 'token',
        expiration: '2026-11-22T12:15:00.000Z',
      });
      const calls = sts.mock.commandCalls(AssumeRoleCommand);
      expect(calls).toHaveLength(1);
      const input = calls[0]?.args[0].input;
      expect(input?.RoleArn).toBe(ROLE_ARN);
      expect(input?.RoleSessionName).toBe('cred-01JD8Z6Q3M');
      expect(input?.SourceIdentity).toBe('support-triage+prod@worker-7');
      expect(input?.DurationSeconds).toBe(STS_MIN_DURATION_SECONDS);
      expect(JSON.parse(input?.Policy ?? '')).toEqual({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: ['s3:GetObject', 's3:ListBucket'], Resource: ['*'] }],
      });
      expect(input?.Tags).toEqual([
        { Key: 'lanyard:identity', Value: 'support-triage/prod@worker-7' },
        { Key: 'lanyard:lane', Value: 'support-triage/prod@worker-7:tickets:read:=' },
        { Key: 'lanyard:tenant', Value: '=' },
        { Key: 'lanyard:credential', Value: 'cred-01JD8Z6Q3M' },
      ]);
      expect(input?.TransitiveTagKeys).toEqual(['lanyard:identity', 'lanyard:lane']);
      expect(Object.keys(input ?? {}).sort()).toEqual(
        ['DurationSeconds', 'Policy', 'RoleArn', 'RoleSessionName', 'SourceIdentity', 'Tags', 'TransitiveTagKeys'],
      );
    });

    it('keeps a duration above the 900 s floor as asked', async () => {
      // Prepare
      const sts = fakeSts();

      // Act
      await new StsSessions({ client: sts.client }).assumeRole(request({ durationSeconds: 3600 }));

      // Assess
      expect(sts.mock.commandCalls(AssumeRoleCommand)[0]?.args[0].input.DurationSeconds).toBe(3600);
    });

    it('refuses a duration over one hour (the role-chaining ceiling) as invalid_request on ttlSeconds', async () => {
      // Prepare
      const sts = fakeSts();

      // Act
      const error = await rejection(new StsSessions({ client: sts.client }).assumeRole(request({ durationSeconds: 3_601 })));

      // Assess
      expect(error.code).toBe('invalid_request');
      expect(error.context).toMatchObject({ field: 'ttlSeconds', maxTtlSeconds: 3_600 });
      expect(sts.mock.commandCalls(AssumeRoleCommand)).toHaveLength(0);
    });

    it('refuses a session policy over 2048 characters before calling STS', async () => {
      // Prepare
      const sts = fakeSts();
      const permissions = Array.from({ length: 120 }, (_, i) => `dynamodb:CustomAction${i}`);
      const sessionPolicy = buildSessionPolicy(permissions);

      // Act
      const error = await rejection(new StsSessions({ client: sts.client }).assumeRole(request({ sessionPolicy })));

      // Assess
      expect(sessionPolicy.length).toBeGreaterThan(2048);
      expect(error.code).toBe('invalid_request');
      expect(error.context.field).toBe('actions');
      expect(error.message).toMatch(/STS takes at most 2048/);
      expect(sts.mock.commandCalls(AssumeRoleCommand)).toHaveLength(0);
    });

    it('maps PackedPolicyTooLargeException to invalid_request on actions', async () => {
      // Prepare
      const sts = fakeSts();
      const packed = new PackedPolicyTooLargeException({ message: 'Packed policy consumes 113% of allotted space', $metadata: {} });
      sts.mock.on(AssumeRoleCommand).rejects(packed);

      // Act
      const error = await rejection(new StsSessions({ client: sts.client }).assumeRole(request()));

      // Assess
      expect(error.code).toBe('invalid_request');
      expect(error.context.field).toBe('actions');
      expect(error.cause).toBe(packed);
    });

    for (const name of ['Throttling', 'ThrottlingException']) {
      it(`maps ${name} to a retryable issuer_unavailable with retryAfter`, async () => {
        // Prepare
        const sts = fakeSts();
        sts.mock.on(AssumeRoleCommand).rejects(stsError(name, 'Rate exceeded'));

        // Act
        const error = await rejection(new StsSessions({ client: sts.client }).assumeRole(request()));

        // Assess
        expect(error.code).toBe('issuer_unavailable');
        expect(error.retryable).toBe(true);
        expect(error.retryAfter).toBe(2);
        expect(error.expose).toBe(false);
      });
    }

    for (const name of ['AccessDenied', 'AccessDeniedException']) {
      it(`maps ${name} to issuer_unavailable and keeps STS's error as the cause`, async () => {
        // Prepare
        const sts = fakeSts();
        const denied = stsError(name, 'User: arn:aws:sts::123456789012:assumed-role/issuer is not authorized to perform: sts:TagSession');
        sts.mock.on(AssumeRoleCommand).rejects(denied);

        // Act
        const error = await rejection(new StsSessions({ client: sts.client }).assumeRole(request()));

        // Assess
        expect(error.code).toBe('issuer_unavailable');
        expect(error.cause).toBe(denied);
      });
    }

    it('fails closed on any other STS error', async () => {
      // Prepare
      const sts = fakeSts();
      const regionDisabled = stsError('RegionDisabledException', 'STS is not activated in this region');
      sts.mock.on(AssumeRoleCommand).rejects(regionDisabled);

      // Act
      const error = await rejection(new StsSessions({ client: sts.client }).assumeRole(request()));

      // Assess
      expect(error.code).toBe('issuer_unavailable');
      expect(error.cause).toBe(regionDisabled);
    });

    it('fails closed on a RoleSessionName STS would refuse', async () => {
      // Prepare
      const sts = fakeSts();
      const sessions = new StsSessions({ client: sts.client });

      // Act
      const errors = await Promise.all(
        ['x', 'a'.repeat(65), 'cred/01', 'cred#01'].map((roleSessionName) => rejection(sessions.assumeRole(request({ roleSessionName })))),
      );

      // Assess
      expect(errors.map((error) => error.code)).toEqual(['issuer_unavailable', 'issuer_unavailable', 'issuer_unavailable', 'issuer_unavailable']);
      expect((errors[2]?.cause as Error).message).toMatch(/RoleSessionName "cred\/01" must be 2-64 characters/);
      expect(sts.mock.commandCalls(AssumeRoleCommand)).toHaveLength(0);
    });

    it('fails closed on a role ARN that is not an IAM role', async () => {
      // Prepare
      const sts = fakeSts();

      // Act
      const error = await rejection(new StsSessions({ client: sts.client }).assumeRole(request({ roleArn: 'arn:aws:iam::123456789012:user/alice' })));

      // Assess
      expect(error.code).toBe('issuer_unavailable');
    });

    it('refuses a lane tag over 256 characters as invalid_request on tags', async () => {
      // Prepare
      const sts = fakeSts();
      const base = request();
      const tags = { ...base.tags, 'lanyard:lane': `support-triage/prod#${'w'.repeat(64)}:tickets:read:${'t'.repeat(180)}` };

      // Act
      const error = await rejection(new StsSessions({ client: sts.client }).assumeRole(request({ tags })));

      // Assess
      expect(error.code).toBe('invalid_request');
      expect(error.context).toEqual({ field: 'tags', tag: 'lanyard:lane' });
    });

    it('fails closed when a lanyard tag is missing or an unknown one is added', async () => {
      // Prepare
      const sts = fakeSts();
      const { 'lanyard:credential': _credential, ...withoutCredential } = request().tags;

      // Act
      const missing = await rejection(new StsSessions({ client: sts.client }).assumeRole(request({ tags: withoutCredential })));
      const extra = await rejection(new StsSessions({ client: sts.client }).assumeRole(request({ tags: { ...request().tags, team: 'x' } })));

      // Assess
      expect(missing.code).toBe('issuer_unavailable');
      expect((missing.cause as Error).message).toMatch(/missing: lanyard:credential/);
      expect(extra.code).toBe('issuer_unavailable');
      expect((extra.cause as Error).message).toMatch(/unknown: team/);
    });
  });
});

describe('Function: toSourceIdentity', () => {
  it('maps / and # to characters STS allows and no identity id contains', () => {
    // Act + Assess
    expect(toSourceIdentity('support-triage/prod')).toBe('support-triage+prod');
    expect(toSourceIdentity('support-triage/prod#a.b-1')).toBe('support-triage+prod@a.b-1');
    expect(toSourceIdentity('a.b/prod')).not.toBe(toSourceIdentity('a/b.prod'));
  });

  it('shortens an id over 64 characters deterministically, keeping distinct ids distinct', () => {
    // Prepare
    const long = `support-triage/prod#${'x'.repeat(60)}`;

    // Act
    const mapped = toSourceIdentity(long);

    // Assess
    expect(mapped).toHaveLength(64);
    expect(mapped).toMatch(/^support-triage\+prod@x+,[0-9a-f]{16}$/);
    expect(toSourceIdentity(long)).toBe(mapped);
    expect(toSourceIdentity(`${long}y`)).not.toBe(mapped);
  });
});

describe('Function: toSessionTagValue', () => {
  it('maps # and * to characters session tags allow', () => {
    // Act + Assess
    expect(toSessionTagValue('support-triage/prod#7:tickets:write:*')).toBe('support-triage/prod@7:tickets:write:=');
  });
});

describe('Function: buildSessionPolicy', () => {
  it('allows the sorted, unique permissions on the given resources', () => {
    // Act
    const policy = buildSessionPolicy(['s3:PutObject', 's3:GetObject', 's3:PutObject'], ['arn:aws:s3:::tickets/*']);

    // Assess
    expect(policy).toBe(
      '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":["arn:aws:s3:::tickets/*"]}]}',
    );
  });

  it('refuses an empty permission list and a permission that is not service:Action', () => {
    // Act + Assess
    for (const permissions of [[], ['GetObject'], ['s3:Get Object']]) {
      let caught: unknown;
      try {
        buildSessionPolicy(permissions);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(LanyardError);
      expect((caught as LanyardError).code).toBe('invalid_request');
      expect((caught as LanyardError).context.field).toBe('actions');
    }
  });
});
