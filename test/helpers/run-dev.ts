/** Runs `lanyard dev` as the CLI does, on a free port, capturing what it prints. */
import { startIssuer, printBanner, type RunningIssuer } from '../../cli/dev.ts';

export async function runDevForTest(options: { dataDir: string; out: (line: string) => void }): Promise<RunningIssuer> {
  const issuer = await startIssuer({ port: 0, host: '127.0.0.1', dataDir: options.dataDir, out: options.out });
  printBanner(issuer, options.dataDir, options.out);
  return issuer;
}
