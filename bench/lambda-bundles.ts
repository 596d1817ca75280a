/**
 * `lambda-bundles` section: what each Lambda costs before it does anything. Every handler in
 * `lambdas/` is bundled with esbuild with the options `LanyardFunction`
 * (cdk/lanyard-function.ts) gives `NodejsFunction`, imported from cdk/bundling-options.ts so
 * they cannot drift: ESM, node24, minified, source maps without sources content, `module,main`
 * main fields, the conditions `@lanyard/source,module`, the Lambda credential alias, the
 * createRequire banner, the AWS SDK bundled, nothing external. Printed: bundle size, and the
 * cold module-load time measured locally (a fresh `node --enable-source-maps` importing the
 * bundle, median of 5; this machine, not a Lambda arm64 container, so compare bundles with each
 * other, not with AWS). The AWS calls of an issuance are the `aws-calls` section's
 * (bench/aws-calls.ts, on the harness the call-count test asserts with).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { LANYARD_ESBUILD_OPTIONS } from '../cdk/bundling-options.ts';
import type { Row, Section } from './run.ts';

const PROJECT_ROOT = new URL('..', import.meta.url).pathname;
const LOAD_RUNS = 5;

export const lambdaBundlesSection: Section = {
  name: 'lambda-bundles',
  describe: 'each lambdas/*.ts bundled as cdk/lanyard-function.ts bundles it: size and cold module load (median of 5)',
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
          // The options LanyardFunction gives NodejsFunction (conditions and aliases included).
          ...LANYARD_ESBUILD_OPTIONS,
          mainFields: [...LANYARD_ESBUILD_OPTIONS.mainFields],
          conditions: [...LANYARD_ESBUILD_OPTIONS.conditions],
          absWorkingDir: PROJECT_ROOT,
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

    return rows;
  },
};

/** A fresh Node imports the bundle; the child times only the import, as Lambda's init does. */
function coldLoadMs(bundle: string): number {
  const script = `const t = performance.now(); await import(${JSON.stringify(pathToFileURL(bundle).href)}); console.log(performance.now() - t);`;
  const output = execFileSync(process.execPath, ['--enable-source-maps', '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  return Number(output.trim().split('\n').at(-1));
}
