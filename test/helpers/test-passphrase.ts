/**
 * Tests and benchmarks seal key files like production does, under a passphrase everyone may know
 * and at a low scrypt cost (4 MiB instead of 128 MiB: dozens of processes start in a run). Given to
 * every vitest worker (vitest.config.ts) and to every process the helpers spawn; a test that needs
 * "no passphrase" sets the variables to '' (an empty variable counts as unset).
 */
export const TEST_KEY_ENV: Readonly<Record<string, string>> = {
  CARELEDGER_PASSPHRASE: 'careledger test passphrase (not a secret)',
  CARELEDGER_SCRYPT_LOG2N: '12',
}

/** An environment with no passphrase at all (an empty variable counts as unset). */
export const NO_PASSPHRASE: Readonly<Record<string, string>> = { CARELEDGER_PASSPHRASE: '', CARELEDGER_PASSPHRASE_FILE: '', CARELEDGER_PASSPHRASE_FD: '' }

/** For scripts outside vitest (the benchmarks): fill in what the environment does not set. */
export function applyTestPassphrase(env: NodeJS.ProcessEnv = process.env): void {
  const configured = ['CARELEDGER_PASSPHRASE', 'CARELEDGER_PASSPHRASE_FILE', 'CARELEDGER_PASSPHRASE_FD'].some((v) => env[v] !== undefined)
  if (!configured) env.CARELEDGER_PASSPHRASE = TEST_KEY_ENV.CARELEDGER_PASSPHRASE
  env.CARELEDGER_SCRYPT_LOG2N ??= TEST_KEY_ENV.CARELEDGER_SCRYPT_LOG2N
}
