import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLocalServices, type LocalServices } from '../../../shared/bootstrap/local/runtime.ts';
import { SECRETS_DIR } from '../../../shared/adapters/local/file-vault.ts';
import type { Tool } from '../../../shared/domain/model.ts';
import type { Log } from '../../../shared/ports/log.ts';
import type { LanyardEvent, SecretVault, Store } from '../../../shared/ports/index.ts';
import type { IssuerServices } from '../../../shared/ports/services.ts';
import { DEFAULT_OVERLAP_SECONDS, listUpstreams, MAX_SECRET_LENGTH, setUpstreamSecret, type SetUpstreamSecretInput } from '../../../shared/broker/upstream-secrets.ts';
import { rejection } from '../../helpers/errors.ts';

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const TTL_MS = 750;
const SECRET = 'sk_live_51HxQupstreamSecretsUseCase7g6h5';

function upstreamTool(id: string, baseUrl = `https://api.${id}.example`): Tool {
  return {
    id,
    audience: 'urn:lanyard:broker',
    actions: { 'charges.read': 'read' },
    enabled: true,
    upstream: { baseUrl, key: { header: 'authorization', scheme: 'Bearer' }, routes: { 'charges.read': [{ method: 'GET', path: '/v1/charges*' }] } },
    updatedAt: new Date(NOW).toISOString(),
  };
}
const plainTool: Tool = { id: 'tickets', audience: 'https://tickets.example.internal', actions: { read: 'read' }, enabled: true, updatedAt: new Date(NOW).toISOString() };

/** Log lines as they would be written, to search for the secret. */
function capturingLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  const write = (level: string) => (message: string, extra?: Record<string, unknown>) => void lines.push(JSON.stringify({ level, message, ...extra }));
  return { lines, info: write('info'), warn: write('warn'), error: write('error') };
}

