// Flat config: type-aware rules so floating promises and unsafe `any` are caught, zero warnings allowed.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** The core's folders under shared/: the domain, the ports, the use cases by capability and the HTTP layer. */
const CORE = ['domain', 'lib', 'ports', 'issuance', 'policy', 'revocation', 'spawn', 'audit', 'admin', 'introspection', 'broker', 'http'];
const boundary = (group, message) => ({ group, message });

export default tseslint.config(
  { ignores: ['node_modules/', 'cdk.out/', '.lanyard/', 'reports/', 'dist/', 'packages/*/dist/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/ban-ts-comment': ['error', { 'ts-expect-error': 'allow-with-description' }],
      'no-console': 'off',
    },
  },
  {
    // Tests read HTTP answers as untyped JSON and assert their shape with expect(); typing every
    // body would only restate the assertions. Production code keeps the unsafe-* rules.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  // Architecture boundaries (docs/architecture.md): the core never reaches into adapters or the
  // composition roots; adapters never into the roots; the local adapters never into the AWS
  // ones; the SDK never into the issuer. A crossing fails the lint.
  {
    files: [`shared/{${CORE.join(',')}}/**/*.ts`],
    rules: { 'no-restricted-imports': ['error', { patterns: [boundary(['**/adapters/**', '**/bootstrap/**', '**/lambdas/**', '**/cli/**', '**/cdk/**'], 'the core (shared/<capability>) depends on ports, never on adapters, composition roots or entry points')] }] },
  },
  {
    files: ['shared/adapters/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [boundary(['**/bootstrap/**', '**/lambdas/**', '**/cli/**', '**/cdk/**'], 'an adapter implements a port; composition roots and entry points wire adapters, not the other way round')] }] },
  },
  {
    files: ['shared/adapters/local/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [boundary(['**/bootstrap/**', '**/lambdas/**', '**/cli/**', '**/cdk/**', '**/adapters/aws/**', '../aws/**'], 'the local adapters run without AWS: they never import shared/adapters/aws')] }] },
  },
  {
    files: ['packages/sdk/src/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [boundary(['**/shared/**', '**/lambdas/**', '**/cli/**', '**/cdk/**', '../../**'], 'the SDK is its own package: it imports nothing of the issuer')] }] },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
);
