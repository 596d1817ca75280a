import { chmod, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { FileVault, KEPT_VERSIONS, MASTER_KEY_FILE, SECRETS_DIR } from '../../../../shared/adapters/local/file-vault.ts';
import { SecretVaultError } from '../../../../shared/ports/secret-vault.ts';
import { rejection } from '../../../helpers/errors.ts';

const tempDir = () => mkdtemp(join(tmpdir(), 'lanyard-vault-'));
const SECRET = 'sk_live_51HxQfileVaultTestSecret9f8e7d6c';

interface StoredFile {
  provider: string;
  versions: { version: string; createdAt: string; iv: string; tag: string; ciphertext: string }[];
}
const readStored = async (dir: string, provider: string) => JSON.parse(await readFile(join(dir, SECRETS_DIR, `${provider}.json`), 'utf8')) as StoredFile;
const writeStored = (dir: string, provider: string, file: StoredFile) => writeFile(join(dir, SECRETS_DIR, `${provider}.json`), JSON.stringify(file), { mode: 0o600 });

/** Every byte under `dir`, file by file. */
async function filesUnder(dir: string): Promise<{ path: string; bytes: Buffer }[]> {
  const out: { path: string; bytes: Buffer }[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) {
      const path = join(entry.parentPath, entry.name);
      out.push({ path, bytes: await readFile(path) });
    }
  }
  return out;
}

const vaultError = (promise: Promise<unknown>) => rejection(promise, SecretVaultError);

