import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { keyGen } from '../../shared/crypto/abe/fabeo.ts'
import { makeTransformKey } from '../../shared/crypto/abe/outsource.ts'
import { decodeTransformed, encodeTransformed } from '../../shared/crypto/abe/codec.ts'
import { decodeEnvelope, encapsulate, finishEnvelope, openEnvelope, openWithKey, sealEnvelope, sealWithKem, transformEnvelope } from '../../shared/crypto/envelope.ts'
import { decaps } from '../../shared/crypto/abe/fabeo.ts'
import { envelopeCiphertext } from '../../shared/crypto/envelope.ts'
import { egh } from '../../shared/crypto/abe/groups.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { msk, mpk, rng } from '../helpers/authority.ts'

const POLICY = '(role:doctor AND hospital:h1) OR patient:p-7f3a'
const doctor = keyGen(msk, ['role:doctor', 'hospital:h1'], rng)
const { transformKey, retrievalKey } = makeTransformKey(doctor, rng)
const aad = new TextEncoder().encode('manifest fields')
const plaintext = new TextEncoder().encode(JSON.stringify([{ seq: 1, type: 'heart_rate', value: 72 }]))
const envelope = sealEnvelope(mpk, POLICY, plaintext, aad, rng)

function failure(f: () => unknown): { code: string; reason?: unknown } {
  try {
    f()
  } catch (e) {
    if (isCareLedgerError(e)) return { code: e.code, reason: e.info.reason }
    throw e
  }
  return { code: 'no error' }
}

describe('hybrid envelope (FABEO KEM + HKDF-SHA256 + AES-256-GCM)', () => {
  it('opens with a satisfying key and through the outsourced path', () => {
    expect(openEnvelope(doctor, envelope, aad)).toEqual(plaintext)
    expect(finishEnvelope(retrievalKey, envelope, transformEnvelope(transformKey, envelope), aad)).toEqual(plaintext)
  })

  it('refuses a key that does not satisfy the policy', () => {
    expect(failure(() => openEnvelope(keyGen(msk, ['role:doctor', 'hospital:h2'], rng), envelope, aad)).code).toBe('POLICY_NOT_SATISFIED')
  })

  it('binds the associated data (the manifest fields)', () => {
    expect(failure(() => openEnvelope(doctor, envelope, new TextEncoder().encode('manifest fieldz')))).toEqual({ code: 'DECRYPTION_FAILED', reason: 'AEAD_TAG' })
  })

  it('detects any flipped bit in the header, nonce, commitment, body or tag (property)', () => {
    const layout = decodeEnvelope(envelope)
    const headerEnd = 4 + 2 + layout.header.length // preamble + varint(2 bytes) + header
    fc.assert(
      fc.property(fc.integer({ min: 4, max: envelope.length - 1 }), fc.integer({ min: 0, max: 7 }), (at, bit) => {
        const bad = envelope.slice()
        bad[at]! ^= 1 << bit
        const f = failure(() => openEnvelope(doctor, bad, aad))
        // A flipped header bit may break its encoding (typed decode error) or its points/policy;
        // everything else must fail authentication. Nothing may decrypt.
        expect(f.code).not.toBe('no error')
        if (at >= headerEnd) expect(f.code).toMatch(/DECRYPTION_FAILED|INVALID_ENCODING/)
      }),
      { numRuns: 40 },
    )
  })

  it('catches a lying proxy: wrong T, T for another envelope, T outside GT', () => {
    const honest = decodeTransformed(transformEnvelope(transformKey, envelope))
    const other = sealEnvelope(mpk, POLICY, plaintext, aad, rng)
    // 1. a different element of GT
    const shifted = encodeTransformed({ headerDigest: honest.headerDigest, t: honest.t.mul(egh()) })
    expect(failure(() => finishEnvelope(retrievalKey, envelope, shifted, aad))).toEqual({ code: 'DECRYPTION_FAILED', reason: 'KEY_COMMITMENT' })
    // 2. the right header digest but the transformation of another envelope
    const swapped = encodeTransformed({ headerDigest: honest.headerDigest, t: decodeTransformed(transformEnvelope(transformKey, other)).t })
    expect(failure(() => finishEnvelope(retrievalKey, envelope, swapped, aad))).toEqual({ code: 'DECRYPTION_FAILED', reason: 'KEY_COMMITMENT' })
    // 3. a transformation honestly computed for another envelope
    expect(failure(() => finishEnvelope(retrievalKey, envelope, transformEnvelope(transformKey, other), aad))).toEqual({
      code: 'DECRYPTION_FAILED',
      reason: 'HEADER_MISMATCH',
    })
    // 4. bytes that are not an element of GT are refused when decoded
    const raw = encodeTransformed(honest)
    raw[raw.length - 1]! ^= 1
    expect(failure(() => finishEnvelope(retrievalKey, envelope, raw, aad))).toMatchObject({ code: 'INVALID_ENCODING', reason: 'NOT_IN_GT' })
  })

  it('refuses oversized plaintexts with a clear error', () => {
    const big = { length: 64 * 1024 * 1024 + 1 } as Uint8Array
    expect(failure(() => sealEnvelope(mpk, POLICY, big, aad, rng)).code).toBe('INVALID_ARGUMENT')
  })
})

