/**
 * A refused policy file speaks to a person: every message names the field, says what is wrong
 * and what is expected (with an example where one helps), and never repeats zod's own wording
 * or a raw regex. The same words reach the wire schemas (a credential request, an admin command).
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openLocalServices } from '../../../shared/bootstrap/local/runtime.ts';
import { silentLog } from '../../../shared/ports/log.ts';
import { applyPolicy, parsePolicyDocument } from '../../../shared/policy/policy-file.ts';
import { parseAdminCommand } from '../../../shared/admin/admin.ts';
import { CredentialRequestSchema, parseWith } from '../../../shared/domain/schemas.ts';
import type { LanyardError } from '../../../shared/domain/errors.ts';

const refusal = (run: () => unknown): LanyardError => {
  try {
    run();
  } catch (error) {
    return error as LanyardError;
  }
  throw new Error('expected a refusal');
};
const messageOf = (doc: unknown) => refusal(() => parsePolicyDocument(doc)).message;

/** Zod's default messages ("Invalid input: expected string, received undefined", "Too big: …") and raw regexes. */
const ZOD_WORDING = /Invalid input|Invalid option|Invalid URL|Too small|Too big|expected \w+, received|expected one of "|>=|<=|\/\^|\$\//;

const grant = { identity: 'support-triage/prod', role: 'support-triage@1', tenants: ['acme'], quotaBucket: 'support-llm' };
const upstream = { baseUrl: 'https://api.example.com', key: { header: 'x-api-key' }, routes: { read: [{ method: 'GET', path: '/v1/items' }] } };

/** One mistake a new user makes per row: the document, and the field the refusal must name. */
const MISTAKES: [string, unknown, string][] = [
  ['a grant without its quota bucket', { grants: [{ ...grant, quotaBucket: undefined }] }, 'grants[0].quotaBucket'],
  ['a grant without its role', { grants: [{ ...grant, role: undefined }] }, 'grants[0].role'],
  ['a grant with no tenants', { grants: [{ ...grant, tenants: [] }] }, 'grants[0].tenants'],
  ['tenants written as one string', { grants: [{ ...grant, tenants: 'acme' }] }, 'grants[0].tenants'],
  ['a TTL over the cap', { grants: [{ ...grant, maxTtlSeconds: 99_999 }] }, 'grants[0].maxTtlSeconds'],
  ['a TTL with a fraction', { grants: [{ ...grant, maxTtlSeconds: 90.5 }] }, 'grants[0].maxTtlSeconds'],
  ['a TTL in quotes', { grants: [{ ...grant, maxTtlSeconds: '900' }] }, 'grants[0].maxTtlSeconds'],
  ['an unknown credential kind', { grants: [{ ...grant, kinds: ['oauth'] }] }, 'grants[0].kinds[0]'],
  ['an unknown access level', { tools: [{ id: 't', audience: 'https://t.example', actions: { read: 'readonly' } }] }, 'tools[0].actions.read'],
  ['an audience that is not a URL', { tools: [{ id: 't', audience: 'tickets', actions: { read: 'read' } }] }, 'tools[0].audience'],
  ['a tool without actions', { tools: [{ id: 't', audience: 'https://t.example' }] }, 'tools[0].actions'],
  ['enabled as text', { tools: [{ id: 't', audience: 'https://t.example', actions: { read: 'read' }, enabled: 'yes' }] }, 'tools[0].enabled'],
  ['tools as a map', { tools: { id: 't' } }, 'tools'],
  ['an empty tool entry', { tools: [null] }, 'tools[0]'],
  ['a tool without an id', { tools: [{ audience: 'https://t.example', actions: { read: 'read' } }] }, 'tools[0].id'],
  ['role version 0', { roles: [{ id: 'r', version: 0, actions: ['t:read'], approvedBy: 'a' }] }, 'roles[0].version'],
  ['an empty approver', { roles: [{ id: 'r', version: 1, actions: ['t:read'], approvedBy: '' }] }, 'roles[0].approvedBy'],
  ['a role with no actions', { roles: [{ id: 'r', version: 1, actions: [], approvedBy: 'a' }] }, 'roles[0].actions'],
  ['an identity without an owner', { identities: [{ id: 'a/prod', purpose: 'p' }] }, 'identities[0].owner'],
  ['an unknown identity status', { identities: [{ id: 'a/prod', owner: 'o', purpose: 'p', status: 'disabled' }] }, 'identities[0].status'],
  ['a principal without a kind', { principals: [{ id: 'p' }] }, 'principals[0].kind'],
  ['instancePerSession: false', { principals: [{ id: 'p', kind: 'agent', identity: 'a/prod', instancePerSession: false }] }, 'principals[0].instancePerSession'],
  ['spawns as one string', { principals: [{ id: 'p', kind: 'orchestrator', spawns: 'a/prod' }] }, 'principals[0].spawns'],
  ['a quota window under a minute', { quotas: [{ bucket: 'q', windowSeconds: 10, requests: 1 }] }, 'quotas[0].windowSeconds'],
  ['a quota of zero requests', { quotas: [{ bucket: 'q', windowSeconds: 60, requests: 0 }] }, 'quotas[0].requests'],
  ['an unknown HTTP method', { tools: [{ id: 't', actions: { read: 'read' }, upstream: { ...upstream, routes: { read: [{ method: 'FETCH', path: '/' }] } } }] }, 'tools[0].upstream.routes.read[0].method'],
  ['an upstream without a key', { tools: [{ id: 't', actions: { read: 'read' }, upstream: { ...upstream, key: undefined } }] }, 'tools[0].upstream.key'],
  ['a timeout in seconds', { tools: [{ id: 't', actions: { read: 'read' }, upstream: { ...upstream, timeoutMs: 30 } }] }, 'tools[0].upstream.timeoutMs'],
  ['a policy file that is a list', ['tools'], 'body'],
];

