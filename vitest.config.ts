import { defineConfig } from 'vitest/config'
import { TEST_KEY_ENV } from './test/helpers/test-passphrase.ts'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real processes and ports; keep files in separate workers.
    pool: 'forks',
    // Key files are sealed in tests too: a known passphrase at a low scrypt cost (test/helpers/test-passphrase.ts).
    env: { ...TEST_KEY_ENV },
  },
})
