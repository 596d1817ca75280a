/**
 * Disk per credential of the embedded SQLite store (docs/benchmarks.md): starts the issuer as
 * `lanyard dev` does on a fresh temp data dir (example policy), issues N credentials over HTTP
 * at concurrency C, closes it (which checkpoints the WAL into lanyard.db), and divides the
 * growth of lanyard.db plus any -wal by N. Also prints the group-commit batch sizes seen.
 *
 *   node --conditions=@lanyard/source scripts/sqlite-size.ts [N=20000] [C=32]
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../shared/adapters/sqlite/sqlite-store.ts';
import { startIssuer } from '../cli/dev.ts';
import { silentLog } from '../shared/ports/log.ts';

const total = Number(process.argv[2] ?? 20_000);
const concurrency = Number(process.argv[3] ?? 32);

async function sizeOnDisk(dataDir: string): Promise<number> {
  let bytes = 0;
  for (const name of ['lanyard.db', 'lanyard.db-wal']) bytes += await stat(join(dataDir, name)).then((s) => s.size, () => 0);
  return bytes;
}

const dataDir = await mkdtemp(join(tmpdir(), 'lanyard-size-'));
try {
  // First start: the example policy, its keys; then closed, so the baseline is checkpointed too.
  const first = await startIssuer({ port: 0, host: '127.0.0.1', dataDir, out: () => {}, log: silentLog });
  const agentKey = first.keys.find((k) => k.principal === 'triage-worker-1')!.apiKey;
  const url = first.server.url;
  let issued = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued < total) {
        issued++;
        const res = await fetch(`${url}/v1/credentials`, {
          method: 'POST',
          headers: { authorization: `Bearer ${agentKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' }),
        });
        if (res.status !== 201) throw new Error(`credential ${issued}: ${res.status} ${await res.text()}`);
        await res.arrayBuffer().catch(() => undefined);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await first.close();
  const after = await sizeOnDisk(dataDir);

  // The same database with its decision records dropped and vacuumed: what the policy alone takes.
  const store = SqliteStore.open({ location: join(dataDir, 'lanyard.db'), decisionRetentionDays: 1 });
  const dropped = await store.pruneExpired(new Date(Date.now() + 10 * 86_400_000).toISOString());
  store.checkpoint();
  await store.close();
  const { DatabaseSync } = await import('node:sqlite');
  const db = new DatabaseSync(join(dataDir, 'lanyard.db'));
  db.exec('VACUUM');
  db.close();
  const baseline = await sizeOnDisk(dataDir);

  console.log(
    JSON.stringify({
      credentials: total,
      concurrency,
      seconds: Number(seconds.toFixed(1)),
      perSecond: Math.round(total / seconds),
      dbBytesAfter: after,
      dbBytesWithoutDecisions: baseline,
      decisionRecordsDropped: dropped.decisions,
      bytesPerCredential: Math.round((after - baseline) / total),
    }),
  );
} finally {
  await rm(dataDir, { recursive: true, force: true });
}
