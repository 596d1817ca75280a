/**
 * The Lambda bundles' credential provider (shared/bootstrap/aws/lambda-credentials.ts), which
 * cdk/bundling-options.ts puts in place of `@aws-sdk/credential-provider-node`: the execution
 * role's credentials from the variables Lambda sets, and a refusal (no other source tried)
 * when they are missing.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LANYARD_ALIASES, lanyardEsbuildArgs } from '../../../../cdk/bundling-options.ts';
import { defaultProvider } from '../../../../shared/bootstrap/aws/lambda-credentials.ts';

const VARIABLES = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_CREDENTIAL_EXPIRATION', 'AWS_PROFILE'] as const;

describe('Lambda credential provider', () => {
  let saved: Partial<Record<(typeof VARIABLES)[number], string>>;

  beforeEach(() => {
    saved = Object.fromEntries(VARIABLES.map((name) => [name, process.env[name]]));
    for (const name of VARIABLES) delete process.env[name];
  });

  afterEach(() => {
    for (const name of VARIABLES) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  });

  it('answers with the execution role credentials Lambda puts in the environment', async () => {
    // Arrange
    process.env.AWS_ACCESS_KEY_ID = 'ASIAEXAMPLEEXAMPLE';
    process.env.AWS_SECRET_ACCESS_KEY = 'example-secret';
    process.env.AWS_SESSION_TOKEN = 'example-session';

    // Act
    const credentials = await defaultProvider({})();

    // Assess
    expect(credentials).toMatchObject({ accessKeyId: 'ASIAEXAMPLEEXAMPLE', secretAccessKey: 'example-secret', sessionToken: 'example-session' });
  });

  it('refuses when the variables are missing, even with a profile named: no other source is tried', async () => {
    // Arrange
    process.env.AWS_PROFILE = 'someone-else';

    // Act
    const attempt = defaultProvider({})();

    // Assess
    await expect(attempt).rejects.toMatchObject({ name: 'CredentialsProviderError' });
  });

  it('is what the Lambda bundles resolve the SDK’s default chain to, in the form NodejsFunction passes to esbuild', () => {
    // Assess
    expect(LANYARD_ALIASES['@aws-sdk/credential-provider-node']).toMatch(/\/shared\/bootstrap\/aws\/lambda-credentials\.ts$/);
    expect(lanyardEsbuildArgs()).toEqual({
      '--conditions': '@lanyard/source,module',
      '--alias': `@aws-sdk/credential-provider-node=${LANYARD_ALIASES['@aws-sdk/credential-provider-node']}`,
    });
  });
});
