/**
 * Secrets the people's commands read (issue 8 item 12, issue 9): the hospital's pseudonym key
 * (`--pseudonym-key` / CARELEDGER_PSEUDONYM_KEY_FILE of `authority keygen --patient` and `access
 * read`) may be sealed like the gateway's copy, and a raw one is still read with a warning; a wrong
 * passphrase is a typed error, never a silently different pseudonym.
 */
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { resolvePatient } from '../../shared/cli/patients.ts'
import { givenPassphrase } from '../../shared/cli/passphrase.ts'
import { Keyring } from '../../shared/cli/secret-files.ts'
import { patientPseudonym } from '../../shared/protocol/pseudonym.ts'
import { decodeUserKey } from '../../shared/crypto/abe/codec.ts'
import { epochOf } from '../../shared/protocol/epoch.ts'
import { careledger } from '../helpers/gateway-process.ts'
import { errorOf } from '../helpers/errors.ts'
import { tempDirs } from '../helpers/temp-dirs.ts'
import { NO_PASSPHRASE } from '../helpers/test-passphrase.ts'
import { readFileSync } from 'node:fs'

const PASS = 'the hospital passphrase, long enough'
const temp = tempDirs()
const keyringOf = (pass: string | null, warnings: string[] = []): Keyring =>
  new Keyring(pass === null ? null : givenPassphrase(pass), { params: { log2N: 12, r: 8, p: 1 }, warn: (event, message) => warnings.push(`${event}: ${message}`) })

describe('the pseudonym key of the people\'s commands, sealed or raw', () => {
  it('a sealed pseudonym key gives the gateway\'s pseudonym; a raw one too, with a warning; a wrong passphrase is refused', () => {
    const dir = temp('pseudonym')
    const key = new Uint8Array(randomBytes(32))
    const expected = patientPseudonym(key, 'MRN-0042')
    const sealed = join(dir, 'pseudonym.key')
    keyringOf(PASS).writeSync(sealed, key, { label: 'hospital pseudonym key' })
    expect(resolvePatient('MRN-0042', sealed, keyringOf(PASS))).toBe(expected)
    expect(errorOf(() => resolvePatient('MRN-0042', sealed, keyringOf('not it')))).toEqual({ code: 'DECRYPTION_FAILED', reason: 'WRONG_PASSPHRASE' })
    expect(errorOf(() => resolvePatient('MRN-0042', sealed, keyringOf(null)))).toEqual({ code: 'INVALID_ARGUMENT', reason: 'NO_PASSPHRASE' })
    // a pseudonym is used as it is: no key, no passphrase needed
    expect(resolvePatient(expected, sealed, keyringOf(null))).toBe(expected)

    const raw = join(dir, 'raw-pseudonym.key')
    writeFileSync(raw, key, { mode: 0o600 })
    const warnings: string[] = []
    expect(resolvePatient('MRN-0042', raw, keyringOf(PASS, warnings))).toBe(expected)
    expect(warnings).toEqual([`unsealed_key_file: ${raw} is not sealed under a passphrase (a key file from before sealed secrets): seal it with \`careledger keys encrypt ${raw}\``])
  })

  it('`authority keygen --patient <id>` reads a sealed --pseudonym-key under CARELEDGER_PASSPHRASE', async () => {
    const dir = temp('keygen-patient')
    const key = new Uint8Array(randomBytes(32))
    const pseudonymKey = join(dir, 'pseudonym.key')
    keyringOf(PASS).writeSync(pseudonymKey, key, { label: 'hospital pseudonym key' })
    const env = { ...NO_PASSPHRASE, CARELEDGER_PASSPHRASE: PASS }
    const setup = await careledger(['authority', 'setup', '-d', dir], env)
    expect(setup.code, setup.stderr).toBe(0)
    const kg = await careledger(['authority', 'keygen', '-m', join(dir, 'master-secret.key'), '--patient', 'MRN-0042', '--pseudonym-key', pseudonymKey, '--valid-until', epochOf(Date.now() + 300 * 86_400_000), '-o', join(dir, 'patient.key')], env)
    expect(kg.code, kg.stderr).toBe(0)
    expect(decodeUserKey(new Uint8Array(readFileSync(join(dir, 'patient.key')))).attributes).toContain(`patient:${patientPseudonym(key, 'MRN-0042')}`)
  })
})
