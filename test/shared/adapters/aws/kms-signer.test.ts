import { generateKeyPairSync, randomUUID, sign as cryptoSign, type KeyObject } from 'node:crypto';
import {
  GetPublicKeyCommand,
  KMSClient,
  KMSInvalidStateException,
  NotFoundException,
  SignCommand,
  KMSServiceException,
} from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { JwtVerifier } from 'aws-jwt-verify';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_PUBLIC_KEY_CACHE_TTL_MS, KMS_MAX_MESSAGE_BYTES, KmsSigner } from '../../../../shared/adapters/aws/kms-signer.ts';
import { signAccessToken } from '../../../../shared/issuance/jws.ts';
import { isWellFormedP256Signature } from '@lanyard/sdk/ecdsa';
import { rejection } from '../../../helpers/errors.ts';

const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';
const ISSUER = 'https://lanyard.example.internal';
const AUDIENCE = 'https://tickets.example.internal';
const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);

interface FakeKey {
  readonly arn: string;
  readonly keySpec: string;
  readonly keyUsage: string;
  readonly privateKey: KeyObject;
  readonly spki: Uint8Array;
}

/**
 * A KMS that behaves like KMS for GetPublicKey and Sign: real P-256 keys, DER SPKI public keys,
 * aliases that resolve to key ARNs, RAW messages hashed with SHA-256, DER signatures, the
 * 4096-byte message limit and NotFound for unknown keys. KMS may answer with either S of a
 * signature; `answerHighS` makes it always the high one.
 */
