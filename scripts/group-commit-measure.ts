/**
 * Which group commit is faster for the embedded store (docs/decisions.md, "The embedded store
 * on SQLite"): (a) the commit on the issuer's own thread, scheduled on `setImmediate` so the
 * records of a loop turn gather (what SqliteStore does), or (b) the database in a worker
 * thread, the records posted to it, each batch being whatever arrived while the last commit ran.
 * Same table, WAL, synchronous=FULL, ~1 KB records, C callers each writing one record at a time,
 * with ~0.2 ms of CPU between writes standing in for a request's own work. Prints records/s,
 * mean batch size and the main thread's CPU per record.
 *
 *   node scripts/group-commit-measure.ts [records=6000] [concurrency=64]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';

const total = Number(process.argv[2] ?? 6_000);
const concurrency = Number(process.argv[3] ?? 64);
const DOC = JSON.stringify({ pad: 'x'.repeat(900) });
const SCHEMA = 'CREATE TABLE IF NOT EXISTS d (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)';

function open(path: string): DatabaseSync {
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = FULL');
  db.exec(SCHEMA);
  return db;
}

/** ~0.2 ms of CPU: a request's parsing, policy and signing stand-in. */
function work(): void {
  const until = performance.now() + 0.2;
  while (performance.now() < until);
}

async function drive(write: (id: number) => Promise<void>): Promise<{ seconds: number; cpuMsPerRecord: number }> {
  let next = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const id = next++;
        work();
        await write(id);
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  return { seconds: (performance.now() - started) / 1000, cpuMsPerRecord: (used.user + used.system) / 1000 / total };
}

async function mainThread(path: string) {
  const db = open(path);
  const insert = db.prepare('INSERT INTO d (id, doc) VALUES (?, ?)');
  let queue: { id: number; done: () => void }[] = [];
  let scheduled = false;
  let batches = 0;
  const flush = () => {
    scheduled = false;
    const batch = queue;
    queue = [];
    db.exec('BEGIN IMMEDIATE');
    for (const entry of batch) insert.run(entry.id, DOC);
    db.exec('COMMIT');
    batches++;
    for (const entry of batch) entry.done();
  };
  const result = await drive(
    (id) =>
      new Promise<void>((resolve) => {
        queue.push({ id, done: resolve });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      }),
  );
  db.close();
  return { ...result, batches };
}

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { DatabaseSync } = require('node:sqlite');
const db = new DatabaseSync(workerData.path);
db.exec('PRAGMA journal_mode = WAL'); db.exec('PRAGMA synchronous = FULL'); db.exec(workerData.schema);
const insert = db.prepare('INSERT INTO d (id, doc) VALUES (?, ?)');
let queue = []; let scheduled = false; let batches = 0;
const flush = () => {
  scheduled = false; const batch = queue; queue = [];
  db.exec('BEGIN IMMEDIATE'); for (const m of batch) insert.run(m.id, m.doc); db.exec('COMMIT'); batches++;
  parentPort.postMessage({ ids: batch.map((m) => m.id) });
};
parentPort.on('message', (m) => {
  if (m === 'close') { db.close(); parentPort.postMessage({ batches }); return; }
  queue.push(m); if (!scheduled) { scheduled = true; setImmediate(flush); }
});
`;

async function workerThread(path: string) {
  const worker = new Worker(WORKER, { eval: true, workerData: { path, schema: SCHEMA } });
  const waiting = new Map<number, () => void>();
  let closed: (batches: number) => void = () => {};
  worker.on('message', (m: { ids?: number[]; batches?: number }) => {
    if (m.ids) for (const id of m.ids) waiting.get(id)?.();
    if (m.batches !== undefined) closed(m.batches);
  });
  const result = await drive(
    (id) =>
      new Promise<void>((resolve) => {
        waiting.set(id, resolve);
        worker.postMessage({ id, doc: DOC });
      }),
  );
  const batches = await new Promise<number>((resolve) => {
    closed = resolve;
    worker.postMessage('close');
  });
  await worker.terminate();
  return { ...result, batches };
}

const dir = mkdtempSync(join(tmpdir(), 'lanyard-group-commit-'));
try {
  for (const [name, run] of [
    ['main thread, setImmediate', mainThread],
    ['worker thread', workerThread],
    ['main thread, setImmediate (again)', mainThread],
    ['worker thread (again)', workerThread],
  ] as const) {
    const r = await run(join(dir, `${name.replace(/\W+/g, '-')}.db`));
    console.log(
      `${name.padEnd(34)} ${Math.round(total / r.seconds)} records/s, mean batch ${(total / r.batches).toFixed(1)}, main-thread CPU ${r.cpuMsPerRecord.toFixed(3)} ms/record (the 0.2 ms stand-in included)`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
