import { chmod, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { FileSigner, SIGNING_KEY_FILE } from '../../../../shared/adapters/local/file-signer.ts';
import { signAccessToken } from '../../../../shared/issuance/jws.ts';
import { isWellFormedP256Signature } from '@lanyard/sdk/ecdsa';

const tempDir = () => mkdtemp(join(tmpdir(), 'lanyard-signer-'));

describe('Class: FileSigner', () => {
  describe('Method: open', () => {
    it('creates a P-256 key readable only by its owner', async () => {
      const dir = await tempDir();

      await FileSigner.open(dir);

      expect((await stat(join(dir, SIGNING_KEY_FILE))).mode & 0o777).toBe(0o600);
      expect(JSON.parse(await readFile(join(dir, SIGNING_KEY_FILE), 'utf8'))).toMatchObject({ kty: 'EC', crv: 'P-256' });
    });

    it('keeps the same kid (the RFC 7638 thumbprint) when reopened', async () => {
      const dir = await tempDir();

      const first = await FileSigner.open(dir);
      const second = await FileSigner.open(dir);

      expect(await second.activeKid()).toBe(await first.activeKid());
      expect(await first.activeKid()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    });

    it('tightens a key file that others could read', async () => {
      const dir = await tempDir();
      await FileSigner.open(dir);
      await chmod(join(dir, SIGNING_KEY_FILE), 0o644);

      await FileSigner.open(dir);

      expect((await stat(join(dir, SIGNING_KEY_FILE))).mode & 0o777).toBe(0o600);
    });

    it('refuses a key file that is not a P-256 private key', async () => {
      const dir = await tempDir();
      await writeFile(join(dir, SIGNING_KEY_FILE), JSON.stringify({ kty: 'RSA' }), { mode: 0o600 });

      await expect(FileSigner.open(dir)).rejects.toThrow(/not a P-256 private JWK/);
    });
  });

  describe('Method: sign', () => {
    it('produces tokens that verify against its published JWKS', async () => {
      const signer = await FileSigner.open(await tempDir());

      const { token, kid } = await signAccessToken(signer, { iss: 'http://issuer.test', sub: 'a/b', exp: Math.floor(Date.now() / 1000) + 60 });
      const { protectedHeader } = await jwtVerify(token, createLocalJWKSet({ keys: await signer.publicJwks() }), { algorithms: ['ES256'], typ: 'at+jwt' });

      expect(protectedHeader.kid).toBe(kid);
    });

    it('signs low-S only: none of 200 signatures has a high S, and each verifies', async () => {
      const signer = await FileSigner.open(await tempDir());
      const kid = await signer.activeKid();
      const [jwk] = await signer.publicJwks();
      const key = await crypto.subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: jwk!.x, y: jwk!.y }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);

      const results = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const input = new TextEncoder().encode(`input ${i}`);
          const signature = await signer.sign(kid, input);
          return { lowS: isWellFormedP256Signature(signature), verifies: await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, signature, input) };
        }),
      );

      expect(results.filter((r) => !r.lowS)).toEqual([]);
      expect(results.filter((r) => !r.verifies)).toEqual([]);
    });

    it('refuses to sign with a key it does not hold', async () => {
      const signer = await FileSigner.open(await tempDir());

      await expect(signer.sign('someone-elses-kid', new Uint8Array([1]))).rejects.toThrow(/unknown signing key/);
    });
  });
});
