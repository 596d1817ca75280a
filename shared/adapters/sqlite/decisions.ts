/**
 * Decision and credential records on SQLite: rows, the five query dimensions, opaque cursors
 * and retention. The records are written by the store's group commit (group-commit.ts).
 */
import type { DecisionRecord } from '../../domain/model.ts';
import { invalidRequest } from '../../domain/errors.ts';
import type { DecisionQuery, Page } from '../../ports/index.ts';
import { parseDoc, toDoc, type Db } from './db.ts';
import { instantKey, queryLimit } from '../../ports/decision-query.ts';

/** Rows deleted per retention transaction, so a large backlog never holds the loop for long. */
const RETENTION_CHUNK = 2_000;

/** The column each `DecisionQuery.by` is indexed under (schema.ts); never user input in SQL. */
const DIMENSIONS = {
  identity: 'identity',
  lane: 'lane',
  tenant: 'tenant',
  task: 'task',
  tool: 'tool',
} as const satisfies Record<DecisionQuery['by'], string>;

/** A decision as the row `putDecisions` writes, its instant checked. */
export interface DecisionRow {
  readonly key: string;
  readonly at: string;
  readonly identity: string | null;
  readonly lane: string | null;
  readonly tenant: string | null;
  readonly task: string | null;
  readonly tool: string | null;
  readonly doc: string;
}

/** Issued decisions are found by credential id; a denied one is kept under its own id. */
export const credentialKey = (credentialId: string) => `c:${credentialId}`;
const deniedKey = (id: string) => `d:${id}`;

/** Throws `invalid_request` (field `at`) for a record whose time is not an instant, before anything is queued. */
export function decisionRow(record: DecisionRecord): DecisionRow {
  return {
    key: record.decision === 'issued' ? credentialKey(record.credentialId ?? record.id) : deniedKey(record.id),
    at: instantKey(record.at, 'at'),
    // As on DynamoDB, an empty value is in no index.
    identity: record.identity || null,
    lane: record.lane || null,
    tenant: record.tenant || null,
    task: record.task?.id || null,
    tool: record.tool || null,
    doc: toDoc(record),
  };
}

const INSERT =
  'INSERT OR REPLACE INTO decisions (key, at, identity, lane, tenant, task, tool, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)';

/** Writes rows in ONE transaction; of two rows with one key the later wins. */
export function writeDecisions(db: Db, rows: readonly DecisionRow[]): void {
  db.transaction(() => {
    const insert = db.statement(INSERT);
    for (const row of rows) insert.run(row.key, row.at, row.identity, row.lane, row.tenant, row.task, row.tool, row.doc);
  });
}

export function getCredential(db: Db, credentialId: string): DecisionRecord | undefined {
  return parseDoc<DecisionRecord>(db.get('SELECT doc FROM decisions WHERE key = ?', credentialKey(credentialId)));
}

interface Cursor {
  readonly by: string;
  readonly value: string;
  readonly at: string;
  readonly row: number;
}

/** Newest first, `from`/`to` inclusive; `limit` defaults to 100, capped at 1000; the cursor is only valid for the same query. */
export function queryDecisions(db: Db, query: DecisionQuery): Page<DecisionRecord> {
  const column = Object.hasOwn(DIMENSIONS, query.by) ? DIMENSIONS[query.by] : undefined;
  if (column === undefined) throw invalidRequest('by', 'decisions are queried by identity, lane, tenant, task or tool');
  if (typeof query.value !== 'string' || query.value === '') throw invalidRequest('value', 'a value to query by is required');
  const from = query.from === undefined ? undefined : instantKey(query.from, 'from');
  const to = query.to === undefined ? undefined : instantKey(query.to, 'to');
  const limit = queryLimit(query.limit);
  if (from !== undefined && to !== undefined && from > to) return { items: [] };
  const start = query.cursor === undefined ? undefined : decodeCursor(query.cursor, query.by, query.value, from, to);

  const clauses = [`${column} = ?`];
  const params: (string | number)[] = [query.value];
  if (from !== undefined) {
    clauses.push('at >= ?');
    params.push(from);
  }
  if (to !== undefined) {
    clauses.push('at <= ?');
    params.push(to);
  }
  if (start !== undefined) {
    clauses.push('(at, rowid) < (?, ?)');
    params.push(start.at, start.row);
  }
  // One row more than asked tells whether there is a next page.
  const rows = db.all(
    `SELECT rowid AS row, at, doc FROM decisions WHERE ${clauses.join(' AND ')} ORDER BY at DESC, rowid DESC LIMIT ?`,
    ...params,
    limit + 1,
  );
  const page = rows.slice(0, limit);
  const items = page.map((row) => parseDoc<DecisionRecord>(row)!);
  if (rows.length <= limit) return { items };
  const last = page.at(-1)!;
  return { items, cursor: encodeCursor({ by: query.by, value: query.value, at: last['at'] as string, row: Number(last['row']) }) };
}

/** Drops decision records older than `cutoff` (an ISO instant), oldest first, in chunks. Returns how many. */
export async function pruneDecisions(db: Db, cutoff: string): Promise<number> {
  const before = instantKey(cutoff, 'cutoff');
  let dropped = 0;
  for (;;) {
    const count = db.transaction(() =>
      db.run('DELETE FROM decisions WHERE rowid IN (SELECT rowid FROM decisions WHERE at < ? ORDER BY at LIMIT ?)', before, RETENTION_CHUNK),
    );
    dropped += count;
    if (count < RETENTION_CHUNK) return dropped;
    // Let requests in between chunks.
    await new Promise((resolve) => setImmediate(resolve));
  }
}



function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor), 'utf8').toString('base64url');
}

/** The position a cursor carries, checked to belong to this query: a foreign or forged cursor is a 400. */
function decodeCursor(cursor: string, by: string, value: string, from: string | undefined, to: string | undefined): Cursor {
  const invalid = () => invalidRequest('cursor', 'the cursor does not belong to this query');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalid();
  const start = parsed as Partial<Record<keyof Cursor, unknown>>;
  if (start.by !== by || start.value !== value || typeof start.at !== 'string' || !Number.isSafeInteger(start.row)) throw invalid();
  if ((from !== undefined && start.at < from) || (to !== undefined && start.at > to)) throw invalid();
  return start as Cursor;
}
