/**
 * `lambda-bundles` section: what each Lambda costs before it does anything, and what one
 * issuance costs in AWS calls.
 *
 * 1. Every handler in `lambdas/` is bundled with esbuild with the options `LanyardFunction`
 *    (cdk/lanyard-function.ts) gives `NodejsFunction`: ESM, node24, minified, source maps
 *    without sources content, `module,main` main fields, the createRequire banner, the AWS SDK
 *    bundled, nothing external. Printed: bundle size, and the cold module-load time measured
 *    locally (a fresh `node --enable-source-maps` importing the bundle, median of 5; this
 *    machine, not a Lambda arm64 container, so compare bundles with each other, not with AWS).
 * 2. The issue handler runs twice on `awsServicesFromEnv` against aws-sdk-client-mock fakes of
 *    DynamoDB (a small in-memory table answering GetItem/Query/BatchWriteItem like the real
 *    one) and KMS (a real P-256 key, and two keys of other applications in the account): the
 *    calls of a cold container's first issuance and of a warm one are counted by command.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomUUID, sign as cryptoSign } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { DescribeKeyCommand, GetPublicKeyCommand, KMSClient, ListKeysCommand, ListResourceTagsCommand, SignCommand } from '@aws-sdk/client-kms';
import { BatchWriteCommand, DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { build } from 'esbuild';
import type { HttpEvent } from '../shared/http/types.ts';
import type { Row, Section } from './run.ts';

const PROJECT_ROOT = new URL('..', import.meta.url).pathname;
/** Same text as `ESM_REQUIRE_BANNER` in cdk/lanyard-function.ts (not imported: that module loads aws-cdk-lib). */
const ESM_REQUIRE_BANNER = "import { createRequire as __lanyardCreateRequire } from 'node:module'; const require = __lanyardCreateRequire(import.meta.url);";
const LOAD_RUNS = 5;

