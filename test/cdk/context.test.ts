/** CDK context → LanyardIssuerProps, for the keys of the broker's upstream secrets. */
import { App } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { configFromContext } from '../../cdk/context.ts';

const KEY = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

describe('Function: configFromContext', () => {
  it('leaves the secret prefix and the alias to the construct (derived from the stack) under the AWS-managed key by default', () => {
    const { issuer } = configFromContext(new App().node);

    expect(issuer.upstreamSecretPrefix).toBeUndefined();
    expect(issuer.signingKeyAlias).toBeUndefined();
    expect(issuer.upstreamSecretsKeyArn).toBeUndefined();
  });

  it('caps the broker at 100 concurrent executions by default, takes another cap, and off for none', () => {
    const configured = (value?: unknown) => configFromContext(new App(value === undefined ? {} : { context: { 'lanyard:brokerReservedConcurrency': value } }).node).issuer;

    expect(configured().brokerReservedConcurrency).toBe(100);
    expect(configured('25').brokerReservedConcurrency).toBe(25);
    expect(configured(' off ').brokerReservedConcurrency).toBe(false);
    expect(() => configured('many')).toThrow(/context lanyard:brokerReservedConcurrency must be a non-negative number/);
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
