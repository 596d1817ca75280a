/**
 * The grants of the issuer's functions, one verb each, so every function's policy reads as what
 * it may do: read or write the table, read the key registry, read public keys, sign, read or
 * write upstream secrets, assume tool roles, rotate signing keys. Each wildcard a grant needs is
 * acknowledged where it is granted, by its exact cdk-nag finding.
 */
import { ArnFormat, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SIGNING_KEY_REGISTRY_PK } from '../../shared/adapters/aws/signing-key-registry.ts';
import type { LanyardFunction } from '../lanyard-function.ts';
import { acknowledgeWildcard } from './nag.ts';
import type { ResolvedProps } from './props.ts';
import { SIGNING_KEY_TAG } from './signing-key.ts';
import type { SigningKeyFamily } from './signing-key.ts';

export const DYNAMODB_WRITE = ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem'];
export const STS_ASSUME = ['sts:AssumeRole', 'sts:TagSession', 'sts:SetSourceIdentity'];
/** What the admin function does to a tool role to revoke its sessions (StsSessionRevoker). */
export const STS_REVOKE = ['iam:ListRolePolicies', 'iam:GetRolePolicy', 'iam:PutRolePolicy'];
const DYNAMODB_READ = ['dynamodb:GetItem', 'dynamodb:Query'];
const KMS_VERIFY = ['kms:GetPublicKey', 'kms:DescribeKey'];
/**
 * What `loadSigningKeyRecords` (key-rotation.ts) calls to find the keys of the family, in the
 * rotation function only: ListKeys (no resource-level permissions) and the tags of every key it
 * lists. ListResourceTags cannot carry the family condition: the point is to read the tags of
 * keys that may not be in the family (a foreign key whose policy denies it is skipped). The
 * signers read the registry item rotation writes instead (signing-key-registry.ts).
 */
const KMS_FIND_FAMILY = { listKeys: 'kms:ListKeys', listTags: 'kms:ListResourceTags' } as const;
/** What the broker reads: one version of one upstream secret. */
const SECRETS_READ = ['secretsmanager:GetSecretValue'];
/** What `upstream.secret.set` does: create the provider's secret on first use, put a version, tag it, describe it. */
const SECRETS_WRITE = ['secretsmanager:CreateSecret', 'secretsmanager:PutSecretValue', 'secretsmanager:TagResource', 'secretsmanager:DescribeSecret'];

/** The environment of the functions that touch upstream secrets (shared/adapters/aws/secrets-manager-vault.ts). */
export function secretsEnvironment(config: ResolvedProps): Record<string, string> {
  return {
    LANYARD_SECRET_PREFIX: config.upstreamSecretPrefix,
    ...(config.upstreamSecretsKeyArn !== undefined && { LANYARD_SECRETS_KMS_KEY: config.upstreamSecretsKeyArn }),
  };
}

export class IssuerGrants {
  private readonly tableIndexes: string;
  private readonly keyFamilyReason: string;
  /**
   * Upstream secrets of the broker (issue 6): `<prefix><provider>` plus the 6-character suffix
   * Secrets Manager appends to every secret ARN, so `<prefix>*` and nothing outside the prefix.
   */
  private readonly upstreamSecrets: string;

  private readonly table: dynamodb.Table;
  private readonly family: SigningKeyFamily;
  private readonly config: ResolvedProps;

