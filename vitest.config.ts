import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

// CI reads the JSON report to print its one-line summary (see .ci/run).
const reporters = process.env.CI ? ['default', 'json'] : ['default'];

// `@lanyard/sdk` resolves to its TypeScript sources in this repo (packages/sdk/package.json,
// docs/decisions.md), for the tests and for the Node children they start (the CLI, `cdk/app.ts`).
const SOURCE_CONDITION = '@lanyard/source';
process.env.NODE_OPTIONS = [process.env.NODE_OPTIONS, `--conditions=${SOURCE_CONDITION}`].filter(Boolean).join(' ');

/**
 * Integration tests start something outside the test process: DynamoDB Local (a JVM, started
 * once by the global setup), CLI children, the packed SDK installed with npm, CDK synthesis
 * with esbuild bundling, or the full broker and revocation runs. Everything else is the unit
 * project: in-process, with in-memory engines (`npm run test:unit`).
 */
const INTEGRATION = [
  'test/integration/**/*.test.ts',
  'test/cdk/**/*.test.ts',
  'test/cli/dev.test.ts',
  'test/cli/drill.test.ts',
  'test/cli/lanyard.test.ts',
  'test/cli/serve.test.ts',
  'test/sdk/package.test.ts',
  'test/shared/adapters/**/*.contract.test.ts',
];

export default defineConfig({
  // Vitest's own default is Vite's server conditions without `module`; this adds ours first.
  ssr: { resolve: { conditions: [SOURCE_CONDITION, ...defaultServerConditions.filter((c) => c !== 'module')] } },
  test: {
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: INTEGRATION } },
      { extends: true, test: { name: 'integration', include: INTEGRATION, globalSetup: ['test/global-setup.ts'] } },
    ],
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
