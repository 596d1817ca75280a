import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

// CI reads the JSON report to print its one-line summary (see .ci/run).
const reporters = process.env.CI ? ['default', 'json'] : ['default'];

// `@lanyard/sdk` resolves to its TypeScript sources in this repo (packages/sdk/package.json,
// docs/decisions.md), for the tests and for the Node children they start (the CLI, `cdk/app.ts`).
const SOURCE_CONDITION = '@lanyard/source';
process.env.NODE_OPTIONS = [process.env.NODE_OPTIONS, `--conditions=${SOURCE_CONDITION}`].filter(Boolean).join(' ');

export default defineConfig({
  // Vitest's own default is Vite's server conditions without `module`; this adds ours first.
  ssr: { resolve: { conditions: [SOURCE_CONDITION, ...defaultServerConditions.filter((c) => c !== 'module')] } },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    reporters,
    outputFile: { json: 'reports/vitest.json' },
    // Timeouts bound a hang, never speed: on a loaded machine (load average 10 on two cores) a
    // test runs five to ten times slower than alone. The slowest tests take about 6 s alone
    // (3000 KMS signatures, 50 agents on fake time) and the slowest hook about 12 s (esbuild
    // bundling every handler for the CDK tests).
    testTimeout: 180_000,
    hookTimeout: 300_000,
    pool: 'forks',
    maxWorkers: 2,
    allowOnly: false,
    passWithNoTests: false,
  },
});