describe('Class: FileVault', () => {
  describe('Method: open', () => {
    it('creates a 32-byte master key readable only by its owner, and a private secrets folder', async () => {
      // Prepare
      const dir = await tempDir();

      // Act
      await FileVault.open(dir);

      // Assess
      const key = join(dir, MASTER_KEY_FILE);
      expect((await stat(key)).mode & 0o777).toBe(0o600);
      expect((await readFile(key)).length).toBe(32);
      expect((await stat(join(dir, SECRETS_DIR))).mode & 0o777).toBe(0o700);
    });

    it('keeps the master key when reopened', async () => {
      const dir = await tempDir();
      await FileVault.open(dir);
      const first = await readFile(join(dir, MASTER_KEY_FILE));

      await FileVault.open(dir);

      expect(await readFile(join(dir, MASTER_KEY_FILE))).toEqual(first);
    });

    it('narrows a master key and a secrets folder that others could read, and logs that it did', async () => {
      // Prepare
      const dir = await tempDir();
      await FileVault.open(dir);
      await chmod(join(dir, MASTER_KEY_FILE), 0o644);
      await chmod(join(dir, SECRETS_DIR), 0o755);
      const log = { info: vi.fn(), warn: vi.fn(), error: vi.fn() };

      // Act
      await FileVault.open(dir, { log });

      // Assess
      expect((await stat(join(dir, MASTER_KEY_FILE))).mode & 0o777).toBe(0o600);
      expect((await stat(join(dir, SECRETS_DIR))).mode & 0o777).toBe(0o700);
      expect(log.warn).toHaveBeenCalledTimes(2);
      expect(log.warn).toHaveBeenCalledWith('vault permissions were too open and have been narrowed', expect.objectContaining({ path: join(dir, MASTER_KEY_FILE), was: '644', now: '600' }));
    });

    it('refuses a master key of the wrong length', async () => {
      const dir = await tempDir();
      await writeFile(join(dir, MASTER_KEY_FILE), Buffer.alloc(16), { mode: 0o600 });

      await expect(FileVault.open(dir)).rejects.toThrow(/is not a vault master key \(32 bytes\)/);
    });

    it('gives two vaults opened at once on a new folder the same master key', async () => {
      const dir = await tempDir();

      const [a, b] = await Promise.all([FileVault.open(dir), FileVault.open(dir)]);
      const { version } = await a.putSecret('stripe', SECRET);

      expect(await b.getSecret('stripe', version)).toBe(SECRET);
    });
  });

  describe('Method: putSecret / getSecret', () => {
    it('round-trips a secret by its version', async () => {
      const vault = await FileVault.open(await tempDir());

      const { version } = await vault.putSecret('stripe', SECRET);

      expect(version).toMatch(/^v_[0-9a-f]{16}$/);
      expect(await vault.getSecret('stripe', version)).toBe(SECRET);
    });

    it('writes the secrets file 0600 and never the secret in the clear, anywhere under the data folder', async () => {
      // Prepare
      const dir = await tempDir();
      const vault = await FileVault.open(dir);

      // Act
      await vault.putSecret('stripe', SECRET);
      await vault.putSecret('stripe', `${SECRET}-2`);

      // Assess
      expect((await stat(join(dir, SECRETS_DIR, 'stripe.json'))).mode & 0o777).toBe(0o600);
      const files = await filesUnder(dir);
      expect(files.map((f) => f.path).sort()).toEqual([join(dir, MASTER_KEY_FILE), join(dir, SECRETS_DIR, 'stripe.json')].sort());
      const plain = Buffer.from(SECRET, 'utf8');
      for (const { bytes } of files) {
        expect(bytes.includes(plain)).toBe(false);
        expect(bytes.includes(Buffer.from(plain.toString('base64')))).toBe(false);
        expect(bytes.includes(Buffer.from(plain.toString('hex')))).toBe(false);
      }
    });

    it('gives each version its own id and keeps the older ones readable', async () => {
      const vault = await FileVault.open(await tempDir());

      const first = await vault.putSecret('stripe', 'sk_first');
      const second = await vault.putSecret('stripe', 'sk_second');

      expect(first.version).not.toBe(second.version);
      expect(await vault.getSecret('stripe', first.version)).toBe('sk_first');
      expect(await vault.getSecret('stripe', second.version)).toBe('sk_second');
    });

    it(`keeps the last ${KEPT_VERSIONS} versions and forgets older ones`, async () => {
      // Prepare
      const vault = await FileVault.open(await tempDir());
      const versions: string[] = [];

      // Act
      for (let i = 0; i < KEPT_VERSIONS + 2; i++) versions.push((await vault.putSecret('stripe', `sk_${i}`)).version);

      // Assess
      const error = await vaultError(vault.getSecret('stripe', versions[0]!));
      expect(error.code).toBe('version_unknown');
      await expect(vault.getSecret('stripe', versions[1]!)).rejects.toBeInstanceOf(SecretVaultError);
      for (let i = 2; i < versions.length; i++) expect(await vault.getSecret('stripe', versions[i]!)).toBe(`sk_${i}`);
    });

    it('keeps every version when rotations of one provider race', async () => {
      const vault = await FileVault.open(await tempDir());

      const results = await Promise.all(['a', 'b', 'c'].map((s) => vault.putSecret('stripe', `sk_${s}`)));

      expect(new Set(results.map((r) => r.version)).size).toBe(3);
      expect(await Promise.all(results.map((r) => vault.getSecret('stripe', r.version)))).toEqual(['sk_a', 'sk_b', 'sk_c']);
    });

    it('lets a second vault on the same folder read what the first wrote', async () => {
      const dir = await tempDir();
      const { version } = await (await FileVault.open(dir)).putSecret('openai', SECRET);

      const other = await FileVault.open(dir);

      expect(await other.getSecret('openai', version)).toBe(SECRET);
    });

    it('keeps providers apart: the same secret under two providers is stored under different ciphertexts', async () => {
      const dir = await tempDir();
      const vault = await FileVault.open(dir);

      await vault.putSecret('stripe', SECRET);
      await vault.putSecret('openai', SECRET);

      const [a, b] = [(await readStored(dir, 'stripe')).versions[0]!, (await readStored(dir, 'openai')).versions[0]!];
      expect(a.ciphertext).not.toBe(b.ciphertext);
      expect(a.iv).not.toBe(b.iv);
    });

    it('answers an unknown version with a typed error naming the provider and version, never a secret', async () => {
      // Prepare
      const vault = await FileVault.open(await tempDir());
      await vault.putSecret('stripe', SECRET);

      // Act
      const [unknownVersion, unknownProvider] = await Promise.all([vaultError(vault.getSecret('stripe', 'v_0000000000000000')), vaultError(vault.getSecret('openai', 'v_0000000000000000'))]);

      // Assess
      expect(unknownVersion).toMatchObject({ code: 'version_unknown', provider: 'stripe', version: 'v_0000000000000000' });
      expect(unknownVersion.message).toBe('no secret version v_0000000000000000 of provider stripe');
      expect(unknownVersion.message).not.toContain(SECRET);
      expect(unknownProvider).toMatchObject({ code: 'version_unknown', provider: 'openai' });
    });

    it('refuses a provider id that could name a file outside the secrets folder', async () => {
      const vault = await FileVault.open(await tempDir());

      await expect(vault.putSecret('../master', SECRET)).rejects.toThrow(/not a provider id/);
      await expect(vault.getSecret('.hidden', 'v_0000000000000000')).rejects.toThrow(/not a provider id/);
    });
  });

  describe('integrity', () => {
    it('refuses a tampered ciphertext, and a tampered tag, as unreadable', async () => {
      // Prepare
      const dir = await tempDir();
      const vault = await FileVault.open(dir);
      const { version } = await vault.putSecret('stripe', SECRET);
      const stored = await readStored(dir, 'stripe');
      const flip = (b64: string) => {
        const bytes = Buffer.from(b64, 'base64');
        bytes[0] = bytes[0]! ^ 0x01;
        return bytes.toString('base64');
      };

      // Act
      await writeStored(dir, 'stripe', { ...stored, versions: [{ ...stored.versions[0]!, ciphertext: flip(stored.versions[0]!.ciphertext) }] });
      const tamperedCiphertext = await vaultError(vault.getSecret('stripe', version));
      await writeStored(dir, 'stripe', { ...stored, versions: [{ ...stored.versions[0]!, tag: flip(stored.versions[0]!.tag) }] });
      const tamperedTag = await vaultError(vault.getSecret('stripe', version));

      // Assess
      expect(tamperedCiphertext).toMatchObject({ code: 'unreadable', provider: 'stripe', version });
      expect(tamperedTag.code).toBe('unreadable');
    });

    it('refuses a ciphertext moved to another version or another provider (the AAD binds both)', async () => {
      // Prepare
      const dir = await tempDir();
      const vault = await FileVault.open(dir);
      const old = await vault.putSecret('stripe', 'sk_old');
      const current = await vault.putSecret('stripe', SECRET);
      await vault.putSecret('openai', 'sk_other');
      const stripe = await readStored(dir, 'stripe');
      const openai = await readStored(dir, 'openai');
      const [oldSealed, currentSealed] = stripe.versions as [StoredFile['versions'][0], StoredFile['versions'][0]];

      // Act: the current ciphertext under the old version's id; then stripe's under openai's name.
      await writeStored(dir, 'stripe', { ...stripe, versions: [{ ...currentSealed, version: old.version }, currentSealed] });
      const swappedVersion = await vaultError(vault.getSecret('stripe', old.version));
      await writeStored(dir, 'openai', { ...openai, versions: [...openai.versions, { ...currentSealed }] });
      const swappedProvider = await vaultError(vault.getSecret('openai', current.version));

      // Assess
      expect(swappedVersion.code).toBe('unreadable');
      expect(swappedProvider).toMatchObject({ code: 'unreadable', provider: 'openai' });
      expect(await vault.getSecret('stripe', current.version)).toBe(SECRET);
      expect(oldSealed.version).toBe(old.version);
    });

    it('cannot read secrets sealed under another master key', async () => {
      // Prepare
      const dir = await tempDir();
      const { version } = await (await FileVault.open(dir)).putSecret('stripe', SECRET);
      const elsewhere = await tempDir();
      await FileVault.open(elsewhere);
      await writeFile(join(dir, MASTER_KEY_FILE), await readFile(join(elsewhere, MASTER_KEY_FILE)), { mode: 0o600 });

      // Act
      const error = await vaultError((await FileVault.open(dir)).getSecret('stripe', version));

      // Assess
      expect(error.code).toBe('unreadable');
    });
  });
});
