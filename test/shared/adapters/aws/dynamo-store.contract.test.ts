/**
 * The Store contract (../store-contract.ts) on the DynamoDB store, against both DynamoDB engines
 * it meets (docs/architecture.md): DynamoDB Local (AWS's own engine) and dynalite (the in-process
 * engine the unit tests of the DynamoDB-side adapters run on), so a divergence between them fails
 * here rather than in production. Then what only the DynamoDB layout has: the constructor's
 * checks and the TTL attributes. Real engines only, no mocks; loopback only.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoStore } from '../../../../shared/adapters/dynamodb/dynamo-store.ts';
import type { RefreshTokenRecord } from '../../../../shared/ports/index.ts';
import { dynamoDbLocalEngine, startDynaliteEngine } from '../../../helpers/engines.ts';
import type { Engine } from '../../../helpers/engines.ts';
import { describeStoreContract, type StoreEngine } from '../store-contract.ts';

const engines: [string, () => Promise<Engine>][] = [
  ['dynalite', () => startDynaliteEngine()],
  ['DynamoDB Local', () => Promise.resolve(dynamoDbLocalEngine(inject('dynamoDbLocalEndpoint')))],
];

/** Every fresh store is a new table on the one engine. */
async function dynamoStores(startEngine: () => Promise<Engine>): Promise<StoreEngine> {
  const engine = await startEngine();
  return {
    freshStore: async () => new DynamoStore({ client: engine.client, tableName: await engine.createTable('store') }),
    close: () => engine.close(),
  };
}

for (const [engineName, startEngine] of engines) describeStoreContract(`DynamoStore on ${engineName}`, () => dynamoStores(startEngine));

describe.each(engines)('Class: DynamoStore (the DynamoDB layout) on %s', (_engineName, startEngine) => {
  let engine: Engine;
  let store: DynamoStore;
  let tableName: string;

  beforeAll(async () => {
    engine = await startEngine();
    tableName = await engine.createTable('layout');
    store = new DynamoStore({ client: engine.client, tableName });
  });

  afterAll(async () => {
    await engine?.close();
  });

  describe('Method: constructor', () => {
    it('refuses a non-positive decision retention', () => {
      // Act & Assess
      expect(() => new DynamoStore({ client: engine.client, tableName: 'x', decisionRetentionDays: 0 })).toThrow(RangeError);
    });
  });

  describe('Method: putRefreshToken', () => {
    it('sets the ttl attribute (epoch seconds) at or after the expiry', async () => {
      // Prepare
      const saved: RefreshTokenRecord = {
        hash: randomBytes(32).toString('hex'),
        instance: 'support-triage/prod#ttl',
        principal: 'fleet-scheduler',
        createdAt: '2025-03-01T12:00:00.000Z',
        expiresAt: '2025-03-01T13:00:00.000Z',
      };
      await store.putRefreshToken(saved);

      // Act
      const raw = await engine.client.send(new GetItemCommand({ TableName: tableName, Key: { PK: { S: `REFRESH#${saved.hash}` }, SK: { S: 'REFRESH' } } }));

      // Assess
      expect(Number(raw.Item?.['ttl']?.N)).toBeGreaterThanOrEqual(Date.parse(saved.expiresAt) / 1000);
    });
  });

  describe('Method: takeQuota', () => {
    /** The hour-long window that began at 2025-03-01T12:00Z. */
    const HOUR = { startMs: Date.parse('2025-03-01T12:00:00.000Z'), seconds: 3600 };

    it('sets the ttl attribute (epoch seconds) to the window end plus one day', async () => {
      // Prepare
      const bucket = `llm-${randomBytes(4).toString('hex')}`;
      await store.takeQuota(bucket, HOUR, { requests: 10 });

      // Act
      const raw = await engine.client.send(
        new GetItemCommand({ TableName: tableName, Key: { PK: { S: `QUOTA#${bucket}` }, SK: { S: `W#${String(HOUR.seconds).padStart(8, '0')}#${String(HOUR.startMs).padStart(16, '0')}` } } }),
      );

      // Assess
      expect(Number(raw.Item?.['ttl']?.N)).toBe(Date.parse('2025-03-02T13:00:00.000Z') / 1000);
      expect(raw.Item?.['windowStart']?.S).toBe('2025-03-01T12:00:00.000Z');
    });
  });
});