describe('format 2: one encapsulation per stream, a key per batch (issue 11)', () => {
  const kem = encapsulate(mpk, POLICY, rng)
  const stream = 'ab'.repeat(32)
  const ctx = (seq: number, d = seq): { stream: string; seq: number; digest: Uint8Array } => ({ stream, seq, digest: new Uint8Array(32).fill(d) })
  const batches = [0, 1, 2].map((seq) => sealWithKem(kem, ctx(seq), plaintext, aad, rng))

  it('every batch of the stream shares the header and opens with a satisfying key, locally and outsourced', () => {
    for (const b of batches) {
      const e = decodeEnvelope(b)
      expect(e.version).toBe(2)
      expect(e.header).toEqual(kem.header)
      expect(openEnvelope(doctor, b, aad)).toEqual(plaintext)
      expect(finishEnvelope(retrievalKey, b, transformEnvelope(transformKey, b), aad)).toEqual(plaintext)
    }
    // one Decaps opens them all (what clients/decrypt.ts LocalOpener keeps)
    const k = decaps(doctor, envelopeCiphertext(decodeEnvelope(batches[0]!)))
    for (const b of batches) expect(openWithKey(decodeEnvelope(b), k, aad)).toEqual(plaintext)
    expect(failure(() => openEnvelope(keyGen(msk, ['role:nurse'], rng), batches[1]!, aad)).code).toBe('POLICY_NOT_SATISFIED')
  })

  it('each batch has its own data key: stream, seq and digest are bound (a changed context fails the key commitment)', () => {
    const e = decodeEnvelope(batches[1]!)
    const k = decaps(doctor, envelopeCiphertext(e))
    for (const context of [ctx(2, 1), ctx(1, 9), { ...ctx(1), stream: 'cd'.repeat(32) }]) {
      expect(failure(() => openWithKey({ ...e, context }, k, aad))).toEqual({ code: 'DECRYPTION_FAILED', reason: 'KEY_COMMITMENT' })
    }
    expect(failure(() => openEnvelope(doctor, batches[1]!, new TextEncoder().encode('other manifest')))).toEqual({ code: 'DECRYPTION_FAILED', reason: 'AEAD_TAG' })
  })

  it('detects any flipped bit after the header (property)', () => {
    const b = batches[0]!
    const headerEnd = 4 + 2 + kem.header.length
    fc.assert(
      fc.property(fc.integer({ min: headerEnd, max: b.length - 1 }), fc.integer({ min: 0, max: 7 }), (at, bit) => {
        const bad = b.slice()
        bad[at]! ^= 1 << bit
        expect(failure(() => openEnvelope(doctor, bad, aad)).code).toMatch(/DECRYPTION_FAILED|INVALID_ENCODING/)
      }),
      { numRuns: 40 },
    )
  })

  it('re-seals one batch (a correction) with the key its reader recovered: the same readers open it', () => {
    const e = decodeEnvelope(batches[2]!)
    const recovered = { header: e.header, key: finishEnvelopeKey() }
    function finishEnvelopeKey() {
      return decaps(keyGen(msk, ['patient:p-7f3a'], rng), envelopeCiphertext(e))
    }
    const corrected = new TextEncoder().encode('[]')
    const resealed = sealWithKem(recovered, ctx(2, 7), corrected, aad, rng)
    expect(openEnvelope(doctor, resealed, aad)).toEqual(corrected)
    expect(failure(() => openEnvelope(keyGen(msk, ['role:doctor', 'hospital:h2'], rng), resealed, aad)).code).toBe('POLICY_NOT_SATISFIED')
  })

  it('refuses a bad key context and reads format-1 envelopes as before', () => {
    expect(failure(() => sealWithKem(kem, { stream: '', seq: 0, digest: new Uint8Array(32) }, plaintext, aad, rng)).code).toBe('INVALID_ARGUMENT')
    expect(failure(() => sealWithKem(kem, { stream, seq: -1, digest: new Uint8Array(32) }, plaintext, aad, rng)).code).toBe('INVALID_ARGUMENT')
    expect(failure(() => sealWithKem(kem, { stream, seq: 0, digest: new Uint8Array(31) }, plaintext, aad, rng)).code).toBe('INVALID_ARGUMENT')
    expect(decodeEnvelope(envelope)).toMatchObject({ version: 1, context: null })
    const v3 = batches[0]!.slice()
    v3[2] = 3
    expect(failure(() => decodeEnvelope(v3)).code).toBe('UNSUPPORTED_VERSION')
  })
})
