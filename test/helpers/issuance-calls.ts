/**
 * What one issuance costs in AWS calls on the AWS composition root (`coreServices`), for a
 * cold container (its first issuance) and a warm one (the next): the calls are counted by
 * command at the clients. DynamoDB is dynalite, a real engine (the DynamoDB adapter's own, see
 * test/helpers/dynalite.ts), counted by a middleware on the client; KMS is the fake
 * of fake-kms.ts (real P-256 keys, aliases, DER signatures). The family is as rotation leaves
 * it: the alias on the active key, a retired and a staged key published beside it in the
 * signing-key registry item. The clock stands still, so no cache expires between the two
 * issuances however slow the machine: the counts are behaviour, not timing.
 */
import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createIssueCredentialHandler } from '../../lambdas/issue-credential.ts';
import { DynamoStore } from '../../shared/adapters/dynamodb/dynamo-store.ts';
import { ensureTable } from '../../shared/adapters/dynamodb/table.ts';
import { SigningKeyRegistry } from '../../shared/adapters/aws/signing-key-registry.ts';
import { localDynamoClient, startDynalite } from './dynalite.ts';
import { coreServices } from '../../shared/bootstrap/aws/core-services.ts';
import type { HttpEvent } from '../../shared/http/types.ts';
import { silentLog } from '../../shared/ports/log.ts';
import { applyPolicy } from '../../shared/policy/policy-file.ts';
import { fakeKms } from './fake-kms.ts';

const ALIAS = 'alias/lanyard/Lanyard/signing';
const CALLER = 'arn:aws:iam::123456789012:role/triage-worker';
const TABLE = 'lanyard';
const NOW = Date.parse('2026-12-01T12:00:00.000Z');

/** Calls by service and command (`GetItem`, `Query`, `GetPublicKey`, `Sign`, …). */
export interface CallCount {
  readonly dynamodb: Readonly<Record<string, number>>;
  readonly kms: Readonly<Record<string, number>>;
  /** The answer's HTTP status. */
  readonly status: number;
}

export interface IssuanceCalls {
  readonly cold: CallCount;
  readonly warm: CallCount;
}

/** DynamoDB reads among the counted commands. */
export const DYNAMODB_READS = ['GetItem', 'BatchGetItem', 'Query', 'Scan', 'TransactGetItems'] as const;

export function readsOf(count: CallCount): number {
  return DYNAMODB_READS.reduce((n, command) => n + (count.dynamodb[command] ?? 0), 0);
}

export function writesOf(count: CallCount): number {
  return Object.entries(count.dynamodb).reduce((n, [command, calls]) => n + ((DYNAMODB_READS as readonly string[]).includes(command) ? 0 : calls), 0);
}

/** KMS calls other than Sign. */
export function kmsBesidesSignOf(count: CallCount): number {
  return Object.entries(count.kms).reduce((n, [command, calls]) => n + (command === 'Sign' ? 0 : calls), 0);
}

export async function countIssuanceCalls(): Promise<IssuanceCalls> {
  const engine = await startDynalite();
  const dynamo = localDynamoClient(engine.endpoint);
  try {
    await ensureTable(dynamo, TABLE);
    const kms = fakeKms({ clock: { now: () => NOW } });
    await seed(dynamo, kms);
    const dynamoCalls = countCommands(dynamo);
    kms.mock.resetHistory();

    const services = coreServices({
      env: { AWS_REGION: 'eu-west-1', LANYARD_TABLE: TABLE, LANYARD_SIGNING_KEY: ALIAS, LANYARD_ISSUER: 'https://abc123.execute-api.eu-west-1.amazonaws.com', LANYARD_POLICY_TTL_MS: '1000', LANYARD_STS: 'off' },
      log: silentLog,
      dynamo,
      tableName: TABLE,
      kms: kms.client,
      clock: { now: () => NOW },
    });
    const handler = createIssueCredentialHandler(services);
    const issue = async (): Promise<CallCount> => {
      dynamoCalls.clear();
      kms.mock.resetHistory();
      const answer = await handler(issueEvent(), { awsRequestId: randomUUID() });
      const kmsCalls: Record<string, number> = {};
      for (const call of kms.mock.calls()) {
        const name = (call.args[0] as object).constructor.name.replace(/Command$/, '');
        kmsCalls[name] = (kmsCalls[name] ?? 0) + 1;
      }
      return { dynamodb: Object.fromEntries(dynamoCalls), kms: kmsCalls, status: answer.statusCode };
    };
    const cold = await issue();
    const warm = await issue();
    return { cold, warm };
  } finally {
    dynamo.destroy();
    await engine.close();
  }
}

/** The policy of one agent with one grant, and the signing-key family as rotation leaves it. */
async function seed(dynamo: DynamoDBClient, kms: ReturnType<typeof fakeKms>): Promise<void> {
  const store = new DynamoStore({ client: dynamo, tableName: TABLE });
  await applyPolicy(
    store,
    {
      tools: [{ id: 'tickets', audience: 'https://tickets.example.internal', actions: { read: 'read' }, enabled: true }],
      roles: [{ id: 'support-triage', version: 1, actions: ['tickets:read'], approvedBy: 'alice@example.com' }],
      identities: [{ id: 'support-triage/prod', owner: 'team-support', purpose: 'triage tickets', status: 'active' }],
      grants: [{ identity: 'support-triage/prod', role: 'support-triage@1', tenants: ['acme'], maxTtlSeconds: 900, kinds: ['jwt'], quotaBucket: 'support-llm' }],
      principals: [{ id: 'triage-worker-1', kind: 'agent', identity: 'support-triage/prod', arn: CALLER }],
    },
    new Date(NOW).toISOString(),
  );
  const family = [{ TagKey: 'lanyard:signing-key', TagValue: ALIAS }];
  const [retired, active, staged] = [kms.make(family), kms.make(family), kms.make(family)];
  kms.aliases.set(ALIAS, active.id);
  const publishedAt = new Date(NOW - 3600_000).toISOString();
  await new SigningKeyRegistry({ client: dynamo, tableName: TABLE }).write(
    ALIAS,
    [retired, active, staged].map((key) => ({ arn: key.arn, publishedAt })),
    publishedAt,
  );
}

/** Counts every command the client (and a document client on it) sends, by name without `Command`. */
function countCommands(client: DynamoDBClient): Map<string, number> {
  const counts = new Map<string, number>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = String(context.commandName ?? 'unknown').replace(/Command$/, '');
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize', name: 'lanyardCallCounter' },
  );
  return counts;
}

function issueEvent(): HttpEvent {
  const body = JSON.stringify({ tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' });
  return {
    version: '2.0',
    routeKey: 'POST /v1/credentials',
    rawPath: '/v1/credentials',
    rawQueryString: '',
    headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abc123',
      http: { method: 'POST', path: '/v1/credentials', protocol: 'HTTP/1.1', sourceIp: '10.0.0.1', userAgent: 'aws-calls' },
      requestId: randomUUID(),
      routeKey: 'POST /v1/credentials',
      stage: '$default',
      time: new Date(NOW).toISOString(),
      timeEpoch: NOW,
      authorizer: { iam: { userArn: CALLER } },
    },
    body,
    isBase64Encoded: false,
  };
}