describe('Validation messages of the policy file', () => {
  it.each(MISTAKES)('name the field and say what is expected, in words, for %s', (_case, doc, field) => {
    const error = refusal(() => parsePolicyDocument(doc));

    expect(error.code).toBe('invalid_request');
    expect(error.context.field).toBe(field);
    expect(error.message.startsWith(`${field}: `)).toBe(true);
    expect(error.message).not.toMatch(ZOD_WORDING);
  });

  it('say a required field is missing, what it holds and an example', () => {
    expect(messageOf({ grants: [{ ...grant, quotaBucket: undefined }] })).toBe('grants[0].quotaBucket: required (the quota bucket the grant draws on, e.g. support-llm)');
    expect(messageOf({ principals: [{ id: 'p' }] })).toBe('principals[0].kind: required (one of agent, orchestrator, verifier or admin)');
  });

  it('say what was found instead, by its type and never its value', () => {
    expect(messageOf({ grants: [{ ...grant, maxTtlSeconds: '900' }] })).toBe('grants[0].maxTtlSeconds: this is text; expected seconds, 30 to 43200, e.g. 900');
    expect(messageOf({ grants: [{ ...grant, tenants: 'acme' }] })).toBe('grants[0].tenants: this is text; expected a list of tenants, e.g. [acme, globex], or ["*"] for every tenant');
    expect(messageOf({ principals: [{ id: 'p', kind: 'admin', apiKey: 1234567890123 }] })).toBe('principals[0].apiKey: this is a whole number; expected an API key, lk_ followed by 16 to 128 URL-safe characters');
  });

  it('state a bound in words, with the range and an example', () => {
    expect(messageOf({ grants: [{ ...grant, maxTtlSeconds: 99_999 }] })).toBe('grants[0].maxTtlSeconds: at most 43200 (seconds, 30 to 43200, e.g. 900)');
    expect(messageOf({ grants: [{ ...grant, tenants: [] }] })).toBe('grants[0].tenants: needs at least one item (a list of tenants, e.g. [acme, globex], or ["*"] for every tenant)');
    expect(messageOf({ roles: [{ id: 'r', version: 1, actions: ['t:read'], approvedBy: '' }] })).toBe('roles[0].approvedBy: may not be empty (who approved this version, e.g. alice@example.com)');
  });

  it('list the accepted values of a choice as a sentence', () => {
    expect(messageOf({ tools: [{ id: 't', audience: 'https://t.example', actions: { read: 'readonly' } }] })).toBe('tools[0].actions.read: one of read, write or admin');
    expect(messageOf({ principals: [{ id: 'p', kind: 'agent', identity: 'a/prod', instancePerSession: false }] })).toBe('principals[0].instancePerSession: may only be true, or left out');
  });
});

