/**
 * The embedded DynamoDB engine of the embedded default (DESIGN §7): dynalite, pure JavaScript,
 * on loopback, so `npm start` needs no Java, Docker or AWS account. The store talks to it with
 * the very same DynamoDB adapter it uses on AWS.
 *
 * @example
 * ```ts
 * const engine = await startDynalite({ dataDir: '.lanyard/db' });
 * const client = localDynamoClient(engine.endpoint);
 * await ensureTable(client, 'lanyard');
 * // …
 * client.destroy();
 * await engine.close();
 * ```
 */
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';

export interface DynaliteOptions {
  /** LevelDB directory for persistent data. @default in memory */
  readonly dataDir?: string;
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** @default 0 (any free port) */
  readonly port?: number;
}

export interface RunningEngine {
  /** `http://host:port`, for `localDynamoClient`. */
  readonly endpoint: string;
  close(): Promise<void>;
}

export async function startDynalite(options: DynaliteOptions = {}): Promise<RunningEngine> {
  const host = options.host ?? '127.0.0.1';
  if (options.dataDir !== undefined) await mkdir(options.dataDir, { recursive: true });
  // Tables are ACTIVE at once: nothing waits on a simulated CREATING state.
  const server = dynalite({
    ...(options.dataDir === undefined ? {} : { path: options.dataDir }),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    endpoint,
    close: () =>
      new Promise<void>((resolve, reject) => {
        // Idle keep-alive sockets of SDK clients would otherwise hold the server open.
        server.closeIdleConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
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
