/**
 * The embedded default's composition root (docs/architecture.md): the same DynamoDB store adapter on an
 * embedded dynalite whose data lives under `<dataDir>/db`, the P-256 key file signer, upstream
 * secrets encrypted under `<dataDir>/secrets` with the master key `<dataDir>/master.key`
 * (file-vault.ts; on disk even when the database is in memory), local API keys, and no STS.
 * Nothing here needs Java, Docker or an AWS account. The data dir and everything under it are
 * private to their owner (data-dir.ts), including what the process creates there later.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DecisionLog } from '../../audit/decision-log.ts';
import { describeError, jsonLinesLog, type Log } from '../../ports/log.ts';
import { PolicyView } from '../../policy/policy-view.ts';
import { RevocationIndex } from '../../revocation/revocation-index.ts';
import { systemClock, type Clock, type Signer, type Store } from '../../ports/index.ts';
import type { StoreCommit } from '../../ports/metrics.ts';
import { BrokerIssuanceQuota } from '../../issuance/quota.ts';
import type { IssuerServices } from '../../ports/services.ts';
import { DynamoStore } from '../../adapters/dynamodb/dynamo-store.ts';
import { ensureTable } from '../../adapters/dynamodb/table.ts';
import { restrictUmask, secureDataDir } from '../../adapters/local/data-dir.ts';
import { localDynamoClient, startDynalite } from '../../adapters/local/dynalite.ts';
import { FileSigner } from '../../adapters/local/file-signer.ts';
import { FileVault } from '../../adapters/local/file-vault.ts';
import { LocalChangeFeed } from '../../adapters/local/change-feed.ts';
import { LocalEventBus } from '../../adapters/local/event-bus.ts';

export const EVENTS_LOG_FILE = 'events.log';
/** How often expired revocation records are dropped on the embedded default. */
export const PRUNE_INTERVAL_MS = 10 * 60 * 1000;

export interface LocalServicesOptions {
  /** Where the key and the database live. `undefined` data dir for the database means in memory (tests). */
  readonly dataDir: string;
  readonly issuer: string;
  /** Keep the database in memory instead of under `dataDir` (tests and benchmarks). */
  readonly inMemory?: boolean;
  readonly tableName?: string;
  readonly policyTtlMs?: number;
  readonly clock?: Clock;
  readonly log?: Log;
  /** Called once per committed batch of decision records (the store's commit hook, e.g. `PrometheusMetrics.storeCommit`). */
  readonly onCommit?: (batch: StoreCommit) => void;
}

export interface LocalServices extends IssuerServices {
  readonly dataDir: string;
  /** The event bus itself (its log file can be read back), not only the stream port. */
  readonly events: LocalEventBus;
  /** Resolves when the store answers and the signing key is loaded; throws when either is not (`GET /readyz`). */
  ready(): Promise<void>;
  close(): Promise<void>;
}

export async function openLocalServices(options: LocalServicesOptions): Promise<LocalServices> {
  const clock = options.clock ?? systemClock;
  const log = options.log ?? jsonLinesLog();
  // The folder holds the signing key and every decision: private to its owner, whatever it was,
  // and so is everything created in it from here on (the engine's files at compaction too).
  restrictUmask();
  const tightened = await secureDataDir(options.dataDir);
  if (tightened.length > 0) {
    log.warn('tightened the data dir to 0700 folders and 0600 files', {
      dataDir: options.dataDir,
      paths: tightened.map((path) => relative(options.dataDir, path) || '.'),
    });
  }
  // Opened before the engine starts, so a bad master key fails the start with nothing to clean up.
  const vault = await FileVault.open(options.dataDir, { log, now: () => clock.now() });
  const dynalite = await startDynalite(options.inMemory ? {} : { dataDir: join(options.dataDir, 'db'), inWorker: true });
  const client = localDynamoClient(dynalite.endpoint);
  const tableName = options.tableName ?? 'lanyard';
  try {
    await ensureTable(client, tableName);
  } catch (error) {
    await dynalite.close();
    throw error;
  }
  const dynamoStore = new DynamoStore({ client: DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } }), tableName });
  const rawStore = timedCommits(dynamoStore, options.onCommit ?? (() => {}));
  const signer = await FileSigner.open(options.dataDir);
  const events = new LocalEventBus({ logFile: join(options.dataDir, EVENTS_LOG_FILE) });
  const changes = new LocalChangeFeed({ store: rawStore, bus: events, clock, log });
  const store = changes.wrap(rawStore);
  await changes.start();
  // dynalite has no TTL: revocation records whose cut-off can no longer matter are dropped here.
  const prune = () => rawStore.pruneRevocations(new Date(clock.now()).toISOString()).catch((error: unknown) => log.warn('pruning revocations failed', { error: describeError(error) }));
  await prune();
  const pruning = setInterval(() => void prune(), PRUNE_INTERVAL_MS);
  pruning.unref();
  let closed = false;
  const policy = new PolicyView({ store, clock, ...(options.policyTtlMs !== undefined && { ttlMs: options.policyTtlMs }) });
  return {
    dataDir: options.dataDir,
    config: { issuer: options.issuer, authMode: 'apiKey' },
    store,
    policy,
    revocations: new RevocationIndex({ store, clock }),
    signer,
    vault,
    decisions: new DecisionLog({ store }),
    quota: new BrokerIssuanceQuota({ policy, store }),
    clock,
    log,
    events,
    ready: () => (closed ? Promise.reject(new Error('the local services are closed')) : probeReadiness(options.dataDir, rawStore, signer)),
    close: async () => {
      closed = true;
      clearInterval(pruning);
      changes.close();
      client.destroy();
      await dynalite.close();
    },
  };
}

/**
 * The readiness probe of the dynalite store: the data dir still there and writable (the
 * engine's files and the events log are written under it), one read of a key that never
 * exists (a round trip through the engine, which fails once it is closed or broken), and the
 * signing key's id (the key file loaded). Cheap enough for a load balancer to call every few
 * seconds; it writes nothing, so it cannot tell a full disk.
 */
async function probeReadiness(dataDir: string, store: Store, signer: Signer): Promise<void> {
  await access(dataDir, constants.W_OK);
  await store.getTool('readyz-probe');
  await signer.activeKid();
}

/**
 * `putDecisions` reporting each committed batch (its size and how long it took) to `onCommit`:
 * the commit hook the SQLite store offers natively, fed here from the dynalite path. A failed
 * commit is not reported: nothing was committed.
 */
function timedCommits(store: DynamoStore, onCommit: (batch: StoreCommit) => void): Store {
  // A duration, not an instant: the monotonic clock, whatever clock the issuer decides with.
  const putDecisions: Store['putDecisions'] = async (records) => {
    const started = performance.now();
    await store.putDecisions(records);
    onCommit({ size: records.length, durationMs: performance.now() - started });
  };
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'putDecisions') return putDecisions;
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
