/**
 * What the bench reads about a server process from Linux's /proc and about a data dir from
 * the file system: CPU time (all threads), peak resident memory, and bytes on disk. Each
 * returns `undefined` where the figure cannot be read (another OS, a process already gone),
 * so a section prints "-" instead of failing.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** User + system CPU time of a process and all its threads, from /proc/<pid>/stat. */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks();
  } catch {
    return undefined;
  }
}

let ticks: number | undefined;
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/**
 * The process's peak resident set since it started (VmHWM in /proc/<pid>/status), in MB
 * (10^6 bytes). The kernel keeps the high-water mark, so one read at the end of a run covers
 * every moment of it, however short.
 */
export function peakRssMb(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
    return match ? (Number(match[1]) * 1024) / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Bytes a folder takes on disk, as `du` counts them: the blocks allocated to every file under
 * it (a sparse or preallocated file counts what it holds, not its length).
 */
export async function diskBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    try {
      total += (await lstat(join(entry.parentPath, entry.name))).blocks * 512;
    } catch (error) {
      // A file the engine removed between the listing and the stat (a compacted log) holds nothing.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return total;
}
