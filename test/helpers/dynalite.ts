/**
 * dynalite, a DynamoDB engine in pure JavaScript, on loopback: no longer the embedded default's
 * store (that is SQLite, `shared/adapters/sqlite/`), kept for the tests of the DynamoDB-side adapters
 * that need a DynamoDB API in process without a JVM (docs/decisions.md, "The embedded store on
 * SQLite"). The DynamoDB adapter talks to it as it does on AWS.
 *
 * With `inWorker`, dynalite (and its LevelDB) runs in a `worker_threads` Worker: its own event
 * loop, on another core if there is one, so the issuer's loop does not queue behind the
 * engine's request handling and LevelDB callbacks. The contract is the same: an endpoint on
 * loopback, and `close()` resolves once LevelDB is closed and the data is on disk.
 *
 * @example
 * ```ts
 * const engine = await startDynalite({ dataDir: '.lanyard/db', inWorker: true });
 * const client = localDynamoClient(engine.endpoint);
 * await ensureTable(client, 'lanyard');
 * // …
 * client.destroy();
 * await engine.close();
 * ```
 */
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';

export interface DynaliteOptions {
  /** LevelDB directory for persistent data. @default in memory */
  readonly dataDir?: string;
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** @default 0 (any free port) */
  readonly port?: number;
  /** Run dynalite in a worker thread (its own event loop) instead of on the caller's. @default false */
  readonly inWorker?: boolean;
}

export interface RunningEngine {
  /** `http://host:port`, for `localDynamoClient`. */
  readonly endpoint: string;
  close(): Promise<void>;
}

/** Tables are ACTIVE at once: nothing waits on a simulated CREATING state. */
const ENGINE_OPTIONS = { createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 } as const;

export async function startDynalite(options: DynaliteOptions = {}): Promise<RunningEngine> {
  const host = options.host ?? '127.0.0.1';
  if (options.dataDir !== undefined) await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const engineOptions = { ...(options.dataDir === undefined ? {} : { path: options.dataDir }), ...ENGINE_OPTIONS };
  const started = options.inWorker
    ? await startInWorker(engineOptions, host, options.port ?? 0)
    : await startInProcess(engineOptions, host, options.port ?? 0);
  return { endpoint: `http://${host.includes(':') ? `[${host}]` : host}:${started.port}`, close: started.close };
}

interface Started {
  readonly port: number;
  readonly close: () => Promise<void>;
}

async function startInProcess(engineOptions: object, host: string, port: number): Promise<Started> {
  const server = dynalite(engineOptions);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        // Idle keep-alive sockets of SDK clients would otherwise hold the server open.
        server.closeIdleConnections();
        // dynalite's close also closes LevelDB once pending operations are done.
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/**
 * The worker's program: CommonJS, evaluated as a string, so the worker loads only dynalite
 * (resolved from this module, passed in) and not this module's TypeScript and AWS SDK imports.
 * Messages: worker → parent `{ type: 'listening', port }`, `{ type: 'closed', error? }`,
 * `{ type: 'failed', error }`; parent → worker `'close'`.
 */
const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const dynalite = require(workerData.dynalitePath);
const server = dynalite(workerData.engineOptions);
const failed = (error) => parentPort.postMessage({ type: 'failed', error: String(error && error.stack || error) });
server.once('error', failed);
server.listen(workerData.port, workerData.host, () => {
  server.off('error', failed);
  parentPort.postMessage({ type: 'listening', port: server.address().port });
});
parentPort.on('message', (message) => {
  if (message !== 'close') return;
  server.closeIdleConnections();
  server.close((error) => parentPort.postMessage({ type: 'closed', ...(error ? { error: String(error.stack || error) } : {}) }));
});
`;

type WorkerMessage = { type: 'listening'; port: number } | { type: 'closed'; error?: string } | { type: 'failed'; error: string };

async function startInWorker(engineOptions: object, host: string, port: number): Promise<Started> {
  const dynalitePath = createRequire(import.meta.url).resolve('dynalite');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { dynalitePath, engineOptions, host, port } });
  let exited = false;
  const exit = new Promise<number>((resolve) => {
    worker.once('exit', (code) => {
      exited = true;
      resolve(code);
    });
  });
  // An uncaught error in the engine ends the worker; the store's calls then fail (503, retryable)
  // instead of the whole issuer crashing. Say so once, on stderr.
  const onError = (error: Error) => process.emitWarning(`embedded dynalite worker failed: ${error.stack ?? error.message}`);
  const listening = await new Promise<number>((resolve, reject) => {
    const onMessage = (message: WorkerMessage) => {
      if (message.type === 'listening') settle(() => resolve(message.port));
      else if (message.type === 'failed') settle(() => reject(new Error(`embedded dynalite failed to start: ${message.error}`)));
    };
    const onStartError = (error: Error) => settle(() => reject(error));
    const onStartExit = (code: number) => settle(() => reject(new Error(`embedded dynalite worker exited (${code}) before it listened`)));
    const settle = (done: () => void) => {
      worker.off('message', onMessage);
      worker.off('error', onStartError);
      worker.off('exit', onStartExit);
      worker.on('error', onError);
      done();
    };
    worker.on('message', onMessage);
    worker.once('error', onStartError);
    worker.once('exit', onStartExit);
  }).catch(async (error: unknown) => {
    await worker.terminate();
    throw error;
  });
  let closing: Promise<void> | undefined;
  return {
    port: listening,
    close: () =>
      (closing ??= (async () => {
        if (exited) return;
        const closed = new Promise<string | undefined>((resolve) => {
          worker.on('message', (message: WorkerMessage) => {
            if (message.type === 'closed') resolve(message.error);
          });
          void exit.then(() => resolve(undefined));
        });
        worker.postMessage('close');
        const error = await closed;
        // LevelDB is closed (or the worker is gone): nothing left in the worker worth waiting for.
        await worker.terminate();
        await exit;
        if (error !== undefined) throw new Error(`embedded dynalite did not close cleanly: ${error}`);
      })()),
  };
}

/**
 * A DynamoDB client for a local engine (dynalite or DynamoDB Local). The credentials are dummies
 * the engines accept; DynamoDB Local keeps one database per access key and region, so every
 * client built here sees the same tables.
 */
export function localDynamoClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: 'local',
    credentials: { accessKeyId: 'lanyard', secretAccessKey: 'lanyard' },
    maxAttempts: 2,
  });
}