describe('Unknown fields of the policy file', () => {
  it('name the field, the one most likely meant and the fields allowed there (from the schema)', () => {
    expect(messageOf({ tool: [] })).toBe('unknown field: tool; did you mean tools? (allowed here: tools, roles, identities, grants, principals, quotas)');
    expect(messageOf({ tools: [{ id: 't', audience: 'https://t.example', actions: { read: 'read' }, enable: false }] })).toBe(
      'unknown field: tools[0].enable; did you mean enabled? (allowed here: id, audience, actions, enabled, aws, upstream)',
    );
    expect(messageOf({ grants: [{ ...grant, maxTTLSeconds: 900 }] })).toMatch(/^unknown field: grants\[0\]\.maxTTLSeconds; did you mean maxTtlSeconds\? \(allowed here: id, identity, role, /);
  });

  it('report a misspelt required field as the unknown field, not as the missing one', () => {
    const { quotaBucket: _q, ...withoutBucket } = grant;
    const error = refusal(() => parsePolicyDocument({ grants: [{ ...withoutBucket, quota_bucket: 'support-llm' }] }));

    expect(error.context.field).toBe('grants[0].quota_bucket');
    expect(error.message).toMatch(/^unknown field: grants\[0\]\.quota_bucket; did you mean quotaBucket\?/);
  });

  it('suggest nothing for a name unlike any field, and still list the fields', () => {
    expect(messageOf({ principals: [{ id: 'p', kind: 'admin', colour: 'blue' }] })).toBe(
      'unknown field: principals[0].colour (allowed here: id, kind, identity, spawns, apiKey, arn, iamRole, instancePerSession)',
    );
  });
});

describe('Validation messages of the wire schemas', () => {
  it('speak the same words without a policy hint: a credential request and an admin command', () => {
    const missing = parseWith(CredentialRequestSchema, { tool: 'tickets' });
    const tooLong = parseWith(CredentialRequestSchema, { tool: 'tickets', actions: ['read'], ttlSeconds: 86_400 });
    const command = refusal(() => parseAdminCommand({ command: 'policy.apply', policy: ['tools'] }));

    expect(missing.ok ? '' : missing.failure.error.message).toBe('actions: required (a list)');
    expect(tooLong.ok ? '' : tooLong.failure.error.message).toBe('ttlSeconds: at most 43200');
    expect(command.message).not.toMatch(ZOD_WORDING);
    expect(command.context.field).toBe('policy');
    // An empty policy file reaches the issuer as null.
    expect(refusal(() => parseAdminCommand({ command: 'policy.apply', policy: null })).message).toBe(
      'policy: this is empty (null); expected the policy file: a map of tools, roles, identities, grants, principals and quotas (docs/policy.md)',
    );
  });
});

describe('Reference messages of the policy file', () => {
  it('say what to do about an identity or role version neither the file nor the issuer has', async () => {
    // Prepare
    const runtime = await openLocalServices({ dataDir: await mkdtemp(join(tmpdir(), 'lanyard-messages-')), issuer: 'http://issuer.test', inMemory: true, log: silentLog });
    const identities = [{ id: 'support-triage/prod', owner: 'team-support', purpose: 'triage' }];

    try {
      // Act
      const identity = (await applyPolicy(runtime.store, parsePolicyDocument({ grants: [grant] }), '2026-12-02T10:00:00.000Z').catch((e: unknown) => e)) as LanyardError;
      const role = (await applyPolicy(runtime.store, parsePolicyDocument({ identities, grants: [grant] }), '2026-12-02T10:00:00.000Z').catch((e: unknown) => e)) as LanyardError;

      // Assess
      expect(identity.message).toBe('unknown identity support-triage/prod: declare it under identities, or name one the issuer has (lanyard identity list)');
      expect(role.message).toBe('unknown role version support-triage@1: publish it under roles (id support-triage, version 1), or name one the issuer has (lanyard role list)');
      expect(role.context.field).toBe('grants[0].role');
    } finally {
      await runtime.close();
    }
  });
});
