/** A real local issuer (in-memory dynalite, key under a temp dir) on a loopback port, for tests; started as `lanyard serve` and `lanyard dev` start theirs. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startIssuer, type RunningIssuer } from '../../shared/bootstrap/local/issuer.ts';
import { silentLog, type Log } from '../../shared/ports/log.ts';
import type { PolicyDocument } from '../../shared/policy/policy-file.ts';

export const KEYS = {
  agent: 'lk_test_agent_key_000000000000000001',
  otherAgent: 'lk_test_agent_key_000000000000000002',
  suspended: 'lk_test_agent_key_000000000000000003',
  verifier: 'lk_test_verifier_key_00000000000001',
  admin: 'lk_test_admin_key_0000000000000000001',
  orchestrator: 'lk_test_orchestrator_key_0000000001',
} as const;

export const TICKETS_AUDIENCE = 'https://tickets.example.internal';

export function testPolicy(): PolicyDocument {
  return {
    tools: [
      { id: 'tickets', audience: TICKETS_AUDIENCE, actions: { read: 'read', list: 'read', reply: 'write', escalate: 'write', purge: 'admin' }, enabled: true },
      { id: 'crm', audience: 'https://crm.example.internal', actions: { read: 'read', update: 'write' }, enabled: true },
      { id: 'legacy', audience: 'https://legacy.example.internal', actions: { read: 'read' }, enabled: false },
    ],
    roles: [
      { id: 'support-triage', version: 1, actions: ['tickets:read', 'tickets:list', 'tickets:reply', 'legacy:read'], approvedBy: 'alice@example.com' },
      { id: 'crm-reader', version: 1, actions: ['crm:read'], approvedBy: 'alice@example.com' },
    ],
    identities: [
      { id: 'support-triage/prod', owner: 'team-support', purpose: 'triage tickets', status: 'active' },
      { id: 'billing-bot/prod', owner: 'team-billing', purpose: 'billing questions', status: 'active' },
      { id: 'old-bot/prod', owner: 'team-support', purpose: 'retired', status: 'suspended' },
    ],
    grants: [
      { identity: 'support-triage/prod', role: 'support-triage@1', tenants: ['acme', 'globex'], maxTtlSeconds: 900, kinds: ['jwt'], quotaBucket: 'support-llm' },
      { identity: 'support-triage/prod', role: 'crm-reader@1', tenants: ['*'], maxTtlSeconds: 600, kinds: ['jwt'], quotaBucket: 'crm', budgetOwner: 'team-crm' },
      { identity: 'billing-bot/prod', role: 'support-triage@1', tenants: ['acme'], maxTtlSeconds: 300, kinds: ['jwt'], quotaBucket: 'billing' },
      { identity: 'old-bot/prod', role: 'support-triage@1', tenants: ['acme'], maxTtlSeconds: 300, kinds: ['jwt'], quotaBucket: 'old' },
    ],
    principals: [
      { id: 'triage-worker-1', kind: 'agent', identity: 'support-triage/prod', apiKey: KEYS.agent },
      { id: 'billing-worker-1', kind: 'agent', identity: 'billing-bot/prod', apiKey: KEYS.otherAgent },
      { id: 'old-worker', kind: 'agent', identity: 'old-bot/prod', apiKey: KEYS.suspended },
      { id: 'resource-server', kind: 'verifier', apiKey: KEYS.verifier },
      { id: 'oncall', kind: 'admin', apiKey: KEYS.admin },
      { id: 'fleet-scheduler', kind: 'orchestrator', spawns: ['support-triage/prod'], apiKey: KEYS.orchestrator },
    ],
  };
}

export interface TestIssuer extends RunningIssuer {
  readonly url: string;
  readonly dataDir: string;
  post(path: string, body: unknown, key?: string, headers?: Record<string, string>): Promise<{ status: number; headers: Headers; body: any }>;
  get(path: string, key?: string): Promise<{ status: number; headers: Headers; body: any }>;
  stop(): Promise<void>;
}

export async function startTestIssuer(options: { policy?: PolicyDocument; dataDir?: string; inMemory?: boolean; log?: Log; processMetrics?: boolean } = {}): Promise<TestIssuer> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'lanyard-test-')));
  const issuer = await startIssuer({
    port: 0,
    host: '127.0.0.1',
    dataDir,
    inMemory: options.inMemory ?? true,
    policy: options.policy ?? testPolicy(),
    log: options.log ?? silentLog,
    // The event-loop monitor behind the process metrics is one more timer per test issuer.
    processMetrics: options.processMetrics ?? false,
  });
  const url = issuer.server.url;
  const call = async (method: string, path: string, body: unknown, key: string | undefined, headers: Record<string, string> = {}) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: {
        ...(body !== undefined && { 'content-type': 'application/json' }),
        ...(key && { authorization: `Bearer ${key}` }),
        ...headers,
      },
      ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as unknown) : undefined };
  };
  return {
    ...issuer,
    url,
    dataDir,
    post: (path, body, key, headers) => call('POST', path, body, key, headers),
    get: (path, key) => call('GET', path, undefined, key),
    stop: async () => {
      await issuer.close();
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