export const lambdaBundlesSection: Section = {
  name: 'lambda-bundles',
  describe: 'each lambdas/*.ts bundled as cdk/lanyard-function.ts bundles it: size and cold module load (median of 5); AWS calls per issuance on mocked DynamoDB/KMS',
  run: async () => {
    const out = await mkdtemp(join(tmpdir(), 'lanyard-bundles-'));
    const rows: Row[] = [];
    try {
      const entries = readdirSync(join(PROJECT_ROOT, 'lambdas')).filter((f) => f.endsWith('.ts')).sort();
      for (const file of entries) {
        const outfile = join(out, basename(file, '.ts'), 'index.mjs');
        await build({
          entryPoints: [join(PROJECT_ROOT, 'lambdas', file)],
          outfile,
          bundle: true,
          platform: 'node',
          target: 'node24',
          format: 'esm',
          mainFields: ['module', 'main'],
          // As LanyardFunction: `@lanyard/sdk` from its TypeScript sources (no SDK build needed),
          // and `module` kept, which esbuild drops once conditions are given.
          conditions: ['@lanyard/source', 'module'],
          banner: { js: ESM_REQUIRE_BANNER },
          minify: true,
          sourcemap: true,
          sourcesContent: false,
          external: [],
          tsconfig: join(PROJECT_ROOT, 'tsconfig.json'),
          logLevel: 'error',
        });
        const kb = statSync(outfile).size / 1024;
        const loads = Array.from({ length: LOAD_RUNS }, () => coldLoadMs(outfile)).sort((a, b) => a - b);
        const median = loads[Math.floor(LOAD_RUNS / 2)]!;
        rows.push({ subject: `bundle ${file}`, perSecond: 1000 / median, p50Ms: median, note: `${kb.toFixed(0)} KB; per second = cold loads/s at the median` });
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }

    const counts = await countIssuanceCalls();
    for (const [label, c] of [['cold container, 1st issuance', counts.cold], ['warm container, next issuance', counts.warm]] as const) {
      rows.push({
        subject: `issue calls: ${label}`,
        perSecond: 0,
        note: `KMS Sign ${c['kms:Sign'] ?? 0}, other KMS ${kmsOther(c)}, DynamoDB reads ${(c['ddb:Get'] ?? 0) + (c['ddb:Query'] ?? 0) + (c['ddb:GetItem (signing-key registry)'] ?? 0)} (Get ${c['ddb:Get'] ?? 0}, Query ${c['ddb:Query'] ?? 0}, signing-key registry ${c['ddb:GetItem (signing-key registry)'] ?? 0}), writes ${(c['ddb:BatchWrite'] ?? 0) + (c['ddb:Put'] ?? 0)}; status ${c['status'] ?? '?'}`,
      });
    }
    return rows;
  },
};

function kmsOther(c: Record<string, number>): string {
  const parts = Object.entries(c).filter(([k]) => k.startsWith('kms:') && k !== 'kms:Sign');
  return parts.length === 0 ? '0' : `${parts.reduce((n, [, v]) => n + v, 0)} (${parts.map(([k, v]) => `${k.slice(4)} ${v}`).join(', ')})`;
}

/** A fresh Node imports the bundle; the child times only the import, as Lambda's init does. */
function coldLoadMs(bundle: string): number {
  const script = `const t = performance.now(); await import(${JSON.stringify(pathToFileURL(bundle).href)}); console.log(performance.now() - t);`;
  const output = execFileSync(process.execPath, ['--enable-source-maps', '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  return Number(output.trim().split('\n').at(-1));
}

const ALIAS = 'alias/lanyard-signing';
const ARN = 'arn:aws:iam::123456789012:role/triage-worker';
const AT = '2026-01-01T00:00:00.000Z';

/** Runs the issue handler twice on mocked clients; counts calls per command. */
async function countIssuanceCalls(): Promise<{ cold: Record<string, number>; warm: Record<string, number> }> {
  const table = new Map<string, Record<string, unknown>>();
  const put = (item: Record<string, unknown>) => table.set(`${String(item['PK'])}\u0000${String(item['SK'])}`, item);
  put({ PK: `KEY#arn#${ARN}`, SK: 'KEY', principalId: 'triage-worker-1', keyKind: 'arn', principal: { id: 'triage-worker-1', kind: 'agent', identity: 'support-triage/prod', arn: ARN, updatedAt: AT } });
  put({ PK: 'IDENTITY#support-triage/prod', SK: 'IDENTITY', id: 'support-triage/prod', agentClass: 'support-triage', environment: 'prod', owner: 'team-support', purpose: 'triage', status: 'active', createdAt: AT, updatedAt: AT });
  put({ PK: 'IDENTITY#support-triage/prod', SK: 'GRANT#support-triage@1', id: 'support-triage@1', identity: 'support-triage/prod', role: 'support-triage', roleVersion: 1, tenants: ['acme'], environment: 'prod', maxTtlSeconds: 900, kinds: ['jwt'], quotaBucket: 'support-llm', status: 'active', updatedAt: AT });
  put({ PK: 'TOOL#tickets', SK: 'TOOL', id: 'tickets', audience: 'https://tickets.example.internal', actions: { read: 'read' }, enabled: true, updatedAt: AT });
  put({ PK: 'ROLE#support-triage', SK: 'V#0000000001', id: 'support-triage', version: 1, actions: ['tickets:read'], approvedBy: 'alice@example.com', publishedAt: AT });

  const counts: Record<string, number> = {};
  const count = (name: string) => (counts[name] = (counts[name] ?? 0) + 1);
  const ddb = mockClient(DynamoDBDocumentClient);
  const rawDdb = mockClient(DynamoDBClient);
  const kms = mockClient(KMSClient);
  try {
    ddb.on(GetCommand).callsFake((input: { Key: { PK: string; SK: string } }) => {
      count('ddb:Get');
      const item = table.get(`${input.Key.PK}\u0000${input.Key.SK}`);
      return item === undefined ? {} : { Item: item };
    });
    ddb.on(QueryCommand).callsFake((input: { ExpressionAttributeValues: Record<string, unknown>; FilterExpression?: string }) => {
      count('ddb:Query');
      const pk = input.ExpressionAttributeValues[':pk'];
      const prefix = (input.ExpressionAttributeValues[':grant'] ?? input.ExpressionAttributeValues[':ref']) as string | undefined;
      const items = [...table.values()].filter(
        (item) => item['PK'] === pk && (prefix === undefined || String(item['SK']).startsWith(prefix)) && !(input.FilterExpression?.includes('reinstatedAt') && 'reinstatedAt' in item),
      );
      return { Items: items };
    });
    ddb.on(BatchWriteCommand).callsFake(() => {
      count('ddb:BatchWrite');
      return { UnprocessedItems: {} };
    });
    ddb.on(PutCommand).callsFake(() => {
      count('ddb:Put');
      return {};
    });
    // The signing-key registry item (plain client): which keys to publish; none yet, as before rotation's first run.
    rawDdb.on(GetItemCommand).callsFake(() => {
      count('ddb:GetItem (signing-key registry)');
      return {};
    });

    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyArn = `arn:aws:kms:eu-west-1:123456789012:key/${randomUUID()}`;
    const others = [randomUUID(), randomUUID()].map((id) => `arn:aws:kms:eu-west-1:123456789012:key/${id}`);
    kms.on(GetPublicKeyCommand).callsFake(() => {
      count('kms:GetPublicKey');
      return { KeyId: keyArn, PublicKey: publicKey.export({ format: 'der', type: 'spki' }), KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY', SigningAlgorithms: ['ECDSA_SHA_256'] };
    });
    kms.on(ListKeysCommand).callsFake(() => {
      count('kms:ListKeys');
      return { Keys: [keyArn, ...others].map((arn) => ({ KeyArn: arn, KeyId: arn.slice(arn.lastIndexOf('/') + 1) })), Truncated: false };
    });
    kms.on(ListResourceTagsCommand).callsFake((input: { KeyId?: string }) => {
      count('kms:ListResourceTags');
      // The key cdk deploy made carries only the family tag until rotation adopts it.
      return { Tags: keyArn.endsWith(input.KeyId ?? '?') ? [{ TagKey: 'lanyard:signing-key', TagValue: ALIAS }] : [], Truncated: false };
    });
    kms.on(DescribeKeyCommand).callsFake(() => {
      count('kms:DescribeKey');
      return { KeyMetadata: { KeyId: keyArn, Arn: keyArn, KeyState: 'Enabled' } };
    });
    kms.on(SignCommand).callsFake((input: { Message?: Uint8Array }) => {
      count('kms:Sign');
      return { KeyId: keyArn, Signature: cryptoSign('sha256', input.Message ?? new Uint8Array(), { key: privateKey, dsaEncoding: 'der' }) };
    });

    const { awsServicesFromEnv } = await import('../shared/bootstrap/aws/runtime.ts');
    const { createIssueCredentialHandler } = await import('../lambdas/issue-credential.ts');
    const runtime = awsServicesFromEnv({
      AWS_REGION: 'eu-west-1',
      LANYARD_TABLE: 'lanyard',
      LANYARD_SIGNING_KEY: ALIAS,
      LANYARD_ISSUER: 'https://abc123.execute-api.eu-west-1.amazonaws.com',
      LANYARD_POLICY_TTL_MS: '1000',
      LANYARD_STS: 'off',
      POWERTOOLS_LOG_LEVEL: 'SILENT',
    });
    const handler = createIssueCredentialHandler({ ...runtime, log: { info: () => {}, warn: () => {}, error: () => {} } });
    const issue = async () => {
      const result = await handler(issueEvent(), { awsRequestId: randomUUID() });
      count(`status`);
      counts['status'] = result.statusCode;
    };
    await issue();
    const cold = { ...counts };
    for (const key of Object.keys(counts)) delete counts[key];
    await issue();
    if (rawDdb.calls().some((call) => !(call.args[0] instanceof GetItemCommand))) throw new Error('the store called the plain DynamoDB client; the count above would be incomplete');
    return { cold, warm: { ...counts } };
  } finally {
    ddb.restore();
    rawDdb.restore();
    kms.restore();
  }
}

function issueEvent() {
  const body = JSON.stringify({ tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' });
  const now = new Date();
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
      http: { method: 'POST', path: '/v1/credentials', protocol: 'HTTP/1.1', sourceIp: '10.0.0.1', userAgent: 'bench' },
      requestId: randomUUID(),
      routeKey: 'POST /v1/credentials',
      stage: '$default',
      time: now.toISOString(),
      timeEpoch: now.getTime(),
      authorizer: { iam: { userArn: ARN } },
    },
    body,
    isBase64Encoded: false,
  } as unknown as HttpEvent;
}