function fakeKms() {
  const client = new KMSClient({ region: REGION });
  const mock = mockClient(client);
  const keys = new Map<string, FakeKey>();
  const aliases = new Map<string, string>();
  const derSignatures: Uint8Array[] = [];
  /** Errors the next GetPublicKey calls throw, in order, before answering normally again. */
  const getPublicKeyFailures: Error[] = [];

  const createKey = (keySpec = 'ECC_NIST_P256', keyUsage = 'SIGN_VERIFY'): string => {
    const id = randomUUID();
    const { privateKey, publicKey } =
      keySpec === 'ECC_NIST_P256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
    const arn = `arn:aws:kms:${REGION}:${ACCOUNT}:key/${id}`;
    keys.set(id, { arn, keySpec, keyUsage, privateKey, spki: publicKey.export({ format: 'der', type: 'spki' }) });
    return id;
  };
  const resolve = (ref: string | undefined): FakeKey => {
    const name = ref?.replace(/^arn:aws:kms:[^:]+:\d+:/, '') ?? '';
    const id = name.startsWith('alias/') ? aliases.get(name) : name.replace(/^key\//, '');
    const key = id === undefined ? undefined : keys.get(id);
    if (!key) throw new NotFoundException({ message: `Key '${ref}' does not exist`, $metadata: {} });
    return key;
  };

  mock.on(GetPublicKeyCommand).callsFake((input: { KeyId?: string }) => {
    const failure = getPublicKeyFailures.shift();
    if (failure) throw failure;
    const key = resolve(input.KeyId);
    return {
      KeyId: key.arn,
      PublicKey: key.spki,
      KeySpec: key.keySpec,
      KeyUsage: key.keyUsage,
      SigningAlgorithms: key.keySpec === 'ECC_NIST_P256' ? ['ECDSA_SHA_256'] : ['RSASSA_PSS_SHA_256'],
    };
  });
  mock.on(SignCommand).callsFake((input: { KeyId?: string; Message?: Uint8Array; MessageType?: string; SigningAlgorithm?: string }) => {
    const key = resolve(input.KeyId);
    if (input.MessageType !== 'RAW' || input.SigningAlgorithm !== 'ECDSA_SHA_256' || !input.Message || input.Message.length > 4096) {
      throw Object.assign(new Error('1 validation error detected'), { name: 'ValidationException' });
    }
    const signed = cryptoSign('sha256', input.Message, { key: key.privateKey, dsaEncoding: 'der' });
    const der = fake.answerHighS ? highSDer(signed) : signed;
    derSignatures.push(der);
    return { KeyId: key.arn, Signature: der, SigningAlgorithm: 'ECDSA_SHA_256' };
  });

  const fake = { client, mock, keys, aliases, createKey, derSignatures, getPublicKeyFailures, answerHighS: false };
  return fake;
}

const P256_N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

/** The DER signature with s replaced by n − s when s is low: the other half of what KMS may answer. */
function highSDer(der: Uint8Array): Uint8Array {
  const rLength = der[3] ?? 0;
  const r = der.subarray(4, 4 + rLength);
  const sBytes = der.subarray(6 + rLength);
  const s = BigInt(`0x${Buffer.from(sBytes).toString('hex')}`);
  const twin = s > (P256_N - 1n) / 2n ? s : P256_N - s;
  const hex = twin.toString(16).padStart(64, '0');
  // The high s has its top bit set, so DER puts a 0x00 before it.
  const content = Buffer.from(`${parseInt(hex.slice(0, 2), 16) & 0x80 ? '00' : ''}${hex}`, 'hex');
  const body = Buffer.concat([Buffer.from([0x02, r.length]), r, Buffer.from([0x02, content.length]), content]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

/** KMS models no throttling class: the SDK raises its service exception with the wire name. */
const throttling = () =>
  new KMSServiceException({ name: 'ThrottlingException', message: 'Rate exceeded', $fault: 'client', $metadata: { httpStatusCode: 400 } });

function frozenClock(start = NOW) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

function claims(i: number) {
  const iat = Math.floor(NOW / 1000);
  return {
    iss: ISSUER,
    sub: 'support-triage/prod',
    aud: AUDIENCE,
    iat,
    nbf: iat,
    exp: iat + 300,
    jti: `cred-${i}`,
    scope: 'tickets:read',
    lane: 'support-triage/prod:tickets:read:acme',
    tenant: 'acme',
    env: 'prod',
    role: 'support-triage@3',
  };
}

describe('Class: KmsSigner', () => {
  // Both verifiers read Date; only Date is frozen, so promises and crypto run as usual.
  beforeEach(() => {
    vi.useFakeTimers({ now: NOW, toFake: ['Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  describe('Method: sign', () => {
    it('mints 3000 tokens that jose and aws-jwt-verify both accept, including short r and s', async () => {
      // Prepare
      const kms = fakeKms();
      const keyId = kms.createKey();
      kms.aliases.set('alias/lanyard-signing', keyId);
      const signer = new KmsSigner({ client: kms.client, activeKeyId: 'alias/lanyard-signing', clock: frozenClock() });
      const jwks = { keys: await signer.publicJwks() };
      const joseKeys = createLocalJWKSet(jwks);
      const awsVerifier = JwtVerifier.create({ issuer: ISSUER, audience: AUDIENCE, jwksUri: `${ISSUER}/.well-known/jwks.json` });
      // Served as JSON on the wire, which is also the shape aws-jwt-verify's types ask for.
      awsVerifier.cacheJwks(JSON.parse(JSON.stringify(jwks)) as Parameters<typeof awsVerifier.cacheJwks>[0]);
      const count = 3000;
      let shortIntegers = 0;
      let paddedDerIntegers = 0;
      let highS = 0;

      // Act
      for (let i = 0; i < count; i++) {
        const { token, kid } = await signAccessToken(signer, claims(i));
        const { payload, protectedHeader } = await jwtVerify(token, joseKeys, {
          issuer: ISSUER,
          audience: AUDIENCE,
          algorithms: ['ES256'],
          typ: 'at+jwt',
        });
        expect(protectedHeader.kid).toBe(kid);
        expect(payload.jti).toBe(`cred-${i}`);
        const verified = awsVerifier.verifySync(token);
        expect(verified.jti).toBe(`cred-${i}`);
        const signature = Buffer.from(token.split('.')[2] ?? '', 'base64url');
        if (signature[0] === 0 || signature[32] === 0) shortIntegers++;
        if (!isWellFormedP256Signature(signature)) highS++;
      }
      for (const der of kms.derSignatures) {
        const rLength = der[3] ?? 0;
        const sLength = der[4 + rLength + 1] ?? 0;
        if (rLength === 33 || sLength === 33) paddedDerIntegers++;
      }

      // Assess
      expect(kms.derSignatures).toHaveLength(count);
      // About 2 in 256 signatures have an r or s shorter than 32 bytes, and about 3 in 4 a 33-byte DER integer.
      expect(shortIntegers).toBeGreaterThan(0);
      expect(paddedDerIntegers).toBeGreaterThan(count / 2);
      // KMS answers with a high S about half the time; the token never carries one.
      expect(highS).toBe(0);
      console.info(`KmsSigner: ${shortIntegers} of ${count} signatures had a short r or s; ${paddedDerIntegers} had a 0x00-padded DER integer`);
    });

    it('signs with the key ARN the kid belongs to, not with the alias', async () => {
      // Prepare
      const kms = fakeKms();
      const keyId = kms.createKey();
      kms.aliases.set('alias/lanyard-signing', keyId);
      const signer = new KmsSigner({ client: kms.client, activeKeyId: 'alias/lanyard-signing', clock: frozenClock() });
      const kid = await signer.activeKid();

      // Act
      await signer.sign(kid, new TextEncoder().encode('header.payload'));

      // Assess
      const input = kms.mock.commandCalls(SignCommand)[0]?.args[0].input;
      expect(input).toEqual({
        KeyId: `arn:aws:kms:${REGION}:${ACCOUNT}:key/${keyId}`,
        Message: new TextEncoder().encode('header.payload'),
        MessageType: 'RAW',
        SigningAlgorithm: 'ECDSA_SHA_256',
      });
    });

    it('still signs with the previous key when the kid was read before the alias moved', async () => {
      // Prepare
      const kms = fakeKms();
      const first = kms.createKey();
      const second = kms.createKey();
      kms.aliases.set('alias/lanyard-signing', first);
      const clock = frozenClock();
      const signer = new KmsSigner({ client: kms.client, activeKeyId: 'alias/lanyard-signing', publishedKeyIds: [second], clock });
      const oldKid = await signer.activeKid();
      kms.aliases.set('alias/lanyard-signing', second);
      clock.advance(DEFAULT_PUBLIC_KEY_CACHE_TTL_MS);

      // Act
      const newKid = await signer.activeKid();
      await signer.sign(oldKid, new Uint8Array([1, 2, 3]));

      // Assess
      expect(newKid).not.toBe(oldKid);
      expect(kms.mock.commandCalls(SignCommand)[0]?.args[0].input.KeyId).toContain(first);
    });

    it('refuses a signing input over 4096 bytes before calling KMS', async () => {
      // Prepare
      const kms = fakeKms();
      const signer = new KmsSigner({ client: kms.client, activeKeyId: kms.createKey() });
      const kid = await signer.activeKid();

      // Act
      const error = await rejection(signer.sign(kid, new Uint8Array(KMS_MAX_MESSAGE_BYTES + 1)));

      // Assess
      expect(error.code).toBe('request_too_large');
      expect(error.message).toBe('the token to sign is 4097 bytes; KMS signs at most 4096');
      expect(kms.mock.commandCalls(SignCommand)).toHaveLength(0);
    });

    it('signs an input of exactly 4096 bytes', async () => {
      // Prepare
      const kms = fakeKms();
      const signer = new KmsSigner({ client: kms.client, activeKeyId: kms.createKey() });
      const kid = await signer.activeKid();

      // Act
      const signature = await signer.sign(kid, new Uint8Array(KMS_MAX_MESSAGE_BYTES));

      // Assess
      expect(signature).toHaveLength(64);
    });

    it('turns a KMS throttling error into issuer_unavailable, keeping the cause', async () => {
      // Prepare
      const kms = fakeKms();
      const signer = new KmsSigner({ client: kms.client, activeKeyId: kms.createKey() });
      const kid = await signer.activeKid();
      const throttled = throttling();
      kms.mock.on(SignCommand).rejects(throttled);

      // Act
      const error = await rejection(signer.sign(kid, new Uint8Array([1])));

      // Assess
      expect(error.code).toBe('issuer_unavailable');
      expect(error.retryable).toBe(true);
      expect(error.retryAfter).toBe(1);
      expect(error.cause).toBe(throttled);
    });

    it('turns a disabled key (KMSInvalidStateException) into issuer_unavailable', async () => {
      // Prepare
      const kms = fakeKms();
      const signer = new KmsSigner({ client: kms.client, activeKeyId: kms.createKey() });
      const kid = await signer.activeKid();
      kms.mock.on(SignCommand).rejects(new KMSInvalidStateException({ message: 'key is disabled', $metadata: {} }));

      // Act
      const error = await rejection(signer.sign(kid, new Uint8Array([1])));

      // Assess
      expect(error.code).toBe('issuer_unavailable');
    });

    it('turns the high-S signature KMS may return into its low-S twin, which still verifies', async () => {
      // Prepare: a KMS that always answers (r, n − s) when its own s is low
      const kms = fakeKms();
      kms.answerHighS = true;
      const signer = new KmsSigner({ client: kms.client, activeKeyId: kms.createKey(), clock: frozenClock() });
      const keys = createLocalJWKSet({ keys: await signer.publicJwks() });

      // Act
      const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => signAccessToken(signer, claims(i))));

      // Assess
      for (const { token } of tokens) {
        expect(isWellFormedP256Signature(Buffer.from(token.split('.')[2] ?? '', 'base64url'))).toBe(true);
        await expect(jwtVerify(token, keys, { algorithms: ['ES256'], typ: 'at+jwt' })).resolves.toBeDefined();
      }
    });

    it('fails closed when KMS returns a signature that is not strict DER', async () => {
      // Prepare
      const kms = fakeKms();
      const signer = new KmsSigner({ client: kms.client, activeKeyId: kms.createKey() });
      const kid = await signer.activeKid();
      kms.mock.on(SignCommand).resolves({ Signature: new Uint8Array([0x30, 0x02, 0x02, 0x00]) });

      // Act
      const error = await rejection(signer.sign(kid, new Uint8Array([1])));

      // Assess
      expect(error.code).toBe('issuer_unavailable');
      expect((error.cause as { code?: string }).code).toBe('bad_length');
    });

    it('refuses a kid that belongs to no configured key', async () => {
      // Prepare
      const kms = fakeKms();
      const signer = new KmsSigner({ client: kms.client, activeKeyId: kms.createKey() });

      // Act
      const error = await rejection(signer.sign('not-a-kid', new Uint8Array([1])));

      // Assess
      expect(error.code).toBe('issuer_unavailable');
      expect(kms.mock.commandCalls(SignCommand)).toHaveLength(0);
    });
  });

  describe('Method: activeKid', () => {
    it('is the RFC 7638 thumbprint of the public key, the same for every signer and reference', async () => {
      // Prepare
      const kms = fakeKms();
      const keyId = kms.createKey();
      kms.aliases.set('alias/lanyard-signing', keyId);
      const arn = `arn:aws:kms:${REGION}:${ACCOUNT}:key/${keyId}`;
      const aliasArn = `arn:aws:kms:${REGION}:${ACCOUNT}:alias/lanyard-signing`;

      // Act
      const kids = await Promise.all(
        [keyId, arn, 'alias/lanyard-signing', aliasArn].map((ref) => new KmsSigner({ client: kms.client, activeKeyId: ref }).activeKid()),
      );

      // Assess
      const jwk = kms.keys.get(keyId)?.privateKey.export({ format: 'jwk' });
      const { calculateJwkThumbprint } = await import('jose');
      const expected = await calculateJwkThumbprint({ kty: 'EC', crv: 'P-256', x: jwk?.x, y: jwk?.y }, 'sha256');
      expect(new Set(kids)).toEqual(new Set([expected]));
    });

    it('shares one GetPublicKey between concurrent misses and caches a key id for good', async () => {
      // Prepare
      const kms = fakeKms();
      const clock = frozenClock();
      const signer = new KmsSigner({ client: kms.client, activeKeyId: kms.createKey(), clock });

      // Act
      await Promise.all(Array.from({ length: 20 }, () => signer.activeKid()));
      clock.advance(24 * 3600 * 1000);
      await signer.activeKid();

      // Assess
      expect(kms.mock.commandCalls(GetPublicKeyCommand)).toHaveLength(1);
    });

    it('resolves an alias again once its TTL has passed, and follows it when it moved', async () => {
      // Prepare
      const kms = fakeKms();
      const first = kms.createKey();
      const second = kms.createKey();
      kms.aliases.set('alias/lanyard-signing', first);
      const clock = frozenClock();
      const signer = new KmsSigner({ client: kms.client, activeKeyId: 'alias/lanyard-signing', publicKeyCacheTtlMs: 5_000, clock });
      const before = await signer.activeKid();
      kms.aliases.set('alias/lanyard-signing', second);

      // Act
      clock.advance(4_999);
      const stillCached = await signer.activeKid();
      clock.advance(1);
      const after = await signer.activeKid();

      // Assess
      expect(stillCached).toBe(before);
      expect(after).not.toBe(before);
      expect(kms.mock.commandCalls(GetPublicKeyCommand)).toHaveLength(2);
    });

    it('does not cache a failed lookup', async () => {
      // Prepare
      const kms = fakeKms();
      const keyId = kms.createKey();
      const signer = new KmsSigner({ client: kms.client, activeKeyId: keyId });
      kms.getPublicKeyFailures.push(throttling());

      // Act
      const error = await rejection(signer.activeKid());
      const kid = await signer.activeKid();

      // Assess
      expect(error.code).toBe('issuer_unavailable');
      expect(kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    });

    it('turns an unknown key into issuer_unavailable', async () => {
      // Prepare
      const kms = fakeKms();
      const signer = new KmsSigner({ client: kms.client, activeKeyId: 'alias/missing' });

      // Act
      const error = await rejection(signer.activeKid());

      // Assess
      expect(error.code).toBe('issuer_unavailable');
      expect(error.cause).toBeInstanceOf(NotFoundException);
    });
  });

  describe('Method: publicJwks', () => {
    it('publishes the active key and the staged and retired keys, each once, with kid, alg and use', async () => {
      // Prepare
      const kms = fakeKms();
      const active = kms.createKey();
      const staged = kms.createKey();
      const retired = kms.createKey();
      kms.aliases.set('alias/lanyard-signing', active);
      const signer = new KmsSigner({
        client: kms.client,
        activeKeyId: 'alias/lanyard-signing',
        publishedKeyIds: [staged, retired, active],
      });

      // Act
      const jwks = await signer.publicJwks();

      // Assess
      expect(jwks).toHaveLength(3);
      expect(new Set(jwks.map((jwk) => jwk.kid)).size).toBe(3);
      for (const jwk of jwks) {
        expect(Object.keys(jwk).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
        expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
      }
      expect(jwks.map((jwk) => jwk.kid)).toContain(await signer.activeKid());
    });

    it('asks a publishedKeyIds function at most once per TTL', async () => {
      // Prepare
      const kms = fakeKms();
      const active = kms.createKey();
      const staged = kms.createKey();
      const clock = frozenClock();
      let calls = 0;
      const signer = new KmsSigner({
        client: kms.client,
        activeKeyId: active,
        publishedKeyIds: () => {
          calls++;
          return Promise.resolve(calls === 1 ? [] : [staged]);
        },
        publicKeyCacheTtlMs: 1_000,
        clock,
      });

      // Act
      const first = await Promise.all([signer.publicJwks(), signer.publicJwks()]);
      clock.advance(1_000);
      const later = await signer.publicJwks();

      // Assess
      expect(calls).toBe(2);
      expect(first[0]).toHaveLength(1);
      expect(later).toHaveLength(2);
    });
  });

  describe('Method: warmUp', () => {
    it('throws at start-up, with a clear message, for a key that is not ECC_NIST_P256 SIGN_VERIFY', async () => {
      // Prepare
      const kms = fakeKms();
      const rsa = kms.createKey('RSA_2048', 'SIGN_VERIFY');
      const signer = new KmsSigner({ client: kms.client, activeKeyId: rsa });

      // Act + Assess
      await expect(signer.warmUp()).rejects.toThrow(/is RSA_2048 for SIGN_VERIFY; Lanyard signs ES256 and needs a ECC_NIST_P256 key/);
    });

    it('throws at start-up for an ECC key made for key agreement', async () => {
      // Prepare
      const kms = fakeKms();
      const signer = new KmsSigner({ client: kms.client, activeKeyId: kms.createKey('ECC_NIST_P256', 'KEY_AGREEMENT') });

      // Act + Assess
      await expect(signer.warmUp()).rejects.toThrow(/for KEY_AGREEMENT/);
    });

    it('reports the same misconfiguration as issuer_unavailable once serving', async () => {
      // Prepare
      const kms = fakeKms();
      const signer = new KmsSigner({ client: kms.client, activeKeyId: kms.createKey('RSA_2048', 'SIGN_VERIFY') });

      // Act
      const error = await rejection(signer.activeKid());

      // Assess
      expect(error.code).toBe('issuer_unavailable');
      expect((error.cause as Error).message).toMatch(/needs a ECC_NIST_P256 key/);
    });
  });

  describe('Method: constructor', () => {
    it('refuses an empty key id and a non-positive cache TTL', () => {
      // Prepare
      const client = new KMSClient({ region: REGION });

      // Act + Assess
      expect(() => new KmsSigner({ client, activeKeyId: ' ' })).toThrow(/activeKeyId must name a KMS key/);
      expect(() => new KmsSigner({ client, activeKeyId: 'k', publicKeyCacheTtlMs: 0 })).toThrow(/publicKeyCacheTtlMs must be a positive/);
      expect(() => new KmsSigner({ client, activeKeyId: 'k', publishedKeyIds: [''] })).toThrow(/publishedKeyIds must be/);
    });
  });
});
