import { afterEach, describe, expect, it } from 'vitest'
import { backend, setBackend } from '../../shared/crypto/abe/backend.ts'
import { nobleBackend } from '../../shared/crypto/abe/backend-noble.ts'
import { useBackend } from '../../shared/crypto/abe/select.ts'
import { cryptoBackendChoice } from '../../shared/cli/crypto-backend.ts'
import { isCareLedgerError } from '../../shared/errors.ts'

afterEach(() => setBackend(nobleBackend))

describe('choosing the pairing backend', () => {
  it('flag > CARELEDGER_CRYPTO_BACKEND > auto; anything else is INVALID_ARGUMENT naming where it came from', () => {
    expect(cryptoBackendChoice(undefined, {})).toBe('auto')
    expect(cryptoBackendChoice(undefined, { CARELEDGER_CRYPTO_BACKEND: '' })).toBe('auto')
    expect(cryptoBackendChoice(undefined, { CARELEDGER_CRYPTO_BACKEND: ' MCL ' })).toBe('mcl')
    expect(cryptoBackendChoice('noble', { CARELEDGER_CRYPTO_BACKEND: 'mcl' })).toBe('noble')
    for (const [flag, env, where] of [[undefined, 'openssl', 'CARELEDGER_CRYPTO_BACKEND'], ['x', 'mcl', '--crypto-backend']] as const) {
      try {
        cryptoBackendChoice(flag, { CARELEDGER_CRYPTO_BACKEND: env })
        expect.unreachable()
      } catch (e) {
        expect(isCareLedgerError(e, 'INVALID_ARGUMENT')).toBe(true)
        expect((e as Error).message).toContain(where)
      }
    }
  })

  it('auto takes mcl on linux-x64 and linux-arm64 once it passes its self-test, noble elsewhere (with the reason)', async () => {
    for (const platform of ['linux-x64', 'linux-arm64']) {
      const s = await useBackend('auto', platform)
      expect(s.backend.name).toBe('mcl')
      expect(backend()).toBe(s.backend)
    }
    const other = await useBackend('auto', 'darwin-arm64')
    expect(other.backend).toBe(nobleBackend)
    expect(other.reason).toMatch(/only on linux-x64, linux-arm64, not darwin-arm64/)
    expect((await useBackend('mcl', 'darwin-arm64')).backend.name).toBe('mcl') // named: used wherever it loads
    expect((await useBackend('noble', 'linux-x64')).backend).toBe(nobleBackend)
  })
})
