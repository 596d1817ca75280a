/**
 * The embedded store across processes (docs/decisions.md, "The embedded store on SQLite"):
 * `lanyard dev` children on one data dir. One writer per data dir, with a stale lock taken
 * over after a SIGKILL; every answered credential's record on disk after a SIGKILL right
 * after the answers; a dynalite-era data dir refused with what to do.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../shared/adapters/sqlite/sqlite-store.ts';

const CLI = join(import.meta.dirname, '../../cli/lanyard.ts');

interface DevChild {
  readonly child: ChildProcess;
  readonly url: string;
  readonly banner: string;
}

/** A `lanyard dev` child on `dataDir` and a free port, once its banner printed `until` (a first run ends it with the curl; a restart, with the metadata URL). */
function startDev(dataDir: string, until = 'Get a credential'): Promise<DevChild> {
  const child = spawn(process.execPath, [CLI, 'dev', '--port', '0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let banner = '';
  let errors = '';
  return new Promise<DevChild>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      banner += chunk.toString();
      if (banner.includes(until)) resolve({ child, url: /Lanyard issuer on (http:\/\/\S+)/.exec(banner)![1]!, banner });
    });
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`lanyard dev exited with ${code}: ${errors}`)));
  });
}

/** A `lanyard dev` child that is expected to fail: its exit code and what it wrote to stderr. */
function failingDev(dataDir: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'dev', '--port', '0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  return exited;
}

const keyOf = (banner: string, principal: string) => new RegExp(`${principal}\\s+(lk_\\S+)`).exec(banner)![1]!;

describe('Store: SQLite under lanyard dev processes', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });

  async function dataDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'lanyard-embedded-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  it('refuses a second lanyard dev on the same data dir at once, naming the dir and the PID holding it, and takes over the lock of a killed one', async () => {
    // Prepare
    const dir = await dataDir();
    const first = await startDev(dir);
    cleanup.push(() => kill(first.child, 'SIGKILL'));

    // Act
    const second = await failingDev(dir);

    // Assess: refused, and the first one still answers.
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`the data dir ${dir} is in use by another Lanyard issuer (PID ${first.child.pid})`);
    expect(second.stderr).not.toMatch(/Database is closed|ECONNREFUSED/);
    expect((await fetch(`${first.url}/.well-known/jwks.json`)).status).toBe(200);

    // Act: the holder dies without cleaning up; its lock is stale.
    await kill(first.child, 'SIGKILL');
    const third = await startDev(dir, 'oauth-authorization-server');
    cleanup.push(() => kill(third.child, 'SIGTERM'));

    // Assess
    expect((await fetch(`${third.url}/.well-known/jwks.json`)).status).toBe(200);
  });

  it('keeps every credential it answered when it is SIGKILLed right after the answers', async () => {
    // Prepare
    const dir = await dataDir();
    const dev = await startDev(dir);
    cleanup.push(() => kill(dev.child, 'SIGKILL'));
    const key = keyOf(dev.banner, 'triage-worker-1');

    // Act: 40 concurrent credentials (so commits are grouped), then SIGKILL as soon as the last answer is in.
    const answers = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const res = await fetch(`${dev.url}/v1/credentials`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' }),
        });
        return { status: res.status, body: (await res.json()) as { credentialId?: string } };
      }),
    );
    await kill(dev.child, 'SIGKILL');

    // Assess: every answered credential has its record in the database another process reopens.
    expect(answers.map((answer) => answer.status)).toStrictEqual(Array.from({ length: 40 }, () => 201));
    const store = SqliteStore.open({ location: join(dir, 'lanyard.db') });
    try {
      for (const { body } of answers) {
        expect(await store.getCredential(body.credentialId!)).toMatchObject({ credentialId: body.credentialId, decision: 'issued', tool: 'tickets' });
      }
    } finally {
      await store.close();
    }
  });

  it('refuses a data dir from the dynalite era with the command that moves the old database aside', async () => {
    // Prepare: what an older Lanyard left, a LevelDB folder `db/`.
    const dir = await dataDir();
    await mkdir(join(dir, 'db'));

    // Act
    const { code, stderr } = await failingDev(dir);

    // Assess
    expect(code).toBe(1);
    expect(stderr).toContain(`mv '${join(dir, 'db')}' '${join(dir, 'db')}.dynalite-backup'`);
  });
});
