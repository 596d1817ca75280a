/**
 * The ceiling: how many ES256 signatures `node:crypto` makes per second on one core of this
 * machine, over a signing input the size of a Lanyard access token's header and payload.
 * Nothing else should run while it is measured.
 */
import { generateKeyPairSync, sign, webcrypto } from 'node:crypto';
import { performance } from 'node:perf_hooks';

export interface SignRate {
  readonly signatures: number;
  /** CPU time of this process, all threads (the threadpool included), per signature. */
  readonly cpuMicrosPerSignature: number;
  readonly elapsedMs: number;
  readonly perSecond: number;
  readonly microsPerSignature: number;
  readonly inputBytes: number;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A realistic JWS signing input: the header and claims Lanyard puts in an access token. */
export function jwtSigningInput(): Buffer {
  const iat = Math.floor(Date.now() / 1000);
  const header = { alg: 'ES256', typ: 'at+jwt', kid: 'pQq3nP6xkqv0Yl7kW9bQ2w3c1n2Vx8ZsRt5uHf4gLmA' };
  const claims = {
    iss: 'http://127.0.0.1:8787',
    sub: 'support-triage/dev',
    aud: 'https://tickets.example.internal',
    exp: iat + 300,
    iat,
    nbf: iat,
    jti: 'crd_3q2l1ZkT8y0n4mW6xR9vHg',
    client_id: 'triage-worker-1',
    scope: 'tickets:read',
    lane: 'support-triage/dev:tickets:read:acme',
    tenant: 'acme',
    env: 'dev',
    role: 'support-triage@1',
  };
  return Buffer.from(`${b64(header)}.${b64(claims)}`);
}

export function measureSignRate(seconds: number): SignRate {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const input = jwtSigningInput();
  const options = { key: privateKey, dsaEncoding: 'ieee-p1363' as const };
  // Warm-up: let V8 and OpenSSL settle before timing.
  for (let i = 0; i < 500; i += 1) sign('sha256', input, options);
  const budgetMs = seconds * 1000;
  let signatures = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  let elapsedMs = 0;
  while (elapsedMs < budgetMs) {
    for (let i = 0; i < 200; i += 1) sign('sha256', input, options);
    signatures += 200;
    elapsedMs = performance.now() - start;
  }
  return {
    signatures,
    cpuMicrosPerSignature: cpuMicros(process.cpuUsage(cpu)) / signatures,
    elapsedMs,
    perSecond: (signatures * 1000) / elapsedMs,
    microsPerSignature: (elapsedMs * 1000) / signatures,
    inputBytes: input.length,
  };
}

function cpuMicros(usage: NodeJS.CpuUsage): number {
  return usage.user + usage.system;
}

/**
 * The same signatures through WebCrypto (`subtle.sign`, ECDSA P-256 SHA-256), `concurrency`
 * at a time, as the local signer made them before issue 12: the work goes to libuv's
 * threadpool, so the wall-clock rate can exceed one core's while the CPU per signature, all
 * threads counted, is what the machine pays.
 */
export async function measureWebCryptoSignRate(seconds: number, concurrency: number): Promise<SignRate> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const key = await webcrypto.subtle.importKey('jwk', privateKey.export({ format: 'jwk' }), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const input = jwtSigningInput();
  const algorithm = { name: 'ECDSA', hash: 'SHA-256' } as const;
  for (let i = 0; i < 500; i += 1) await webcrypto.subtle.sign(algorithm, key, input);
  const budgetMs = seconds * 1000;
  let signatures = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  const worker = async () => {
    while (performance.now() - start < budgetMs) {
      await webcrypto.subtle.sign(algorithm, key, input);
      signatures += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = performance.now() - start;
  return {
    signatures,
    cpuMicrosPerSignature: cpuMicros(process.cpuUsage(cpu)) / signatures,
    elapsedMs,
    perSecond: (signatures * 1000) / elapsedMs,
    microsPerSignature: (elapsedMs * 1000) / signatures,
    inputBytes: input.length,
  };
}
