/**
 * The Store contract (../store-contract.ts) on the SQLite store, on a database file in a temp
 * dir and on `:memory:`; then what only the SQLite store has: group commit, durability across a
 * close and reopen, retention, schema versions.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../../../shared/adapters/sqlite/schema.ts';
import { SqliteStore } from '../../../../shared/adapters/sqlite/sqlite-store.ts';
import { denied, describeStoreContract, issued, type StoreEngine } from '../store-contract.ts';

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

describe('Class: SqliteStore (what only the SQLite store has)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lanyard-sqlite-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const NOW = '2025-03-01T12:00:00.000Z';
  const daysBefore = (days: number) => new Date(Date.parse(NOW) - days * 86_400_000).toISOString();

  describe('Method: putDecisions (group commit)', () => {
    it('commits the records of concurrent callers in one transaction, and each caller reads its records once resolved', async () => {
      // Prepare
      const batches: { size: number; durationMs: number }[] = [];
      const store = SqliteStore.open({ location: join(dir, 'group.db'), onCommit: (batch) => batches.push(batch) });
      const records = Array.from({ length: 20 }, (_, i) => issued(daysBefore(i), { identity: 'support-triage/prod' }));

      try {
        // Act: 20 callers in the same turn of the loop.
        await Promise.all(records.map((record) => store.putDecisions([record])));

        // Assess
        expect(batches.map((batch) => batch.size)).toStrictEqual([20]);
        expect(batches[0]!.durationMs).toBeGreaterThanOrEqual(0);
        for (const record of records) expect(await store.getCredential(record.credentialId!)).toStrictEqual(record);
      } finally {
        await store.close();
      }
    });

    it('commits what was queued before close, so a caller that did not wait still finds its record after a reopen', async () => {
      // Prepare
      const location = join(dir, 'close.db');
      const store = SqliteStore.open({ location });
      const record = issued(NOW, { identity: 'support-triage/prod' });

      // Act
      const written = store.putDecisions([record]);
      await store.close();
      await written;

      // Assess
      const reopened = SqliteStore.open({ location });
      try {
        expect(await reopened.getCredential(record.credentialId!)).toStrictEqual(record);
      } finally {
        await reopened.close();
      }
    });
  });

  describe('Durability: write, close, reopen, read', () => {
    it('reads back after a reopen everything written before the close', async () => {
      // Prepare
      const location = join(dir, 'durable.db');
      const store = SqliteStore.open({ location });
      const records = [issued(NOW, { identity: 'support-triage/prod', task: 'T-1' }), denied(NOW, { identity: 'support-triage/prod' })];
      await store.putDecisions(records);
      const revocation = await store.appendRevocation({
        id: 'rev_1',
        target: { lane: 'support-triage/prod:tickets:read:acme' },
        targetType: 'lane',
        targetKey: 'lane:support-triage/prod:tickets:read:acme',
        cutoff: NOW,
        relevantUntil: '2025-03-01T13:00:00.000Z',
        actor: 'oncall@example.com',
        reason: 'leaked token',
        requestId: 'req_1',
      });
      await store.putRefreshToken({ hash: 'a'.repeat(64), instance: 'support-triage/prod#1', principal: 'fleet', createdAt: NOW, expiresAt: '2025-03-01T13:00:00.000Z' });
      await store.spendRefreshToken('a'.repeat(64), 'b'.repeat(64), NOW);
      await store.takeQuota('llm', { startMs: Date.parse(NOW), seconds: 3600 }, { requests: 10 }, 3);
      await store.close();

      // Act
      const reopened = SqliteStore.open({ location });

      // Assess
      try {
        expect((await reopened.queryDecisions({ by: 'task', value: 'T-1' })).items).toStrictEqual([records[0]]);
        expect((await reopened.queryDecisions({ by: 'identity', value: 'support-triage/prod' })).items).toHaveLength(2);
        expect(await reopened.listRevocations(0, 10)).toStrictEqual([revocation]);
        expect((await reopened.spendRefreshToken('a'.repeat(64), 'c'.repeat(64), NOW)).status).toBe('already-spent');
        expect((await reopened.getQuotaUsage('llm', { startMs: Date.parse(NOW), seconds: 3600 }))?.requests).toBe(3);
        // The feed keeps counting after a reopen.
        expect((await reopened.appendRevocation({ ...revocation, id: 'rev_2' })).seq).toBe(revocation.seq + 1);
      } finally {
        await reopened.close();
      }
    });
  });

  describe('Schema version', () => {
    it('sets user_version to the last migration on a new file and opens it again unchanged', async () => {
      // Prepare
      const location = join(dir, 'version.db');
      await SqliteStore.open({ location }).close();

      // Act
      const db = new DatabaseSync(location);
      const version = (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
      db.close();

      // Assess
      expect(version).toBe(SCHEMA_VERSION);
      await SqliteStore.open({ location }).close();
    });

    it('refuses a file written by a newer Lanyard, and leaves it as it was', () => {
      // Prepare
      const location = join(dir, 'newer.db');
      const db = new DatabaseSync(location);
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
      db.close();

      // Act & Assess
      expect(() => SqliteStore.open({ location })).toThrow(`the database is at schema version ${SCHEMA_VERSION + 1}, newer than this Lanyard knows (${SCHEMA_VERSION})`);
      const after = new DatabaseSync(location);
      expect((after.prepare('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION + 1);
      expect(after.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get()?.['n']).toBe(0);
      expect(after.prepare('PRAGMA journal_mode').get()?.['journal_mode']).toBe('delete');
      after.close();
    });
  });

  describe('Method: pruneExpired', () => {
    it('drops what is past its retention and keeps the rest', async () => {
      // Prepare
      const store = SqliteStore.open({ location: ':memory:', decisionRetentionDays: 30 });
      const old = issued(daysBefore(31), { identity: 'support-triage/prod' });
      const recent = issued(daysBefore(29), { identity: 'support-triage/prod' });
      const oldDenial = denied(daysBefore(45), { identity: 'support-triage/prod' });
      await store.putDecisions([old, recent, oldDenial]);
      const token = (hash: string, expiresAt: string) => ({ hash, instance: 'support-triage/prod#1', principal: 'fleet', createdAt: daysBefore(3), expiresAt });
      await store.putRefreshToken(token('1'.repeat(64), daysBefore(2)));
      await store.putRefreshToken(token('2'.repeat(64), daysBefore(0.5)));
      const oldWindow = { startMs: Date.parse(daysBefore(3)), seconds: 3600 };
      const recentWindow = { startMs: Date.parse(daysBefore(0.5)), seconds: 3600 };
      await store.takeQuota('llm', oldWindow, {});
      await store.takeQuota('llm', recentWindow, {});
      const block = (targetKey: string) => ({ targetKey, targetType: 'lane' as const, revocationId: 'rev_1', since: daysBefore(10), actor: 'oncall', reason: 'test' });
      await store.putBlock(block('lane:a'));
      await store.putBlock(block('lane:b'));
      await store.putBlock(block('lane:c'));
      await store.reinstateBlock('lane:a', { at: daysBefore(8), actor: 'oncall', reason: 'fixed', requestId: 'req_a' });
      await store.reinstateBlock('lane:b', { at: daysBefore(6), actor: 'oncall', reason: 'fixed', requestId: 'req_b' });

      try {
        // Act
        const pruned = await store.pruneExpired(NOW);

        // Assess
        expect(pruned).toStrictEqual({ decisions: 2, refreshTokens: 1, quotaWindows: 1, reinstatedBlocks: 1 });
        expect(await store.getCredential(old.credentialId!)).toBeUndefined();
        expect(await store.getCredential(recent.credentialId!)).toStrictEqual(recent);
        expect((await store.queryDecisions({ by: 'identity', value: 'support-triage/prod' })).items).toStrictEqual([recent]);
        expect(await store.getRefreshToken('1'.repeat(64))).toBeUndefined();
        expect(await store.getRefreshToken('2'.repeat(64))).toBeDefined();
        expect(await store.getQuotaUsage('llm', oldWindow)).toBeUndefined();
        expect((await store.getQuotaUsage('llm', recentWindow))?.requests).toBe(1);
        expect((await store.listBlocks()).map((b) => b.targetKey)).toStrictEqual(['lane:c']);
        // A second pass finds nothing more.
        expect(await store.pruneExpired(NOW)).toStrictEqual({ decisions: 0, refreshTokens: 0, quotaWindows: 0, reinstatedBlocks: 0 });
      } finally {
        await store.close();
      }
    });

    it('refuses a now that is not an instant, and a non-positive retention', async () => {
      // Prepare
      const store = SqliteStore.open({ location: ':memory:' });

      // Act & Assess
      try {
        await expect(store.pruneExpired('noon')).rejects.toMatchObject({ code: 'invalid_request', context: { field: 'now' } });
      } finally {
        await store.close();
      }
      expect(() => SqliteStore.open({ location: ':memory:', decisionRetentionDays: 0 })).toThrow(RangeError);
    });
  });
});
