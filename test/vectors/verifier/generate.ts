/**
 * Writes test/vectors/verifier/vectors.json: tokens a verifier must accept or refuse, with the
 * JWKS they are checked against and the code each refusal must carry. The TypeScript verifier
 * test and the Python SDK's pytest suite both read that file, so the two verifiers cannot drift.
 *
 * Signatures are random (ECDSA) and the key is new on every run, so the file is generated once
 * and committed; run this again only to add or change a vector:
 *
 *   node_modules/.bin/node --conditions=@lanyard/source test/vectors/verifier/generate.ts
 */
import { writeFileSync } from 'node:fs';
import { AUDIENCE, createSigningKey, NOW } from '../../sdk/fixtures/fake-issuer.ts';
import type { SigningKey } from '../../sdk/fixtures/fake-issuer.ts';
import { b64url, claims, header, highS, hs256WithPublicKey, P256_N, padded, sign, signParts, strayBits, withSignature } from '../../sdk/fixtures/tokens.ts';

/** The issuer the vectors were minted for: https, so no verifier can refuse it as a URL; never contacted. */
export const VECTOR_ISSUER = 'https://issuer.vectors.lanyard.test';

interface Vector {
  readonly name: string;
  readonly token: string;
  /** The action(s) the verification asks for. */
  readonly action?: string[];
  /** A refusal: the code, and the exact message when the vector pins it. */
  readonly refuse?: { readonly code: string; readonly message?: string };
  /** An acceptance: claims the result must carry, and claims it must not. */
  readonly accept?: { readonly claims: Record<string, unknown>; readonly absent?: string[] };
}

