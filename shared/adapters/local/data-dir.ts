/**
 * The embedded default's data dir is private to its owner: it holds the signing key, the vault's
 * master key and secrets, the database (API-key and refresh-token hashes, the audit, the policy)
 * and the event log. Every store and file the local runtime keeps goes under it, so the check
 * lives here, in one place, whatever engine writes the files:
 *
 * - at start, {@link secureDataDir} creates the folder and tightens every folder under it to
 *   0700 and every file to 0600, whatever their modes were (a folder made by hand, an older
 *   version, a copy, a loose umask). Symbolic links are left alone, not followed: chmod on one
 *   would change its target, outside the data dir;
 * - files created later (the engine's new log and table files at compaction, a new provider's
 *   secrets file) are covered by {@link restrictUmask}: the process umask gains 077, so nothing
 *   this process creates is readable by others, with no window between creating and a chmod.
 *   The umask is process-wide, which is what the local server process wants. A worker thread
 *   cannot set it; there the 0700 folders still keep others out, and the next start tightens
 *   the files.
 */
import { chmod, lstat, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';

export const DATA_DIR_MODE = 0o700;
export const DATA_FILE_MODE = 0o600;

/**
 * Creates `dataDir` (0700) and sets every folder under it to 0700 and every other entry to
 * 0600, symbolic links excepted. Returns the paths whose mode it changed.
 */
export async function secureDataDir(dataDir: string): Promise<string[]> {
  await mkdir(dataDir, { recursive: true, mode: DATA_DIR_MODE });
  const tightened: string[] = [];
  await tighten(dataDir, tightened);
  return tightened;
}

/** Adds 077 to the process umask (never loosens it). False where it cannot be set (a worker thread). */
export function restrictUmask(): boolean {
  if (!isMainThread) return false;
  const previous = process.umask(0o077);
  process.umask(previous | 0o077);
  return true;
}

async function tighten(path: string, tightened: string[]): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    // Gone since it was listed (a temp file renamed away): nothing left to protect.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (stats.isSymbolicLink()) return;
  const mode = stats.isDirectory() ? DATA_DIR_MODE : DATA_FILE_MODE;
  if ((stats.mode & 0o7777) !== mode) {
    await chmod(path, mode);
    tightened.push(path);
  }
  if (!stats.isDirectory()) return;
  for (const entry of await readdir(path)) await tighten(join(path, entry), tightened);
}
