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

/**
 * A vault could not hand out a secret version: it does not exist (`version_unknown`) or it
 * does not decrypt (`unreadable`: tampered, or sealed under another key). Names the provider
 * and version, never a secret.
 */
export class SecretVaultError extends Error {
  override readonly name = 'SecretVaultError';
  readonly code: 'version_unknown' | 'unreadable';
  readonly provider: string;
  readonly version: string;

  constructor(code: 'version_unknown' | 'unreadable', provider: string, version: string, options: { cause?: unknown } = {}) {
    super(
      code === 'version_unknown' ? `no secret version ${version} of provider ${provider}` : `secret version ${version} of provider ${provider} does not decrypt`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    this.provider = provider;
    this.version = version;
  }
}
