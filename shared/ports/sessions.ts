/** STS sessions (the `sts` kind): AssumeRole on AWS, off on the embedded default unless AWS credentials are configured. */

import type { RevocationTarget } from '../domain/model.ts';

export interface AwsSessionCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  readonly expiration: string;
}

export interface AssumeRoleRequest {
  readonly roleArn: string;
  readonly roleSessionName: string;
  readonly sourceIdentity: string;
  readonly durationSeconds: number;
  readonly sessionPolicy: string;
  readonly tags: Readonly<Record<string, string>>;
}

/** STS sessions (the `sts` kind). */
export interface SessionIssuer {
  assumeRole(request: AssumeRoleRequest): Promise<AwsSessionCredentials>;
}


/**
 * STS sessions cannot be deleted: a revocation attaches a deny to each tool role it reaches,
 * for the sessions it covers issued at or before the cut-off (docs/domain.md#credentials).
 * AWS: `StsSessionRevoker` (adapters/aws/sts-revocation.ts), in the admin function only.
 */
export interface SessionRevoker {
  revokeSessions(input: { readonly roleArn: string; readonly target: RevocationTarget; readonly cutoff: string }): Promise<unknown>;
}
