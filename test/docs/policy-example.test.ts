/**
 * docs/examples/fleet.policy.yaml, the example docs/policy.md explains, parses and applies to a
 * real local issuer, and a dry run of it plans exactly what the apply then does: it cannot rot.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { openLocalServices, type LocalServices } from '../../shared/bootstrap/local/runtime.ts';
import { silentLog } from '../../shared/ports/log.ts';
import { applyPolicy, parsePolicyDocument, planOnly } from '../../shared/policy/policy-file.ts';
import { EXAMPLE_POLICY } from '../../cli/example-policy.ts';

const EXAMPLE = join(import.meta.dirname, '../../docs/examples/fleet.policy.yaml');
const NOW = '2026-12-01T10:00:00.000Z';

describe('File: docs/examples/fleet.policy.yaml', () => {
  let runtime: LocalServices;
  let text: string;

  beforeAll(async () => {
    runtime = await openLocalServices({ dataDir: await mkdtemp(join(tmpdir(), 'lanyard-example-')), issuer: 'http://issuer.test', inMemory: true, log: silentLog });
    text = await readFile(EXAMPLE, 'utf8');
  });
  afterAll(() => runtime.close());

  it('points editors at the committed JSON Schema', () => {
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=../../schema/policy.schema.json');
  });

  it('applies to a fresh issuer as planned, and a second apply changes nothing', async () => {
    // Prepare
    const doc = parsePolicyDocument(parseYaml(text));

    // Act
    const plan = await applyPolicy(planOnly(runtime.store), doc, NOW);
    const first = await applyPolicy(runtime.store, doc, NOW);
    const second = await applyPolicy(runtime.store, doc, NOW);

    // Assess
    expect(first.changes).toEqual(plan.changes);
    expect(first.changes).toContain('created tool llm');
    expect(first.changes).toContain('published role support-triage@2 (approved by bob@example.com)');
    expect(first.changes).toContain('bound role arn:aws:iam::123456789012:role/support-triage-task to principal triage-service');
    expect(first.changes).toContain('created quota support-llm');
    expect(second.changes).toEqual([]);
    expect((await runtime.store.listTools()).map((t) => t.id).sort()).toEqual(['crm', 'legacy-crm', 'llm', 'reports-bucket', 'tickets']);
    expect((await runtime.store.listGrants('reporting/prod'))[0]?.kinds).toEqual(['jwt', 'sts']);
  });
});

describe('File: docs/examples/aws-compute.policy.yaml', () => {
  it('applies to a fresh issuer as planned, binding each compute role and one instance per session', async () => {
    // Prepare
    const runtime = await openLocalServices({ dataDir: await mkdtemp(join(tmpdir(), 'lanyard-example-')), issuer: 'http://issuer.test', inMemory: true, log: silentLog });
    const doc = parsePolicyDocument(parseYaml(await readFile(join(import.meta.dirname, '../../docs/examples/aws-compute.policy.yaml'), 'utf8')));

    try {
      // Act
      const plan = await applyPolicy(planOnly(runtime.store), doc, NOW);
      const applied = await applyPolicy(runtime.store, doc, NOW);

      // Assess
      expect(applied.changes).toEqual(plan.changes);
      for (const [principal, role] of [['triage-ecs', 'support-triage-task'], ['triage-eks', 'support-triage-pod'], ['digest-lambda', 'daily-digest-fn'], ['batch-ec2', 'batch-summarizer-ec2']]) {
        expect(applied.changes).toContain(`bound role arn:aws:iam::123456789012:role/agents/${role} to principal ${principal}`);
      }
      expect(await runtime.store.getPrincipal('triage-fleet')).toMatchObject({ instancePerSession: true, identity: 'support-triage/prod' });
      expect(applied.generatedKeys).toEqual([]);
    } finally {
      await runtime.close();
    }
  });
});

describe('Files: docs/examples/*.policy.yaml on top of the example policy npm start applies', () => {
  /** A fresh issuer as the first `npm start` leaves it, then one example applied. */
  const onTopOfStart = async (name: string) => {
    const runtime = await openLocalServices({ dataDir: await mkdtemp(join(tmpdir(), 'lanyard-example-')), issuer: 'http://issuer.test', inMemory: true, log: silentLog });
    try {
      const started = await applyPolicy(runtime.store, parsePolicyDocument(EXAMPLE_POLICY), NOW);
      const doc = parsePolicyDocument(parseYaml(await readFile(join(import.meta.dirname, '../../docs/examples', name), 'utf8')));
      const applied = await applyPolicy(runtime.store, doc, NOW);
      return { started, applied, tickets: await runtime.store.getTool('tickets') };
    } finally {
      await runtime.close();
    }
  };

  it('fleet.policy.yaml applies cleanly: no conflict, no tool narrowed, no key npm start printed replaced', async () => {
    // Act
    const { started, applied, tickets } = await onTopOfStart('fleet.policy.yaml');

    // Assess
    expect(started.generatedKeys.map((k) => k.principal)).toContain('triage-worker-1');
    expect(applied.changes.filter((line) => line.startsWith('updated '))).toEqual(['updated identity support-triage/dev']);
    expect(applied.changes.filter((line) => line.startsWith('replaced ') || line.includes('triage-worker-1'))).toEqual([]);
    expect(applied.changes).toContain('published role support-triage@2 (approved by bob@example.com)');
    expect(tickets?.actions).toEqual(EXAMPLE_POLICY.tools[0]!.actions);
  });

  it('aws-compute.policy.yaml applies cleanly and leaves the tickets tool as it was', async () => {
    // Act
    const { applied, tickets } = await onTopOfStart('aws-compute.policy.yaml');

    // Assess
    expect(applied.changes.filter((line) => line.startsWith('updated ') || line.startsWith('replaced '))).toEqual([]);
    expect(tickets?.actions).toEqual(EXAMPLE_POLICY.tools[0]!.actions);
  });
});
