/**
 * `lanyard serve` as a real child process: it applies only the policy it is given, logs JSON
 * lines, prints no key but the ones `--new-key` mints, and on SIGTERM answers the requests in
 * flight in full, refuses new connections, closes its store and exits 0.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { openLocalServices } from '../../shared/bootstrap/local/runtime.ts';
import { silentLog } from '../../shared/ports/log.ts';
import { KEYS, testPolicy } from '../helpers/issuer.ts';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.ts';

const CLI = join(import.meta.dirname, '../../cli/lanyard.ts');
const READ = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };

interface Served {
  readonly child: ChildProcess;
  readonly url: string;
  /** Every JSON log line so far (stderr). */
  readonly logs: Record<string, unknown>[];
  stdout(): string;
  /** Resolves with the first log line with this message, waiting for it if need be. */
  logged(message: string): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

async function serve(args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  const waiting: { message: string; resolve: (line: Record<string, unknown>) => void }[] = [];
  let stdout = '';
  let pending = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      // Every line on stderr is a JSON object: this throws (and fails the test) otherwise.
      const parsed = JSON.parse(line) as Record<string, unknown>;
      logs.push(parsed);
      for (const w of waiting.filter((x) => x.message === parsed.message)) w.resolve(parsed);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const logged = (message: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const seen = logs.find((l) => l.message === message);
      if (seen) return resolve(seen);
      waiting.push({ message, resolve });
      void exited.then((code) => reject(new Error(`lanyard serve exited with ${code} before logging "${message}"; stderr: ${JSON.stringify(logs)}`)));
    });
  const listening = await logged('listening');
  return { child, url: listening.url as string, logs, stdout: () => stdout, logged, exited };
}

/** A credential request the server has taken (100 Continue: it read the headers) whose body is held back. */
function heldRequest(url: string) {
  const body = JSON.stringify(READ);
  const req = httpRequest(`${url}/v1/credentials`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEYS.agent}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), expect: '100-continue' },
  });
  const accepted = new Promise<void>((resolve) => req.once('continue', resolve));
  const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
    req.once('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.once('error', reject);
    });
    req.once('error', reject);
  });
  req.flushHeaders();
  return { accepted, answer, send: () => req.end(body) };
}

/** One credential request: `answered` with its whole body, or `refused` if no answer began (the connection was refused or reset). */
async function ask(url: string): Promise<{ outcome: 'answered'; status: number; token?: string } | { outcome: 'refused'; code?: string }> {
  let res: Response;
  try {
    res = await fetch(`${url}/v1/credentials`, { method: 'POST', headers: { authorization: `Bearer ${KEYS.agent}`, 'content-type': 'application/json' }, body: JSON.stringify(READ) });
  } catch (error) {
    return { outcome: 'refused', ...(((error as Error).cause as NodeJS.ErrnoException | undefined)?.code && { code: ((error as Error).cause as NodeJS.ErrnoException).code }) };
  }
  // An answer that began must end whole: a cut body rejects here and fails the test.
  const body = (await res.json()) as { token?: string };
  return { outcome: 'answered', status: res.status, ...(body.token && { token: body.token }) };
}

