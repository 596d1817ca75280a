/**
 * The project explains itself: no file cites a design document its users do not have, and
 * every relative link in its Markdown reaches a file inside the repository.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const SKIP = new Set(['node_modules', '.git', 'reports', '.lanyard', 'cdk.out', 'dist', 'coverage']);
const TEXT = /\.(ts|js|mjs|cjs|json|md|yaml|yml)$/;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    if (SKIP.has(name)) return [];
    const path = join(dir, name);
    const stat = statSync(path);
    if (stat.isDirectory()) return files(path);
    return TEXT.test(name) && name !== 'package-lock.json' ? [path] : [];
  });
}

// Spelled in pieces, so this file does not match itself.
const OUTSIDE_DOCUMENTS = [new RegExp(['DESIGN', '(\\.md| §)'].join('')), new RegExp(['STYLE', ' habit'].join('')), new RegExp(['\\.\\./shared', '/DESIGN'].join(''))];

describe('The repository', () => {
  it('cites no design document from outside it', () => {
    const offending = files(ROOT).flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .flatMap((line, i) => (OUTSIDE_DOCUMENTS.some((pattern) => pattern.test(line)) ? [`${relative(ROOT, file)}:${i + 1}`] : [])),
    );

    expect(offending).toEqual([]);
  });

  it('links, in its Markdown, only to files that exist inside it', () => {
    const broken: string[] = [];
    for (const file of files(ROOT).filter((f) => f.endsWith('.md'))) {
      for (const [, target] of readFileSync(file, 'utf8').matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/i.test(target!) || target!.startsWith('#')) continue;
        const path = resolve(dirname(file), target!.split('#')[0]!);
        if (!path.startsWith(`${ROOT}/`) || !existsSync(path)) broken.push(`${relative(ROOT, file)}: ${target}`);
      }
    }

    expect(broken).toEqual([]);
  });
});
