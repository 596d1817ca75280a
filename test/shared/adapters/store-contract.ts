/**
 * The Store contract, engine-agnostic: {@link describeStoreContract} runs the same cases against
 * any store a factory opens. The DynamoDB store runs it on DynamoDB Local and dynalite
 * (aws/dynamo-store.contract.test.ts), the SQLite store on a file in a temp dir and on
 * `:memory:` (sqlite/sqlite-store.test.ts), so a divergence between them fails here rather
 * than in production. Real engines only, no mocks.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  DecisionRecord,
  Grant,
  Identity,
  IssuanceBlock,
  Principal,
  QuotaPolicy,
  QuotaUsage,
  Revocation,
  RoleVersion,
  Tool,
  UpstreamSecretRef,
} from '../../../shared/domain/model.ts';
import { LanyardError } from '../../../shared/domain/errors.ts';
import type { ErrorCode } from '../../../shared/domain/errors.ts';
import { KEY_ATTRIBUTES } from '../../../shared/adapters/dynamodb/table.ts';
import type { DecisionQuery, RefreshTokenRecord, Store } from '../../../shared/ports/index.ts';

/** What the contract needs of an engine: stores on storage of their own, and an end. */
export interface StoreEngine {
  /** A store on a fresh table or database: nothing another store wrote is in it. */
  freshStore(): Promise<Store>;
  close(): Promise<void>;
}

const NOW = '2025-03-01T12:00:00.000Z';
const uid = () => randomBytes(4).toString('hex');
/** An instant `minutes` after 2025-03-01T10:00Z. */
const minute = (minutes: number) => new Date(Date.UTC(2025, 2, 1, 10, minutes)).toISOString();

function tool(id: string, extra: Partial<Tool> = {}): Tool {
  return {
    id,
    audience: `https://${id}.example.internal`,
    actions: { read: 'read', reply: 'write', purge: 'admin' },
    enabled: true,
    updatedAt: NOW,
    ...extra,
  };
}

function role(id: string, version: number, actions: readonly string[] = ['tickets:read', 'tickets:reply']): RoleVersion {
  return { id, version, actions, approvedBy: 'alice@example.com', publishedAt: NOW };
}

function identity(id: string): Identity {
  const [agentClass = '', rest = ''] = id.split('/');
  const [environment = '', instance] = rest.split('#');
  return {
    id,
    agentClass,
    environment,
    ...(instance === undefined ? {} : { instance }),
    owner: 'team-support',
    purpose: 'triage incoming tickets',
    status: 'active',
    createdAt: NOW,
    updatedAt: NOW,
  };
}

function grant(identityId: string, id: string, extra: Partial<Grant> = {}): Grant {
  return {
    id,
    identity: identityId,
    role: 'support-triage',
    roleVersion: 1,
    tenants: ['acme', 'globex'],
    environment: 'prod',
    maxTtlSeconds: 900,
    kinds: ['jwt'],
    quotaBucket: 'support-llm',
    status: 'active',
    updatedAt: NOW,
    ...extra,
  };
}

function principal(id: string, extra: Partial<Principal> = {}): Principal {
  return { id, kind: 'agent', identity: 'support-triage/prod', updatedAt: NOW, ...extra };
}

interface DecisionSeed {
  readonly identity: string;
  readonly tool?: string;
  readonly tenant?: string;
  readonly task?: string;
}

export function issued(at: string, seed: DecisionSeed): DecisionRecord {
  const id = `cred_${uid()}`;
  const tenant = seed.tenant ?? 'acme';
  const toolId = seed.tool ?? 'tickets';
  const lane = `${seed.identity}:${toolId}:read:${tenant}`;
  return {
    id,
    requestId: `req_${uid()}`,
    at,
    decision: 'issued',
    reason: 'granted',
    principal: 'triage-worker-1',
    identity: seed.identity,
    tool: toolId,
    tenant,
    lane,
    level: 'read',
    kind: 'jwt',
    actionsRequested: [`${toolId}:read`],
    actionsGranted: [`${toolId}:read`],
    ...(seed.task === undefined ? {} : { task: { id: seed.task, purpose: 'answer a ticket' } }),
    credentialId: id,
    audience: `https://${toolId}.example.internal`,
    issuedAt: at,
    expiresAt: new Date(Date.parse(at) + 300_000).toISOString(),
    role: 'support-triage@1',
    grant: 'support-triage@1',
    quotaBucket: 'support-llm',
    kid: 'key-1',
  };
}

export function denied(at: string, seed: DecisionSeed): DecisionRecord {
  const requestId = `req_${uid()}`;
  return {
    id: `deny_${requestId}`,
    requestId,
    at,
    decision: 'denied',
    reason: 'not_granted',
    message: 'tickets:purge is not granted',
    principal: 'triage-worker-1',
    identity: seed.identity,
    tool: seed.tool ?? 'tickets',
    tenant: seed.tenant ?? 'acme',
    actionsRequested: ['tickets:purge'],
    actionsGranted: [],
    ...(seed.task === undefined ? {} : { task: { id: seed.task } }),
  };
}

function revocation(relevantUntil: string, lane = `support-triage/prod:tickets:read:${uid()}`): Omit<Revocation, 'seq'> {
  return {
    id: `rev_${uid()}`,
    target: { lane },
    targetType: 'lane',
    targetKey: `lane:${lane}`,
    cutoff: NOW,
    relevantUntil,
    actor: 'oncall@example.com',
    reason: 'leaked token',
    requestId: `req_${uid()}`,
  };
}

function block(targetKey: string, extra: Partial<IssuanceBlock> = {}): IssuanceBlock {
  return { targetKey, targetType: 'lane', revocationId: `rev_${uid()}`, since: NOW, actor: 'oncall@example.com', reason: 'leaked token', ...extra };
}

/** Asserts a `LanyardError` with this code (and, when given, these fields). */
async function expectLanyardError(promise: Promise<unknown>, code: ErrorCode, fields: Record<string, unknown> = {}): Promise<void> {
  const error: unknown = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(LanyardError);
  expect(error).toMatchObject({ code, ...fields });
}

/** Every page of a decision query, in order. */
async function allPages(store: Store, query: DecisionQuery): Promise<{ pages: DecisionRecord[][]; cursors: string[] }> {
  const pages: DecisionRecord[][] = [];
  const cursors: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.queryDecisions({ ...query, ...(cursor === undefined ? {} : { cursor }) });
    pages.push([...page.items]);
    cursor = page.cursor;
    if (cursor !== undefined) cursors.push(cursor);
  } while (cursor !== undefined && pages.length < 100);
  return { pages, cursors };
}

const ids = (records: readonly { readonly id: string }[]) => records.map((record) => record.id);
const newestFirst = (records: readonly DecisionRecord[]) => [...records].sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));


