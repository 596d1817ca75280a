/**
 * Summarizes a V8 .cpuprofile (from `BENCH_CPU_PROF=<dir> npm run bench`): where the issuer
 * child's CPU time went, by function (self time), by package or project file (self time), and
 * inclusively for the stages of an issuance (a sample counts toward every stage on its stack).
 *
 *   node bench/profile-summary.ts <file.cpuprofile> [topN] [--count]
 *
 * Each sample is weighed by the time since the previous one (V8's own view). `--count` weighs
 * every sample the same (the profile's mean interval) instead: on a busy machine a thread
 * that was descheduled is sampled once when it runs again, with a long delta that charges
 * the waiting to whatever it was doing, so counting samples is nearer to the CPU it spent.
 */
import { readFile } from 'node:fs/promises';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}
interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

/** Inclusive stages: a sample belongs to a stage when any frame on its stack matches. */
const STAGES: readonly { name: string; match: (f: CallFrame) => boolean }[] = [
  // The embedded store since issue 12: its own code and, under it, node:sqlite's native calls
  // (statements, the commit and its fsync on the group commit's turn).
  { name: 'SQLite store (shared/adapters/sqlite, node:sqlite under it)', match: (f) => f.url.includes('/shared/adapters/sqlite/') },
  { name: 'change feed (shared/adapters/local/change-feed.ts)', match: (f) => f.url.endsWith('/shared/adapters/local/change-feed.ts') },
  { name: 'Prometheus metrics (shared/adapters/local/prometheus-metrics.ts)', match: (f) => f.url.endsWith('/shared/adapters/local/prometheus-metrics.ts') },
  { name: 'dynalite (server side of the embedded DynamoDB)', match: (f) => f.url.includes('/node_modules/dynalite/') },
  { name: 'AWS SDK client (DynamoDB calls to dynalite)', match: (f) => /\/node_modules\/@(aws-sdk|smithy)\//.test(f.url) },
  { name: 'LevelDB / levelup / memdown', match: (f) => /\/node_modules\/(level|leveldown|levelup|memdown|abstract-leveldown|encoding-down|subleveldown|deferred-leveldown|classic-level|abstract-level)/.test(f.url) },
  { name: 'DecisionLog / DynamoStore.putDecisions', match: (f) => f.url.endsWith('/shared/audit/decision-log.ts') || (f.url.endsWith('/dynamo-store.ts') && /putDecisions|batchWrite|decisionItem/i.test(f.functionName)) },
  { name: 'issueCredential (shared/issuance/issue-credential.ts)', match: (f) => f.url.endsWith('/shared/issuance/issue-credential.ts') },
  { name: 'signAccessToken (jws.ts + FileSigner)', match: (f) => f.url.endsWith('/shared/issuance/jws.ts') || f.url.endsWith('/file-signer.ts') },
  { name: 'authenticate (API key hash + lookup)', match: (f) => f.url.endsWith('/shared/http/authenticate.ts') },
  { name: 'zod (request schema)', match: (f) => f.url.includes('/node_modules/zod/') },
  { name: 'middy', match: (f) => f.url.includes('/node_modules/@middy/') },
  { name: 'dev server (shared/bootstrap/local/server.ts)', match: (f) => f.url.endsWith('/shared/bootstrap/local/server.ts') },
  { name: 'node:http / net (server and the SDK client)', match: (f) => /^node:(_http|http|net|internal\/http)/.test(f.url) },
  { name: 'garbage collector', match: (f) => f.functionName === '(garbage collector)' },
  { name: 'idle', match: (f) => f.functionName === '(idle)' },
];

const PROJECT_URL = new URL('..', import.meta.url).href;

function owner(frame: CallFrame): string {
  if (frame.url === '') return frame.functionName; // (program), (garbage collector), (idle), native
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(frame.url);
  if (pkg) return pkg[1]!;
  if (frame.url.startsWith('node:')) return frame.url;
  // Relative to the project root, so a checkout under a folder named like one of ours (say
  // /work/wt/bench) still reads `shared/…`, not `bench/shared/…`.
  if (frame.url.startsWith(PROJECT_URL)) return frame.url.slice(PROJECT_URL.length);
  return frame.url;
}

const args = process.argv.slice(2);
const byCount = args.includes('--count');
const [file, topArg] = args.filter((a) => a !== '--count');
if (!file) throw new Error('usage: profile-summary.ts <file.cpuprofile> [topN] [--count]');
const top = Number(topArg ?? 25);
const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
const meanIntervalMs = (profile.endTime - profile.startTime) / 1000 / Math.max(1, profile.samples.length);
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

const exclusive = new Map<string, number>();
const selfByFunction = new Map<string, number>();
const selfByOwner = new Map<string, number>();
const stageTime = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const dt = byCount ? meanIntervalMs : (profile.timeDeltas[i] ?? 0) / 1000; // ms
  total += dt;
  const node = byId.get(id)!;
  const f = node.callFrame;
  const key = `${f.functionName || '(anonymous)'}  ${owner(f)}:${f.lineNumber + 1}`;
  selfByFunction.set(key, (selfByFunction.get(key) ?? 0) + dt);
  selfByOwner.set(owner(f), (selfByOwner.get(owner(f)) ?? 0) + dt);
  const hit = new Set<string>();
  let first: string | undefined;
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const frame = byId.get(cur)!.callFrame;
    for (const stage of STAGES) {
      if (!hit.has(stage.name) && stage.match(frame)) {
        hit.add(stage.name);
        first ??= stage.name;
      }
    }
  }
  const bucket = first ?? `other: ${owner(f)}`;
  exclusive.set(bucket, (exclusive.get(bucket) ?? 0) + dt);
  for (const name of hit) stageTime.set(name, (stageTime.get(name) ?? 0) + dt);
});

const show = (title: string, entries: Map<string, number>, n: number) => {
  console.log(`\n${title}`);
  for (const [key, ms] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, n)) {
    console.log(`${ms.toFixed(0).padStart(8)} ms ${((ms / total) * 100).toFixed(1).padStart(5)} %  ${key}`);
  }
};
console.log(`${file}: ${total.toFixed(0)} ms sampled (${profile.samples.length} samples${byCount ? ', each weighed the same' : ''})`);
show('Exclusive, by component (each sample goes to the innermost component on its stack)', exclusive, top);
show('Inclusive, by stage (a sample counts toward every stage on its stack)', stageTime, STAGES.length);
show('Self time, by package or project file', selfByOwner, top);
show('Self time, by function', selfByFunction, top);
