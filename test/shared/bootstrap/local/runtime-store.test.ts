/**
 * The embedded default's store as the local runtime opens it: SQLite in `<dataDir>/lanyard.db`
 * (or `:memory:`), one runtime per data dir, retention on the prune schedule (a test clock),
 * the group-commit hook passed through.
 */
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataDirLockedError } from '../../../../shared/adapters/local/data-dir-lock.ts';
import { DynaliteEraDataDirError } from '../../../../shared/adapters/sqlite/dynalite-era.ts';
import { openLocalServices } from '../../../../shared/bootstrap/local/runtime.ts';
import { silentLog } from '../../../../shared/ports/log.ts';
import { issued } from '../../adapters/store-contract.ts';

const DAY_MS = 86_400_000;
const T0 = Date.parse('2026-01-10T12:00:00.000Z');

describe('Function: openLocalServices (the embedded store)', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lanyard-runtime-'));
  });
  afterEach(() => rm(dataDir, { recursive: true, force: true }));

  const open = (now: number, extra: { retentionDays?: number; inMemory?: boolean; onCommit?: (batch: { size: number }) => void } = {}) =>
    openLocalServices({ dataDir, issuer: 'http://issuer.test', clock: { now: () => now }, log: silentLog, ...extra });

  it('drops decision records past the retention on the prune at start, and keeps the younger ones', async () => {
    // Prepare: two records, 3 days and 1 day before the second start; the retention is 2 days.
    const older = issued(new Date(T0).toISOString(), { identity: 'support-triage/prod' });
    const younger = issued(new Date(T0 + 2 * DAY_MS).toISOString(), { identity: 'support-triage/prod' });
    const first = await open(T0 + 2 * DAY_MS, { retentionDays: 2 });
    await first.store.putDecisions([older, younger]);
    await first.close();

    // Act
    const second = await open(T0 + 3 * DAY_MS, { retentionDays: 2 });

    // Assess
    try {
      expect(await second.store.getCredential(older.credentialId!)).toBeUndefined();
      expect(await second.store.getCredential(younger.credentialId!)).toStrictEqual(younger);
    } finally {
      await second.close();
    }
  });

  it('keeps records for 400 days by default', async () => {
    // Prepare
    const record = issued(new Date(T0).toISOString(), { identity: 'support-triage/prod' });
    const first = await open(T0);
    await first.store.putDecisions([record]);
    await first.close();

    // Act
    const at399 = await open(T0 + 399 * DAY_MS);
    const kept = await at399.store.getCredential(record.credentialId!);
    await at399.close();
    const at401 = await open(T0 + 401 * DAY_MS);
    const dropped = await at401.store.getCredential(record.credentialId!);
    await at401.close();

    // Assess
    expect(kept).toStrictEqual(record);
    expect(dropped).toBeUndefined();
  });

  it('keeps the database in lanyard.db, and nothing on disk for it in memory', async () => {
    // Act
    const onDisk = await open(T0);
    await onDisk.store.putDecisions([issued(new Date(T0).toISOString(), { identity: 'support-triage/prod' })]);
    const whileOpen = await readdir(dataDir);
    await onDisk.close();
    const other = await mkdtemp(join(tmpdir(), 'lanyard-runtime-memory-'));
    try {
      const inMemory = await openLocalServices({ dataDir: other, issuer: 'http://issuer.test', inMemory: true, log: silentLog });
      await inMemory.store.putDecisions([issued(new Date(T0).toISOString(), { identity: 'support-triage/prod' })]);
      const memoryFiles = await readdir(other);
      await inMemory.close();

      // Assess
      expect(whileOpen).toEqual(expect.arrayContaining(['lanyard.db', 'lanyard.db-wal', 'lanyard.lock']));
      expect(memoryFiles.filter((name) => name.startsWith('lanyard.'))).toStrictEqual([]);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('refuses a second runtime on the same data dir while the first is open, naming the dir and the PID, and opens again once it closed', async () => {
    // Prepare
    const first = await open(T0);

    // Act & Assess
    const refused = await open(T0).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(DataDirLockedError);
    expect(refused).toMatchObject({ dataDir, pid: process.pid });
    expect((refused as Error).message).toContain(`the data dir ${dataDir} is in use by another Lanyard issuer (PID ${process.pid})`);
    // The refused start left the first one's lock alone.
    expect(await readdir(dataDir)).toContain('lanyard.lock');
    await first.close();
    const again = await open(T0);
    await again.close();
  });

  it('refuses a dynalite-era data dir, opening nothing', async () => {
    // Prepare
    await mkdir(join(dataDir, 'db'));

    // Act
    const refused = await open(T0).then(
      () => undefined,
      (error: unknown) => error,
    );

    // Assess
    expect(refused).toBeInstanceOf(DynaliteEraDataDirError);
    expect((refused as Error).message).toContain(`mv '${join(dataDir, 'db')}' '${join(dataDir, 'db')}.dynalite-backup'`);
    expect((await readdir(dataDir)).sort()).toStrictEqual(['db']);
  });

  it('reports each group commit of decision records to onCommit', async () => {
    // Prepare
    const sizes: number[] = [];
    const runtime = await open(T0, { inMemory: true, onCommit: (batch) => sizes.push(batch.size) });

    // Act
    try {
      await Promise.all([0, 1, 2].map((i) => runtime.store.putDecisions([issued(new Date(T0 + i).toISOString(), { identity: 'support-triage/prod' })])));
    } finally {
      await runtime.close();
    }

    // Assess
    expect(sizes).toStrictEqual([3]);
  });
});
