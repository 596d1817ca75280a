/**
 * The one connection the embedded store writes through, with its prepared statements cached
 * (a statement is compiled once, on first use) and a transaction helper. Everything here is
 * synchronous, like `node:sqlite` itself: a transaction opened here is committed or rolled back
 * before control returns to the event loop, so no other call can interleave with it.
 */
import type { DatabaseSync, SQLInputValue, StatementSync } from 'node:sqlite';

export type Row = Record<string, SQLInputValue>;

export class Db {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  get isOpen(): boolean {
    return this.#db.isOpen;
  }

  statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  get(sql: string, ...params: SQLInputValue[]): Row | undefined {
    return this.statement(sql).get(...params);
  }

  all(sql: string, ...params: SQLInputValue[]): Row[] {
    return this.statement(sql).all(...params);
  }

  /** Rows changed. */
  run(sql: string, ...params: SQLInputValue[]): number {
    return Number(this.statement(sql).run(...params).changes);
  }

  /** Runs `work` in one write transaction (taken at once: IMMEDIATE), committed when it returns, rolled back when it throws. */
  transaction<T>(work: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    let result: T;
    try {
      result = work();
    } catch (error) {
      // SQLite rolls some failures back itself (disk full, I/O error): a second ROLLBACK would
      // throw "no transaction is active" and hide the cause.
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw error;
    }
    try {
      this.#db.exec('COMMIT');
    } catch (error) {
      // A COMMIT that failed (disk full, I/O error) may leave the transaction open: nothing of it is kept.
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw error;
    }
    return result;
  }

  exec(sql: string): void {
    this.#db.exec(sql);
  }

  close(): void {
    this.#statements.clear();
    if (this.#db.isOpen) this.#db.close();
  }
}

/** A stored JSON document as the domain object it was. */
export function parseDoc<T>(row: Row | undefined): T | undefined {
  return row === undefined ? undefined : (JSON.parse(row['doc'] as string) as T);
}

/** A domain object as stored: JSON drops `undefined`-valued properties, so none comes back as an explicit `undefined`. */
export function toDoc(value: unknown): string {
  return JSON.stringify(value);
}