describe('Use case: setUpstreamSecret', () => {
  let runtime: LocalServices;
  let dataDir: string;
  let now = NOW;
  const log = capturingLog();
  const events: LanyardEvent[] = [];

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lanyard-upstream-secrets-'));
    runtime = await openLocalServices({ dataDir, issuer: 'http://issuer.test', inMemory: true, policyTtlMs: TTL_MS, clock: { now: () => now }, log });
    runtime.events.subscribe((e) => events.push(e));
    for (const id of ['stripe', 'openai', 'anthropic', 'twilio', 'sendgrid', 'github']) await runtime.store.putTool(upstreamTool(id));
    await runtime.store.putTool(plainTool);
  });
  afterAll(async () => {
    await runtime.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const set = (input: Partial<SetUpstreamSecretInput> & { provider: string }) =>
    setUpstreamSecret(runtime, { secret: SECRET, reason: 'quarterly rotation', actor: 'oncall', requestId: `req-${Math.random().toString(16).slice(2)}`, ...input });
  const recordsOf = async (provider: string) => (await runtime.store.queryDecisions({ by: 'tool', value: provider, limit: 100 })).items.filter((r) => r.decision === 'secret_rotated');
  /** Everything the rotation left outside the vault: answers, records, events, log lines. */
  const everythingVisible = async (answers: unknown[]) =>
    JSON.stringify({ answers, records: (await runtime.store.queryDecisions({ by: 'tool', value: 'stripe', limit: 100 })).items, refs: await runtime.store.listUpstreamSecretRefs(), events, log: log.lines, eventsLog: await readFile(join(dataDir, 'events.log'), 'utf8').catch(() => '') });

  it('stores a first secret: version ids and times in the answer, the pointer written, a secret_rotated record, nothing else', async () => {
    // Act
    const result = await set({ provider: 'stripe', requestId: 'req-first' });

    // Assess
    expect(result).toEqual({
      provider: 'stripe',
      version: expect.stringMatching(/^v_[0-9a-f]{16}$/),
      rotatedAt: new Date(NOW).toISOString(),
      overlapUntil: new Date(NOW + DEFAULT_OVERLAP_SECONDS * 1000).toISOString(),
      takesEffectWithinMs: TTL_MS,
    });
    expect(await runtime.store.getUpstreamSecretRef('stripe')).toEqual({
      provider: 'stripe',
      version: result.version,
      rotatedAt: result.rotatedAt,
      overlapUntil: result.overlapUntil,
      actor: 'oncall',
      reason: 'quarterly rotation',
      requestId: 'req-first',
    });
    expect(await runtime.vault!.getSecret('stripe', result.version)).toBe(SECRET);
    expect(await recordsOf('stripe')).toEqual([
      expect.objectContaining({ id: 'secret_rotated_req-first_stripe', decision: 'secret_rotated', tool: 'stripe', secretVersion: result.version, actor: 'oncall', reason: 'quarterly rotation', requestId: 'req-first', actionsRequested: [], actionsGranted: [] }),
    ]);
  });

  it('on a second set moves the pointer to a new version, names the old one as previous, and keeps both readable', async () => {
    // Prepare
    const first = await set({ provider: 'openai', secret: 'sk-old-openai-key' });
    now += 5_000;

    // Act
    const second = await set({ provider: 'openai', secret: 'sk-new-openai-key', overlapSeconds: 300 });

    // Assess
    expect(second.version).not.toBe(first.version);
    expect(second.previousVersion).toBe(first.version);
    expect(second.overlapUntil).toBe(new Date(now + 300_000).toISOString());
    expect(await runtime.store.getUpstreamSecretRef('openai')).toMatchObject({ version: second.version, previousVersion: first.version, overlapUntil: second.overlapUntil });
    expect(await runtime.vault!.getSecret('openai', first.version)).toBe('sk-old-openai-key');
    expect(await runtime.vault!.getSecret('openai', second.version)).toBe('sk-new-openai-key');
    expect((await recordsOf('openai')).map((r) => r.secretVersion).sort()).toEqual([first.version, second.version].sort());
  });

  it('publishes Upstream Secret Rotated on the local bus from the committed pointer, naming versions and never the secret', async () => {
    // Prepare
    const seen: LanyardEvent[] = [];
    const unsubscribe = runtime.events.subscribe((e) => seen.push(e));
    const first = await set({ provider: 'github', secret: 'ghp_firstGithubTokenForEvents' });

    // Act
    const second = await set({ provider: 'github', secret: 'ghp_secondGithubTokenForEvents' });
    unsubscribe();

    // Assess
    const rotated = seen.filter((e) => e.detailType === 'Upstream Secret Rotated');
    expect(rotated.map((e) => e.detail)).toEqual([
      expect.objectContaining({ provider: 'github', version: first.version, actor: 'oncall', reason: 'quarterly rotation' }),
      expect.objectContaining({ provider: 'github', version: second.version, previousVersion: first.version }),
    ]);
    expect(JSON.stringify(seen)).not.toContain('GithubTokenForEvents');
  });

  it('runs concurrent rotations of one provider one after another, each naming the one before', async () => {
    const results = await Promise.all(['sk_a_twilio', 'sk_b_twilio', 'sk_c_twilio'].map((secret) => set({ provider: 'twilio', secret })));

    expect(results[0]!.previousVersion).toBeUndefined();
    expect(results[1]!.previousVersion).toBe(results[0]!.version);
    expect(results[2]!.previousVersion).toBe(results[1]!.version);
    expect((await runtime.store.getUpstreamSecretRef('twilio'))?.version).toBe(results[2]!.version);
  });

  it('reads the pointer again when another process rotated in between, so previousVersion names the version it replaced', async () => {
    const first = await set({ provider: 'github' });
    const other = { ...first, version: 'v_from_another_process', previousVersion: first.version, requestId: 'req-other' };
    let raced = false;
    const store = new Proxy(runtime.store, {
      get(target, property, receiver) {
        if (property === 'putUpstreamSecretRef') {
          return async (...args: Parameters<Store['putUpstreamSecretRef']>) => {
            if (!raced) {
              raced = true;
              await target.putUpstreamSecretRef({ provider: 'github', version: other.version, previousVersion: first.version, rotatedAt: other.rotatedAt, actor: 'elsewhere', reason: 'race', requestId: 'req-other' });
            }
            return target.putUpstreamSecretRef(...args);
          };
        }
        const value: unknown = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });

    const second = await setUpstreamSecret({ ...runtime, store }, { provider: 'github', secret: SECRET, reason: 'rotation', actor: 'oncall', requestId: 'req-race' });

    expect(raced).toBe(true);
    expect(second.previousVersion).toBe('v_from_another_process');
    expect(await runtime.store.getUpstreamSecretRef('github')).toMatchObject({ version: second.version, previousVersion: 'v_from_another_process' });
  });

  it('takes an overlap of 0 (the old version stops at once)', async () => {
    const result = await set({ provider: 'sendgrid', overlapSeconds: 0 });

    expect(result.overlapUntil).toBe(result.rotatedAt);
  });

  describe('when the request is refused', () => {
    const longest = 'k'.repeat(MAX_SECRET_LENGTH);
    it.each([
      ['a CR LF header injection', `${SECRET}\r\nx-admin: true`, 'secret'],
      ['a bare LF', `${SECRET}\nmore`, 'secret'],
      ['a NUL byte', `${SECRET}\0`, 'secret'],
      ['a tab', `${SECRET}\tmore`, 'secret'],
      ['DEL', `${SECRET}\x7f`, 'secret'],
      ['a non-ASCII character', `${SECRET}é`, 'secret'],
      ['a leading space', ` ${SECRET}`, 'secret'],
      ['a trailing space', `${SECRET} `, 'secret'],
      ['an empty secret', '', 'secret'],
      ['a secret one character too long', `${longest}k`, 'secret'],
    ])('refuses %s with invalid_request on secret, never quoting it, and writes nothing', async (_name, secret, field) => {
      // Prepare
      const before = { files: await readdir(join(dataDir, SECRETS_DIR)), ref: await runtime.store.getUpstreamSecretRef('anthropic'), records: await recordsOf('anthropic') };

      // Act
      const error = await rejection(set({ provider: 'anthropic', secret }));

      // Assess
      expect(error.code).toBe('invalid_request');
      expect(error.context.field).toBe(field);
      expect(error.message).toMatch(/printable ASCII/);
      if (secret.length > 0) expect(error.message).not.toContain(secret.trim().slice(0, 20));
      expect(JSON.stringify({ message: error.message, context: error.context })).not.toContain(SECRET);
      expect({ files: await readdir(join(dataDir, SECRETS_DIR)), ref: await runtime.store.getUpstreamSecretRef('anthropic'), records: await recordsOf('anthropic') }).toEqual(before);
    });

    it('takes a secret of exactly the longest length, with inner spaces', async () => {
      const result = await set({ provider: 'anthropic', secret: `${longest.slice(0, -3)}a b` });

      expect(await runtime.vault!.getSecret('anthropic', result.version)).toHaveLength(MAX_SECRET_LENGTH);
    });

    it.each([
      ['an unknown tool', { provider: 'nowhere' }, 'not_found', undefined],
      ['a tool without an upstream', { provider: 'tickets' }, 'invalid_request', 'provider'],
      ['a provider that is not a tool id', { provider: '../stripe' }, 'invalid_request', 'provider'],
      ['an overlap over an hour', { provider: 'stripe', overlapSeconds: 3601 }, 'invalid_request', 'overlapSeconds'],
      ['a negative overlap', { provider: 'stripe', overlapSeconds: -1 }, 'invalid_request', 'overlapSeconds'],
      ['a fractional overlap', { provider: 'stripe', overlapSeconds: 1.5 }, 'invalid_request', 'overlapSeconds'],
    ])('refuses %s with %s, and writes no vault version, pointer or record', async (_name, input, code, field) => {
      // Prepare
      const before = { secrets: await readdir(join(dataDir, SECRETS_DIR)), stripe: await readFile(join(dataDir, SECRETS_DIR, 'stripe.json'), 'utf8'), refs: await runtime.store.listUpstreamSecretRefs() };
      const recordsBefore = (await recordsOf(input.provider)).length;

      // Act
      const error = await rejection(set(input));

      // Assess
      expect(error.code).toBe(code);
      expect(error.context.field).toBe(field);
      expect({ secrets: await readdir(join(dataDir, SECRETS_DIR)), stripe: await readFile(join(dataDir, SECRETS_DIR, 'stripe.json'), 'utf8'), refs: await runtime.store.listUpstreamSecretRefs() }).toEqual(before);
      expect(await recordsOf(input.provider)).toHaveLength(recordsBefore);
    });
  });

  it('leaves the secret nowhere outside the vault: answers, records, pointers, events, the events log and log lines', async () => {
    // Prepare
    const answers: unknown[] = [await set({ provider: 'stripe' }), await set({ provider: 'stripe', secret: `${SECRET}-next` })];
    answers.push(await listUpstreams(runtime));
    answers.push(await rejection(set({ provider: 'stripe', secret: `${SECRET}\r\n` })).then((e) => ({ message: e.message, context: e.context })));

    // Act
    const visible = await everythingVisible(answers);

    // Assess
    expect(visible).toContain('secret_rotated');
    expect(visible).toContain('Upstream Secret Rotated');
    expect(visible).not.toContain(SECRET);
  });
});

describe('Use case: setUpstreamSecret (failing dependencies)', () => {
  const tool = upstreamTool('stripe');
  /** A runtime whose store, vault and decision log are plain fakes, each of which can fail. */
  function fakeRuntime(options: { vault?: SecretVault | 'none'; putRef?: () => Promise<void> } = {}) {
    const refs: unknown[] = [];
    const records: unknown[] = [];
    const vaultVersions: string[] = [];
    const vault: SecretVault = {
      putSecret: () => {
        vaultVersions.push(`v_${vaultVersions.length}`);
        return Promise.resolve({ version: vaultVersions.at(-1)! });
      },
      getSecret: () => Promise.reject(new Error('unused')),
    };
    const store: Partial<Store> = {
      getTool: (id) => Promise.resolve(id === 'stripe' ? tool : undefined),
      getUpstreamSecretRef: () => Promise.resolve(undefined),
      putUpstreamSecretRef: options.putRef ?? ((ref) => Promise.resolve(void refs.push(ref))),
    };
    const runtime = {
      store,
      clock: { now: () => NOW },
      policy: { invalidate: () => {}, ttlMs: 1000 },
      decisions: { append: (r: unknown) => Promise.resolve(void records.push(r)) },
      ...(options.vault !== 'none' && { vault: options.vault ?? vault }),
    } as unknown as IssuerServices;
    return { runtime, refs, records, vaultVersions };
  }
  const input: SetUpstreamSecretInput = { provider: 'stripe', secret: SECRET, reason: 'rotation', actor: 'oncall', requestId: 'req-1' };

  it('fails closed (issuer_unavailable) with no vault configured, and writes nothing', async () => {
    const { runtime, refs, records } = fakeRuntime({ vault: 'none' });

    const error = await rejection(setUpstreamSecret(runtime, input));

    expect(error.code).toBe('issuer_unavailable');
    expect(error.status).toBe(503);
    expect(refs).toEqual([]);
    expect(records).toEqual([]);
  });

  it('fails closed when the vault write fails, and leaves the pointer where it was', async () => {
    const failing: SecretVault = { putSecret: () => Promise.reject(new Error('AccessDeniedException: not authorized')), getSecret: () => Promise.reject(new Error('unused')) };
    const { runtime, refs, records } = fakeRuntime({ vault: failing });

    const error = await rejection(setUpstreamSecret(runtime, input));

    expect(error.code).toBe('issuer_unavailable');
    expect((error.cause as Error).message).toContain('AccessDeniedException');
    expect(refs).toEqual([]);
    expect(records).toEqual([]);
  });

  it('fails closed when the pointer write fails, and records no rotation that did not happen', async () => {
    const { runtime, records, vaultVersions } = fakeRuntime({ putRef: () => Promise.reject(new Error('ProvisionedThroughputExceededException')) });

    const error = await rejection(setUpstreamSecret(runtime, input));

    expect(error.code).toBe('issuer_unavailable');
    expect(vaultVersions).toEqual(['v_0']);
    expect(records).toEqual([]);
  });
});

describe('Use case: listUpstreams', () => {
  let runtime: LocalServices;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lanyard-upstreams-'));
    runtime = await openLocalServices({ dataDir, issuer: 'http://issuer.test', inMemory: true, clock: { now: () => NOW } });
    await runtime.store.putTool(upstreamTool('stripe', 'https://api.stripe.com'));
    await runtime.store.putTool(upstreamTool('openai', 'https://api.openai.com'));
    await runtime.store.putTool(plainTool);
  });
  afterAll(async () => {
    await runtime.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('lists every tool with an upstream, whether its secret is set and which version, never the secret', async () => {
    // Prepare
    const { version } = await setUpstreamSecret(runtime, { provider: 'stripe', secret: SECRET, reason: 'first key', actor: 'oncall', requestId: 'req-list' });

    // Act
    const upstreams = await listUpstreams(runtime);

    // Assess
    expect(upstreams).toEqual([
      { provider: 'openai', baseUrl: 'https://api.openai.com', secretSet: false },
      { provider: 'stripe', baseUrl: 'https://api.stripe.com', secretSet: true, version, rotatedAt: new Date(NOW).toISOString() },
    ]);
    expect(JSON.stringify(upstreams)).not.toContain(SECRET);
  });
});
