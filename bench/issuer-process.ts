/**
 * The Lanyard issuer as a benchmark child: `lanyard dev` (cli/dev.ts `startIssuer`) on
 * 127.0.0.1, any free port, applying the example policy with a fixed API key for the agent.
 *
 *   node bench/issuer-process.ts <dataDir> <apiKey> [--in-memory] [--trace]
 *
 * Without `--in-memory` the decision log goes to the local store's SQLite file in `<dataDir>`
 * (WAL, `synchronous=FULL`, group commit): every 201 has an issuance record committed and
 * fsync'd before it is answered, as in normal use. With it the database is `:memory:`.
 *
 * `--trace` wraps the runtime's ports (nothing in the issuer changes) to count and time what
 * each request costs: signatures, decision-log appends (wall time until durable), the
 * store's putDecisions calls and their sizes (calls to the port, not the group commit's
 * batches), and the process's CPU time. The parent reads
 * and resets the counters per measured window (BENCH_TRACE=1 npm run bench).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startIssuer } from '../cli/dev.ts';
import { EXAMPLE_POLICY } from '../cli/example-policy.ts';
import type { PolicyDocument } from '../shared/policy/policy-file.ts';
import type { LocalServices } from '../shared/bootstrap/local/runtime.ts';
import { onReportRequest, onStopRequest, sendReady } from './child.ts';

const BENCH_PRINCIPAL = 'triage-worker-1';

const [dataDir, apiKey, ...flags] = process.argv.slice(2);
if (!dataDir || !apiKey) throw new Error('usage: issuer-process.ts <dataDir> <apiKey> [--in-memory]');
const inMemory = flags.includes('--in-memory');
const trace = flags.includes('--trace');

const policy: PolicyDocument = {
  ...EXAMPLE_POLICY,
  principals: EXAMPLE_POLICY.principals.map((p) => (p.id === BENCH_PRINCIPAL ? { ...p, apiKey } : p)),
};
const policyFile = join(dataDir, 'bench-policy.yaml');
await writeFile(policyFile, stringify(policy), { mode: 0o600 });

const issuer = await startIssuer({ port: 0, host: '127.0.0.1', dataDir, policyFile, inMemory, out: () => {} });
if (trace) onReportRequest(traceRuntime(issuer.runtime));
onStopRequest(() => issuer.close());
sendReady({ type: 'ready', url: issuer.server.url, inMemory });

/** Wraps the signer, the decision log and the store's putDecisions with counters. */
function traceRuntime(runtime: LocalServices): (reset: boolean) => unknown {
  const now = () => performance.now();
  let c = fresh();
  function fresh() {
    return { since: now(), cpu: process.cpuUsage(), signs: 0, signMs: 0, appends: 0, appendWaitMs: 0, batches: 0, records: 0, batchWallMs: 0, maxBatch: 0 };
  }
  const signer = runtime.signer as { sign: typeof runtime.signer.sign };
  const sign = signer.sign.bind(runtime.signer);
  signer.sign = (kid, input) => {
    const t = now();
    const result = sign(kid, input); // FileSigner signs synchronously before returning its promise
    c.signMs += now() - t;
    c.signs += 1;
    return result;
  };
  const decisions = runtime.decisions as { append: typeof runtime.decisions.append };
  const append = decisions.append.bind(runtime.decisions);
  decisions.append = (record) => {
    const t = now();
    const window = c;
    return append(record).finally(() => {
      window.appends += 1;
      window.appendWaitMs += now() - t;
    });
  };
  const store = runtime.store as { putDecisions: typeof runtime.store.putDecisions };
  const putDecisions = store.putDecisions.bind(runtime.store);
  store.putDecisions = (records) => {
    const t = now();
    const window = c;
    window.batches += 1;
    window.records += records.length;
    window.maxBatch = Math.max(window.maxBatch, records.length);
    return putDecisions(records).finally(() => {
      window.batchWallMs += now() - t;
    });
  };
  return (reset) => {
    const wallMs = now() - c.since;
    const cpu = process.cpuUsage(c.cpu);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const per = (n: number, d: number) => (d === 0 ? 0 : n / d);
    const report = {
      wallMs,
      cpuMs,
      cpuShare: per(cpuMs, wallMs),
      requests: c.signs,
      cpuMsPerRequest: per(cpuMs, c.signs),
      signMsPerRequest: per(c.signMs, c.signs),
      appendWaitMsPerRequest: per(c.appendWaitMs, c.appends),
      batches: c.batches,
      recordsPerBatch: per(c.records, c.batches),
      maxBatch: c.maxBatch,
      batchWallMs: per(c.batchWallMs, c.batches),
    };
    if (reset) c = fresh();
    return report;
  };
}
