/**
 * The embedded store's SQLite schema and how a database file is opened (docs/architecture.md).
 *
 * The schema version is `PRAGMA user_version`; {@link MIGRATIONS} lists every step from an
 * empty file, and each step runs in one transaction with the version bump, so a crash leaves
 * the file at the old version or the new one, never between. A file written by a newer
 * Lanyard (a version above the last migration) is refused rather than guessed at.
 *
 * Tables hold each aggregate's domain object as JSON (`doc`) beside the few columns its
 * queries need; the indexes are exactly those the store's methods query by (sqlite-store.ts).
 */
import { DatabaseSync } from 'node:sqlite';

/** Each entry moves the schema from version `index` to `index + 1`. Never edit a released entry: add one. */
export const MIGRATIONS: readonly string[] = [
  `
  -- Tools, identities, principals, quota policies, upstream secret pointers: looked up and listed by type and id.
  CREATE TABLE entities (
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (type, id)
  );
  CREATE TABLE role_versions (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (id, version)
  );
  CREATE TABLE grants (
    identity TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (identity, id)
  );
  -- A key authenticates one principal; a principal holds at most one key of each kind.
  CREATE TABLE principal_keys (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    PRIMARY KEY (kind, value)
  ) WITHOUT ROWID;
  CREATE UNIQUE INDEX principal_keys_by_principal ON principal_keys (principal_id, kind);
  -- Decision records: issued ones keyed 'c:<credential id>', denied ones 'd:<id>'.
  -- 'at' is the normalised ISO instant (fixed width, so string order is time order).
  CREATE TABLE decisions (
    key TEXT NOT NULL UNIQUE,
    at TEXT NOT NULL,
    identity TEXT,
    lane TEXT,
    tenant TEXT,
    task TEXT,
    tool TEXT,
    doc TEXT NOT NULL
  );
  CREATE INDEX decisions_by_identity ON decisions (identity, at) WHERE identity IS NOT NULL;
  CREATE INDEX decisions_by_lane ON decisions (lane, at) WHERE lane IS NOT NULL;
  CREATE INDEX decisions_by_tenant ON decisions (tenant, at) WHERE tenant IS NOT NULL;
  CREATE INDEX decisions_by_task ON decisions (task, at) WHERE task IS NOT NULL;
  CREATE INDEX decisions_by_tool ON decisions (tool, at) WHERE tool IS NOT NULL;
  -- Retention drops the oldest records first.
  CREATE INDEX decisions_by_at ON decisions (at);
  -- The revocation feed: seq is the feed position; counters keep it growing across prunes.
  CREATE TABLE revocations (
    seq INTEGER PRIMARY KEY,
    relevant_until_ms INTEGER,
    doc TEXT NOT NULL
  );
  CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE blocks (
    target_key TEXT PRIMARY KEY,
    reinstated_at_ms INTEGER,
    doc TEXT NOT NULL
  );
  CREATE TABLE refresh_tokens (
    hash TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL,
    spent_at TEXT,
    doc TEXT NOT NULL
  );
  CREATE TABLE quota_windows (
    bucket TEXT NOT NULL,
    seconds INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    units REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, seconds, start_ms)
  ) WITHOUT ROWID;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** The database file under a data dir. */
export const DATABASE_FILE = 'lanyard.db';

export interface OpenOptions {
  /** A file path, or `:memory:` for a private in-memory database (a real engine, gone at close). */
  readonly location: string;
}

/**
 * Opens (creating if needed) and migrates a database. WAL lets readers run beside the one
 * writer; `synchronous=FULL` makes every commit wait for fsync of the WAL, so a committed
 * record survives a crash or power loss, not only a process kill.
 */
export function openDatabase(options: OpenOptions): DatabaseSync {
  const db = new DatabaseSync(options.location);
  try {
    // Before any pragma writes to it: a newer Lanyard's file is left exactly as it is.
    refuseNewer(db);
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = FULL');
    db.exec('PRAGMA foreign_keys = OFF');
    // Another process on the file (the lock file normally prevents it) waits briefly instead of failing at once.
    db.exec('PRAGMA busy_timeout = 5000');
    migrate(db);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/** Applies the migrations the file has not seen, each with its version bump in one transaction. */
export function migrate(db: DatabaseSync): void {
  refuseNewer(db);
  const current = schemaVersion(db);
  for (let version = current; version < SCHEMA_VERSION; version++) {
    db.exec('BEGIN IMMEDIATE');
    try {
      db.exec(MIGRATIONS[version]!);
      db.exec(`PRAGMA user_version = ${version + 1}`);
      db.exec('COMMIT');
    } catch (error) {
      // As in db.ts: SQLite may have rolled the step back itself; the cause is what is thrown.
      if (db.isTransaction) db.exec('ROLLBACK');
      throw error;
    }
  }
}

function refuseNewer(db: DatabaseSync): void {
  const current = schemaVersion(db);
  if (current > SCHEMA_VERSION) {
    throw new Error(
      `the database is at schema version ${current}, newer than this Lanyard knows (${SCHEMA_VERSION}); run the Lanyard version that wrote it`,
    );
  }
}

export function schemaVersion(db: DatabaseSync): number {
  const row = db.prepare('PRAGMA user_version').get() as { user_version: number };
  return row.user_version;
}
