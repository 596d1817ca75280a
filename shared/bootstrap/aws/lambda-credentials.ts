/**
 * What the Lambda bundles use in place of `@aws-sdk/credential-provider-node` (the alias is in
 * cdk/bundling-options.ts). Inside Lambda the runtime puts the execution role's credentials in
 * `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (reserved variables,
 * https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime),
 * and the SDK's default chain takes them from there first. The rest of that chain (SSO, shared
 * INI files, web identity, process, IMDS, container endpoints) never answers on Lambda, yet it
 * brings the SSO, SSO-OIDC, STS and sign-in clients into every bundle (≈ 115 KB of the issue
 * function's). Missing variables make every SDK call fail with `CredentialsProviderError`, which
 * the adapters report as `issuer_unavailable`: fail closed, as with any dependency failure.
 *
 * Only the Lambda bundles use this module; tests, `lanyard dev` and the CLI keep the full chain.
 */
import { fromEnv } from '@aws-sdk/credential-provider-env';

type FromEnvInit = NonNullable<Parameters<typeof fromEnv>[0]>;

/**
 * Same name and call shape as `@aws-sdk/credential-provider-node`'s export, which each client's
 * runtime config calls with the client's config (only its `logger` matters here).
 */
export function defaultProvider(init: FromEnvInit = {}): ReturnType<typeof fromEnv> {
  return fromEnv(init.logger ? { logger: init.logger } : {});
}
