// The lint rules (`npm run lint`, first step; the second is Prettier's format check). Why
// typescript-eslint with type information rather than a faster linter: docs/design.md, "Lint and
// format". Every rule turned off or changed below says why.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // C sources, compiled output and test data are no TypeScript of ours.
  { ignores: ['dist/**', 'node_modules/**', 'bench/cmilter/**', 'test/fixtures/**', 'test/golden/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // A daemon must not drop a rejected promise, so no-floating-promises and no-misused-promises
      // stay errors. node:test's test()/describe() return promises that the runner itself awaits
      // (top-level calls need no await), so those calls are known safe.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite', 'before', 'after'] },
          ],
        },
      ],
      // Forwarding another promise's rejection reason as it came (typed `unknown`) is allowed; a
      // new reason must still be an Error.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // `return promise` inside try/catch skips the catch (and a finally runs too early): await it there.
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      // An interface-mandated parameter that is not used is written `_name` (tsconfig's
      // noUnusedParameters has the same convention).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
      // Rule handlers and other interface implementations are `async` without an `await` on
      // purpose: the signature promises a Promise, and a throw becomes a rejection, not a
      // synchronous exception in the caller.
      '@typescript-eslint/require-await': 'off',
      // The milter protocol, SMTP and the log/terminal sanitisers match NUL and other control
      // characters on purpose (src/safe-text.ts, the address and MIME parsers, output-hygiene tests).
      'no-control-regex': 'off',
      // Every finding was String() of a value typed `unknown` (parsed JSON from postqueue -j, log
      // fields): turning it into text is the intent. Objects in template literals are still caught
      // by restrict-template-expressions.
      '@typescript-eslint/no-base-to-string': 'off',
    },
  },
);
