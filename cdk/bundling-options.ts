/**
 * How every Lanyard Lambda is bundled, in one place without aws-cdk-lib: `LanyardFunction`
 * (cdk/lanyard-function.ts) turns these into `NodejsFunction` bundling options and esbuild CLI
 * arguments, and the bench (bench/lambda-bundles.ts) passes them to esbuild's API, so the sizes
 * it prints are the sizes CDK deploys.
 */
import { fileURLToPath } from 'node:url';

/**
 * ESM output has no `require`; some CommonJS dependencies (Powertools, middy's deps) call it.
 * `createRequire` gives the bundle a working one. The alias avoids clashing with a bundled
 * `createRequire` import.
 */
export const ESM_REQUIRE_BANNER = "import { createRequire as __lanyardCreateRequire } from 'node:module'; const require = __lanyardCreateRequire(import.meta.url);";

/**
 * `@lanyard/sdk` is bundled from its TypeScript sources (packages/sdk/package.json), so synth
 * needs no SDK build first. `module` too: esbuild drops its default `module` condition once
 * conditions are given, and without it the AWS SDK's and Smithy's `exports` resolve to their
 * CommonJS builds, which esbuild cannot tree-shake (the issue function's bundle was 140 KB
 * larger; docs/deploy.md, "Bundles").
 */
export const LANYARD_CONDITIONS: readonly string[] = ['@lanyard/source', 'module'];

/**
 * Module replacements for Lambda only. The SDK's default credential chain becomes the
 * environment provider, the only link of the chain that answers inside Lambda
 * (shared/bootstrap/aws/lambda-credentials.ts says why and what fails closed). Absolute paths:
 * esbuild resolves an alias's replacement from its working directory, which CDK sets to the
 * bundling output directory.
 */
export const LANYARD_ALIASES: Readonly<Record<string, string>> = {
  '@aws-sdk/credential-provider-node': fileURLToPath(new URL('../shared/bootstrap/aws/lambda-credentials.ts', import.meta.url)),
};

/** The esbuild options both builds share (esbuild's API names; `LanyardFunction` maps them to CDK's). */
export const LANYARD_ESBUILD_OPTIONS = {
  format: 'esm',
  platform: 'node',
  target: 'node24',
  mainFields: ['module', 'main'],
  conditions: LANYARD_CONDITIONS,
  alias: LANYARD_ALIASES,
  banner: { js: ESM_REQUIRE_BANNER },
  minify: true,
  sourcemap: true,
  sourcesContent: false,
  // The SDK v3 clients are bundled (not taken from the runtime): the version we tested is the
  // version that runs, and tree-shaken clients load faster than the runtime's full SDK.
  external: [] as string[],
} as const;

/** The same conditions and aliases as esbuild CLI arguments, for `NodejsFunction`'s `esbuildArgs`. */
export function lanyardEsbuildArgs(): Record<string, string> {
  const args: Record<string, string> = { '--conditions': LANYARD_CONDITIONS.join(',') };
  // CDK renders `--alias` as `--alias:<value>`, once per key: one alias, one key.
  for (const [from, to] of Object.entries(LANYARD_ALIASES)) args['--alias'] = `${from}=${to}`;
  return args;
}
