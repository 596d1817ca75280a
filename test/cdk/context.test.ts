/** CDK context → LanyardIssuerProps, for the keys of the broker's upstream secrets. */
import { App } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { configFromContext } from '../../cdk/context.ts';

const KEY = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

describe('Function: configFromContext', () => {
  it('scopes upstream secrets to lanyard/upstream/ under the AWS-managed key by default', () => {
    const { issuer } = configFromContext(new App().node);

    expect(issuer.upstreamSecretPrefix).toBe('lanyard/upstream/');
    expect(issuer.upstreamSecretsKeyArn).toBeUndefined();
  });

  it('takes the prefix and the customer key from -c values, trimmed', () => {
    const app = new App({ context: { 'lanyard:upstreamSecretPrefix': ' teams/payments/ ', 'lanyard:upstreamSecretsKeyArn': ` ${KEY}` } });

    const { issuer } = configFromContext(app.node);

    expect(issuer.upstreamSecretPrefix).toBe('teams/payments/');
    expect(issuer.upstreamSecretsKeyArn).toBe(KEY);
  });

  it('refuses a prefix that is not a string, naming the key', () => {
    const app = new App({ context: { 'lanyard:upstreamSecretPrefix': 42 } });

    expect(() => configFromContext(app.node)).toThrow(/context lanyard:upstreamSecretPrefix must be a string/);
  });
});
