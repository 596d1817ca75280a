/**
 * The JSON Schema editors use (schema/policy.schema.json) is generated from the zod schema the
 * issuer parses with; this fails when the committed file is not what `npm run schema` writes.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { POLICY_SCHEMA_FILE, policyJsonSchema } from '../../scripts/policy-schema.ts';

describe('File: schema/policy.schema.json', () => {
  it('is what npm run schema generates from the policy file schema (run it after changing shared/policy/policy-schema.ts)', async () => {
    expect(await readFile(POLICY_SCHEMA_FILE, 'utf8')).toBe(policyJsonSchema());
  });

  it('refuses unknown fields and describes the domain patterns in words', () => {
    const schema = JSON.parse(policyJsonSchema()) as {
      additionalProperties: boolean;
      properties: Record<string, { items: { properties: Record<string, { description?: string; pattern?: string }> } }>;
    };
    const identityId = schema.properties['identities']!.items.properties['id']!;

    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toEqual(['tools', 'roles', 'identities', 'grants', 'principals', 'quotas']);
    expect(identityId.pattern).toBeDefined();
    expect(identityId.description).toMatch(/^an identity id is class\/env/);
  });
});
