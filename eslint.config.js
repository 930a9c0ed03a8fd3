// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.property.name=/^(readFileSync|writeFileSync|statSync|readdirSync|existsSync|lstatSync)$/]",
          message: 'No *Sync file-system calls in src/ (STYLE.md): they block the host application.',
        },
      ],
    },
  },
  {
    files: ['test/**', 'bench/**', '*.config.*'],
    rules: { 'no-restricted-syntax': 'off' },
  },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  // Benchmarks are plain ESM JavaScript run by Node; Node's globals are not declared to ESLint.
  { files: ['**/*.mjs'], rules: { 'no-undef': 'off' } },
);
