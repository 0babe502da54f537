import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The soak runs for minutes: only `make soak` (VGW_SOAK=1) includes it.
    include: process.env.VGW_SOAK ? ['test/soak/**/*.test.ts'] : ['test/**/*.test.ts'],
    exclude: process.env.VGW_SOAK ? [] : ['test/soak/**', 'node_modules/**'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // The default output, then every skipped test with its reason (CI=true fails an unexplained skip)
    reporters: ['default', './test/harness/skip-report.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
