import { chmod, lstat, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { secureDataDir } from '../../../../shared/adapters/local/data-dir.ts';
import { SqliteStore } from '../../../../shared/adapters/sqlite/sqlite-store.ts';
import { KEYS, startTestIssuer } from '../../../helpers/issuer.ts';

/** Every path under `root` (itself included) with its permission bits, symbolic links excepted. */
async function modesUnder(root: string): Promise<Map<string, number>> {
  const modes = new Map<string, number>();
  const visit = async (path: string) => {
    const stats = await lstat(path);
    if (stats.isSymbolicLink()) return;
    modes.set(path, stats.mode & 0o777);
    if (stats.isDirectory()) for (const entry of await readdir(path)) await visit(join(path, entry));
  };
  await visit(root);
  return modes;
}

/** What a loose umask or a copy leaves behind: folders 0755, files 0644. */
async function loosen(root: string): Promise<void> {
  for (const [path] of await modesUnder(root)) await chmod(path, (await stat(path)).isDirectory() ? 0o755 : 0o644);
}

/** The paths under `root` that are not private (folders 0700, files 0600), with their modes: none, when all is well. */
async function notPrivate(modes: Map<string, number>, root: string): Promise<string[]> {
  const loose: string[] = [];
  for (const [path, mode] of modes) {
    const expected = (await stat(path)).isDirectory() ? 0o700 : 0o600;
    if (mode !== expected) loose.push(`${path.slice(root.length) || '.'} ${mode.toString(8)}`);
  }
  return loose;
}

describe('Function: secureDataDir', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'lanyard-datadir-'));
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('creates a missing data dir 0700', async () => {
    const dataDir = join(root, 'new', '.lanyard');

    const tightened = await secureDataDir(dataDir);

    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    expect(tightened).toStrictEqual([]);
  });

  it('tightens every folder to 0700 and every file to 0600 whatever their modes, and says which', async () => {
    // Prepare
    const dataDir = join(root, '.lanyard');
    await mkdir(join(dataDir, 'db', 'nested'), { recursive: true });
    await writeFile(join(dataDir, 'signing-key.json'), '{}');
    await writeFile(join(dataDir, 'db', '000003.log'), 'x');
    await writeFile(join(dataDir, 'db', 'nested', 'LOCK'), '');
    await loosen(dataDir);
    await chmod(join(dataDir, 'db', '000003.log'), 0o666);

    // Act
    const tightened = await secureDataDir(dataDir);

    // Assess
    const modes = await modesUnder(dataDir);
    expect(modes.size).toBe(6);
    expect(await notPrivate(modes, dataDir)).toStrictEqual([]);
    expect(tightened.sort()).toStrictEqual([...modes.keys()].sort());
  });

  it('leaves symbolic links and what they point to alone', async () => {
    const dataDir = join(root, '.lanyard');
    const outside = join(root, 'shared-notes.txt');
    await mkdir(dataDir);
    await writeFile(outside, 'not ours', { mode: 0o644 });
    await chmod(outside, 0o644);
    await symlink(outside, join(dataDir, 'notes'));

    await secureDataDir(dataDir);

    expect((await stat(outside)).mode & 0o777).toBe(0o644);
  });
});

describe('Issuer: lanyard dev on an existing data dir', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lanyard-datadir-'));
  });
  afterEach(() => rm(dataDir, { recursive: true, force: true }));

  it('keeps every folder 0700 and every file 0600 under the data dir, those the engine creates after the start included', async () => {
    // Prepare: a data dir with a database, keys, a secret and events, then loosened to 0755/0644.
    const first = await startTestIssuer({ dataDir, inMemory: false });
    await first.runtime.vault!.putSecret('stripe', 'sk_test_not_a_real_key');
    const revoked = await first.post('/v1/admin', { command: 'revoke', target: { identity: 'billing-bot/prod' }, reason: 'data dir test' }, KEYS.admin);
    expect(revoked.status).toBe(200);
    await first.stop();
    await loosen(dataDir);
    const before = await modesUnder(dataDir);
    expect([...before.keys()].map((path) => path.slice(dataDir.length + 1))).toEqual(
      expect.arrayContaining(['lanyard.db', 'signing-key.json', 'master.key', 'secrets', 'secrets/stripe.json', 'events.log']),
    );

    // Act: start again on it, and use it.
    const second = await startTestIssuer({ dataDir, inMemory: false });
    try {
      const issued = await second.post('/v1/credentials', { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' }, KEYS.agent);
      expect(issued.status).toBe(201);
      await second.runtime.vault!.putSecret('github', 'ghp_not_a_real_token');
      await writeFile(join(dataDir, 'created-later.txt'), 'by this process, after the start');

      // Assess: the engine opened new files after the start (the WAL and its index, gone at the last close); all private.
      const after = await modesUnder(dataDir);
      const createdSinceStart = [...after.keys()].filter((path) => !before.has(path) && path.startsWith(`${dataDir}/lanyard.db-`));
      expect(createdSinceStart.length).toBeGreaterThan(0);
      expect(await notPrivate(after, dataDir)).toStrictEqual([]);
    } finally {
      await second.stop();
    }
  });

  it('tightens a database, its WAL and its shared-memory index left 0644 in a 0755 dir (a crash leaves the WAL behind)', async () => {
    // Prepare: a database whose WAL was not checkpointed (its connection still open), all loosened.
    const crashed = SqliteStore.open({ location: join(dataDir, 'lanyard.db') });
    try {
      await crashed.putTool({ id: 'tickets', audience: 'https://tickets.example.internal', actions: { read: 'read' }, enabled: true, updatedAt: '2025-03-01T12:00:00.000Z' });
      await loosen(dataDir);
      const loose = await modesUnder(dataDir);
      for (const name of ['lanyard.db', 'lanyard.db-wal', 'lanyard.db-shm']) expect(loose.get(join(dataDir, name))).toBe(0o644);
      expect(loose.get(dataDir)).toBe(0o755);

      // Act
      const issuer = await startTestIssuer({ dataDir, inMemory: false });
      try {
        const issued = await issuer.post('/v1/credentials', { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' }, KEYS.agent);
        expect(issued.status).toBe(201);

        // Assess
        const after = await modesUnder(dataDir);
        for (const name of ['lanyard.db', 'lanyard.db-wal', 'lanyard.db-shm']) expect(after.get(join(dataDir, name))).toBe(0o600);
        expect(await notPrivate(after, dataDir)).toStrictEqual([]);
      } finally {
        await issuer.stop();
      }
    } finally {
      await crashed.close();
    }
  });
});