/** Runs the whole contract against the stores `open()`'s engine makes, under `engineName`. */
export function describeStoreContract(engineName: string, open: () => Promise<StoreEngine>): void {
  describe(`Class: Store on ${engineName}`, () => {
    let engine: StoreEngine;
    /** Shared by the tests that only read back what they wrote under fresh ids. */
    let store: Store;

    /** A store on a table of its own, for tests that list a whole collection. */
    const freshStore = () => engine.freshStore();

    beforeAll(async () => {
      engine = await open();
      store = await freshStore();
    });

    afterAll(async () => {
      await engine?.close();
    });

    describe('Method: putTool / getTool', () => {
      it('round-trips a tool with its AWS block and no key attributes', async () => {
        // Prepare
        const saved = tool(`tickets-${uid()}`, {
          aws: { roleArn: 'arn:aws:iam::123456789012:role/tickets', permissions: { read: ['s3:GetObject'] }, resources: ['arn:aws:s3:::tickets/*'] },
        });

        // Act
        await store.putTool(saved);
        const read = await store.getTool(saved.id);

        // Assess
        expect(read).toStrictEqual(saved);
        for (const attribute of KEY_ATTRIBUTES) expect(read).not.toHaveProperty(attribute);
      });

      it('returns no explicit undefined for an absent optional field', async () => {
        // Prepare
        const saved = { ...tool(`tickets-${uid()}`), aws: undefined };

        // Act
        await store.putTool(saved);
        const read = await store.getTool(saved.id);

        // Assess
        expect(Object.keys(read ?? {})).not.toContain('aws');
      });

      it('replaces the tool on a second put', async () => {
        // Prepare
        const id = `tickets-${uid()}`;
        await store.putTool(tool(id));

        // Act
        await store.putTool(tool(id, { enabled: false, updatedAt: '2025-03-02T00:00:00.000Z' }));

        // Assess
        expect(await store.getTool(id)).toMatchObject({ enabled: false, updatedAt: '2025-03-02T00:00:00.000Z' });
      });

      it('returns undefined for an unknown tool', async () => {
        // Act & Assess
        expect(await store.getTool(`nope-${uid()}`)).toBeUndefined();
      });
    });

    describe('Method: listTools', () => {
      it('lists every tool and nothing else, in id order', async () => {
        // Prepare
        const fresh = await freshStore();
        await fresh.putTool(tool('zeta'));
        await fresh.putTool(tool('alpha'));
        await fresh.putIdentity(identity('support-triage/prod'));
        await fresh.publishRoleVersion(role('alpha', 1));

        // Act
        const tools = await fresh.listTools();

        // Assess
        expect(tools).toStrictEqual([tool('alpha'), tool('zeta')]);
      });

      it('lists past a 1 MB query page', async () => {
        // Prepare: three ~380 KB items make more than one 1 MB page.
        const fresh = await freshStore();
        const big = (id: string) => tool(id, { audience: `https://${id}.example.internal/${'x'.repeat(380_000)}` });
        for (const id of ['big-1', 'big-2', 'big-3']) await fresh.putTool(big(id));

        // Act
        const tools = await fresh.listTools();

        // Assess
        expect(tools.map((t) => t.id)).toStrictEqual(['big-1', 'big-2', 'big-3']);
        expect(tools[2]).toStrictEqual(big('big-3'));
      });

      it('returns an empty list when there is no tool', async () => {
        // Act & Assess
        expect(await (await freshStore()).listTools()).toStrictEqual([]);
      });
    });

    describe('Method: publishRoleVersion', () => {
      it('creates a new version and reads it back', async () => {
        // Prepare
        const published = role(`triage-${uid()}`, 1);

        // Act
        const outcome = await store.publishRoleVersion(published);

        // Assess
        expect(outcome).toBe('created');
        expect(await store.getRoleVersion(published.id, 1)).toStrictEqual(published);
      });

      it('answers unchanged for the same version with the same actions in another order, and keeps the original', async () => {
        // Prepare
        const published = role(`triage-${uid()}`, 3, ['tickets:read', 'tickets:reply']);
        await store.publishRoleVersion(published);

        // Act
        const outcome = await store.publishRoleVersion({ ...published, actions: ['tickets:reply', 'tickets:read'], approvedBy: 'mallory@example.com' });

        // Assess
        expect(outcome).toBe('unchanged');
        expect(await store.getRoleVersion(published.id, 3)).toStrictEqual(published);
      });

      it('throws conflict for the same version with other actions, and keeps the original', async () => {
        // Prepare
        const published = role(`triage-${uid()}`, 2, ['tickets:read']);
        await store.publishRoleVersion(published);

        // Act
        const attempt = store.publishRoleVersion({ ...published, actions: ['tickets:read', 'tickets:purge'] });

        // Assess
        await expectLanyardError(attempt, 'conflict', { context: { role: published.id, version: 2 } });
        expect(await store.getRoleVersion(published.id, 2)).toStrictEqual(published);
      });

      it('keeps each version of a role apart', async () => {
        // Prepare
        const id = `triage-${uid()}`;

        // Act
        await store.publishRoleVersion(role(id, 1, ['tickets:read']));
        await store.publishRoleVersion(role(id, 2, ['tickets:read', 'tickets:reply']));

        // Assess
        expect((await store.getRoleVersion(id, 1))?.actions).toStrictEqual(['tickets:read']);
        expect((await store.getRoleVersion(id, 2))?.actions).toStrictEqual(['tickets:read', 'tickets:reply']);
      });

      it('refuses a version that is not a non-negative integer', async () => {
        // Act & Assess
        await expectLanyardError(store.publishRoleVersion(role(`triage-${uid()}`, 1.5)), 'invalid_request', { context: { field: 'version' } });
      });
    });

    describe('Method: getRoleVersion', () => {
      it('returns undefined for an unknown role or version', async () => {
        // Prepare
        const id = `triage-${uid()}`;
        await store.publishRoleVersion(role(id, 1));

        // Act & Assess
        expect(await store.getRoleVersion(id, 2)).toBeUndefined();
        expect(await store.getRoleVersion(`nope-${uid()}`, 1)).toBeUndefined();
      });
    });

    describe('Method: getPolicyItems', () => {
      it('answers tools, role versions and quota policies as their single gets do, missing ones absent', async () => {
        // Prepare
        const savedTool = tool(`tickets-${uid()}`);
        const savedRole = role(`agent-${uid()}`, 2);
        const savedQuota: QuotaPolicy = { bucket: `bucket-${uid()}`, windowSeconds: 3600, requests: 1000, updatedAt: '2025-03-01T10:00:00.000Z' };
        await store.putTool(savedTool);
        await store.publishRoleVersion(savedRole);
        await store.putQuota(savedQuota);

        // Act
        const found = await store.getPolicyItems({
          tools: [savedTool.id, `nope-${uid()}`, savedTool.id],
          roles: [
            { id: savedRole.id, version: 2 },
            { id: savedRole.id, version: 3 },
            { id: savedRole.id, version: -1 },
          ],
          quotas: [savedQuota.bucket, `nope-${uid()}`],
        });

        // Assess
        expect([...found.tools]).toStrictEqual([[savedTool.id, await store.getTool(savedTool.id)]]);
        expect([...found.roles]).toStrictEqual([[`${savedRole.id}@2`, await store.getRoleVersion(savedRole.id, 2)]]);
        expect([...found.quotas]).toStrictEqual([[savedQuota.bucket, await store.getQuota(savedQuota.bucket)]]);
        for (const attribute of KEY_ATTRIBUTES) expect(found.tools.get(savedTool.id)).not.toHaveProperty(attribute);
      });

      it('reads more keys than one DynamoDB batch holds (100)', async () => {
        // Prepare
        const ids = Array.from({ length: 130 }, (_, i) => `many-${i}-${uid()}`);
        for (const id of ids) await store.putTool(tool(id));

        // Act
        const found = await store.getPolicyItems({ tools: ids });

        // Assess
        expect([...found.tools.keys()].sort()).toStrictEqual([...ids].sort());
      });

      it('answers empty maps when asked for nothing', async () => {
        // Act
        const found = await store.getPolicyItems({});

        // Assess
        expect([found.tools.size, found.roles.size, found.quotas.size]).toStrictEqual([0, 0, 0]);
      });
    });

    describe('Method: listRoleVersions', () => {
      it('lists every version, by role id then numeric version', async () => {
        // Prepare
        const fresh = await freshStore();
        for (const version of [10, 2, 1]) await fresh.publishRoleVersion(role('triage', version));
        await fresh.publishRoleVersion(role('billing', 1));
        await fresh.putTool(tool('tickets'));

        // Act
        const roles = await fresh.listRoleVersions();

        // Assess
        expect(roles.map((r) => `${r.id}@${r.version}`)).toStrictEqual(['billing@1', 'triage@1', 'triage@2', 'triage@10']);
        expect(roles[0]).toStrictEqual(role('billing', 1));
      });
    });

    describe('Method: putIdentity / getIdentity', () => {
      it('round-trips an identity and an instance of it', async () => {
        // Prepare
        const agentClass = identity(`triage-${uid()}/prod`);
        const instance = { ...identity(`${agentClass.id}#i-${uid()}`), expiresAt: '2025-03-01T13:00:00.000Z' };

        // Act
        await store.putIdentity(agentClass);
        await store.putIdentity(instance);

        // Assess
        expect(await store.getIdentity(agentClass.id)).toStrictEqual(agentClass);
        expect(await store.getIdentity(instance.id)).toStrictEqual(instance);
      });

      it('returns undefined for an unknown identity', async () => {
        // Act & Assess
        expect(await store.getIdentity(`nope-${uid()}/prod`)).toBeUndefined();
      });
    });

    describe('Method: getIdentityWithGrants', () => {
      it('returns the identity with all its grants and none of an instance sharing its prefix', async () => {
        // Prepare
        const id = `triage-${uid()}/prod`;
        await store.putIdentity(identity(id));
        await store.putIdentity(identity(`${id}#i-1`));
        const grants = [grant(id, 'support-triage@1'), grant(id, 'billing@2', { role: 'billing', roleVersion: 2, tenants: ['*'] })];
        for (const g of grants) await store.putGrant(g);
        await store.putGrant(grant(`${id}#i-1`, 'support-triage@1'));

        // Act
        const read = await store.getIdentityWithGrants(id);

        // Assess
        expect(read?.identity).toStrictEqual(identity(id));
        expect(read?.grants).toHaveLength(2);
        expect(read?.grants).toEqual(expect.arrayContaining(grants));
      });

      it('returns an identity with no grants', async () => {
        // Prepare
        const id = `triage-${uid()}/prod`;
        await store.putIdentity(identity(id));

        // Act & Assess
        expect(await store.getIdentityWithGrants(id)).toStrictEqual({ identity: identity(id), grants: [] });
      });

      it('returns undefined for an unknown identity, even when grants name it', async () => {
        // Prepare
        const id = `ghost-${uid()}/prod`;
        await store.putGrant(grant(id, 'support-triage@1'));

        // Act & Assess
        expect(await store.getIdentityWithGrants(id)).toBeUndefined();
      });
    });

    describe('Method: listIdentities', () => {
      it('lists identities, not their grants', async () => {
        // Prepare
        const fresh = await freshStore();
        await fresh.putIdentity(identity('b-agent/prod'));
        await fresh.putIdentity(identity('a-agent/prod'));
        await fresh.putGrant(grant('a-agent/prod', 'support-triage@1'));

        // Act
        const identities = await fresh.listIdentities();

        // Assess
        expect(identities).toStrictEqual([identity('a-agent/prod'), identity('b-agent/prod')]);
      });
    });

    describe('Method: putGrant / deleteGrant / listGrants', () => {
      it('replaces a grant with the same id', async () => {
        // Prepare
        const id = `triage-${uid()}/prod`;
        await store.putGrant(grant(id, 'support-triage@1'));

        // Act
        await store.putGrant(grant(id, 'support-triage@1', { status: 'demoted' }));

        // Assess
        expect(await store.listGrants(id)).toStrictEqual([grant(id, 'support-triage@1', { status: 'demoted' })]);
      });

      it('deletes one grant and keeps the others and the identity', async () => {
        // Prepare
        const id = `triage-${uid()}/prod`;
        await store.putIdentity(identity(id));
        await store.putGrant(grant(id, 'support-triage@1'));
        await store.putGrant(grant(id, 'billing@1', { role: 'billing' }));

        // Act
        await store.deleteGrant(id, 'support-triage@1');

        // Assess
        expect(ids(await store.listGrants(id))).toStrictEqual(['billing@1']);
        expect(ids((await store.getIdentityWithGrants(id))?.grants ?? [])).toStrictEqual(['billing@1']);
      });

      it('deletes an unknown grant without error', async () => {
        // Act & Assess
        await expect(store.deleteGrant(`triage-${uid()}/prod`, 'nope@1')).resolves.toBeUndefined();
      });

      it('lists no grant for an unknown identity', async () => {
        // Act & Assess
        expect(await store.listGrants(`nope-${uid()}/prod`)).toStrictEqual([]);
      });
    });

    describe('Method: putPrincipal / getPrincipal / listPrincipals', () => {
      it('round-trips a principal', async () => {
        // Prepare
        const saved = principal(`orch-${uid()}`, { kind: 'orchestrator', identity: undefined, spawns: ['support-triage/prod'], arn: 'arn:aws:iam::123456789012:role/orch' });

        // Act
        await store.putPrincipal(saved);
        const read = await store.getPrincipal(saved.id);

        // Assess
        expect(read).toStrictEqual({ id: saved.id, kind: 'orchestrator', spawns: ['support-triage/prod'], arn: saved.arn, updatedAt: NOW });
      });

      it('returns undefined for an unknown principal', async () => {
        // Act & Assess
        expect(await store.getPrincipal(`nope-${uid()}`)).toBeUndefined();
      });

      it('lists principals, not their keys', async () => {
        // Prepare
        const fresh = await freshStore();
        await fresh.putPrincipal(principal('worker-2'));
        await fresh.putPrincipal(principal('worker-1'));
        await fresh.setPrincipalKey('worker-1', 'apiKey', 'a'.repeat(64));

        // Act
        const principals = await fresh.listPrincipals();

        // Assess
        expect(principals).toStrictEqual([principal('worker-1'), principal('worker-2')]);
      });
    });

    describe('Method: setPrincipalKey / getPrincipalByKey / hasPrincipalKey', () => {
      const hash = () => randomBytes(32).toString('hex');

      it('authenticates a principal by its key in one read, per key kind', async () => {
        // Prepare
        const saved = principal(`worker-${uid()}`);
        const apiKey = hash();
        await store.putPrincipal(saved);

        // Act
        await store.setPrincipalKey(saved.id, 'apiKey', apiKey);

        // Assess
        expect(await store.getPrincipalByKey('apiKey', apiKey)).toStrictEqual(saved);
        expect(await store.getPrincipalByKey('arn', apiKey)).toBeUndefined();
        expect(await store.hasPrincipalKey(saved.id, 'apiKey')).toBe(true);
        expect(await store.hasPrincipalKey(saved.id, 'arn')).toBe(false);
      });

      it('replaces the previous key of the same kind: the old key no longer authenticates', async () => {
        // Prepare
        const saved = principal(`worker-${uid()}`);
        const [oldKey, newKey, arn] = [hash(), hash(), `arn:aws:iam::123456789012:role/${uid()}`];
        await store.putPrincipal(saved);
        await store.setPrincipalKey(saved.id, 'apiKey', oldKey);
        await store.setPrincipalKey(saved.id, 'arn', arn);

        // Act
        await store.setPrincipalKey(saved.id, 'apiKey', newKey);

        // Assess
        expect(await store.getPrincipalByKey('apiKey', oldKey)).toBeUndefined();
        expect(await store.getPrincipalByKey('apiKey', newKey)).toStrictEqual(saved);
        expect(await store.getPrincipalByKey('arn', arn)).toStrictEqual(saved);
      });

      it('binds the same key again without losing it', async () => {
        // Prepare
        const saved = principal(`worker-${uid()}`);
        const apiKey = hash();
        await store.putPrincipal(saved);
        await store.setPrincipalKey(saved.id, 'apiKey', apiKey);

        // Act
        await store.setPrincipalKey(saved.id, 'apiKey', apiKey);

        // Assess
        expect(await store.getPrincipalByKey('apiKey', apiKey)).toStrictEqual(saved);
      });

      it('keeps the copy a key carries fresh when the principal changes', async () => {
        // Prepare
        const saved = principal(`worker-${uid()}`);
        const apiKey = hash();
        await store.putPrincipal(saved);
        await store.setPrincipalKey(saved.id, 'apiKey', apiKey);
        const changed = principal(saved.id, { identity: 'billing/prod', updatedAt: '2025-03-02T00:00:00.000Z' });

        // Act
        await store.putPrincipal(changed);

        // Assess
        expect(await store.getPrincipalByKey('apiKey', apiKey)).toStrictEqual(changed);
      });

      it('moves a key bound to another principal, and the former owner no longer holds it', async () => {
        // Prepare
        const [first, second] = [principal(`worker-${uid()}`), principal(`worker-${uid()}`, { identity: 'billing/prod' })];
        const [arn, laterArn] = [`arn:aws:iam::123456789012:role/${uid()}`, `arn:aws:iam::123456789012:role/${uid()}`];
        await store.putPrincipal(first);
        await store.putPrincipal(second);
        await store.setPrincipalKey(first.id, 'arn', arn);

        // Act
        await store.setPrincipalKey(second.id, 'arn', arn);
        await store.setPrincipalKey(first.id, 'arn', laterArn);

        // Assess
        expect(await store.getPrincipalByKey('arn', arn)).toStrictEqual(second);
        expect(await store.getPrincipalByKey('arn', laterArn)).toStrictEqual(first);
        expect(await store.hasPrincipalKey(second.id, 'arn')).toBe(true);
      });

      it('reports that a principal whose key moved away holds none', async () => {
        // Prepare
        const [first, second] = [principal(`worker-${uid()}`), principal(`worker-${uid()}`)];
        const arn = `arn:aws:iam::123456789012:role/${uid()}`;
        await store.putPrincipal(first);
        await store.putPrincipal(second);
        await store.setPrincipalKey(first.id, 'arn', arn);

        // Act
        await store.setPrincipalKey(second.id, 'arn', arn);

        // Assess
        expect(await store.hasPrincipalKey(first.id, 'arn')).toBe(false);
      });

      it('throws not_found for an unknown principal and binds nothing', async () => {
        // Prepare
        const apiKey = hash();

        // Act & Assess
        await expectLanyardError(store.setPrincipalKey(`nope-${uid()}`, 'apiKey', apiKey), 'not_found');
        expect(await store.getPrincipalByKey('apiKey', apiKey)).toBeUndefined();
      });

      it('returns undefined for an unknown key', async () => {
        // Act & Assess
        expect(await store.getPrincipalByKey('apiKey', hash())).toBeUndefined();
      });
    });

    describe('Method: putDecisions / getCredential', () => {
      it('writes more than one batch of records, all readable', async () => {
        // Prepare
        const seed = { identity: `triage-${uid()}/prod` };
        const records = Array.from({ length: 60 }, (_, i) => issued(minute(i), seed));

        // Act
        await store.putDecisions(records);

        // Assess
        const read = await Promise.all(records.map((record) => store.getCredential(record.id)));
        expect(read).toStrictEqual(records);
      });

      it('returns the credential record without key, index or TTL attributes', async () => {
        // Prepare
        const record = issued(minute(1), { identity: `triage-${uid()}/prod`, task: `task-${uid()}` });
        await store.putDecisions([record]);

        // Act
        const read = await store.getCredential(record.id);

        // Assess
        expect(read).toStrictEqual(record);
        for (const attribute of KEY_ATTRIBUTES) expect(read).not.toHaveProperty(attribute);
      });

      it('does not return a denied decision as a credential', async () => {
        // Prepare
        const record = denied(minute(1), { identity: `triage-${uid()}/prod` });
        await store.putDecisions([record]);

        // Act & Assess
        expect(await store.getCredential(record.id)).toBeUndefined();
      });

      it('keeps the last of two records with the same id in one call', async () => {
        // Prepare
        const record = issued(minute(1), { identity: `triage-${uid()}/prod` });

        // Act
        await store.putDecisions([record, { ...record, kid: 'key-2' }]);

        // Assess
        expect((await store.getCredential(record.id))?.kid).toBe('key-2');
      });

      it('accepts an empty list', async () => {
        // Act & Assess
        await expect(store.putDecisions([])).resolves.toBeUndefined();
      });

      it('refuses a record whose time is not an instant', async () => {
        // Act & Assess
        await expectLanyardError(store.putDecisions([{ ...issued(minute(1), { identity: 'a/prod' }), at: 'yesterday' }]), 'invalid_request', { context: { field: 'at' } });
      });

      it('returns undefined for an unknown credential', async () => {
        // Act & Assess
        expect(await store.getCredential(`cred_${uid()}`)).toBeUndefined();
      });
    });

    describe('Method: queryDecisions', () => {
      // Two identities, lanes, tenants and tasks interleaved over ten minutes; each dimension's
      // query must return exactly its own records.
      const run = uid();
      const mine = { identity: `triage-${run}/prod`, tool: 'tickets', tenant: `acme-${run}`, task: `task-${run}` };
      const theirs = { identity: `billing-${run}/prod`, tool: 'ledger', tenant: `globex-${run}`, task: `other-${run}` };
      const records = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? issued(minute(i), mine) : denied(minute(i), theirs)));
      const extra = [denied(minute(10), mine), issued(minute(11), theirs)];
      const all = [...records, ...extra];
      const matching = (pick: (r: DecisionRecord) => boolean) => newestFirst(all.filter(pick));

      beforeAll(async () => {
        await store.putDecisions(all);
      });

      it.each([
        ['identity', mine.identity, (r: DecisionRecord) => r.identity === mine.identity],
        ['lane', `${mine.identity}:tickets:read:${mine.tenant}`, (r: DecisionRecord) => r.lane === `${mine.identity}:tickets:read:${mine.tenant}`],
        ['tenant', theirs.tenant, (r: DecisionRecord) => r.tenant === theirs.tenant],
        ['task', mine.task, (r: DecisionRecord) => r.task?.id === mine.task],
      ] as const)('queries by %s, newest first', async (by, value, pick) => {
        // Act
        const page = await store.queryDecisions({ by, value });

        // Assess
        expect(page.items).toStrictEqual(matching(pick));
        expect(page.items.length).toBeGreaterThan(0);
        expect(page.cursor).toBeUndefined();
      });

      it('includes both ends of a time range', async () => {
        // Act
        const page = await store.queryDecisions({ by: 'identity', value: mine.identity, from: minute(2), to: minute(6) });

        // Assess
        expect(page.items.map((r) => r.at)).toStrictEqual([minute(6), minute(4), minute(2)]);
      });

      it('compares instants, not strings, at the bounds', async () => {
        // Prepare: `…10:02:00Z` names the same instant as the stored `…10:02:00.000Z`.
        const from = minute(2).replace('.000Z', 'Z');
        const to = '2025-03-01T11:04:00+01:00';

        // Act
        const page = await store.queryDecisions({ by: 'identity', value: mine.identity, from, to });

        // Assess
        expect(page.items.map((r) => r.at)).toStrictEqual([minute(4), minute(2)]);
      });

      it('takes an open-ended range from either side', async () => {
        // Act
        const after = await store.queryDecisions({ by: 'tenant', value: mine.tenant, from: minute(8) });
        const before = await store.queryDecisions({ by: 'tenant', value: mine.tenant, to: minute(2) });

        // Assess
        expect(after.items.map((r) => r.at)).toStrictEqual([minute(10), minute(8)]);
        expect(before.items.map((r) => r.at)).toStrictEqual([minute(2), minute(0)]);
      });

      it('returns an empty page when from is after to', async () => {
        // Act & Assess
        expect(await store.queryDecisions({ by: 'identity', value: mine.identity, from: minute(6), to: minute(2) })).toStrictEqual({ items: [] });
      });

      it('returns an empty page for an unknown value', async () => {
        // Act & Assess
        expect(await store.queryDecisions({ by: 'lane', value: `nope-${uid()}` })).toStrictEqual({ items: [] });
      });

      it('pages with limit and cursor, without duplicates or misses', async () => {
        // Prepare
        const seed = { identity: `pager-${uid()}/prod` };
        const many = Array.from({ length: 60 }, (_, i) => (i % 3 === 0 ? denied(minute(i), seed) : issued(minute(i), seed)));
        await store.putDecisions(many);

        // Act
        const { pages } = await allPages(store, { by: 'identity', value: seed.identity, limit: 7 });

        // Assess
        const seen = pages.flat();
        expect(pages.every((page) => page.length <= 7)).toBe(true);
        expect(pages.slice(0, -1).every((page) => page.length === 7)).toBe(true);
        expect(new Set(ids(seen)).size).toBe(seen.length);
        expect(seen).toStrictEqual(newestFirst(many));
      });

      it('pages within a time range', async () => {
        // Prepare
        const seed = { identity: `pager-${uid()}/prod` };
        const many = Array.from({ length: 30 }, (_, i) => issued(minute(i), seed));
        await store.putDecisions(many);

        // Act
        const { pages } = await allPages(store, { by: 'identity', value: seed.identity, from: minute(5), to: minute(24), limit: 6 });

        // Assess
        expect(pages.flat()).toStrictEqual(newestFirst(many.slice(5, 25)));
      });

      it('returns 100 records by default and caps the limit at 1000', async () => {
        // Prepare
        const seed = { identity: `pager-${uid()}/prod` };
        await store.putDecisions(Array.from({ length: 101 }, (_, i) => issued(minute(i), seed)));

        // Act
        const first = await store.queryDecisions({ by: 'identity', value: seed.identity });
        const capped = await store.queryDecisions({ by: 'identity', value: seed.identity, limit: 5000 });

        // Assess
        expect(first.items).toHaveLength(100);
        expect(first.cursor).toEqual(expect.any(String));
        expect(capped.items).toHaveLength(101);
      });

      it('refuses a cursor from another query', async () => {
        // Prepare
        const page = await store.queryDecisions({ by: 'identity', value: mine.identity, limit: 2 });

        // Act & Assess
        expect(page.cursor).toEqual(expect.any(String));
        await expectLanyardError(
          store.queryDecisions({ by: 'identity', value: theirs.identity, cursor: page.cursor! }),
          'invalid_request',
          { context: { field: 'cursor' } },
        );
        await expectLanyardError(store.queryDecisions({ by: 'tenant', value: mine.tenant, cursor: page.cursor! }), 'invalid_request', {
          context: { field: 'cursor' },
        });
      });

      it('refuses a malformed cursor, limit, instant or dimension', async () => {
        // Act & Assess
        await expectLanyardError(store.queryDecisions({ by: 'identity', value: mine.identity, cursor: 'not-a-cursor' }), 'invalid_request', {
          context: { field: 'cursor' },
        });
        await expectLanyardError(store.queryDecisions({ by: 'identity', value: mine.identity, limit: 0 }), 'invalid_request', {
          context: { field: 'limit' },
        });
        await expectLanyardError(store.queryDecisions({ by: 'identity', value: mine.identity, from: 'noon' }), 'invalid_request', {
          context: { field: 'from' },
        });
        await expectLanyardError(store.queryDecisions({ by: 'principal' as DecisionQuery['by'], value: 'x' }), 'invalid_request', {
          context: { field: 'by' },
        });
      });
    });

    describe('Method: appendRevocation / listRevocations', () => {
      it('assigns strictly increasing sequence numbers and stores the revocation as returned', async () => {
        // Prepare
        const fresh = await freshStore();
        const inputs = Array.from({ length: 5 }, () => revocation('2025-03-01T13:00:00.000Z'));

        // Act
        const appended: Revocation[] = [];
        for (const input of inputs) appended.push(await fresh.appendRevocation(input));

        // Assess
        expect(appended.map((r) => r.seq)).toStrictEqual([1, 2, 3, 4, 5]);
        expect(appended[0]).toStrictEqual({ ...inputs[0], seq: 1 });
        expect(await fresh.listRevocations(0, 10)).toStrictEqual(appended);
      });

      it('gives concurrent appends distinct sequence numbers', async () => {
        // Prepare
        const fresh = await freshStore();

        // Act
        const appended = await Promise.all(Array.from({ length: 12 }, () => fresh.appendRevocation(revocation(NOW))));

        // Assess
        expect(new Set(appended.map((r) => r.seq)).size).toBe(12);
        expect((await fresh.listRevocations(0, 100)).map((r) => r.seq)).toStrictEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      });

      it('lists only revocations after the given sequence, in order, up to the limit', async () => {
        // Prepare
        const fresh = await freshStore();
        for (let i = 0; i < 5; i++) await fresh.appendRevocation(revocation(NOW));

        // Act
        const afterTwo = await fresh.listRevocations(2, 10);
        const limited = await fresh.listRevocations(2, 2);
        const atEnd = await fresh.listRevocations(5, 10);

        // Assess
        expect(afterTwo.map((r) => r.seq)).toStrictEqual([3, 4, 5]);
        expect(limited.map((r) => r.seq)).toStrictEqual([3, 4]);
        expect(atEnd).toStrictEqual([]);
      });

      it('pages through the whole feed by the last seen sequence', async () => {
        // Prepare
        const fresh = await freshStore();
        for (let i = 0; i < 7; i++) await fresh.appendRevocation(revocation(NOW));

        // Act
        const seen: number[] = [];
        for (let page = await fresh.listRevocations(0, 3); page.length > 0; page = await fresh.listRevocations(seen.at(-1)!, 3)) {
          seen.push(...page.map((r) => r.seq));
        }

        // Assess
        expect(seen).toStrictEqual([1, 2, 3, 4, 5, 6, 7]);
      });

      it('lists nothing for a non-positive limit', async () => {
        // Act & Assess
        expect(await store.listRevocations(0, 0)).toStrictEqual([]);
      });
    });

    describe('Method: pruneRevocations', () => {
      it('drops revocations relevant only before now, keeps the rest, and the feed keeps counting', async () => {
        // Prepare
        const fresh = await freshStore();
        const old = await fresh.appendRevocation(revocation('2025-03-01T11:00:00.000Z'));
        const atNow = await fresh.appendRevocation(revocation('2025-03-01T12:00:00Z'));
        const later = await fresh.appendRevocation(revocation('2025-03-01T13:00:00.000Z'));
        const older = await fresh.appendRevocation(revocation('2025-03-01T11:59:59.999Z'));

        // Act
        const pruned = await fresh.pruneRevocations(NOW);

        // Assess
        expect(pruned).toBe(2);
        expect(await fresh.listRevocations(0, 10)).toStrictEqual([atNow, later]);
        expect(ids(await fresh.listRevocations(0, 10))).not.toContain(old.id);
        expect(ids(await fresh.listRevocations(0, 10))).not.toContain(older.id);
        expect((await fresh.appendRevocation(revocation(NOW))).seq).toBe(5);
        expect(await fresh.pruneRevocations(NOW)).toBe(0);
      });

      it('refuses a now that is not an instant', async () => {
        // Act & Assess
        await expectLanyardError(store.pruneRevocations('soon'), 'invalid_request', { context: { field: 'now' } });
      });
    });

    describe('Method: putBlock / listBlocks / reinstateBlock', () => {
      it('puts, lists and replaces blocks', async () => {
        // Prepare
        const fresh = await freshStore();
        const lane = block('lane:support-triage/prod:tickets:read:acme');
        const tenant = block('tenant:globex', { targetType: 'tenant' });

        // Act
        await fresh.putBlock(lane);
        await fresh.putBlock(tenant);
        const replaced = { ...lane, reason: 'still leaking' };
        await fresh.putBlock(replaced);

        // Assess
        expect(await fresh.listBlocks()).toStrictEqual([replaced, tenant]);
      });

      it('returns the lifted block, then undefined on a second reinstatement, and stops listing it', async () => {
        // Prepare
        const fresh = await freshStore();
        const saved = block('tool:tickets', { targetType: 'tool' });
        const other = block('identity:billing/prod', { targetType: 'identity' });
        await fresh.putBlock(saved);
        await fresh.putBlock(other);
        const reinstatement = { at: '2026-11-22T12:00:00.000Z', actor: 'oncall', reason: 'fixed', requestId: 'req-r' };

        // Act
        const first = await fresh.reinstateBlock(saved.targetKey, reinstatement);
        const second = await fresh.reinstateBlock(saved.targetKey, reinstatement);
        const never = await fresh.reinstateBlock('tenant:nobody', reinstatement);

        // Assess
        expect(first).toStrictEqual(saved);
        expect(second).toBeUndefined();
        expect(never).toBeUndefined();
        expect(await fresh.listBlocks()).toStrictEqual([other]);
      });

      it('blocks a target again after it was reinstated', async () => {
        const fresh = await freshStore();
        const lane = block('lane:a/prod:tickets:write:acme');
        await fresh.putBlock(lane);
        await fresh.reinstateBlock(lane.targetKey, { at: '2026-11-22T12:00:00.000Z', actor: 'oncall', reason: 'ok', requestId: 'r1' });

        await fresh.putBlock({ ...lane, reason: 'again' });

        expect(await fresh.listBlocks()).toStrictEqual([{ ...lane, reason: 'again' }]);
      });
    });
  });

  describe(`Class: Store (refresh tokens) on ${engineName}`, () => {
    let engine: StoreEngine;
    let store: Store;

    beforeAll(async () => {
      engine = await open();
      store = await engine.freshStore();
    });

    afterAll(async () => {
      await engine?.close();
    });

    const token = (extra: Partial<RefreshTokenRecord> = {}): RefreshTokenRecord => ({
      hash: randomBytes(32).toString('hex'),
      instance: `support-triage/prod#${uid()}`,
      principal: 'fleet-scheduler',
      createdAt: NOW,
      expiresAt: '2025-03-01T13:00:00.000Z',
      ...extra,
    });

    describe('Method: putRefreshToken / getRefreshToken', () => {
      it('stores a token under its hash and reads it back as put', async () => {
        // Prepare
        const saved = token();

        // Act
        await store.putRefreshToken(saved);

        // Assess
        expect(await store.getRefreshToken(saved.hash)).toStrictEqual(saved);
        expect(await store.getRefreshToken('0'.repeat(64))).toBeUndefined();
      });

      it('refuses a hash that is already stored with conflict', async () => {
        // Prepare
        const saved = token();
        await store.putRefreshToken(saved);

        // Act & Assess
        await expectLanyardError(store.putRefreshToken({ ...saved, instance: 'other/prod#x' }), 'conflict');
        expect(await store.getRefreshToken(saved.hash)).toStrictEqual(saved);
      });

    });

    describe('Method: spendRefreshToken', () => {
      it('spends an unspent token once, recording when and by what it was replaced', async () => {
        // Prepare
        const saved = token();
        await store.putRefreshToken(saved);

        // Act
        const first = await store.spendRefreshToken(saved.hash, 'next-hash', '2025-03-01T12:05:00.000Z');
        const second = await store.spendRefreshToken(saved.hash, 'other-hash', '2025-03-01T12:06:00.000Z');

        // Assess
        const spent = { ...saved, spentAt: '2025-03-01T12:05:00.000Z', replacedBy: 'next-hash' };
        expect(first).toStrictEqual({ status: 'spent-now', token: spent });
        expect(second).toStrictEqual({ status: 'already-spent', token: spent });
        expect(await store.getRefreshToken(saved.hash)).toStrictEqual(spent);
      });

      it('answers unknown for a hash that was never stored, and creates nothing', async () => {
        // Act
        const outcome = await store.spendRefreshToken('f'.repeat(64), 'next', NOW);

        // Assess
        expect(outcome).toStrictEqual({ status: 'unknown' });
        expect(await store.getRefreshToken('f'.repeat(64))).toBeUndefined();
      });

      it('lets exactly one of many concurrent spends win', async () => {
        // Prepare
        const saved = token();
        await store.putRefreshToken(saved);

        // Act
        const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => store.spendRefreshToken(saved.hash, `next-${i}`, NOW)));

        // Assess
        const winners = outcomes.filter((o) => o.status === 'spent-now');
        expect(winners).toHaveLength(1);
        expect(outcomes.filter((o) => o.status === 'already-spent')).toHaveLength(7);
        expect((await store.getRefreshToken(saved.hash))?.replacedBy).toBe(winners[0]!.token.replacedBy);
      });
    });

    describe('Method: supersedeRefreshToken', () => {
      it('spends an unspent token once, marking it superseded', async () => {
        // Prepare
        const saved = token();
        await store.putRefreshToken(saved);

        // Act
        const first = await store.supersedeRefreshToken(saved.hash, 'fresh-hash', '2025-03-01T12:05:00.000Z');
        const again = await store.supersedeRefreshToken(saved.hash, 'other-hash', '2025-03-01T12:06:00.000Z');
        const spend = await store.spendRefreshToken(saved.hash, 'third-hash', '2025-03-01T12:07:00.000Z');

        // Assess
        const superseded = { ...saved, spentAt: '2025-03-01T12:05:00.000Z', replacedBy: 'fresh-hash', supersededAt: '2025-03-01T12:05:00.000Z' };
        expect(first).toStrictEqual({ status: 'spent-now', token: superseded });
        expect(again).toStrictEqual({ status: 'already-spent', token: superseded });
        expect(spend).toStrictEqual({ status: 'already-spent', token: superseded });
        expect(await store.getRefreshToken(saved.hash)).toStrictEqual(superseded);
      });

      it('refuses to supersede a token that was already spent, leaving it as spent', async () => {
        const saved = token();
        await store.putRefreshToken(saved);
        await store.spendRefreshToken(saved.hash, 'next-hash', NOW);

        const outcome = await store.supersedeRefreshToken(saved.hash, 'fresh-hash', NOW);

        const spent = { ...saved, spentAt: NOW, replacedBy: 'next-hash' };
        expect(outcome).toStrictEqual({ status: 'already-spent', token: spent });
        expect(await store.getRefreshToken(saved.hash)).toStrictEqual(spent);
      });

      it('answers unknown for a hash that was never stored, and creates nothing', async () => {
        const outcome = await store.supersedeRefreshToken('e'.repeat(64), 'fresh', NOW);

        expect(outcome).toStrictEqual({ status: 'unknown' });
        expect(await store.getRefreshToken('e'.repeat(64))).toBeUndefined();
      });

      it('lets exactly one of concurrent spends and supersedes of one token win', async () => {
        // Prepare
        const saved = token();
        await store.putRefreshToken(saved);

        // Act: the owner presenting the token while grace uses of its predecessor supersede it.
        const outcomes = await Promise.all(
          Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? store.spendRefreshToken(saved.hash, `next-${i}`, NOW) : store.supersedeRefreshToken(saved.hash, `next-${i}`, NOW))),
        );

        // Assess
        const winners = outcomes.filter((o) => o.status === 'spent-now');
        expect(winners).toHaveLength(1);
        expect(outcomes.filter((o) => o.status === 'already-spent')).toHaveLength(7);
        const stored = await store.getRefreshToken(saved.hash);
        expect(stored).toStrictEqual(winners[0]!.token);
        expect(stored?.supersededAt !== undefined).toBe(Number(stored?.replacedBy?.slice('next-'.length)) % 2 === 1);
      });
    });
  });

  describe(`Class: Store (broker quotas and upstream secrets) on ${engineName}`, () => {
    let engine: StoreEngine;
    let store: Store;

    beforeAll(async () => {
      engine = await open();
      store = await engine.freshStore();
    });

    afterAll(async () => {
      await engine?.close();
    });

    const freshStore = () => engine.freshStore();

    /** The hour-long window that began at 2025-03-01T12:00Z. */
    const HOUR = { startMs: Date.parse('2025-03-01T12:00:00.000Z'), seconds: 3600 };
    const NEXT_HOUR = { startMs: HOUR.startMs + 3_600_000, seconds: 3600 };

    const quota = (bucket: string, extra: Partial<QuotaPolicy> = {}): QuotaPolicy => ({ bucket, windowSeconds: 3600, requests: 1000, units: 50_000, updatedAt: NOW, ...extra });

    const secretRef = (provider: string, extra: Partial<UpstreamSecretRef> = {}): UpstreamSecretRef => ({
      provider,
      version: 'v-2',
      previousVersion: 'v-1',
      rotatedAt: NOW,
      overlapUntil: '2025-03-01T12:01:00.000Z',
      actor: 'oncall@example.com',
      reason: 'scheduled rotation',
      requestId: `req_${uid()}`,
      ...extra,
    });

    const usage = (bucket: string, requests: number, units: number, window = HOUR): QuotaUsage => ({
      bucket,
      windowStart: new Date(window.startMs).toISOString(),
      windowSeconds: window.seconds,
      requests,
      units,
    });

    describe('Method: putQuota / getQuota', () => {
      it('round-trips a quota policy without key or index attributes', async () => {
        // Prepare
        const saved = quota(`llm-${uid()}`);

        // Act
        await store.putQuota(saved);
        const read = await store.getQuota(saved.bucket);

        // Assess
        expect(read).toStrictEqual(saved);
        for (const attribute of KEY_ATTRIBUTES) expect(read).not.toHaveProperty(attribute);
      });

      it('keeps an absent limit absent and replaces the policy on a second put', async () => {
        // Prepare
        const bucket = `llm-${uid()}`;
        await store.putQuota(quota(bucket));

        // Act
        await store.putQuota({ bucket, windowSeconds: 60, requests: 5, updatedAt: '2025-03-02T00:00:00.000Z' });
        const read = await store.getQuota(bucket);

        // Assess
        expect(read).toStrictEqual({ bucket, windowSeconds: 60, requests: 5, updatedAt: '2025-03-02T00:00:00.000Z' });
      });

      it('returns undefined for an unknown bucket, even when a window of it was counted', async () => {
        // Prepare
        const bucket = `llm-${uid()}`;
        await store.takeQuota(bucket, HOUR, {});

        // Act & Assess
        expect(await store.getQuota(bucket)).toBeUndefined();
      });
    });

    describe('Method: listQuotas', () => {
      it('lists every quota policy in bucket order, and no counter, tool or secret pointer', async () => {
        // Prepare
        const fresh = await freshStore();
        await fresh.putQuota(quota('zeta'));
        await fresh.putQuota(quota('alpha', { units: undefined }));
        await fresh.takeQuota('alpha', HOUR, { requests: 10 });
        await fresh.addQuotaUnits('zeta', HOUR, 3);
        await fresh.putTool(tool('alpha'));
        await fresh.putUpstreamSecretRef(secretRef('alpha'));

        // Act
        const quotas = await fresh.listQuotas();

        // Assess
        expect(quotas).toStrictEqual([{ bucket: 'alpha', windowSeconds: 3600, requests: 1000, updatedAt: NOW }, quota('zeta')]);
      });

      it('returns an empty list when there is no quota', async () => {
        // Act & Assess
        expect(await (await freshStore()).listQuotas()).toStrictEqual([]);
      });
    });

    describe('Method: takeQuota', () => {
      it('counts a first request into a new window and describes the window', async () => {
        // Prepare
        const bucket = `llm-${uid()}`;

        // Act
        const take = await store.takeQuota(bucket, HOUR, { requests: 10, units: 100 });

        // Assess
        expect(take).toStrictEqual({ status: 'taken', usage: usage(bucket, 1, 0) });
        expect(await store.getQuotaUsage(bucket, HOUR)).toStrictEqual(usage(bucket, 1, 0));
      });

      it('admits exactly the limit of 25 concurrent takes, and the counter reads the limit', async () => {
        // Prepare
        const bucket = `llm-${uid()}`;

        // Act
        const takes = await Promise.all(Array.from({ length: 25 }, () => store.takeQuota(bucket, HOUR, { requests: 10 })));

        // Assess
        expect(takes.filter((t) => t.status === 'taken')).toHaveLength(10);
        expect(takes.filter((t) => t.status === 'exhausted')).toHaveLength(15);
        expect(new Set(takes.filter((t) => t.status === 'taken').map((t) => t.usage.requests))).toStrictEqual(new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
        for (const take of takes.filter((t) => t.status === 'exhausted')) expect(take.usage).toStrictEqual(usage(bucket, 10, 0));
        expect(await store.getQuotaUsage(bucket, HOUR)).toStrictEqual(usage(bucket, 10, 0));
      });

      it('takes several requests at once only while they all fit, and refuses a bad count', async () => {
        // Prepare
        const bucket = `llm-${uid()}`;

        // Act
        const first = await store.takeQuota(bucket, HOUR, { requests: 10 }, 8);
        const tooMany = await store.takeQuota(bucket, HOUR, { requests: 10 }, 3);
        const rest = await store.takeQuota(bucket, HOUR, { requests: 10 }, 2);
        const overLimit = await store.takeQuota(bucket, HOUR, { requests: 10 }, 11);

        // Assess
        expect(first).toStrictEqual({ status: 'taken', usage: usage(bucket, 8, 0) });
        expect(tooMany).toStrictEqual({ status: 'exhausted', usage: usage(bucket, 8, 0) });
        expect(rest).toStrictEqual({ status: 'taken', usage: usage(bucket, 10, 0) });
        expect(overLimit.status).toBe('exhausted');
        await expect(store.takeQuota(bucket, HOUR, {}, 0)).rejects.toMatchObject({ code: 'invalid_request', context: { field: 'count' } });
      });

      it('refuses once the units reach their limit, counting nothing, however few requests were made', async () => {
        // Prepare
        const bucket = `llm-${uid()}`;
        const limits = { requests: 1000, units: 100 };
        await store.takeQuota(bucket, HOUR, limits);
        await store.addQuotaUnits(bucket, HOUR, 60);
        const under = await store.takeQuota(bucket, HOUR, limits);
        await store.addQuotaUnits(bucket, HOUR, 40);

        // Act
        const refused = await store.takeQuota(bucket, HOUR, limits);

        // Assess
        expect(under).toStrictEqual({ status: 'taken', usage: usage(bucket, 2, 60) });
        expect(refused).toStrictEqual({ status: 'exhausted', usage: usage(bucket, 2, 100) });
        expect(await store.getQuotaUsage(bucket, HOUR)).toStrictEqual(usage(bucket, 2, 100));
      });

      it('refuses on the request limit while the units are still under theirs', async () => {
        // Prepare
        const bucket = `llm-${uid()}`;
        const limits = { requests: 2, units: 1_000_000 };
        await store.takeQuota(bucket, HOUR, limits);
        await store.takeQuota(bucket, HOUR, limits);

        // Act
        const refused = await store.takeQuota(bucket, HOUR, limits);

        // Assess
        expect(refused).toStrictEqual({ status: 'exhausted', usage: usage(bucket, 2, 0) });
      });

      it('keeps windows and buckets apart: a spent window refuses, the next window and another bucket do not', async () => {
        // Prepare
        const bucket = `llm-${uid()}`;
        const other = `crm-${uid()}`;
        await store.takeQuota(bucket, HOUR, { requests: 1 });

        // Act
        const spent = await store.takeQuota(bucket, HOUR, { requests: 1 });
        const next = await store.takeQuota(bucket, NEXT_HOUR, { requests: 1 });
        const elsewhere = await store.takeQuota(other, HOUR, { requests: 1 });

        // Assess
        expect(spent.status).toBe('exhausted');
        expect(next).toStrictEqual({ status: 'taken', usage: usage(bucket, 1, 0, NEXT_HOUR) });
        expect(elsewhere).toStrictEqual({ status: 'taken', usage: usage(other, 1, 0) });
        expect(await store.getQuotaUsage(bucket, HOUR)).toStrictEqual(usage(bucket, 1, 0));
      });

      it('counts every request when no limit is given', async () => {
        // Prepare
        const bucket = `llm-${uid()}`;

        // Act
        const takes = await Promise.all(Array.from({ length: 5 }, () => store.takeQuota(bucket, HOUR, {})));

        // Assess
        expect(takes.every((t) => t.status === 'taken')).toBe(true);
        expect(await store.getQuotaUsage(bucket, HOUR)).toStrictEqual(usage(bucket, 5, 0));
      });

      it('refuses a limit of 0 without writing anything', async () => {
        // Prepare
        const bucket = `llm-${uid()}`;

        // Act
        const take = await store.takeQuota(bucket, HOUR, { requests: 0 });

        // Assess
        expect(take).toStrictEqual({ status: 'exhausted', usage: usage(bucket, 0, 0) });
        expect(await store.getQuotaUsage(bucket, HOUR)).toBeUndefined();
      });

      it('keeps a window of another length apart, even when both start at the same instant', async () => {
        // Prepare
        const bucket = `llm-${uid()}`;
        await store.takeQuota(bucket, HOUR, { requests: 1 });

        // Act
        const day = await store.takeQuota(bucket, { startMs: HOUR.startMs, seconds: 86_400 }, { requests: 1 });

        // Assess
        expect(day.status).toBe('taken');
        expect(day.usage.windowSeconds).toBe(86_400);
        expect((await store.getQuotaUsage(bucket, HOUR))?.requests).toBe(1);
      });

      it.each([
        ['a window start that is not a whole millisecond', { startMs: 1.5, seconds: 60 }, 'window.startMs'],
        ['a negative window start', { startMs: -60_000, seconds: 60 }, 'window.startMs'],
        ['a window of no seconds', { startMs: 0, seconds: 0 }, 'window.seconds'],
      ])('refuses %s with invalid_request naming the field', async (_case, window, field) => {
        // Act & Assess
        await expectLanyardError(store.takeQuota(`llm-${uid()}`, window, {}), 'invalid_request', { context: { field } });
      });

      it('refuses a limit that is not a number with invalid_request naming it', async () => {
        // Act & Assess
        await expectLanyardError(store.takeQuota(`llm-${uid()}`, HOUR, { units: Number.NaN }), 'invalid_request', { context: { field: 'limits.units' } });
      });
    });

    describe('Method: addQuotaUnits / getQuotaUsage', () => {
      it('accumulates units into the window, and requests of a window never taken read as 0', async () => {
        // Prepare
        const bucket = `llm-${uid()}`;

        // Act
        await store.addQuotaUnits(bucket, HOUR, 120);
        await Promise.all([store.addQuotaUnits(bucket, HOUR, 30), store.addQuotaUnits(bucket, HOUR, 50)]);

        // Assess
        expect(await store.getQuotaUsage(bucket, HOUR)).toStrictEqual(usage(bucket, 0, 200));
        expect(await store.getQuotaUsage(bucket, NEXT_HOUR)).toBeUndefined();
      });

      it('adds units past the limit: the call already happened', async () => {
        // Prepare
        const bucket = `llm-${uid()}`;
        await store.takeQuota(bucket, HOUR, { units: 10 });

        // Act
        await store.addQuotaUnits(bucket, HOUR, 25);

        // Assess
        expect(await store.getQuotaUsage(bucket, HOUR)).toStrictEqual(usage(bucket, 1, 25));
        expect((await store.takeQuota(bucket, HOUR, { units: 10 })).status).toBe('exhausted');
      });

      it('writes nothing for zero or negative units', async () => {
        // Prepare
        const bucket = `llm-${uid()}`;

        // Act
        await store.addQuotaUnits(bucket, HOUR, 0);
        await store.addQuotaUnits(bucket, HOUR, -5);

        // Assess
        expect(await store.getQuotaUsage(bucket, HOUR)).toBeUndefined();
      });

      it('returns undefined for a window nothing was counted in', async () => {
        // Act & Assess
        expect(await store.getQuotaUsage(`llm-${uid()}`, HOUR)).toBeUndefined();
      });
    });

    describe('Method: putUpstreamSecretRef / getUpstreamSecretRef / listUpstreamSecretRefs', () => {

      it('moves the pointer only from the version it expects, and writes nothing on a conflict', async () => {
        // Prepare
        const provider = `p-${uid()}`;
        await store.putUpstreamSecretRef(secretRef(provider, { version: 'v-1' }), { expectVersion: null });

        // Act
        const fresh = await store.putUpstreamSecretRef(secretRef(provider, { version: 'v-x' }), { expectVersion: null }).catch((e: unknown) => e);
        const stale = await store.putUpstreamSecretRef(secretRef(provider, { version: 'v-y' }), { expectVersion: 'v-0' }).catch((e: unknown) => e);
        await store.putUpstreamSecretRef(secretRef(provider, { version: 'v-2', previousVersion: 'v-1' }), { expectVersion: 'v-1' });

        // Assess
        expect(fresh).toMatchObject({ code: 'conflict', context: { provider } });
        expect(stale).toMatchObject({ code: 'conflict' });
        expect((await store.getUpstreamSecretRef(provider))?.version).toBe('v-2');
      });
      it('round-trips a secret pointer exactly, without key or index attributes', async () => {
        // Prepare
        const saved = secretRef(`stripe-${uid()}`);

        // Act
        await store.putUpstreamSecretRef(saved);
        const read = await store.getUpstreamSecretRef(saved.provider);

        // Assess
        expect(read).toStrictEqual(saved);
        for (const attribute of KEY_ATTRIBUTES) expect(read).not.toHaveProperty(attribute);
      });

      it('overwrites the pointer with a new version and drops the optional fields it no longer has', async () => {
        // Prepare
        const provider = `stripe-${uid()}`;
        await store.putUpstreamSecretRef(secretRef(provider));
        const first = { provider, version: 'v-1', rotatedAt: NOW, actor: 'alice@example.com', reason: 'initial secret', requestId: 'req-1' };

        // Act
        await store.putUpstreamSecretRef(first);
        const read = await store.getUpstreamSecretRef(provider);

        // Assess
        expect(read).toStrictEqual(first);
      });

      it('returns undefined for an unknown provider', async () => {
        // Act & Assess
        expect(await store.getUpstreamSecretRef(`nope-${uid()}`)).toBeUndefined();
      });

      it('lists every pointer in provider order, and no tool or quota', async () => {
        // Prepare
        const fresh = await freshStore();
        await fresh.putUpstreamSecretRef(secretRef('stripe'));
        await fresh.putUpstreamSecretRef(secretRef('openai'));
        await fresh.putUpstreamSecretRef(secretRef('stripe', { version: 'v-3', previousVersion: 'v-2' }));
        await fresh.putTool(tool('stripe'));
        await fresh.putQuota(quota('stripe'));

        // Act
        const refs = await fresh.listUpstreamSecretRefs();

        // Assess
        expect(refs.map((ref) => [ref.provider, ref.version])).toStrictEqual([
          ['openai', 'v-2'],
          ['stripe', 'v-3'],
        ]);
        expect(await (await freshStore()).listUpstreamSecretRefs()).toStrictEqual([]);
      });
    });
  });
}
