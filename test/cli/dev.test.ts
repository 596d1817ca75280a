import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { startIssuer } from '../../cli/dev.ts';
import { startDevServer } from '../../cli/dev-server.ts';
import { DecisionLog } from '../../shared/decision-log.ts';
import { silentLog } from '../../shared/log.ts';
import { PolicyView } from '../../shared/policy-view.ts';
import { storeWithFaults } from '../helpers/faults.ts';
import { KEYS, startTestIssuer, type TestIssuer } from '../helpers/issuer.ts';

const READ = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };

describe('Command: lanyard dev', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });

  it('starts from the example policy on a first run and prints a curl that gets a credential', async () => {
    // Prepare
    const dataDir = await mkdtemp(join(tmpdir(), 'lanyard-dev-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const lines: string[] = [];
    const { runDevForTest } = await import('../helpers/run-dev.ts');

    // Act
    const issuer = await runDevForTest({ dataDir, out: (l) => lines.push(l) });
    cleanup.push(() => issuer.close());
    const curl = lines.find((l) => l.includes('curl -s -X POST'))!;
    const key = /Bearer (lk_[A-Za-z0-9_-]+)/.exec(curl)![1]!;
    const body = /-d '([^']+)'/.exec(curl)![1]!;
    const res = await fetch(`${issuer.server.url}/v1/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body,
    });

    // Assess
    expect(curl).toContain(`${issuer.server.url}/v1/credentials`);
    expect(res.status).toBe(201);
    expect(((await res.json()) as { token: string }).token.split('.')).toHaveLength(3);
  });

  it('keeps its state and its key id across a restart, and keeps the key file private', async () => {
    // Prepare
    const dataDir = await mkdtemp(join(tmpdir(), 'lanyard-dev-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const first = await startTestIssuer({ dataDir, inMemory: false });
    const before = await first.post('/v1/credentials', READ, KEYS.agent);
    await first.stop();

    // Act
    const second = await startIssuer({ port: 0, host: '127.0.0.1', dataDir, out: () => {} });
    cleanup.push(() => second.close());
    const res = await fetch(`${second.server.url}/v1/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.agent}`, 'content-type': 'application/json' },
      body: JSON.stringify(READ),
    });
    const after = (await res.json()) as { token: string };

    // Assess
    expect(res.status).toBe(201);
    expect(second.applied).toBeUndefined();
    expect(decodeProtectedHeader(after.token).kid).toBe(decodeProtectedHeader(before.body.token).kid);
    expect(await second.runtime.store.getCredential(before.body.credentialId)).toMatchObject({ decision: 'issued' });
    expect((await stat(join(dataDir, 'signing-key.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(dataDir)).mode & 0o077).toBe(0);
  });
});

describe('Issuer: failing closed', () => {
  let issuer: TestIssuer;
  afterEach(() => issuer.stop());

  it('returns issuer_unavailable and no credential when the issuance record cannot be written', async () => {
    // Prepare: the same runtime, but a store whose decision writes fail.
    issuer = await startTestIssuer();
    const store = issuer.runtime.store;
    const failing = storeWithFaults(store, { putDecisions: new Error('ProvisionedThroughputExceededException') });
    const runtime = { ...issuer.runtime, log: silentLog, store: failing, decisions: new DecisionLog({ store: failing }) };
    const server = await startDevServer({ runtime, port: 0 });

    // Act
    const res = await fetch(`${server.url}/v1/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.agent}`, 'content-type': 'application/json' },
      body: JSON.stringify(READ),
    });
    const body = (await res.json()) as { token?: string; error: { code: string; retryable: boolean; message: string } };
    await server.close();

    // Assess
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(body.token).toBeUndefined();
    expect(body.error).toMatchObject({ code: 'issuer_unavailable', retryable: true });
    expect(body.error.message).not.toContain('Provisioned');
  });

  it('returns issuer_unavailable when the store cannot be read', async () => {
    issuer = await startTestIssuer();
    const failing = storeWithFaults(issuer.runtime.store, { getIdentityWithGrants: new Error('socket hang up') });
    const logged: Record<string, unknown>[] = [];
    const log = { ...silentLog, error: (_m: string, extra?: Record<string, unknown>) => void logged.push(extra ?? {}) };
    const runtime = { ...issuer.runtime, log, store: failing, policy: new PolicyView({ store: failing, clock: issuer.runtime.clock }) };
    const server = await startDevServer({ runtime, port: 0 });

    const res = await fetch(`${server.url}/v1/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.agent}`, 'content-type': 'application/json' },
      body: JSON.stringify(READ),
    });
    await server.close();

    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('issuer_unavailable');
    expect(JSON.stringify(logged)).toContain('socket hang up');
  });
});
