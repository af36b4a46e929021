import { defineConfig } from 'vitest/config'
import { TEST_KEY_ENV } from './test/helpers/test-passphrase.ts'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real processes and ports; keep files in separate workers.
    pool: 'forks',
    // Processes a killed test worker left behind are reaped when the run ends (test/helpers/reap-orphans.ts).
    globalSetup: ['test/helpers/reap-orphans.ts'],
    // Key files are sealed in tests too: a known passphrase at a low scrypt cost (test/helpers/test-passphrase.ts).
    env: { ...TEST_KEY_ENV },
  },
})
