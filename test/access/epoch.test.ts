/**
 * Key expiry by epochs (shared/protocol/epoch.ts, docs/security.md §Key expiry): the month
 * arithmetic, the sealed policy's epoch clause, and — with real FABEO keys and envelopes — that a
 * key opens exactly the batches sealed in its months, plus those sealed before epochs existed.
 * Also `careledger authority keygen` / `show` as processes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { keyGen } from '../../shared/crypto/abe/fabeo.ts'
import { decodeUserKey, encodeMasterSecretKey } from '../../shared/crypto/abe/codec.ts'
import { openEnvelope, sealEnvelope } from '../../shared/crypto/envelope.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { assertKeyValid, epochBounds, epochOf, epochRange, keyAttributes, keyValidity, MAX_KEY_EPOCHS, parseEpoch, policyEpoch, withEpoch, type Epoch } from '../../shared/protocol/epoch.ts'
import { patientPseudonym } from '../../shared/protocol/pseudonym.ts'
import { readKeyFile } from '../../shared/cli/files.ts'
import { msk } from '../helpers/authority.ts'
import { careledger } from '../helpers/gateway-process.ts'
import { writeTestSecret } from '../helpers/test-keys.ts'

const e = (s: string): Epoch => parseEpoch(s)
const code = (f: () => unknown): string | undefined => {
  try {
    f()
  } catch (err) {
    return isCareLedgerError(err) ? `${err.code}${err.info.reason ? `/${String(err.info.reason)}` : ''}` : String(err)
  }
  return undefined
}

describe('epochs: UTC months', () => {
  it('maps instants to months and back', () => {
    expect(epochOf(Date.UTC(2026, 6, 31, 23, 59, 59, 999))).toBe('2026-07')
    expect(epochOf(Date.UTC(2026, 7, 1))).toBe('2026-08')
    expect(epochBounds(e('2026-12'))).toEqual({ start: Date.UTC(2026, 11, 1), end: Date.UTC(2027, 0, 1) })
    expect(epochRange(e('2026-11'), e('2027-02'))).toEqual(['2026-11', '2026-12', '2027-01', '2027-02'])
  })

  it('refuses malformed months and over-long or reversed validity', () => {
    for (const bad of ['2026-13', '2026-7', '26-07', '1999-12', '2026-07-01', ''])
      expect(code(() => parseEpoch(bad, '--valid-until')), bad).toBe('INVALID_ARGUMENT')
    expect(() => epochRange(e('2027-02'), e('2027-01'))).toThrow(/ends \(2027-01\) before it starts \(2027-02\)/)
    expect(() => epochRange(e('2026-01'), e('2031-01'))).toThrow(new RegExp(`at most ${MAX_KEY_EPOCHS} months`))
  })
})

describe('sealed policies carry the epoch', () => {
  it('adds one AND clause, canonical, and reads it back', () => {
    expect(withEpoch('role:doctor', e('2026-07'))).toBe('role:doctor AND epoch:2026-07')
    expect(withEpoch('role:doctor AND hospital:h1', e('2026-07'))).toBe('role:doctor AND hospital:h1 AND epoch:2026-07')
    const p = withEpoch('(role:doctor AND hospital:h1) OR patient:p-0123456789abcdef01234567', e('2026-07'))
    expect(p).toBe('((role:doctor AND hospital:h1) OR patient:p-0123456789abcdef01234567) AND epoch:2026-07')
    expect(policyEpoch(p)).toBe('2026-07')
    expect(policyEpoch('role:doctor OR patient:p-0123456789abcdef01234567')).toBeNull()
  })

  it('refuses a template that names an epoch itself', () => {
    expect(() => withEpoch('role:doctor AND epoch:2026-07', e('2026-08'))).toThrow(/position 16: "epoch:2026-07": epoch attributes are added by the gateway/)
  })
})

describe('keys hold one attribute per month of validity', () => {
  const policy = '(role:doctor AND hospital:h1) OR patient:p-0123456789abcdef01234567'
  const aad = new TextEncoder().encode('manifest fields')
  const sealIn = (month: string, text = policy): Uint8Array => sealEnvelope(msk.mpk, withEpoch(text, e(month)), new TextEncoder().encode(`sealed in ${month}`), aad)
  const doctor = keyGen(msk, keyAttributes(['role:doctor', 'hospital:h1'], { from: e('2026-01'), until: e('2026-03') }))

  it('opens batches sealed in its months, and nothing sealed after', () => {
    for (const m of ['2026-01', '2026-02', '2026-03']) expect(new TextDecoder().decode(openEnvelope(doctor, sealIn(m), aad))).toBe(`sealed in ${m}`)
    for (const m of ['2025-12', '2026-04']) expect(code(() => openEnvelope(doctor, sealIn(m), aad)), m).toBe('POLICY_NOT_SATISFIED')
  })

  it('still opens what was sealed before epochs existed (a policy without an epoch clause)', () => {
    const old = sealEnvelope(msk.mpk, policy, new TextEncoder().encode('old'), aad)
    expect(new TextDecoder().decode(openEnvelope(doctor, old, aad))).toBe('old')
  })

  it("a patient's key opens their own batches only", () => {
    const patient = keyGen(msk, keyAttributes(['patient:p-0123456789abcdef01234567'], { from: e('2026-02'), until: e('2026-02') }))
    expect(new TextDecoder().decode(openEnvelope(patient, sealIn('2026-02'), aad))).toBe('sealed in 2026-02')
    const other = sealEnvelope(msk.mpk, withEpoch('role:doctor OR patient:p-ffffffffffffffffffffffff', e('2026-02')), new Uint8Array(1), aad)
    expect(code(() => openEnvelope(patient, other, aad))).toBe('POLICY_NOT_SATISFIED')
  })

  it('reads its validity back and refuses an expired or not-yet-valid key', () => {
    expect(keyValidity(doctor.attributes)).toEqual({ from: '2026-01', until: '2026-03' })
    expect(assertKeyValid(doctor.attributes, Date.UTC(2026, 2, 31, 23))).toEqual({ from: '2026-01', until: '2026-03' })
    expect(code(() => assertKeyValid(doctor.attributes, Date.UTC(2026, 3, 1)))).toBe('INVALID_ARGUMENT/KEY_EXPIRED')
    expect(() => assertKeyValid(doctor.attributes, Date.UTC(2026, 3, 1))).toThrow(/expired at the end of 2026-03 .*renewed key/)
    expect(code(() => assertKeyValid(doctor.attributes, Date.UTC(2025, 11, 31)))).toBe('INVALID_ARGUMENT/KEY_NOT_YET_VALID')
    expect(assertKeyValid(['role:doctor'], Date.now())).toBeNull() // issued before epochs
    expect(() => keyAttributes(['role:doctor', 'epoch:2026-01'], { from: e('2026-01'), until: e('2026-01') })).toThrow(/set by --valid-from/)
  })
})

describe('careledger authority keygen', () => {
  const dir = mkdtempSync(join(tmpdir(), 'careledger-keygen-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  writeTestSecret(join(dir, 'master-secret.key'), encodeMasterSecretKey(msk), 'FABEO master secret key') // sealed, as `authority setup` writes it

  it('issues a key valid from this month to --valid-until, and shows it', async () => {
    const now = epochOf(Date.now())
    const until = epochOf(Date.now() + 200 * 86_400_000)
    const out = join(dir, 'alice.key')
    const r = await careledger(['authority', 'keygen', '--master', join(dir, 'master-secret.key'), '--attrs', 'role:doctor,dept:cardiology,hospital:h1', '--valid-until', until, '--out', out])
    expect(r.stderr).toBe('')
    expect(r.stdout).toContain(`valid ${now} … ${until} (UTC)`)
    const key = decodeUserKey(readKeyFile(out))
    expect(keyValidity(key.attributes)).toEqual({ from: now, until })
    expect(key.attributes.filter((a) => !a.startsWith('epoch:'))).toEqual(['dept:cardiology', 'hospital:h1', 'role:doctor'])
    const show = await careledger(['authority', 'show', out])
    expect(show.stdout).toContain(`for [dept:cardiology, hospital:h1, role:doctor], valid ${now} … ${until} (UTC)`)
  })

  it("issues a patient's key from the patient id with the hospital's pseudonym key", async () => {
    const pk = new Uint8Array(32).fill(7)
    writeFileSync(join(dir, 'pseudonym.key'), pk)
    const out = join(dir, 'patient.key')
    const r = await careledger(['authority', 'keygen', '--master', join(dir, 'master-secret.key'), '--patient', 'MRN-0042', '--pseudonym-key', join(dir, 'pseudonym.key'), '--valid-from', '2026-01', '--valid-until', '2026-06', '--out', out])
    expect(r.code, r.stderr).toBe(0)
    expect(decodeUserKey(readKeyFile(out)).attributes).toContain(`patient:${patientPseudonym(pk, 'MRN-0042')}`)
  })

  it('refuses a key without --valid-until, with a reversed validity, or a patient id without the pseudonym key', async () => {
    const base = ['authority', 'keygen', '--master', join(dir, 'master-secret.key'), '--out', join(dir, 'x.key')]
    const missing = await careledger([...base, '--attrs', 'role:doctor'])
    expect(missing.code).not.toBe(0)
    expect(missing.stderr).toMatch(/--valid-until/)
    const reversed = await careledger([...base, '--attrs', 'role:doctor', '--valid-from', '2027-02', '--valid-until', '2027-01'])
    expect(reversed.stderr).toMatch(/error INVALID_ARGUMENT: the validity ends \(2027-01\) before it starts \(2027-02\)/)
    const noKey = await careledger([...base, '--patient', 'MRN-0042', '--valid-until', '2027-01'], { CARELEDGER_PSEUDONYM_KEY_FILE: '' })
    expect(noKey.stderr).toMatch(/is a patient id, not a pseudonym .*--pseudonym-key/)
  })
})
