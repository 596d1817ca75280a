/** STS sessions (the `sts` kind): AssumeRole on AWS, off on the embedded default unless AWS credentials are configured. */

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

