import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // One Temporal dev server and one MinIO for the whole run; each test file
    // runs in its own process (chDB binds one data directory per process).
    globalSetup: ['./test/support/global-setup.ts'],
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 900_000,
    include: ['test/**/*.test.ts'],
  },
});