  constructor(table: dynamodb.Table, family: SigningKeyFamily, config: ResolvedProps) {
    this.table = table;
    this.family = family;
    this.config = config;
    const stack = Stack.of(table);
    this.tableIndexes = `${table.tableArn}/index/*`;
    this.keyFamilyReason = `Signing keys made by rotation have ids unknown at deploy time; key/* is narrowed by the condition aws:ResourceTag/${SIGNING_KEY_TAG} = ${config.signingKeyAlias}`;
    this.upstreamSecrets = stack.formatArn({ service: 'secretsmanager', resource: 'secret', resourceName: `${config.upstreamSecretPrefix}*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
  }

  readTable(fn: LanyardFunction): void {
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: DYNAMODB_READ, resources: [this.table.tableArn, this.tableIndexes] }));
    this.tableKey(fn, ['kms:Decrypt', 'kms:DescribeKey']);
    acknowledgeWildcard(fn, this.tableIndexes, 'GetItem/Query on the indexes of the Lanyard table only (byType, byIdentity, byLane, byTenant, byTask); index names are data in table.ts');
  }

  writeTable(fn: LanyardFunction, actions: readonly string[]): void {
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: [...actions], resources: [this.table.tableArn] }));
    this.tableKey(fn, ['kms:Encrypt', 'kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKey']);
  }

  /**
   * Which keys to publish: the registry item rotation writes, one GetItem of that item only
   * (the functions that read the table anyway get it through readTable).
   */
  readKeyRegistry(fn: LanyardFunction): void {
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ReadSigningKeyRegistry',
        actions: ['dynamodb:GetItem'],
        resources: [this.table.tableArn],
        conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [SIGNING_KEY_REGISTRY_PK] } },
      }),
    );
    this.tableKey(fn, ['kms:Decrypt', 'kms:DescribeKey']);
  }

  readPublicKeys(fn: LanyardFunction): void {
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: KMS_VERIFY, resources: [this.family.keysArn], conditions: this.family.ownKeys }));
    acknowledgeWildcard(fn, this.family.keysArn, this.keyFamilyReason);
  }

  sign(fn: LanyardFunction): void {
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['kms:Sign', ...KMS_VERIFY], resources: [this.family.keysArn], conditions: this.family.ownKeys }));
    acknowledgeWildcard(fn, this.family.keysArn, this.keyFamilyReason);
  }

  readSecrets(fn: LanyardFunction): void {
    fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'ReadUpstreamSecrets', actions: SECRETS_READ, resources: [this.upstreamSecrets] }));
    this.secretsKey(fn, ['kms:Decrypt']);
    acknowledgeWildcard(fn, this.upstreamSecrets, `The broker reads one version of one provider's secret per call; secrets are named ${this.config.upstreamSecretPrefix}<provider> and get a random suffix from Secrets Manager, so only the prefix is known at deploy time`);
  }

  writeSecrets(fn: LanyardFunction): void {
    fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'WriteUpstreamSecrets', actions: SECRETS_WRITE, resources: [this.upstreamSecrets] }));
    // GenerateDataKey for a new version; Decrypt, which Secrets Manager also asks of the writer (security-encryption.md, "Permissions for the KMS key").
    this.secretsKey(fn, ['kms:GenerateDataKey', 'kms:Decrypt']);
    acknowledgeWildcard(fn, this.upstreamSecrets, `upstream.secret.set creates ${this.config.upstreamSecretPrefix}<provider> on first use and puts new versions; provider names are data and Secrets Manager appends a random suffix, so only the prefix is known at deploy time`);
  }

  assumeToolRoles(fn: LanyardFunction): void {
    if (this.config.stsRoleArns.length === 0) return;
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: STS_ASSUME, resources: [...this.config.stsRoleArns] }));
    for (const arn of this.config.stsRoleArns) {
      if (arn.includes('*')) acknowledgeWildcard(fn, arn, 'The operator listed this role path pattern in lanyard:stsRoleArns: every tool role under it may be assumed for sts credentials');
    }
  }

  /**
   * A revocation reaching an sts tool attaches a deny to the tool role (StsSessionRevoker): it writes its inline
   * revocation policy only, and lists and reads the others to count the role's inline total against IAM's quota.
   */
  revokeStsSessions(fn: LanyardFunction): void {
    if (this.config.stsRoleArns.length === 0) return;
    fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'DenyRevokedStsLanes', actions: STS_REVOKE, resources: [...this.config.stsRoleArns] }));
    for (const arn of this.config.stsRoleArns) {
      if (arn.includes('*')) acknowledgeWildcard(fn, arn, 'The operator listed this role path pattern in lanyard:stsRoleArns: revoking an sts lane writes the lanyard-revocations inline policy of the tool role');
    }
  }

  /** The rotation function's KMS rights: create keys only in this issuer's family, and act only on keys of that family. */
  rotateSigningKeys(fn: LanyardFunction): void {
    const { keysArn: keys, aliasArn, ownKeys } = this.family;
    const alias = this.config.signingKeyAlias;
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ManageOwnSigningKeys',
        actions: ['kms:TagResource', 'kms:UntagResource', 'kms:UpdateAlias', 'kms:ScheduleKeyDeletion', ...KMS_VERIFY],
        resources: [keys],
        conditions: ownKeys,
      }),
    );
    // CreateKey has no resource yet, and tagging at creation needs kms:TagResource too: both are
    // allowed only when the request tags the new key into this issuer's family, with lanyard:* tags only.
    const familyRequest = {
      StringEquals: { [`aws:RequestTag/${SIGNING_KEY_TAG}`]: alias },
      'ForAllValues:StringLike': { 'aws:TagKeys': ['lanyard:*'] },
    };
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'CreateSigningKeysInFamily',
        actions: ['kms:CreateKey'],
        resources: ['*'],
        conditions: { ...familyRequest, StringEquals: { ...familyRequest.StringEquals, 'kms:KeySpec': 'ECC_NIST_P256', 'kms:KeyUsage': 'SIGN_VERIFY' } },
      }),
    );
    fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'TagNewSigningKeys', actions: ['kms:TagResource'], resources: [keys], conditions: familyRequest }));
    fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'MoveSigningAlias', actions: ['kms:UpdateAlias'], resources: [aliasArn] }));
    // Finding the family's keys (loadSigningKeyRecords): list every key, read every key's tags.
    fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'ListKeysToFindSigningKeys', actions: [KMS_FIND_FAMILY.listKeys], resources: ['*'] }));
    fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'ReadKeyTagsToFindSigningKeys', actions: [KMS_FIND_FAMILY.listTags], resources: [keys] }));
    acknowledgeWildcard(fn, keys, `Rotation acts on keys it created itself, whose ids are unknown at deploy time; key/* is narrowed by the condition aws:ResourceTag/${SIGNING_KEY_TAG} = ${alias}, or for tagging at creation aws:RequestTag/${SIGNING_KEY_TAG}; only kms:ListResourceTags is unconditioned, to read which keys belong to the family`);
  }

  /**
   * With a customer-managed table key, the exact KMS actions DynamoDB performs for the caller
   * (not CDK's grantEncryptDecrypt, whose ReEncrypt* / GenerateDataKey* wildcards are wider).
   */
  private tableKey(fn: LanyardFunction, actions: string[]): void {
    const key = this.table.encryptionKey;
    if (key) fn.addToRolePolicy(new iam.PolicyStatement({ actions, resources: [key.keyArn] }));
  }

  /** A customer key is used by Secrets Manager on the caller's behalf: only through Secrets Manager in this region. */
  private secretsKey(fn: LanyardFunction, actions: string[]): void {
    const keyArn = this.config.upstreamSecretsKeyArn;
    if (keyArn === undefined) return;
    const stack = Stack.of(fn);
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions,
        resources: [keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${stack.region}.${stack.urlSuffix}` } },
      }),
    );
  }
}
