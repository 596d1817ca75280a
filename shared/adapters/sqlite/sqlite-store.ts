/**
 * The `Store` port on SQLite (`node:sqlite`), the embedded default's store (docs/architecture.md,
 * docs/decisions.md "The embedded store on SQLite"). Same semantics as the DynamoDB store,
 * checked by the same contract suite; what DynamoDB does with conditional writes is a
 * transaction here, and what it does with TTL is {@link SqliteStore.pruneExpired}.
 *
 * One connection, WAL, `synchronous=FULL`: every write is on disk (fsync'd) before its promise
 * resolves. Decision records go through a group commit (group-commit.ts): the records of the
 * requests gathered while a commit holds the loop go in one transaction. Every other write is
 * its own transaction.
 *
 * Foreign failures (I/O, a closed database) propagate as they are (the core wraps them with
 * `failClosed`); the store's own refusals are `LanyardError`s, as on DynamoDB.
 *
 * @example
 * ```ts
 * const store = SqliteStore.open({ location: '.lanyard/lanyard.db' });
 * await store.putDecisions([record]); // committed and fsync'd
 * await store.close();
 * ```
 */
import type {
  DecisionRecord,
  Grant,
  Identity,
  IssuanceBlock,
  Principal,
  PrincipalKeyKind,
  QuotaPolicy,
  QuotaUsage,
  Reinstatement,
  Revocation,
  RoleVersion,
  Tool,
  UpstreamSecretRef,
} from '../../domain/model.ts';
import { conflict, invalidRequest, notFound } from '../../domain/errors.ts';
import { roleVersionKey, type DecisionQuery, type Page, type PolicyItemKeys, type PolicyItems, type QuotaTake, type QuotaWindow, type RefreshTokenRecord, type RefreshTokenSpend, type Store } from '../../ports/index.ts';
import { Db, parseDoc, toDoc } from './db.ts';
import { decisionRow, getCredential, pruneDecisions, queryDecisions, writeDecisions, type DecisionRow } from './decisions.ts';
import { GroupCommit, type CommitBatch } from './group-commit.ts';
import { addQuotaUnits, getQuotaUsage, pruneQuotaWindows, takeQuota } from './quotas.ts';
import { openDatabase } from './schema.ts';

export interface SqliteStoreOptions {
  /** The database file, or `:memory:` (a real engine whose data is gone at close). */
  readonly location: string;
  /** How long decision records are kept before {@link SqliteStore.pruneExpired} drops them. @default 400 */
  readonly decisionRetentionDays?: number;
  /** Called after each group commit of decision records (metrics: batch size, commit latency). */
  readonly onCommit?: (batch: { size: number; durationMs: number }) => void;
}

/** What one retention pass dropped. */
export interface Pruned {
  readonly decisions: number;
  readonly refreshTokens: number;
  readonly quotaWindows: number;
  readonly reinstatedBlocks: number;
}

type EntityType = 'TOOL' | 'IDENTITY' | 'PRINCIPAL' | 'QUOTA' | 'UPSTREAM_SECRET';

const DAY_MS = 86_400_000;
/** Spent and expired refresh tokens are kept a day past their expiry (reuse detection, audit), as on DynamoDB. */
const REFRESH_RETENTION_MS = DAY_MS;
/** A reinstated block stays (marked) a week, as on DynamoDB. */
const REINSTATED_BLOCK_RETENTION_MS = 7 * DAY_MS;
const REVOCATION_COUNTER = 'revocation';

export class SqliteStore implements Store {
  readonly #db: Db;
  readonly #retentionMs: number;
  readonly #decisions: GroupCommit<DecisionRow>;

  private constructor(db: Db, retentionMs: number, onCommit: ((batch: CommitBatch) => void) | undefined) {
    this.#db = db;
    this.#retentionMs = retentionMs;
    this.#decisions = new GroupCommit<DecisionRow>((rows) => writeDecisions(db, rows), onCommit);
  }

  /** Opens (creating and migrating as needed) the database at `options.location`. */
  static open(options: SqliteStoreOptions): SqliteStore {
    const retentionDays = options.decisionRetentionDays ?? 400;
    if (!(retentionDays > 0) || !Number.isFinite(retentionDays)) throw new RangeError('decisionRetentionDays must be a positive number');
    return new SqliteStore(new Db(openDatabase({ location: options.location })), retentionDays * DAY_MS, options.onCommit);
  }

  /** Commits the records still queued, then closes the database (checkpointing the WAL into the file). */
  close(): Promise<void> {
    this.#decisions.flush();
    this.#db.close();
    return Promise.resolve();
  }

