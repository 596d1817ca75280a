/**
 * An AWS SDK v3 credential provider backed by a credential source of the `sts` kind.
 *
 * AWS clients cache what a provider returns and call it again once `expiration` is less than
 * five minutes away (the SDK's memoized identity provider). So `expiration` is set to the
 * source's own refresh time plus those five minutes (never later than the session's real
 * expiry): the client comes back when the source wants to refresh, and never holds a session
 * past its end.
 */
import type { CredentialSource } from './credential-source.ts';

export interface AwsCredentialIdentity {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  readonly expiration: Date;
}

/** How long before `expiration` the AWS SDK v3 refreshes a memoized identity. */
const AWS_SDK_REFRESH_WINDOW_MS = 300_000;

/**
 * @example
 * ```ts
 * const s3 = new S3Client({ credentials: awsCredentialProvider(reportsSource) });
 * ```
 */
export function awsCredentialProvider(source: Pick<CredentialSource, 'get' | 'state'>): () => Promise<AwsCredentialIdentity> {
  return async () => {
    const credential = await source.get();
    if (!credential.aws) throw new TypeError(`awsCredentialProvider needs an sts credential; this source holds a ${credential.kind} credential`);
    const sessionEnd = Date.parse(credential.aws.expiration);
    const nextRefresh = source.state().nextRefresh;
    const expiration = nextRefresh === undefined ? sessionEnd : Math.min(sessionEnd, nextRefresh + AWS_SDK_REFRESH_WINDOW_MS);
    return {
      accessKeyId: credential.aws.accessKeyId,
      secretAccessKey: credential.aws.secretAccessKey,
      sessionToken: credential.aws.sessionToken,
      expiration: new Date(expiration),
    };
  };
}
