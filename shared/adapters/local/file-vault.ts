/**
 * The embedded default's secret vault (issue 6): upstream secrets encrypted at rest under
 * `<dataDir>`, never in the clear on disk.
 *
 * - The master key is `<dataDir>/master.key`: 32 random bytes, created on first use with mode
 *   0600 in a 0700 folder. Like the signing key (file-signer.ts), a key file that others may
 *   read is tightened to 0600 rather than refused, and the tightening is logged: refusing to
 *   start would not undo a past exposure, and whether to rotate the secrets is the operator's
 *   call. A key file of the wrong length is refused.
 * - Each provider's versions live in `<dataDir>/secrets/<provider>.json` (folder 0700, file
 *   0600), rewritten atomically (a private temp file renamed over the old one). A version is
 *   `{ version, createdAt, iv, tag, ciphertext }`: AES-256-GCM with a fresh 96-bit IV, and the
 *   provider and version bound in as additional authenticated data, so a ciphertext copied to
 *   another provider or version fails to decrypt instead of presenting the wrong key.
 * - The last {@link KEPT_VERSIONS} versions are kept: the broker may still present the previous
 *   one during a rotation's overlap.
 *
 * @example
 * ```ts
 * const vault = await FileVault.open('.lanyard');
 * const { version } = await vault.putSecret('stripe', secret);
 * const same = await vault.getSecret('stripe', version);
 * ```
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { TOOL_ID } from '../../domain/model.ts';
import type { Log } from '../../ports/log.ts';
import type { SecretVault } from '../../ports/index.ts';
import { SecretVaultError } from '../../ports/secret-vault.ts';

export const MASTER_KEY_FILE = 'master.key';
export const SECRETS_DIR = 'secrets';
/** Versions kept per provider: the current one, the one in its overlap, and a few to roll back to. */
export const KEPT_VERSIONS = 5;

const KEY_BYTES = 32;
const IV_BYTES = 12;
const ALGORITHM = 'aes-256-gcm';

interface StoredVersion {
  readonly version: string;
  readonly createdAt: string;
  readonly iv: string;
  readonly tag: string;
  readonly ciphertext: string;
}

interface StoredFile {
  readonly provider: string;
  /** Oldest first. */
  readonly versions: readonly StoredVersion[];
}

export interface FileVaultOptions {
  /** Where a key file with loose permissions is reported. @default - not reported */
  readonly log?: Log;
  /** @default Date.now */
  readonly now?: () => number;
}

// Writes of one secrets file are serialized in this process (read, add a version, rename), so
// two rotations of one provider never drop each other's version. Keyed by absolute path, so two
// vaults opened on the same folder share the queue.
const writeQueues = new Map<string, Promise<unknown>>();

export class FileVault implements SecretVault {
  readonly #key: Buffer;
  readonly #dir: string;
  readonly #now: () => number;

  private constructor(key: Buffer, dir: string, now: () => number) {
    this.#key = key;
    this.#dir = dir;
    this.#now = now;
  }

  /** Opens the vault under `dataDir`, creating the master key (0600) and the secrets folder (0700) on first use. */
  static async open(dataDir: string, options: FileVaultOptions = {}): Promise<FileVault> {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const dir = resolve(dataDir, SECRETS_DIR);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await tighten(dir, 0o700, options.log);
    const path = join(dataDir, MASTER_KEY_FILE);
    const key = (await readKey(path, options.log)) ?? (await createKey(path));
    return new FileVault(key, dir, options.now ?? Date.now);
  }

