/**
 * The embedded default's signer (docs/domain.md#credentials): one P-256 key in `<dataDir>/signing-key.json`,
 * created on first start with mode 0600. Its `kid` is the RFC 7638 thumbprint of the public
 * key, so it is stable across restarts and identical wherever the key is read.
 *
 * Signing goes through WebCrypto: `subtle.sign` runs the ECDSA job on libuv's threadpool, not
 * on the issuer's event loop, and returns the IEEE P1363 r‖s encoding JWS needs. About half of
 * those have a high S; each is turned into its low-S twin, the only form verifiers accept
 * (packages/sdk/src/lib/ecdsa.ts).
 */
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import { toLowS } from '@lanyard/sdk/ecdsa';
import type { PublicJwk, Signer } from '../../ports/index.ts';

interface StoredKey {
  readonly kty: 'EC';
  readonly crv: 'P-256';
  readonly x: string;
  readonly y: string;
  readonly d: string;
}

export const SIGNING_KEY_FILE = 'signing-key.json';

const ES256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

export class FileSigner implements Signer {
  readonly #privateKey: webcrypto.CryptoKey;
  readonly #jwk: PublicJwk;

  private constructor(privateKey: webcrypto.CryptoKey, jwk: PublicJwk) {
    this.#privateKey = privateKey;
    this.#jwk = jwk;
  }

  /** Opens the key under `dataDir`, creating it (0600, in a 0700 folder) on first use. */
  static async open(dataDir: string): Promise<FileSigner> {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const path = join(dataDir, SIGNING_KEY_FILE);
    const stored = (await readKey(path)) ?? (await createKey(path));
    const { d: _d, ...publicPart } = stored;
    const kid = await calculateJwkThumbprint(publicPart, 'sha256');
    // Imported once, non-extractable: the private scalar cannot be read back out of the process's key object.
    const privateKey = await webcrypto.subtle.importKey('jwk', { ...stored }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    return new FileSigner(privateKey, { ...publicPart, kid, alg: 'ES256', use: 'sig' });
  }

  activeKid(): Promise<string> {
    return Promise.resolve(this.#jwk.kid);
  }

  async sign(kid: string, signingInput: Uint8Array): Promise<Uint8Array> {
    if (kid !== this.#jwk.kid) throw new Error(`unknown signing key ${kid}`);
    // ECDSA in WebCrypto yields r‖s (IEEE P1363), JWS's encoding; no DER round trip.
    return toLowS(new Uint8Array(await webcrypto.subtle.sign(ES256, this.#privateKey, signingInput)));
  }

  publicJwks(): Promise<PublicJwk[]> {
    return Promise.resolve([this.#jwk]);
  }
}
async function readKey(path: string): Promise<StoredKey | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  // A key readable by others is tightened rather than trusted as it is.
  if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, 0o600);
  const parsed = JSON.parse(text) as Partial<StoredKey>;
  if (parsed.kty !== 'EC' || parsed.crv !== 'P-256' || !parsed.x || !parsed.y || !parsed.d) {
    throw new Error(`${path} is not a P-256 private JWK`);
  }
  return parsed as StoredKey;
}

async function createKey(path: string): Promise<StoredKey> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' }) as StoredKey;
  const stored: StoredKey = { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, d: jwk.d };
  // Written to a private temp file and renamed, so the key is never briefly world-readable.
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify(stored), { mode: 0o600, flag: 'wx' });
  await rename(temp, path);
  return stored;
}
