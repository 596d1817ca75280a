import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decodeProtectedHeader } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { printBanner, startIssuer, type RunningIssuer } from '../../cli/dev.ts';
import { startDevServer } from '../../shared/bootstrap/local/server.ts';
import { DecisionLog } from '../../shared/audit/decision-log.ts';
import { silentLog, type Log } from '../../shared/ports/log.ts';
import { PolicyView } from '../../shared/policy/policy-view.ts';
import { storeWithFaults } from '../helpers/faults.ts';
import { KEYS, startTestIssuer, type TestIssuer } from '../helpers/issuer.ts';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../cli/lanyard.ts');
/** A first `lanyard dev` process opens its database and makes its key in seconds; allow a loaded machine many times that. */
const SLOW_START_MS = 240_000;
const READ = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };

/** Runs `lanyard dev` as the CLI does (on a free port unless told), capturing what it prints. */
async function runDevForTest(options: { dataDir: string; out: (line: string) => void; port?: number; newKeys?: string[]; log?: Log }): Promise<RunningIssuer> {
  const issuer = await startIssuer({
    port: options.port ?? 0,
    host: '127.0.0.1',
    dataDir: options.dataDir,
    out: options.out,
    ...(options.newKeys && { newKeys: options.newKeys }),
    ...(options.log && { log: options.log }),
  });
  printBanner(issuer, options.dataDir, options.out);
  return issuer;
}

/** The key the banner printed for `principal`, if it printed one. */
function printedKey(lines: readonly string[], principal: string): string | undefined {
  for (const line of lines) {
    const match = /^\s+(\S+)\s+(lk_[A-Za-z0-9_-]+)$/.exec(line);
    if (match?.[1] === principal) return match[2];
  }
  return undefined;
}

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

describe('Command: lanyard dev, API keys', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });

  const newDataDir = async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'lanyard-dev-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    return dataDir;
  };
  /** Starts `lanyard dev` on `dataDir` and returns it with what it printed. */
  const start = async (dataDir: string, options: { port?: number; newKeys?: string[] } = {}) => {
    const lines: string[] = [];
    const issuer = await runDevForTest({ dataDir, out: (l) => lines.push(l), log: silentLog, ...options });
    cleanup.push(() => issuer.close());
    return { issuer, lines };
  };
  const listPrincipals = (issuer: RunningIssuer, key: string) =>
    fetch(`${issuer.server.url}/v1/admin`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ command: 'principal.list' }) });

  it('on a busy port fails before applying the policy or minting a key, so the next start prints the keys', async () => {
    // Prepare: a real listener holds the port.
    const dataDir = await newDataDir();
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const busy = (holder.address() as AddressInfo).port;
    const lines: string[] = [];

    // Act
    const failed = runDevForTest({ dataDir, out: (l) => lines.push(l), port: busy, log: silentLog });
    await expect(failed).rejects.toThrow(`port ${busy} on 127.0.0.1 is in use`);
    const next = await start(dataDir);

    // Assess
    expect(lines.join('\n')).not.toContain('lk_');
    const admin = printedKey(next.lines, 'admin');
    expect(admin).toBeDefined();
    expect((await listPrincipals(next.issuer, admin!)).status).toBe(200);
  });

  it('lanyard dev on a busy port exits 1, says which port and what to do, and prints no key', async () => {
    // Prepare
    const dataDir = await newDataDir();
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const busy = (holder.address() as AddressInfo).port;

    // Act
    const outcome = await run(process.execPath, [CLI, 'dev', '--port', String(busy), '--data-dir', dataDir], { timeout: SLOW_START_MS }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );

    // Assess
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toContain(`lanyard: port ${busy} on 127.0.0.1 is in use (another lanyard dev?): stop what holds it, or pass --port <another port>; nothing was applied and no API key was minted`);
    expect(outcome.stdout + outcome.stderr).not.toContain('lk_');
  }, SLOW_START_MS + 60_000);

  it('says how to replace a lost key when a start mints none, and --new-key prints a new one that replaces the old', async () => {
    // Prepare: the first start mints the keys; the second mints none.
    const dataDir = await newDataDir();
    const first = await start(dataDir);
    const lost = printedKey(first.lines, 'admin')!;
    await first.issuer.close();
    const second = await start(dataDir);
    await second.issuer.close();

    // Act
    const third = await start(dataDir, { newKeys: ['admin'] });
    const replacement = printedKey(third.lines, 'admin');

    // Assess
    expect(second.lines).toContain('API keys: shown once, by the start that minted them; a lost one is replaced with lanyard dev --new-key <principal>');
    expect(printedKey(second.lines, 'admin')).toBeUndefined();
    expect(replacement).toMatch(/^lk_/);
    expect(replacement).not.toBe(lost);
    expect(printedKey(third.lines, 'resource-server')).toBeUndefined();
    expect((await listPrincipals(third.issuer, replacement!)).status).toBe(200);
    expect((await listPrincipals(third.issuer, lost)).status).toBe(401);
  });

  it('prints the keys a failing start already minted, and they work on the next start', async () => {
    // Prepare: a first run mints the example keys, then --new-key names a principal it lacks.
    const dataDir = await newDataDir();
    const lines: string[] = [];

    // Act
    await expect(runDevForTest({ dataDir, out: (l) => lines.push(l), newKeys: ['nobody'], log: silentLog })).rejects.toThrow('--new-key: no principal nobody');
    const next = await start(dataDir);

    // Assess
    const admin = printedKey(lines, 'admin');
    expect(admin).toMatch(/^lk_/);
    expect(printedKey(next.lines, 'admin')).toBeUndefined();
    expect((await listPrincipals(next.issuer, admin!)).status).toBe(200);
  });

  it('--new-key naming a principal the data dir does not have changes no key', async () => {
    // Prepare
    const dataDir = await newDataDir();
    const first = await start(dataDir);
    const admin = printedKey(first.lines, 'admin')!;
    await first.issuer.close();

    // Act
    await expect(start(dataDir, { newKeys: ['admin', 'nobody'] })).rejects.toThrow('--new-key: no principal nobody in this data dir; its principals are ');
    const after = await start(dataDir);

    // Assess
    expect((await listPrincipals(after.issuer, admin)).status).toBe(200);
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
