/**
 * The local server's operator routes on a real local issuer (SQLite in memory, file signer):
 * `/healthz`, `/readyz`, `/metrics` scraped and parsed after real issuance, denials, a
 * revocation and broker refusals; and a graceful drain with a request in flight.
 */
import { mkdir, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startDevServer } from '../../../../shared/bootstrap/local/server.ts';
import { KEYS, startTestIssuer, type TestIssuer } from '../../../helpers/issuer.ts';
import { parsePrometheusText, sampleValue, type Sample } from '../../../helpers/prometheus-text.ts';

const READ = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };

describe('Local server: operator routes', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });
  const start = async () => {
    const issuer = await startTestIssuer();
    cleanup.push(() => issuer.stop());
    return issuer;
  };
  const scrape = async (issuer: TestIssuer): Promise<Sample[]> => {
    const res = await fetch(`${issuer.url}/metrics`, { headers: { authorization: `Bearer ${KEYS.verifier}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    return parsePrometheusText(await res.text());
  };

  it('GET /healthz answers 200 {"status":"ok"} without a key', async () => {
    // Prepare
    const issuer = await start();

    // Act
    const res = await issuer.get('/healthz');

    // Assess
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('GET /readyz answers 200 while the store answers and the key is loaded, and the probe fails once the services are closed', async () => {
    // Prepare
    const issuer = await start();

    // Act
    const ready = await issuer.get('/readyz');
    await issuer.runtime.ready();
    const probeAfterClose = (async () => {
      const other = await startTestIssuer();
      await other.stop();
      return other.runtime.ready();
    })();

    // Assess
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready' });
    await expect(probeAfterClose).rejects.toThrow('closed');
  });

  it('GET /readyz answers 503 once the data dir is gone, and 200 again when it is back', async () => {
    // Prepare: an in-memory store, so only the data dir (key file, events log) goes away.
    const issuer = await start();
    const before = await issuer.get('/readyz');

    // Act
    await rm(issuer.dataDir, { recursive: true, force: true });
    const gone = await issuer.get('/readyz');
    await mkdir(issuer.dataDir, { mode: 0o700 });
    const back = await issuer.get('/readyz');

    // Assess
    expect(before.status).toBe(200);
    expect(gone.status).toBe(503);
    expect(gone.body.error.code).toBe('issuer_unavailable');
    expect(back.status).toBe(200);
  });

  it('GET /readyz answers 503 issuer_unavailable, naming no cause, when the probe fails', async () => {
    // Prepare: a server whose readiness probe fails as a broken store would.
    const issuer = await start();
    const server = await startDevServer({ runtime: issuer.runtime, port: 0, ready: () => Promise.reject(new Error('dynalite: Database is closed at /secret/path')) });
    cleanup.push(() => server.close());

    // Act
    const res = await fetch(`${server.url}/readyz`);
    const body = (await res.json()) as { error: { code: string; message: string; retryable: boolean } };

    // Assess
    expect(res.status).toBe(503);
    expect(body.error).toMatchObject({ code: 'issuer_unavailable', retryable: true });
    expect(body.error.message).toBe('not ready: the store or the signing key is not available');
    expect(JSON.stringify(body)).not.toContain('/secret/path');
  });

  it('GET /metrics needs a verifier or admin key', async () => {
    // Prepare
    const issuer = await start();

    // Act
    const anonymous = await issuer.get('/metrics');
    const agent = await issuer.get('/metrics', KEYS.agent);
    const admin = await fetch(`${issuer.url}/metrics`, { headers: { authorization: `Bearer ${KEYS.admin}` } });

    // Assess
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error.code).toBe('unauthenticated');
    expect(agent.status).toBe(403);
    expect(admin.status).toBe(200);
  });

  it('counts issuance by outcome with its latency, denials by code, store commits and their batch sizes', async () => {
    // Prepare
    const issuer = await start();

    // Act
    const issued = await issuer.post('/v1/credentials', READ, KEYS.agent);
    const secondIssued = await issuer.post('/v1/credentials', READ, KEYS.agent);
    const denied = await issuer.post('/v1/credentials', { ...READ, tenant: 'initech' }, KEYS.agent);
    const unauthenticated = await issuer.post('/v1/credentials', READ, 'lk_not_a_key_of_this_issuer_00000000');
    const samples = await scrape(issuer);

    // Assess
    expect([issued.status, secondIssued.status]).toEqual([201, 201]);
    expect(denied.status).toBe(403);
    expect(unauthenticated.status).toBe(401);
    expect(sampleValue(samples, 'lanyard_issuance_total', { outcome: 'issued' })).toBe(2);
    expect(sampleValue(samples, 'lanyard_issuance_total', { outcome: 'denied' })).toBe(2);
    expect(sampleValue(samples, 'lanyard_issuance_total', { outcome: 'error' })).toBe(0);
    expect(sampleValue(samples, 'lanyard_issuance_duration_seconds_count', { outcome: 'issued' })).toBe(2);
    expect(sampleValue(samples, 'lanyard_issuance_duration_seconds_bucket', { outcome: 'issued', le: '+Inf' })).toBe(2);
    expect(sampleValue(samples, 'lanyard_denials_total', { code: denied.body.error.code as string })).toBe(1);
    expect(sampleValue(samples, 'lanyard_denials_total', { code: 'unauthenticated' })).toBe(1);
    // Every decision with a record (two issued, one denied) is committed through the hook.
    expect(sampleValue(samples, 'lanyard_store_commit_batch_size_sum')).toBeGreaterThanOrEqual(3);
    expect(sampleValue(samples, 'lanyard_store_commit_batch_size_count')).toBeGreaterThanOrEqual(1);
    expect(sampleValue(samples, 'lanyard_store_commit_duration_seconds_count')).toBe(sampleValue(samples, 'lanyard_store_commit_batch_size_count'));
  });

  it('counts committed revocations by target kind', async () => {
    // Prepare
    const issuer = await start();
    const issued = await issuer.post('/v1/credentials', READ, KEYS.agent);

    // Act
    const revoked = await issuer.post('/v1/admin', { command: 'revoke', target: { credential: issued.body.credentialId }, reason: 'metrics test' }, KEYS.admin);
    const lane = await issuer.post('/v1/admin', { command: 'revoke', target: { tenant: 'globex' }, reason: 'metrics test' }, KEYS.admin);
    // The count follows the event bus, which publishes from committed state: wait for both.
    let samples = await scrape(issuer);
    while (sampleValue(samples, 'lanyard_revocations_total', { target_kind: 'tenant' }) === 0) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      samples = await scrape(issuer);
    }

    // Assess
    expect([revoked.status, lane.status]).toEqual([200, 200]);
    expect(sampleValue(samples, 'lanyard_revocations_total', { target_kind: 'credential' })).toBe(1);
    expect(sampleValue(samples, 'lanyard_revocations_total', { target_kind: 'tenant' })).toBe(1);
    expect(sampleValue(samples, 'lanyard_revocations_total', { target_kind: 'lane' })).toBe(0);
  });

  it('counts broker refusals under a known tool by name and under "unknown" otherwise', async () => {
    // Prepare
    const issuer = await start();

    // Act
    const known = await fetch(`${issuer.url}/v1/proxy/tickets/v1/things`);
    const unknown = await fetch(`${issuer.url}/v1/proxy/no-such-provider-${Date.now()}/v1/things`);
    await Promise.all([known.text(), unknown.text()]);
    // The label is settled after the answer (a policy lookup): wait until both are counted.
    let samples = await scrape(issuer);
    while (sampleValue(samples, 'lanyard_broker_calls_total', { provider: 'unknown', outcome: 'refused' }) + sampleValue(samples, 'lanyard_broker_calls_total', { provider: 'tickets', outcome: 'refused' }) < 2) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      samples = await scrape(issuer);
    }

    // Assess
    expect(known.status).toBeGreaterThanOrEqual(400);
    expect(known.status).toBeLessThan(500);
    expect(unknown.status).toBeGreaterThanOrEqual(400);
    expect(sampleValue(samples, 'lanyard_broker_calls_total', { provider: 'tickets', outcome: 'refused' })).toBe(1);
    expect(sampleValue(samples, 'lanyard_broker_calls_total', { provider: 'unknown', outcome: 'refused' })).toBe(1);
    expect(samples.some((s) => s.labels.provider?.startsWith('no-such-provider'))).toBe(false);
  });
});

describe('Local issuer: graceful drain', () => {
  /** A credential request whose headers the server has taken (100 Continue) and whose body is held back. */
  const heldRequest = (url: string) => {
    const body = JSON.stringify(READ);
    const req = httpRequest(`${url}/v1/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.agent}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), expect: '100-continue' },
    });
    const accepted = new Promise<void>((resolve) => req.once('continue', resolve));
    const answer = new Promise<{ status: number; connection: string | undefined; text: string }>((resolve, reject) => {
      req.once('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, text }));
        res.once('error', reject);
      });
      req.once('error', reject);
    });
    req.flushHeaders();
    return { accepted, answer, send: () => req.end(body) };
  };

  it('answers the request in flight in full on a closing connection, refuses new connections, then closes the store', async () => {
    // Prepare
    const issuer = await startTestIssuer();
    const held = heldRequest(issuer.url);
    await held.accepted;

    // Act
    const drained = issuer.drain(600_000);
    const refused = await fetch(`${issuer.url}/healthz`).then(
      () => 'answered',
      (error: Error) => (error.cause as NodeJS.ErrnoException | undefined)?.code,
    );
    held.send();
    const answer = await held.answer;
    const result = await drained;

    // Assess
    expect(refused).toBe('ECONNREFUSED');
    expect(answer.status).toBe(201);
    expect(answer.connection).toBe('close');
    expect((JSON.parse(answer.text) as { token: string }).token.split('.')).toHaveLength(3);
    expect(result).toEqual({ cut: 0 });
    await expect(issuer.runtime.ready()).rejects.toThrow('closed');
    await rm(issuer.dataDir, { recursive: true, force: true });
  });

  it('cuts a request still unanswered at the deadline, and still stops', async () => {
    // Prepare: a request whose body never comes.
    const issuer = await startTestIssuer();
    const held = heldRequest(issuer.url);
    await held.accepted;

    // Act
    const outcome = held.answer.then(
      () => 'answered',
      () => 'cut',
    );
    const result = await issuer.drain(50);
    const answer = await outcome;

    // Assess
    expect(result).toEqual({ cut: 1 });
    expect(answer).toBe('cut');
    await rm(issuer.dataDir, { recursive: true, force: true });
  });
});