/** Whether a new TCP connection to the server opens (`connected`), or the error code that refused it. */
function connectOutcome(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe('Command: lanyard serve', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });
  const newDataDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lanyard-serve-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };
  const stopOnCleanup = (served: Served) =>
    cleanup.push(async () => {
      if (served.child.exitCode === null && served.child.signalCode === null) served.child.kill('SIGKILL');
      await served.exited;
    });

  it('on SIGTERM (even twice) answers the requests in flight in full, refuses new connections, and exits 0', async () => {
    // Prepare
    const dataDir = await newDataDir();
    const policyFile = join(dataDir, '..', `${dataDir.split('/').pop()}.policy.json`);
    cleanup.push(() => rm(policyFile, { force: true }));
    await writeFile(policyFile, JSON.stringify(testPolicy()));
    const served = await serve(['--data-dir', join(dataDir, 'data'), '--policy', policyFile, '--drain-timeout', '600']);
    stopOnCleanup(served);
    const before = await ask(served.url);
    const held = heldRequest(served.url);
    await held.accepted;

    // Act: more requests race the signal; the held one is in flight for sure.
    const racing = Array.from({ length: 8 }, () => ask(served.url));
    served.child.kill('SIGTERM');
    await served.logged('stopping: no new connections, answering requests in flight');
    // A supervisor signalling twice does not cut the drain short.
    served.child.kill('SIGTERM');
    await served.logged('already stopping');
    const after = await connectOutcome(served.url);
    held.send();
    const heldAnswer = await held.answer;
    const raced = await Promise.all(racing);
    const code = await served.exited;

    // Assess
    expect(before).toMatchObject({ outcome: 'answered', status: 201 });
    expect(heldAnswer.status).toBe(201);
    expect((JSON.parse(heldAnswer.text) as { token: string }).token.split('.')).toHaveLength(3);
    for (const r of raced) {
      if (r.outcome === 'answered') expect(r).toMatchObject({ status: 201, token: expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/) });
    }
    expect(after).toBe('ECONNREFUSED');
    expect(code).toBe(0);
    expect(served.logs.map((l) => l.message)).toContain('stopped');
    expect(served.logs.find((l) => l.message === 'policy applied at start')).toMatchObject({ file: policyFile });
    expect(served.stdout()).toBe('');
    // Every answered credential is on record in the store the process closed.
    const services = await openLocalServices({ dataDir: join(dataDir, 'data'), issuer: served.url, log: silentLog });
    cleanup.push(() => services.close());
    const credentialId = (token: string) => (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { jti: string }).jti;
    const heldToken = (JSON.parse(heldAnswer.text) as { token: string }).token;
    expect(await services.store.getCredential(credentialId(heldToken))).toMatchObject({ decision: 'issued' });
  });

  it('applies no example policy, shows no key but those --new-key mints, and serves metrics to that key', async () => {
    // Prepare: a policy whose admin has no key in the file, so applying it mints one.
    const dataDir = await newDataDir();
    const policy = testPolicy();
    const withoutKeys = {
      ...policy,
      principals: [...policy.principals.filter((p) => p.id !== 'oncall'), { id: 'oncall', kind: 'admin' as const }, { id: 'auditor', kind: 'verifier' as const }],
    };
    const policyFile = join(dataDir, '..', `${dataDir.split('/').pop()}.policy.json`);
    cleanup.push(() => rm(policyFile, { force: true }));
    await writeFile(policyFile, JSON.stringify(withoutKeys));

    // Act
    const empty = await serve(['--data-dir', join(dataDir, 'empty')]);
    stopOnCleanup(empty);
    const emptyReady = await fetch(`${empty.url}/readyz`);
    empty.child.kill('SIGTERM');
    const emptyCode = await empty.exited;
    const withPolicy = await serve(['--data-dir', join(dataDir, 'data'), '--policy', policyFile, '--new-key', 'oncall']);
    stopOnCleanup(withPolicy);
    const printed = /oncall\s+(lk_[A-Za-z0-9_-]+)/.exec(withPolicy.stdout());
    await ask(withPolicy.url);
    const scraped = await fetch(`${withPolicy.url}/metrics`, { headers: { authorization: `Bearer ${printed?.[1] ?? ''}` } });
    const samples = parsePrometheusText(await scraped.text());
    withPolicy.child.kill('SIGTERM');
    const code = await withPolicy.exited;

    // Assess
    expect(emptyReady.status).toBe(200);
    expect(emptyCode).toBe(0);
    expect(empty.stdout()).toBe('');
    const emptyServices = await openLocalServices({ dataDir: join(dataDir, 'empty'), issuer: empty.url, log: silentLog });
    cleanup.push(() => emptyServices.close());
    expect(await emptyServices.store.listPrincipals()).toEqual([]);
    expect(printed).not.toBeNull();
    expect(withPolicy.stdout().match(/lk_/g)).toHaveLength(1);
    expect(JSON.stringify(withPolicy.logs)).not.toContain('lk_');
    expect(withPolicy.logs.find((l) => l.level === 'warn' && String(l.message).includes('does not show'))).toMatchObject({ principals: ['auditor'] });
    expect(scraped.status).toBe(200);
    expect(sampleValue(samples, 'lanyard_issuance_total', { outcome: 'issued' })).toBe(1);
    expect(sampleValue(samples, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(code).toBe(0);
  });

  it('refuses an --issuer that is not an http(s) URL, naming the option, before it opens anything', async () => {
    // Prepare
    const dataDir = await newDataDir();

    // Act
    const outcome = await promisify(execFile)(process.execPath, [CLI, 'serve', '--port', '0', '--data-dir', join(dataDir, 'data'), '--issuer', 'ftp://lanyard.example.com']).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );

    // Assess
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toContain("option '--issuer <url>' argument 'ftp://lanyard.example.com' is invalid. an http or https URL");
    await expect(stat(join(dataDir, 'data'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
