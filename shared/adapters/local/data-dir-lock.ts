/**
 * One writer per data dir: the embedded default's database, event log and change-feed position
 * are only consistent with one issuer process writing them. The lock is a file created with
 * O_EXCL (`wx`) that holds the PID of its owner; a second issuer on the same dir fails at once
 * with a message naming the dir and that PID. A lock left by a process that is gone (a crash,
 * SIGKILL) is stale: its PID is not alive, so it is taken over.
 *
 * (SQLite's own `locking_mode=EXCLUSIVE` would also keep a second process out, but its error is
 * "database is locked", with neither the dir nor the holder; docs/decisions.md.)
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { DATA_FILE_MODE } from './data-dir.ts';

export const LOCK_FILE = 'lanyard.lock';

export interface DataDirLock {
  readonly path: string;
  /** Removes the lock file if it is still this process's. */
  release(): void;
}

/** Thrown when another live process holds the data dir. */
export class DataDirLockedError extends Error {
  readonly dataDir: string;
  readonly pid: number;

  constructor(dataDir: string, pid: number, lockFile: string) {
    super(
      `the data dir ${dataDir} is in use by another Lanyard issuer (PID ${pid}): stop that process, or give this one another data dir ` +
        `(--data-dir). If no such process is a Lanyard issuer, remove ${lockFile}.`,
    );
    this.name = 'DataDirLockedError';
    this.dataDir = dataDir;
    this.pid = pid;
  }
}

/** Lock files this process holds now. */
const held = new Set<string>();

/** Takes the data dir's lock for this process, or throws {@link DataDirLockedError}. The dir must exist. */
export function lockDataDir(dataDir: string): DataDirLock {
  const path = join(dataDir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, 'wx', DATA_FILE_MODE);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      held.add(path);
      return {
        path,
        release: () => {
          held.delete(path);
          releaseIfOurs(path);
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = readHolder(path);
    // Our own PID in a lock we do not hold is a previous life of this process (in a container the
    // issuer is PID 1 on every start): stale, like a dead PID.
    const ours = holder === process.pid && !held.has(path);
    if (holder !== undefined && !ours && isAlive(holder)) throw new DataDirLockedError(dataDir, holder, path);
    // Stale (its process is gone) or unreadable (a crash between create and write): take it over, once.
    if (attempt > 0) throw new DataDirLockedError(dataDir, holder ?? 0, path);
    try {
      unlinkSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
}

function readHolder(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Signal 0 checks that a process exists without touching it; EPERM means it exists as another user's. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function releaseIfOurs(path: string): void {
  if (readHolder(path) !== process.pid) return;
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
