/**
 * Group commit of decision records (docs/decisions.md, "The embedded store on SQLite").
 *
 * `node:sqlite` is synchronous: a commit with `synchronous=FULL` holds the event loop for the
 * fsync. While it does, requests that arrive wait in the socket buffers; once the loop turns
 * again they are handled, and each one's records join the queue. The queue is committed on
 * `setImmediate`, after the loop has polled I/O, so every record gathered in that turn goes
 * into one transaction and one fsync. Each caller's promise settles after the commit that
 * holds its records: resolved once they are on disk, or rejected with that commit's error.
 *
 * A batch that fails is retried caller by caller, so one caller's failure (say, a record the
 * engine refuses) is that caller's error only and never rejects the others.
 */
export interface CommitBatch {
  /** Records committed in one transaction. */
  readonly size: number;
  /** Wall time of the transaction, fsync included. */
  readonly durationMs: number;
}

interface Pending<T> {
  readonly items: readonly T[];
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class GroupCommit<T> {
  readonly #commit: (items: readonly T[]) => void;
  readonly #onCommit: ((batch: CommitBatch) => void) | undefined;
  #queue: Pending<T>[] = [];
  #scheduled = false;

  /** `commit` writes all the items in ONE transaction, synchronously, or throws having written none. */
  constructor(commit: (items: readonly T[]) => void, onCommit?: (batch: CommitBatch) => void) {
    this.#commit = commit;
    this.#onCommit = onCommit;
  }

  /** Resolves once `items` are committed (with whatever else was queued in the same turn). */
  add(items: readonly T[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ items, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Records queued and not yet committed. */
  get pending(): number {
    return this.#queue.reduce((sum, entry) => sum + entry.items.length, 0);
  }

  /** Commits the whole queue now (also what the scheduled turn does; `close` calls it to drain). */
  flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0) return;
    try {
      this.#timed(batch.flatMap((entry) => entry.items));
      for (const entry of batch) entry.resolve();
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
      // One transaction per caller: each gets its own outcome.
      for (const entry of batch) {
        try {
          this.#timed(entry.items);
          entry.resolve();
        } catch (own) {
          entry.reject(own);
        }
      }
    }
  }

  #timed(items: readonly T[]): void {
    const started = performance.now();
    this.#commit(items);
    const durationMs = performance.now() - started;
    // The records are committed: a failing hook must not make them look failed (and be written again).
    try {
      this.#onCommit?.({ size: items.length, durationMs });
    } catch {
      // The hook is observability only.
    }
  }
}
