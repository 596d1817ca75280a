/**
 * `@lanyard/sdk/aws`: the AWS pieces. An AWS SDK v3 credential provider backed by a source of
 * the `sts` kind, and the SigV4 signer that `auth: { aws }` and `revocations: { aws }` use,
 * for calling a deployed stack's IAM routes from your own code.
 */
export { awsCredentialProvider } from './aws-provider.ts';
export type { AwsCredentialIdentity } from './aws-provider.ts';
export { AwsSigningError, awsSigningFetch, createAwsSigner, regionOfApiUrl } from './aws-sigv4.ts';
export type { AwsCredentials, AwsCredentialsProvider, AwsRequestSigner, AwsSigningOptions, SignableRequest } from './aws-sigv4.ts';
