/**
 * The signing key (docs/domain.md#credentials) and its alias. KMS cannot rotate asymmetric
 * keys: the rotation function creates new keys and moves the alias. Every key of this issuer
 * carries SIGNING_KEY_TAG, and the KMS permissions are scoped by that tag (`ownKeys`), so they
 * follow rotation without a redeploy.
 */
import { Duration, Stack, Tags } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';
import type { ResolvedProps } from './props.ts';

/** Tag on every signing key of one issuer, the one CDK creates and the ones rotation creates; its value is the alias name. */
export const SIGNING_KEY_TAG = 'lanyard:signing-key';

export interface SigningKeyFamily {
  readonly key: kms.Key;
  readonly alias: kms.Alias;
  /** `key/*` of this account and region: narrowed by `ownKeys` wherever it is granted. */
  readonly keysArn: string;
  /** The alias's ARN, the one resource rotation may move. */
  readonly aliasArn: string;
  /** The IAM condition that keeps a `key/*` grant to this issuer's family. */
  readonly ownKeys: { StringEquals: Record<string, string> };
}

export function createSigningKey(scope: Construct, config: ResolvedProps): SigningKeyFamily {
  const stack = Stack.of(scope);
  const key = new kms.Key(scope, 'SigningKey', {
    description: `Lanyard ES256 signing key (${config.signingKeyAlias}); rotation creates its successors`,
    keySpec: kms.KeySpec.ECC_NIST_P256,
    keyUsage: kms.KeyUsage.SIGN_VERIFY,
    removalPolicy: config.removalPolicy,
    pendingWindow: Duration.days(30),
  });
  Tags.of(key).add(SIGNING_KEY_TAG, config.signingKeyAlias);
  const alias = new kms.Alias(scope, 'SigningKeyAlias', { aliasName: config.signingKeyAlias, targetKey: key });
  return {
    key,
    alias,
    keysArn: stack.formatArn({ service: 'kms', resource: 'key', resourceName: '*' }),
    aliasArn: stack.formatArn({ service: 'kms', resource: 'alias', resourceName: config.signingKeyAlias.slice('alias/'.length) }),
    ownKeys: { StringEquals: { [`aws:ResourceTag/${SIGNING_KEY_TAG}`]: config.signingKeyAlias } },
  };
}