  // Tools

  putTool(tool: Tool): Promise<void> {
    return settle(() => this.#putEntity('TOOL', tool.id, tool));
  }

  getTool(id: string): Promise<Tool | undefined> {
    return settle(() => this.#getEntity<Tool>('TOOL', id));
  }

  listTools(): Promise<Tool[]> {
    return settle(() => this.#listEntities<Tool>('TOOL'));
  }

  // Roles

  publishRoleVersion(role: RoleVersion): Promise<'created' | 'unchanged'> {
    return settle(() => {
      if (!Number.isSafeInteger(role.version) || role.version < 0) {
        throw invalidRequest('version', 'a role version is a non-negative integer', { role: role.id });
      }
      return this.#db.transaction(() => {
        const existing = parseDoc<RoleVersion>(this.#db.get('SELECT doc FROM role_versions WHERE id = ? AND version = ?', role.id, role.version));
        if (existing === undefined) {
          this.#db.run('INSERT INTO role_versions (id, version, doc) VALUES (?, ?, ?)', role.id, role.version, toDoc(role));
          return 'created';
        }
        // A published version never changes (docs/domain.md): the same actions again is a no-op, others a conflict.
        if (sameActions(existing.actions, role.actions)) return 'unchanged';
        throw conflict(`role ${role.id} version ${role.version} is already published with other actions`, { role: role.id, version: role.version });
      });
    });
  }

  getRoleVersion(id: string, version: number): Promise<RoleVersion | undefined> {
    return settle(() => {
      if (!Number.isSafeInteger(version) || version < 0) return undefined;
      return parseDoc<RoleVersion>(this.#db.get('SELECT doc FROM role_versions WHERE id = ? AND version = ?', id, version));
    });
  }

  listRoleVersions(): Promise<RoleVersion[]> {
    return settle(() => this.#db.all('SELECT doc FROM role_versions ORDER BY id, version').map((row) => parseDoc<RoleVersion>(row)!));
  }

  // Identities and grants

  putIdentity(identity: Identity): Promise<void> {
    return settle(() => this.#putEntity('IDENTITY', identity.id, identity));
  }

  getIdentity(id: string): Promise<Identity | undefined> {
    return settle(() => this.#getEntity<Identity>('IDENTITY', id));
  }

  getIdentityWithGrants(id: string): Promise<{ identity: Identity; grants: Grant[] } | undefined> {
    // Two statements run back to back on one connection: nothing can commit in between.
    return settle(() => {
      const identity = this.#getEntity<Identity>('IDENTITY', id);
      return identity === undefined ? undefined : { identity, grants: this.#grantsOf(id) };
    });
  }

  listIdentities(): Promise<Identity[]> {
    return settle(() => this.#listEntities<Identity>('IDENTITY'));
  }

  putGrant(grant: Grant): Promise<void> {
    return settle(() => {
      this.#db.transaction(() => this.#db.run('INSERT OR REPLACE INTO grants (identity, id, doc) VALUES (?, ?, ?)', grant.identity, grant.id, toDoc(grant)));
    });
  }

  deleteGrant(identity: string, grantId: string): Promise<void> {
    return settle(() => {
      this.#db.transaction(() => this.#db.run('DELETE FROM grants WHERE identity = ? AND id = ?', identity, grantId));
    });
  }

  listGrants(identity: string): Promise<Grant[]> {
    return settle(() => this.#grantsOf(identity));
  }

  // Principals and their keys

  putPrincipal(principal: Principal): Promise<void> {
    return settle(() => {
      // A key names its principal by id and authentication joins the two: no copy to refresh.
      this.#putEntity('PRINCIPAL', principal.id, principal);
    });
  }

  getPrincipal(id: string): Promise<Principal | undefined> {
    return settle(() => this.#getEntity<Principal>('PRINCIPAL', id));
  }

  listPrincipals(): Promise<Principal[]> {
    return settle(() => this.#listEntities<Principal>('PRINCIPAL'));
  }

  /** In ONE transaction: the principal's previous key of this kind goes, and a key bound to another principal moves to this one. */
  setPrincipalKey(principalId: string, keyKind: PrincipalKeyKind, keyValue: string): Promise<void> {
    return settle(() => {
      this.#db.transaction(() => {
        if (this.#getEntity<Principal>('PRINCIPAL', principalId) === undefined) throw notFound(`principal ${principalId}`);
        this.#db.run('DELETE FROM principal_keys WHERE principal_id = ? AND kind = ?', principalId, keyKind);
        this.#db.run('INSERT OR REPLACE INTO principal_keys (kind, value, principal_id) VALUES (?, ?, ?)', keyKind, keyValue, principalId);
      });
    });
  }

  getPrincipalByKey(keyKind: PrincipalKeyKind, keyValue: string): Promise<Principal | undefined> {
    return settle(() => {
      return parseDoc<Principal>(
        this.#db.get(
          "SELECT e.doc FROM principal_keys k JOIN entities e ON e.type = 'PRINCIPAL' AND e.id = k.principal_id WHERE k.kind = ? AND k.value = ?",
          keyKind,
          keyValue,
        ),
      );
    });
  }

  hasPrincipalKey(principalId: string, keyKind: PrincipalKeyKind): Promise<boolean> {
    return settle(() => this.#db.get('SELECT 1 FROM principal_keys WHERE principal_id = ? AND kind = ?', principalId, keyKind) !== undefined);
  }

  /** In-process reads cost no round trip: the same lookups as getTool, getRoleVersion and getQuota, in one synchronous pass. */
  getPolicyItems(wanted: PolicyItemKeys): Promise<PolicyItems> {
    return settle(() => {
      const tools = new Map<string, Tool>();
      const roles = new Map<string, RoleVersion>();
      const quotas = new Map<string, QuotaPolicy>();
      for (const id of wanted.tools ?? []) {
        const tool = this.#getEntity<Tool>('TOOL', id);
        if (tool !== undefined) tools.set(id, tool);
      }
      for (const { id, version } of wanted.roles ?? []) {
        if (!Number.isSafeInteger(version) || version < 0) continue;
        const role = parseDoc<RoleVersion>(this.#db.get('SELECT doc FROM role_versions WHERE id = ? AND version = ?', id, version));
        if (role !== undefined) roles.set(roleVersionKey(id, version), role);
      }
      for (const bucket of wanted.quotas ?? []) {
        const quota = this.#getEntity<QuotaPolicy>('QUOTA', bucket);
        if (quota !== undefined) quotas.set(bucket, quota);
      }
      return { tools, roles, quotas };
    });
  }

  // Decisions

  /** Resolves once every record is committed and fsync'd (group commit); a record whose time is not an instant refuses the call before anything is queued. */
  async putDecisions(records: readonly DecisionRecord[]): Promise<void> {
    const rows = records.map((record) => decisionRow(record));
    if (rows.length === 0) return;
    await this.#decisions.add(rows);
  }

  getCredential(credentialId: string): Promise<DecisionRecord | undefined> {
    return settle(() => getCredential(this.#db, credentialId));
  }

  queryDecisions(query: DecisionQuery): Promise<Page<DecisionRecord>> {
    return settle(() => queryDecisions(this.#db, query));
  }

  // Revocations and blocks

  /** The next sequence number and the record in ONE transaction: the feed has no gap and no duplicate. */
  appendRevocation(revocation: Omit<Revocation, 'seq'>): Promise<Revocation> {
    return settle(() => {
      return this.#db.transaction(() => {
        const counter = this.#db.get(
          'INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value',
          REVOCATION_COUNTER,
        );
        const seq = Number(counter?.['value']);
        const stored = JSON.parse(toDoc({ ...revocation, seq })) as Revocation;
        const relevantUntil = Date.parse(stored.relevantUntil);
        this.#db.run(
          'INSERT INTO revocations (seq, relevant_until_ms, doc) VALUES (?, ?, ?)',
          seq,
          Number.isFinite(relevantUntil) ? relevantUntil : null,
          toDoc(stored),
        );
        return stored;
      });
    });
  }

  listRevocations(afterSeq: number, limit: number): Promise<Revocation[]> {
    return settle(() => {
      const wanted = Math.floor(limit);
      if (!(wanted > 0)) return [];
      const after = Number.isFinite(afterSeq) ? Math.max(0, Math.floor(afterSeq)) : 0;
      return this.#db
        .all('SELECT doc FROM revocations WHERE seq > ? ORDER BY seq LIMIT ?', after, Number.isSafeInteger(wanted) ? wanted : -1)
        .map((row) => parseDoc<Revocation>(row)!);
    });
  }

  pruneRevocations(now: string): Promise<number> {
    return settle(() => {
      const cutoff = Date.parse(now);
      if (Number.isNaN(cutoff)) throw invalidRequest('now', 'now must be an ISO instant');
      // Compared as instants: `…00Z` and `…00.000Z` are the same instant. The counter keeps counting.
      return this.#db.transaction(() => this.#db.run('DELETE FROM revocations WHERE relevant_until_ms < ?', cutoff));
    });
  }

  putBlock(block: IssuanceBlock): Promise<void> {
    return settle(() => {
      this.#db.transaction(() =>
        this.#db.run('INSERT OR REPLACE INTO blocks (target_key, reinstated_at_ms, doc) VALUES (?, NULL, ?)', block.targetKey, toDoc(block)),
      );
    });
  }

  reinstateBlock(targetKey: string, reinstatement: Reinstatement): Promise<IssuanceBlock | undefined> {
    return settle(() => {
      return this.#db.transaction(() => {
        const standing = parseDoc<IssuanceBlock>(this.#db.get('SELECT doc FROM blocks WHERE target_key = ? AND reinstated_at_ms IS NULL', targetKey));
        if (standing === undefined) return undefined;
        const marked = {
          ...standing,
          reinstatedAt: reinstatement.at,
          reinstatedBy: reinstatement.actor,
          reinstateReason: reinstatement.reason,
          reinstateRequestId: reinstatement.requestId,
        };
        // An unparseable instant still marks the block lifted; retention then treats it as old.
        const at = Date.parse(reinstatement.at);
        this.#db.run('UPDATE blocks SET reinstated_at_ms = ?, doc = ? WHERE target_key = ?', Number.isFinite(at) ? at : 0, toDoc(marked), targetKey);
        return standing;
      });
    });
  }

  listBlocks(): Promise<IssuanceBlock[]> {
    return settle(() => this.#db.all('SELECT doc FROM blocks WHERE reinstated_at_ms IS NULL ORDER BY target_key').map((row) => parseDoc<IssuanceBlock>(row)!));
  }

  // Refresh tokens: stored only as SHA-256 hashes.

  putRefreshToken(token: RefreshTokenRecord): Promise<void> {
    return settle(() => {
      const expires = Date.parse(token.expiresAt);
      if (!Number.isFinite(expires)) throw invalidRequest('expiresAt', 'expiresAt must be an ISO instant');
      const inserted = this.#db.transaction(() =>
        this.#db.run(
          'INSERT INTO refresh_tokens (hash, expires_ms, spent_at, doc) VALUES (?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING',
          token.hash,
          expires,
          token.spentAt ?? null,
          toDoc(token),
        ),
      );
      if (inserted === 0) throw conflict('this refresh token is already stored');
    });
  }

  getRefreshToken(hash: string): Promise<RefreshTokenRecord | undefined> {
    return settle(() => parseDoc<RefreshTokenRecord>(this.#db.get('SELECT doc FROM refresh_tokens WHERE hash = ?', hash)));
  }

  spendRefreshToken(hash: string, nextHash: string, at: string): Promise<RefreshTokenSpend> {
    return settle(() => this.#spend(hash, nextHash, at, false));
  }

  supersedeRefreshToken(hash: string, nextHash: string, at: string): Promise<RefreshTokenSpend> {
    return settle(() => this.#spend(hash, nextHash, at, true));
  }

  /** ONE transaction decides the race: of two spends (or a spend and a supersede) exactly one is `spent-now`. */
  #spend(hash: string, nextHash: string, at: string, superseded: boolean): RefreshTokenSpend {
    return this.#db.transaction((): RefreshTokenSpend => {
      const token = parseDoc<RefreshTokenRecord>(this.#db.get('SELECT doc FROM refresh_tokens WHERE hash = ?', hash));
      if (token === undefined) return { status: 'unknown' };
      if (token.spentAt !== undefined) return { status: 'already-spent', token };
      const spent: RefreshTokenRecord = { ...token, spentAt: at, replacedBy: nextHash, ...(superseded && { supersededAt: at }) };
      this.#db.run('UPDATE refresh_tokens SET spent_at = ?, doc = ? WHERE hash = ? AND spent_at IS NULL', at, toDoc(spent), hash);
      return { status: 'spent-now', token: spent };
    });
  }

  // Quotas of the broker

  putQuota(policy: QuotaPolicy): Promise<void> {
    return settle(() => this.#putEntity('QUOTA', policy.bucket, policy));
  }

  getQuota(bucket: string): Promise<QuotaPolicy | undefined> {
    return settle(() => this.#getEntity<QuotaPolicy>('QUOTA', bucket));
  }

  listQuotas(): Promise<QuotaPolicy[]> {
    return settle(() => this.#listEntities<QuotaPolicy>('QUOTA'));
  }

  takeQuota(bucket: string, window: QuotaWindow, limits: { readonly requests?: number; readonly units?: number }, count = 1): Promise<QuotaTake> {
    return settle(() => takeQuota(this.#db, bucket, window, limits, count));
  }

  addQuotaUnits(bucket: string, window: QuotaWindow, units: number): Promise<void> {
    return settle(() => addQuotaUnits(this.#db, bucket, window, units));
  }

  getQuotaUsage(bucket: string, window: QuotaWindow): Promise<QuotaUsage | undefined> {
    return settle(() => getQuotaUsage(this.#db, bucket, window));
  }

  // Upstream secret pointers

  putUpstreamSecretRef(ref: UpstreamSecretRef, options: { readonly expectVersion?: string | null } = {}): Promise<void> {
    return settle(() => {
      const expected = options.expectVersion;
      this.#db.transaction(() => {
        if (expected !== undefined) {
          const current = this.#getEntity<UpstreamSecretRef>('UPSTREAM_SECRET', ref.provider);
          const matches = expected === null ? current === undefined : current?.version === expected;
          if (!matches) throw conflict(`the secret pointer of provider ${ref.provider} was changed concurrently`, { provider: ref.provider });
        }
        this.#writeEntity('UPSTREAM_SECRET', ref.provider, ref);
      });
    });
  }

  getUpstreamSecretRef(provider: string): Promise<UpstreamSecretRef | undefined> {
    return settle(() => this.#getEntity<UpstreamSecretRef>('UPSTREAM_SECRET', provider));
  }

  listUpstreamSecretRefs(): Promise<UpstreamSecretRef[]> {
    return settle(() => this.#listEntities<UpstreamSecretRef>('UPSTREAM_SECRET'));
  }

  // Retention (what TTL does on DynamoDB)

  /**
   * Drops decision records older than the retention (by their `at`), refresh tokens a day past
   * their expiry, quota counters a day past their window and reinstated blocks a week after
   * the reinstatement. The local runtime runs it on a schedule.
   */
  async pruneExpired(now: string): Promise<Pruned> {
    const nowMs = Date.parse(now);
    if (Number.isNaN(nowMs)) throw invalidRequest('now', 'now must be an ISO instant');
    const decisions = await pruneDecisions(this.#db, new Date(nowMs - this.#retentionMs).toISOString());
    const refreshTokens = this.#db.transaction(() => this.#db.run('DELETE FROM refresh_tokens WHERE expires_ms < ?', nowMs - REFRESH_RETENTION_MS));
    const quotaWindows = pruneQuotaWindows(this.#db, nowMs);
    const reinstatedBlocks = this.#db.transaction(() =>
      this.#db.run('DELETE FROM blocks WHERE reinstated_at_ms IS NOT NULL AND reinstated_at_ms < ?', nowMs - REINSTATED_BLOCK_RETENTION_MS),
    );
    return { decisions, refreshTokens, quotaWindows, reinstatedBlocks };
  }

  /** Folds the WAL into the database file (sizes on disk, backups). */
  checkpoint(): void {
    this.#db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  }

  // Helpers

  #putEntity(type: EntityType, id: string, value: unknown): void {
    this.#db.transaction(() => this.#writeEntity(type, id, value));
  }

  #writeEntity(type: EntityType, id: string, value: unknown): void {
    this.#db.run('INSERT OR REPLACE INTO entities (type, id, doc) VALUES (?, ?, ?)', type, id, toDoc(value));
  }

  #getEntity<T>(type: EntityType, id: string): T | undefined {
    return parseDoc<T>(this.#db.get('SELECT doc FROM entities WHERE type = ? AND id = ?', type, id));
  }

  #listEntities<T>(type: EntityType): T[] {
    return this.#db.all('SELECT doc FROM entities WHERE type = ? ORDER BY id', type).map((row) => parseDoc<T>(row)!);
  }

  #grantsOf(identity: string): Grant[] {
    return this.#db.all('SELECT doc FROM grants WHERE identity = ? ORDER BY id', identity).map((row) => parseDoc<Grant>(row)!);
  }
}

/**
 * The result of synchronous work as a promise, a throw as a rejection: callers of the port see
 * every failure (a refusal, a closed database) the same way as on DynamoDB.
 */
function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}

/** The same set of actions, in whatever order. */
function sameActions(a: readonly string[], b: readonly string[]): boolean {
  const left = [...new Set(a)].sort();
  const right = [...new Set(b)].sort();
  return left.length === right.length && left.every((action, i) => action === right[i]);
}