async function vectors(key: SigningKey): Promise<Vector[]> {
  const iss = VECTOR_ISSUER;
  const valid = (payload: Record<string, unknown> = {}, headerOverrides: Record<string, unknown> = {}): Promise<string> =>
    sign(key, header(key, headerOverrides), claims(iss, payload));
  const refuse = (name: string, token: string, code: string, message?: string, action?: string[]): Vector => ({
    name,
    token,
    refuse: message === undefined ? { code } : { code, message },
    ...(action && { action }),
  });
  const base = await valid();
  const out: Vector[] = [];

  // Acceptances: what a hostile-token check must not break.
  out.push({ name: 'a valid token', token: base, action: ['tickets:read'], accept: { claims: { iss, sub: 'support-triage/prod', aud: AUDIENCE, jti: 'cred_01', scope: 'tickets:read tickets:list', lane: 'support-triage/prod:tickets:read:acme', tenant: 'acme' } } });
  for (const typ of ['application/at+jwt', 'AT+JWT']) out.push({ name: `typ ${typ}`, token: await valid({}, { typ }), accept: { claims: { jti: 'cred_01' } } });
  out.push({ name: 'an aud array naming our audience', token: await valid({ aud: ['https://other.example', AUDIENCE] }), accept: { claims: { sub: 'support-triage/prod' } } });
  out.push({ name: 'expired by less than the clock tolerance', token: await valid({ exp: NOW - 4 }), accept: { claims: { exp: NOW - 4 } } });
  const proto = JSON.stringify(claims(iss)).replace(/^\{/, '{"__proto__":{"polluted":true,"scope":"tickets:purge"},');
  out.push({ name: 'a __proto__ claim (dropped)', token: await signParts(key, b64url(JSON.stringify(header(key))), b64url(proto)), accept: { claims: { scope: 'tickets:read tickets:list' }, absent: ['__proto__', 'polluted'] } });
  const escaped = JSON.stringify(claims(iss)).replace(/^\{/, '{"\\u005f_proto__":{"polluted":true},');
  out.push({ name: 'a __proto__ claim spelled with JSON escapes (dropped)', token: await signParts(key, b64url(JSON.stringify(header(key))), b64url(escaped)), accept: { claims: { jti: 'cred_01' }, absent: ['__proto__'] } });

  // The algorithm.
  out.push(refuse('alg none', `${b64url(JSON.stringify(header(key, { alg: 'none' })))}.${b64url(JSON.stringify(claims(iss)))}.`, 'signature_invalid', 'the token algorithm is not allowed'));
  out.push(refuse('HS256 signed with the public key (algorithm confusion)', hs256WithPublicKey(key, claims(iss)), 'signature_invalid', 'the token algorithm is not allowed'));
  const p384 = await createSigningKey('ES384');
  out.push(refuse('ES384 signed with a P-384 key', await signParts(p384, b64url(JSON.stringify(header(p384, { alg: 'ES384' }))), b64url(JSON.stringify(claims(iss))), 'SHA-384'), 'signature_invalid'));

  // The signature.
  const scalar = (fill: number): Buffer => Buffer.alloc(32, fill);
  const one = Buffer.concat([Buffer.alloc(31), Buffer.from([1])]);
  const nPlusOne = Buffer.from(P256_N);
  nPlusOne[31] = (nPlusOne[31] ?? 0) + 1;
  const signatures: [string, Buffer][] = [
    ['r = 0', Buffer.concat([scalar(0), one])],
    ['s = 0', Buffer.concat([one, scalar(0)])],
    ['r = s = 0 (psychic signature)', Buffer.alloc(64)],
    ['r = n', Buffer.concat([P256_N, one])],
    ['s = n', Buffer.concat([one, P256_N])],
    ['r = n + 1', Buffer.concat([nPlusOne, one])],
    ['s > n', Buffer.concat([one, scalar(0xff)])],
    ['63 bytes', Buffer.alloc(63, 1)],
    ['65 bytes', Buffer.alloc(65, 1)],
    ['a DER-encoded signature', Buffer.concat([Buffer.from([0x30, 0x44, 0x02, 0x20]), scalar(1), Buffer.from([0x02, 0x20]), scalar(1)])],
  ];
  for (const [name, bytes] of signatures) out.push(refuse(`a signature with ${name}`, withSignature(base, bytes), 'signature_invalid', 'the token signature is invalid'));
  out.push(refuse('the high-S twin (R, n − S) of a valid signature', highS(base), 'signature_invalid'));
  const other = await valid({ jti: 'cred_02' });
  out.push(refuse('a well-formed signature made for another payload', withSignature(base, Buffer.from(other.split('.')[2] ?? '', 'base64url')), 'signature_invalid'));
  const [encodedHeader, , signature] = base.split('.');
  out.push(refuse('a tampered payload', `${encodedHeader}.${b64url(JSON.stringify(claims(iss, { scope: 'tickets:read tickets:purge' })))}.${signature}`, 'signature_invalid'));
  const stranger = await createSigningKey();
  out.push(refuse('a kid the JWKS does not hold', await sign(stranger, header(stranger), claims(iss)), 'unknown_key'));

  // The header.
  out.push(refuse('no kid', await sign(key, { alg: 'ES256', typ: 'at+jwt' }, claims(iss)), 'token_malformed', 'the token header has no kid'));
  const members: [string, unknown][] = [
    ['jku', 'https://attacker.example/jwks.json'],
    ['x5u', 'https://attacker.example/cert.pem'],
    ['jwk', { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }],
    ['x5c', ['MIIB']],
    ['crit', ['exp']],
    ['b64', false],
  ];
  for (const [member, value] of members) out.push(refuse(`a ${member} header member`, await valid({}, { [member]: value }), 'token_malformed', 'the token header has a member this verifier does not accept'));
  const attacker = await createSigningKey();
  out.push(refuse('an embedded jwk that signed the token', await sign(attacker, header(key, { jwk: attacker.publicJwk }), claims(iss)), 'token_malformed'));
  for (const typ of ['JWT', 'jwt', 'at+jwt; charset=utf-8', undefined, 42]) {
    const token = await sign(key, { alg: 'ES256', kid: key.kid, ...(typ !== undefined && { typ }) }, claims(iss));
    out.push(refuse(`typ ${JSON.stringify(typ) ?? 'absent'}`, token, 'token_malformed', 'the token is not an access token (typ at+jwt)'));
  }

  // One string per token.
  out.push(refuse('a valid token padded with ==', padded(base), 'token_malformed'));
  out.push(refuse('a valid token with stray bits in its last character', strayBits(base), 'token_malformed'));

  // The encoding.
  out.push(refuse('an oversized token', await valid({ padding: 'x'.repeat(9000) }), 'token_malformed', 'the token is too large'));
  const mangles: [string, (token: string) => string][] = [
    ['padding', (token) => `${token}=`],
    ['padding in the header', (token) => token.replace('.', '=.')],
    ['a +', (token) => `${token.slice(0, -2)}+${token.slice(-1)}`],
    ['a /', (token) => `/${token.slice(1)}`],
    ['an illegal character', (token) => `*${token.slice(1)}`],
    ['whitespace', (token) => ` ${token}`],
    ['two parts', (token) => token.slice(0, token.lastIndexOf('.'))],
    ['four parts', (token) => `${token}.e30`],
    ['an empty payload', (token) => token.replace(/\.[^.]+\./, '..')],
    ['an empty token', () => ''],
  ];
  for (const [name, mangle] of mangles) out.push(refuse(`a token with ${name}`, mangle(base), 'token_malformed'));
  const payloads: [string, string][] = [['an array', '[1,2]'], ['a string', '"claims"'], ['null', 'null'], ['not JSON', '{"iss":'], ['a number', '42'], ['NaN inside', '{"exp":NaN}']];
  for (const [name, json] of payloads) {
    out.push(refuse(`a signed payload that is ${name}`, await signParts(key, b64url(JSON.stringify(header(key))), b64url(json)), 'token_malformed', 'the token payload is not a JSON object'));
  }
  out.push(refuse('a header that is not a JSON object', await signParts(key, b64url('["ES256"]'), b64url(JSON.stringify(claims(iss)))), 'token_malformed'));

  // The claims.
  out.push(refuse('an expired token', await valid({ exp: NOW - 6 }), 'token_expired', 'the token has expired'));
  out.push(refuse('nbf in the future', await valid({ nbf: NOW + 60 }), 'token_not_yet_valid', 'the token is not valid yet'));
  out.push(refuse('iat in the future', await valid({ iat: NOW + 60, nbf: undefined }), 'token_not_yet_valid', 'the token was issued in the future'));
  out.push(refuse('another issuer', await valid({ iss: 'https://evil.example' }), 'wrong_issuer'));
  out.push(refuse('an issuer that differs only by a trailing slash', await valid({ iss: `${iss}/` }), 'wrong_issuer'));
  const audiences: [string, unknown][] = [['another audience', 'https://billing.example.internal'], ['no audience', undefined], ['an array without ours', ['https://a.example']]];
  for (const [name, aud] of audiences) out.push(refuse(`a token for ${name}`, await valid({ aud }), 'wrong_audience'));
  for (const claim of ['exp', 'iat', 'jti', 'sub', 'lane', 'scope', 'iss']) {
    out.push(refuse(`a token without ${claim}`, await valid({ [claim]: undefined }), 'token_malformed', `the token has no ${claim} claim`));
  }
  out.push(refuse('exp as a string', await valid({ exp: String(NOW + 60) }), 'token_malformed'));
  out.push(refuse('exp as a boolean', await valid({ exp: true }), 'token_malformed'));

  // The action.
  out.push(refuse('an action the scope does not grant', base, 'insufficient_scope', 'the token does not grant the required action', ['tickets:read', 'tickets:reply']));
  out.push(refuse('a prefix of a granted action', base, 'insufficient_scope', undefined, ['tickets:rea']));
  return out;
}

const key = await createSigningKey();
const document = {
  description: 'Shared verifier vectors: test/sdk/verifier.test.ts and python/tests/test_vectors.py read this file. Generated by generate.ts.',
  issuer: VECTOR_ISSUER,
  audience: AUDIENCE,
  now: NOW,
  clockToleranceSeconds: 5,
  maxTokenBytes: 8192,
  jwks: { keys: [key.publicJwk] },
  vectors: await vectors(key),
};
writeFileSync(new URL('vectors.json', import.meta.url), `${JSON.stringify(document, null, 2)}\n`);
console.log(`wrote ${document.vectors.length} vectors`);
