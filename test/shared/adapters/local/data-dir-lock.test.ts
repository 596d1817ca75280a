/**
 * The data dir's lock (`lanyard.lock`, the holder's PID): held by a live process it refuses; a
 * dead PID, or this process's own PID left by a previous life (a container's PID 1 after a
 * crash), is stale and taken over; a lock this process holds refuses a second taker here too.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataDirLockedError, lockDataDir } from '../../../../shared/adapters/local/data-dir-lock.ts';

describe('Function: lockDataDir', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lanyard-lock-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });
  const lockFile = () => join(dataDir, 'lanyard.lock');

  it('takes over a lock holding its own PID that it does not hold (a previous life of this process)', async () => {
    // Prepare
    await writeFile(lockFile(), `${process.pid}\n`);

    // Act
    const lock = lockDataDir(dataDir);

    // Assess
    expect(await readFile(lockFile(), 'utf8')).toBe(`${process.pid}\n`);
    lock.release();
  });

  it('refuses a second lock while this process holds the first', () => {
    // Prepare
    const lock = lockDataDir(dataDir);

    // Act
    const second = () => lockDataDir(dataDir);

    // Assess
    expect(second).toThrow(DataDirLockedError);
    lock.release();
  });

  it('refuses a lock held by another live process, naming its PID', async () => {
    // Prepare: the parent of this test process is alive and is not this process.
    await writeFile(lockFile(), `${process.ppid}\n`);

    // Act
    const take = () => lockDataDir(dataDir);

    // Assess
    expect(take).toThrow(new RegExp(`PID ${process.ppid}`));
  });
});
