/**
 * What callers present, and how the issuer keeps it: local API keys (`lk_…`) and agent
 * instances' refresh tokens (`lr_…`) are 256 random bits shown once, of which only the
 * SHA-256 is stored; IAM callers are known by their role's ARN. One module, so the
 * generation and hashing of every bearer secret is written once.
 */
import { createHash, randomBytes } from 'node:crypto';

/** A new bearer secret: the prefix, then 32 random bytes in base64url (43 characters). */
export function newSecret(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/** Bearer secrets carry 256 bits of entropy, so a plain SHA-256 is enough; no slow hash is needed. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** A random id with a prefix (`crd_…` credentials, `req_…` requests): 128 bits, URL- and STS-session-name-safe. */
export function randomId(prefix = 'crd'): string {
  return `${prefix}_${randomBytes(16).toString('base64url')}`;
}

export const API_KEY_PREFIX = 'lk_';
const API_KEY = /^lk_[A-Za-z0-9_-]{16,128}$/;

/** A new local API key: 256 random bits. Shown once; only its hash is kept. */
export function newApiKey(): string {
  return newSecret(API_KEY_PREFIX);
}

export function hashApiKey(key: string): string {
  return hashSecret(key);
}

export function isApiKey(value: string): boolean {
  return API_KEY.test(value);
}

/**
 * An IAM role ARN (`arn:<partition>:iam::<account>:role/<path/><name>`). Partitions are
 * `aws`, `aws-cn`, `aws-us-gov` and the isolated ones; role names are 1 to 64 of [\w+=,.@-].
 */
export const IAM_ROLE_ARN = /^arn:(aws[a-z-]*):iam::(\d{12}):role\/((?:[\w+=,.@-]+\/)*)([\w+=,.@-]{1,64})$/;
/** What an assumed-role session of a role shows API Gateway: the role name, never its path, then the session name. */
const ASSUMED_ROLE_ARN = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([\w+=,.@-]{1,64})\/([\w+=,.@-]{2,64})$/;

/**
 * The lookup key of a role binding: partition, account and role name. The path is left out
 * because an assumed-role ARN does not carry it; that is safe because IAM role names are
 * unique within an account whatever their path (a policy file that binds the same name twice
 * is refused when it is applied). The partition is kept, so a role in `aws-cn` never matches
 * a same-named role of an account number in `aws`.
 */
export function iamRoleKey(roleArn: string): string | undefined {
  const match = IAM_ROLE_ARN.exec(roleArn);
  return match ? `${match[1]}:${match[2]}:${match[4]}` : undefined;
}

/** The caller's role key and session name when it is an assumed-role session (ECS task, EKS pod, Lambda, EC2 instance profile). */
export function assumedRoleOf(callerArn: string): { key: string; session: string } | undefined {
  const match = ASSUMED_ROLE_ARN.exec(callerArn);
  return match ? { key: `${match[1]}:${match[2]}:${match[3]}`, session: match[4]! } : undefined;
}
