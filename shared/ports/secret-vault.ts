/**
 * Where upstream secrets live: Secrets Manager on AWS, an encrypted file under `.lanyard/`
 * on the embedded default. Write-only from every admin surface: nothing but the broker's
 * read path ever sees a secret again.
 */
export interface SecretVault {
  /** Stores a new version of the provider's secret and returns its version id. */
  putSecret(provider: string, secret: string): Promise<{ readonly version: string }>;
  /** The secret of one version; throws when the version is unknown. */
  getSecret(provider: string, version: string): Promise<string>;
}
