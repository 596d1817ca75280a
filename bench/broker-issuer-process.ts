/**
 * The issuer with its broker as a benchmark child: `lanyard dev` (cli/dev.ts `startIssuer`) on
 * 127.0.0.1, any free port, applying the policy file the parent wrote (bench/broker-overhead.ts).
 *
 *   node bench/broker-issuer-process.ts <dataDir> <policyFile> [--trace]
 *
 * The local store is its SQLite file in `<dataDir>`, as under `npm start`: each proxied call's audit
 * record is durable (group-committed once its answer has streamed), and each quota take is a
 * conditional update on the same store. A report request answers with this process's CPU time
 * so far (all threads) and, with `--trace`, how many times each
 * store method was called since the last reset (the store's methods are wrapped; the broker
 * is not touched).
 */
import { startIssuer } from '../cli/dev.ts';
import type { Store } from '../shared/ports/index.ts';
import { onReportRequest, onStopRequest, sendReady } from './child.ts';

const [dataDir, policyFile, ...flags] = process.argv.slice(2);
if (!dataDir || !policyFile) throw new Error('usage: broker-issuer-process.ts <dataDir> <policyFile> [--trace]');

const issuer = await startIssuer({ port: 0, host: '127.0.0.1', dataDir, policyFile, out: () => {} });
const storeCalls = flags.includes('--trace') ? countStoreCalls(issuer.runtime.store) : undefined;
onReportRequest((reset) => {
  const used = process.cpuUsage();
  const calls = storeCalls ? { storeCalls: { ...storeCalls } } : {};
  if (reset && storeCalls) for (const name of Object.keys(storeCalls)) delete storeCalls[name];
  return { cpuMs: (used.user + used.system) / 1000, ...calls };
});
onStopRequest(() => issuer.close());
sendReady({ type: 'ready', url: issuer.server.url });

/**
 * Counts calls to the store's methods by wrapping them on its class's prototype (this process
 * has one store), below the change-feed wrapper, so that each call is counted once.
 */
function countStoreCalls(store: Store): Record<string, number> {
  const counts: Record<string, number> = {};
  const proto = Object.getPrototypeOf(store) as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(proto)) {
    const original = proto[name];
    if (name === 'constructor' || typeof original !== 'function') continue;
    proto[name] = function (this: unknown, ...args: unknown[]) {
      counts[name] = (counts[name] ?? 0) + 1;
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  return counts;
}
