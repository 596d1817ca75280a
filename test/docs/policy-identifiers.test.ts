/**
 * The instance id rule docs/policy.md and docs/spawn.md state is the schema's: 1 to 64 of
 * letters (either case), digits, `_`, `.` and `-`, any of them first.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePolicyDocument } from '../../shared/policy/policy-file.ts';

const DOCS = join(import.meta.dirname, '../../docs');
const identity = (id: string) => () => parsePolicyDocument({ identities: [{ id, owner: 'team-support', purpose: 'one instance' }] });

describe('Rule: the instance id', () => {
  it('is stated in docs/policy.md and docs/spawn.md', async () => {
    const policy = await readFile(join(DOCS, 'policy.md'), 'utf8');
    const spawn = await readFile(join(DOCS, 'spawn.md'), 'utf8');

    expect(policy).toContain('| instance id | letters (any case), digits, `_`, `.`, `-`; 1–64 characters; any of them may come first.');
    expect(spawn).toContain('digits, `_`, `.` and `-`, 1 to 64 characters, any of them first');
  });

  it('is what the schema accepts: 64 characters of either case, digits, _ . -, any first', () => {
    expect(identity(`support-triage/prod#${'aZ9_.-'.repeat(10)}abcd`)).not.toThrow();
    expect(identity('support-triage/prod#-starts.with_a-dash')).not.toThrow();
    expect(identity('support-triage/prod#3kT9x_Qa1bC-dE2f')).not.toThrow();
  });

  it('is what the schema refuses: 65 characters, an empty id, or + = , @', () => {
    for (const instance of ['x'.repeat(65), '', 'a+b', 'a=b', 'a,b', 'worker@pod']) {
      expect(identity(`support-triage/prod#${instance}`)).toThrow(/^identities\[0\]\.id: /);
    }
  });
});
