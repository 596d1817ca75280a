/**
 * Writes the JSON Schema of the policy file, `schema/policy.schema.json`, from the zod schema
 * that `lanyard apply` parses with (shared/policy/policy-schema.ts), so editors check what the issuer
 * checks. `npm run schema` rewrites it; test/docs/policy-schema.test.ts fails when the committed
 * file differs from what this produces, so the two cannot drift.
 *
 * The schema describes the file as written (zod's `io: 'input'`): defaulted fields are optional
 * and carry their default. Cross-field rules (a tool needs an audience unless it is behind the
 * broker, an sts grant lasts at most an hour, references between sections) are the issuer's to
 * check; an editor sees the shape, the patterns and the limits.
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { PolicyDocumentSchema } from '../shared/policy/policy-schema.ts';
import { describePattern } from '../shared/domain/schemas.ts';

export const POLICY_SCHEMA_FILE = fileURLToPath(new URL('../schema/policy.schema.json', import.meta.url));

/** The schema as committed: stable key order, two-space indent, a final newline. */
export function policyJsonSchema(): string {
  const generated = z.toJSONSchema(PolicyDocumentSchema, {
    io: 'input',
    target: 'draft-2020-12',
    // An editor shows the description when a value does not match: the sentence, not only the regex.
    override: ({ jsonSchema }) => {
      const description = typeof jsonSchema.pattern === 'string' ? describePattern(jsonSchema.pattern) : undefined;
      if (description !== undefined && jsonSchema.description === undefined) jsonSchema.description = description;
    },
  });
  const schema = {
    ...generated,
    $id: 'https://github.com/lanyard/lanyard/schema/policy.schema.json',
    title: 'Lanyard policy file',
    description: 'Tools, roles, identities, grants, principals and quotas, as `lanyard apply` takes them. Reference: docs/policy.md.',
  };
  return `${JSON.stringify(schema, null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(POLICY_SCHEMA_FILE, policyJsonSchema());
  console.log(`wrote ${POLICY_SCHEMA_FILE}`);
}
