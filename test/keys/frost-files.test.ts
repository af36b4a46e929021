/**
 * Issue 8 item 12 for the regulators' FROST files (shared/cli/frost-files.ts): signing shares,
 * round-one nonces and DKG state are sealed under the regulator's passphrase like every other
 * secret (docs/crypto.md §Sealed secrets); a raw file from before sealed secrets is still read with
 * a warning, and `careledger keys encrypt` migrates it; a wrong passphrase or an altered file is a
 * typed error, and a nonce file that cannot be opened is left in place. Real files, real CLI.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { frostDeal } from '../../shared/crypto/frost.ts'
import { thresholdAdaptCommit } from '../../shared/crypto/chameleon-threshold.ts'
import { dkgRound1 } from '../../shared/crypto/frost-dkg.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { encodeFrostShareFile } from '../../shared/crypto/frost-codec.ts'
import { isSealedSecret, openWithPassphrase, readSealedHeader } from '../../shared/crypto/sealed-secret.ts'
import { readDkgStateFile, readShareFile, takeNonceFile, writeDkgStateFile, writeNonceFile, writeShareFile } from '../../shared/cli/frost-files.ts'
import { givenPassphrase } from '../../shared/cli/passphrase.ts'
import { Keyring } from '../../shared/cli/secret-files.ts'
import { careledger } from '../helpers/gateway-process.ts'
import { errorOf } from '../helpers/errors.ts'
import { tempDirs } from '../helpers/temp-dirs.ts'
import { NO_PASSPHRASE } from '../helpers/test-passphrase.ts'

const PASS = 'the regulator passphrase, long enough'
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const temp = tempDirs()
const rng = deterministicRng('frost-files sealed')
const deal = frostDeal(2, 3, rng)
const keyringOf = (pass: string, warnings: string[] = []): Keyring =>
  new Keyring(givenPassphrase(pass), { params: { log2N: 12, r: 8, p: 1 }, warn: (event, message) => warnings.push(`${event}: ${message}`) })

describe('FROST files are sealed under the regulator passphrase', () => {
  it('share, nonce and DKG state files are sealed (kind 11, 0600, the secret nowhere in the file) and read back', () => {
    const dir = temp('frost-sealed')
    const keyring = keyringOf(PASS)
    const sharePath = join(dir, 'regulator-1.share')
    writeShareFile(sharePath, deal.group, deal.shares[0]!, { keyring })
    const bytes = new Uint8Array(readFileSync(sharePath))
    expect(isSealedSecret(bytes)).toBe(true)
    expect(statSync(sharePath).mode & 0o777).toBe(0o600)
    expect(Buffer.from(bytes).includes(Buffer.from(deal.shares[0]!.signingShare))).toBe(false)
    expect(readSealedHeader(bytes).label).toBe(`FROST signing share 1 of 3 (threshold 2) for group key ${hex(deal.group.groupKey)}`)
    // the sealed bytes are the share file's encoding, under the passphrase alone (an independent reader: test/vectors/open-sealed-secret.py)
    expect(hex(openWithPassphrase(bytes, PASS))).toBe(hex(encodeFrostShareFile(deal.group, deal.shares[0]!)))
    expect(hex(readShareFile(sharePath, { keyring: keyringOf(PASS) }).share.signingShare)).toBe(hex(deal.shares[0]!.signingShare))

    const noncePath = join(dir, 'regulator-1.nonces')
    const { nonces } = thresholdAdaptCommit(deal.shares[0]!, rng)
    const hiding = hex(nonces.hiding)
    writeNonceFile(noncePath, { nonces, label: 'request 7', groupKey: deal.group.groupKey }, { keyring })
    expect(isSealedSecret(new Uint8Array(readFileSync(noncePath)))).toBe(true)
    expect(readFileSync(noncePath).includes(Buffer.from(hiding, 'hex'))).toBe(false)
    expect(hex(takeNonceFile(noncePath, 'request 7', { keyring: keyringOf(PASS) }).nonces.hiding)).toBe(hiding)
    expect(existsSync(noncePath)).toBe(false)

    const statePath = join(dir, 'dkg-1.state')
    const { state } = dkgRound1({ id: new Uint8Array(32).fill(7), threshold: 2, participants: 3 }, 1, rng)
    writeDkgStateFile(statePath, state, { keyring })
    expect(isSealedSecret(new Uint8Array(readFileSync(statePath)))).toBe(true)
    expect(readFileSync(statePath).includes(Buffer.from(state.coefficients[0]!))).toBe(false)
    expect(readDkgStateFile(statePath, { keyring: keyringOf(PASS) }).coefficients.map(hex)).toEqual(state.coefficients.map(hex))
  })

  it('without a keyring they use the environment (CARELEDGER_PASSPHRASE*), as the regulator CLI runs', () => {
    const dir = temp('frost-env')
    const path = join(dir, 'regulator-2.share')
    writeShareFile(path, deal.group, deal.shares[1]!) // vitest gives every worker the tests' passphrase (vitest.config.ts)
    expect(isSealedSecret(new Uint8Array(readFileSync(path)))).toBe(true)
    expect(readShareFile(path).share.index).toBe(2)
  })

  it('a wrong passphrase or an altered file is a typed error; a nonce file that cannot be opened is left in place', () => {
    const dir = temp('frost-wrong')
    const sharePath = join(dir, 'regulator-3.share')
    writeShareFile(sharePath, deal.group, deal.shares[2]!, { keyring: keyringOf(PASS) })
    expect(errorOf(() => readShareFile(sharePath, { keyring: keyringOf('not the passphrase') }))).toEqual({ code: 'DECRYPTION_FAILED', reason: 'WRONG_PASSPHRASE' })
    const sealed = readFileSync(sharePath)
    const flipped = Uint8Array.from(sealed)
    flipped[flipped.length - 20]! ^= 1
    writeFileSync(sharePath, flipped)
    expect(errorOf(() => readShareFile(sharePath, { keyring: keyringOf(PASS) }))).toEqual({ code: 'DECRYPTION_FAILED', reason: 'AEAD_TAG' })

    const noncePath = join(dir, 'regulator-3.nonces')
    writeNonceFile(noncePath, { nonces: thresholdAdaptCommit(deal.shares[2]!, rng).nonces, label: 'request 9', groupKey: deal.group.groupKey }, { keyring: keyringOf(PASS) })
    expect(errorOf(() => takeNonceFile(noncePath, 'request 9', { keyring: keyringOf('not the passphrase') }))).toEqual({ code: 'DECRYPTION_FAILED', reason: 'WRONG_PASSPHRASE' })
    expect(existsSync(noncePath)).toBe(true)
    expect(takeNonceFile(noncePath, 'request 9', { keyring: keyringOf(PASS) }).label).toBe('request 9')
  })

  it('with no passphrase at all nothing is written, and the error says how to give one', () => {
    const dir = temp('frost-none')
    const path = join(dir, 'regulator-1.share')
    const keyring = new Keyring(null)
    expect(errorOf(() => writeShareFile(path, deal.group, deal.shares[0]!, { keyring }))).toEqual({ code: 'INVALID_ARGUMENT', reason: 'NO_PASSPHRASE' })
    expect(existsSync(path)).toBe(false)
  })
})

describe('raw FROST files from before sealed secrets: read with a warning, migrated by `careledger keys encrypt`', () => {
  it('a raw share file is read (warning naming the command), `keys show` describes it, `keys encrypt` seals it in place', async () => {
    const dir = temp('frost-legacy')
    const path = join(dir, 'regulator-1.share')
    const raw = encodeFrostShareFile(deal.group, deal.shares[0]!)
    writeFileSync(path, raw, { mode: 0o644 })
    const warnings: string[] = []
    expect(readShareFile(path, { keyring: keyringOf(PASS, warnings) }).share.index).toBe(1)
    expect(warnings).toEqual([`unsealed_key_file: ${path} is not sealed under a passphrase (a key file from before sealed secrets): seal it with \`careledger keys encrypt ${path}\``])

    const show = await careledger(['keys', 'show', path], NO_PASSPHRASE)
    expect(show.code, show.stderr).toBe(0)
    expect(show.stdout).toBe(`${path}: FROST signing SHARE 1 of 3 (threshold 2) for group key ${hex(deal.group.groupKey)}\n`)

    const enc = await careledger(['keys', 'encrypt', path], { ...NO_PASSPHRASE, CARELEDGER_PASSPHRASE: PASS })
    expect(enc.code, enc.stderr).toBe(0)
    expect(enc.stdout).toContain(`${path}: sealed ("FROST signing SHARE 1 of 3 (threshold 2) for group key ${hex(deal.group.groupKey)}"), mode 0600`)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(hex(openWithPassphrase(new Uint8Array(readFileSync(path)), PASS))).toBe(hex(raw))
    const after: string[] = []
    expect(hex(readShareFile(path, { keyring: keyringOf(PASS, after) }).share.signingShare)).toBe(hex(deal.shares[0]!.signingShare))
    expect(after).toEqual([])

    const shown = await careledger(['keys', 'show', path], NO_PASSPHRASE)
    expect(shown.stdout).toMatch(/sealed secret "FROST signing SHARE 1 of 3 .*": \d+ bytes under a passphrase \(scrypt N=2\^\d+/)
  })
})
