/** Runs `lanyard dev` as the CLI does (on a free port unless told), capturing what it prints. */
import { startIssuer, printBanner, type RunningIssuer } from '../../cli/dev.ts';
import type { Log } from '../../shared/ports/log.ts';

export async function runDevForTest(options: { dataDir: string; out: (line: string) => void; port?: number; newKeys?: string[]; log?: Log }): Promise<RunningIssuer> {
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
export function printedKey(lines: readonly string[], principal: string): string | undefined {
  for (const line of lines) {
    const match = /^\s+(\S+)\s+(lk_[A-Za-z0-9_-]+)$/.exec(line);
    if (match?.[1] === principal) return match[2];
  }
  return undefined;
}