  async putSecret(provider: string, secret: string): Promise<{ readonly version: string }> {
    checkProvider(provider);
    const path = this.#file(provider);
    const write = (writeQueues.get(path) ?? Promise.resolve()).then(async () => {
      const existing = (await this.#read(provider))?.versions ?? [];
      const version = `v_${randomBytes(8).toString('hex')}`;
      const sealed = seal(this.#key, provider, version, secret, new Date(this.#now()).toISOString());
      const file: StoredFile = { provider, versions: [...existing, sealed].slice(-KEPT_VERSIONS) };
      await writeAtomically(path, JSON.stringify(file));
      return { version };
    });
    writeQueues.set(
      path,
      write.catch(() => undefined),
    );
    return write;
  }

  async getSecret(provider: string, version: string): Promise<string> {
    checkProvider(provider);
    const stored = (await this.#read(provider))?.versions.find((v) => v.version === version);
    if (!stored) throw new SecretVaultError('version_unknown', provider, version);
    return unseal(this.#key, provider, stored);
  }

  #file(provider: string): string {
    return join(this.#dir, `${provider}.json`);
  }

  async #read(provider: string): Promise<StoredFile | undefined> {
    let text: string;
    try {
      text = await readFile(this.#file(provider), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const parsed = JSON.parse(text) as Partial<StoredFile>;
    if (parsed.provider !== provider || !Array.isArray(parsed.versions)) {
      throw new Error(`${this.#file(provider)} is not the secrets file of ${provider}`);
    }
    return parsed as StoredFile;
  }
}

/** The provider and version, bound into the tag: a ciphertext moved to another slot fails to decrypt. */
function aad(provider: string, version: string): Buffer {
  return Buffer.from(`lanyard-vault/1\0${provider}\0${version}`, 'utf8');
}

function seal(key: Buffer, provider: string, version: string, secret: string, createdAt: string): StoredVersion {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, iv);
  cipher.setAAD(aad(provider, version));
  const ciphertext = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return { version, createdAt, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), ciphertext: ciphertext.toString('base64') };
}

function unseal(key: Buffer, provider: string, stored: StoredVersion): string {
  try {
    const decipher = createDecipheriv(ALGORITHM, key, Buffer.from(stored.iv, 'base64'));
    decipher.setAAD(aad(provider, stored.version));
    decipher.setAuthTag(Buffer.from(stored.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(stored.ciphertext, 'base64')), decipher.final()]).toString('utf8');
  } catch (cause) {
    // GCM's check failed: tampered, moved, or sealed under another master key. Never a partial plaintext.
    throw new SecretVaultError('unreadable', provider, stored.version, { cause });
  }
}

function checkProvider(provider: string): void {
  // The provider names a file: only tool ids, which hold no separator and cannot start with a dot.
  if (!TOOL_ID.test(provider)) throw new Error(`not a provider id: ${JSON.stringify(provider.slice(0, 64))}`);
}

async function readKey(path: string, log: Log | undefined): Promise<Buffer | undefined> {
  let key: Buffer;
  try {
    key = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if (key.length !== KEY_BYTES) throw new Error(`${path} is not a vault master key (${KEY_BYTES} bytes); the secrets under it cannot be read without the original`);
  await tighten(path, 0o600, log);
  return key;
}

/**
 * Created with `link`, which fails if the name exists: two processes starting at once on one
 * folder end up with the same key instead of each encrypting under its own.
 */
async function createKey(path: string): Promise<Buffer> {
  const key = randomBytes(KEY_BYTES);
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temp, key, { mode: 0o600, flag: 'wx' });
  try {
    await link(temp, path);
    return key;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const existing = await readFile(path);
    if (existing.length !== KEY_BYTES) throw new Error(`${path} is not a vault master key (${KEY_BYTES} bytes)`, { cause: error });
    return existing;
  } finally {
    await unlink(temp);
  }
}

/** A private temp file renamed over the old one: readers see the old file or the new, never half of one. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temp, text, { mode: 0o600, flag: 'wx' });
  try {
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}

/** A key file or folder others may read is narrowed to `mode`, and said so. */
async function tighten(path: string, mode: number, log: Log | undefined): Promise<void> {
  const current = (await stat(path)).mode & 0o777;
  if ((current & 0o077) === 0) return;
  await chmod(path, mode);
  log?.warn('vault permissions were too open and have been narrowed', { path, was: current.toString(8), now: mode.toString(8) });
}
