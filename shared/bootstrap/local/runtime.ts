/**
 * The embedded default's composition root (docs/architecture.md): the SQLite store in
 * `<dataDir>/lanyard.db` (WAL, every record fsync'd before the answer; `:memory:` for tests),
 * one issuer process per data dir (`<dataDir>/lanyard.lock`), the P-256 key file signer, upstream
 * secrets encrypted under `<dataDir>/secrets` with the master key `<dataDir>/master.key`
 * (file-vault.ts; on disk even when the database is in memory), local API keys, and no STS.
 * Nothing here needs Java, Docker or an AWS account. The data dir and everything under it are
 * private to their owner (data-dir.ts), including what the process creates there later.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { DecisionLog } from '../../audit/decision-log.ts';
import { describeError, jsonLinesLog, type Log } from '../../ports/log.ts';
import { PolicyView } from '../../policy/policy-view.ts';
import { RevocationIndex } from '../../revocation/revocation-index.ts';
import { systemClock, type Clock, type Signer, type Store } from '../../ports/index.ts';
import type { StoreCommit } from '../../ports/metrics.ts';
import { BrokerIssuanceQuota } from '../../issuance/quota.ts';
import type { IssuerServices } from '../../ports/services.ts';
import { restrictUmask, secureDataDir } from '../../adapters/local/data-dir.ts';
import { lockDataDir } from '../../adapters/local/data-dir-lock.ts';
import { refuseDynaliteEra } from '../../adapters/sqlite/dynalite-era.ts';
import { DATABASE_FILE } from '../../adapters/sqlite/schema.ts';
import { SqliteStore } from '../../adapters/sqlite/sqlite-store.ts';
import { FileSigner } from '../../adapters/local/file-signer.ts';
import { FileVault } from '../../adapters/local/file-vault.ts';
import { LocalChangeFeed } from '../../adapters/local/change-feed.ts';
import { LocalEventBus } from '../../adapters/local/event-bus.ts';

export const EVENTS_LOG_FILE = 'events.log';
/** How often expired revocation records, and records past their retention, are dropped on the embedded default. */
export const PRUNE_INTERVAL_MS = 10 * 60 * 1000;
/** Decision records are kept this long by default (as on DynamoDB, where TTL drops them). */
export const DEFAULT_RETENTION_DAYS = 400;

export interface LocalServicesOptions {
  /** Where the key, the database, the vault and the events log live (also with `inMemory`: only the database is then in memory). */
  readonly dataDir: string;
  readonly issuer: string;
  /** Keep the database in memory (SQLite `:memory:`) instead of under `dataDir` (tests and benchmarks). */
  readonly inMemory?: boolean;
  /** Decision records older than this many days are dropped on the prune schedule. @default 400 */
  readonly retentionDays?: number;
  readonly policyTtlMs?: number;
  readonly clock?: Clock;
  readonly log?: Log;
  /** Called once per group commit of decision records (the SQLite store's hook, e.g. `PrometheusMetrics.storeCommit`). */
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
  // Before anything is opened: an older data dir is refused with what to do, a second issuer on
  // the same dir fails at once naming the one that holds it.
  if (!options.inMemory) await refuseDynaliteEra(options.dataDir);
  const lock = options.inMemory ? undefined : lockDataDir(options.dataDir);
  let rawStore: SqliteStore;
  let vault: FileVault;
  try {
    // Opened before the database, so a bad master key fails the start with nothing to clean up.
    vault = await FileVault.open(options.dataDir, { log, now: () => clock.now() });
    rawStore = SqliteStore.open({
      location: options.inMemory ? ':memory:' : join(options.dataDir, DATABASE_FILE),
      decisionRetentionDays: options.retentionDays ?? DEFAULT_RETENTION_DAYS,
      ...(options.onCommit && { onCommit: options.onCommit }),
    });
  } catch (error) {
    lock?.release();
    throw error;
  }
  const events = new LocalEventBus({ logFile: join(options.dataDir, EVENTS_LOG_FILE) });
  const changes = new LocalChangeFeed({ store: rawStore, bus: events, clock, log });
  const store = changes.wrap(rawStore);
  let signer: FileSigner;
  try {
    signer = await FileSigner.open(options.dataDir);
    await changes.start();
  } catch (error) {
    changes.close();
    await rawStore.close();
    lock?.release();
    throw error;
  }
  // What TTL does on DynamoDB: revocation records whose cut-off can no longer matter, and records past their retention, are dropped here.
  const prune = async () => {
    const now = new Date(clock.now()).toISOString();
    try {
      await rawStore.pruneRevocations(now);
      const pruned = await rawStore.pruneExpired(now);
      if (pruned.decisions > 0) log.info('dropped decision records past their retention', { ...pruned });
    } catch (error) {
      log.warn('pruning expired records failed', { error: describeError(error) });
    }
  };
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
      // Commits what is queued, then checkpoints and closes the file.
      await rawStore.close();
      lock?.release();
    },
  };
}

/**
 * The readiness probe of the local services: the data dir still there and writable (the
 * database's WAL and the events log are written under it), one read of a key that never
 * exists (a query on the database, which fails once it is closed or broken), and the
 * signing key's id (the key file loaded). Cheap enough for a load balancer to call every few
 * seconds; it writes nothing, so it cannot tell a full disk.
 */
async function probeReadiness(dataDir: string, store: Store, signer: Signer): Promise<void> {
  await access(dataDir, constants.W_OK);
  await store.getTool('readyz-probe');
  await signer.activeKid();
}
