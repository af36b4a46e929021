import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { keyGen } from '../../shared/crypto/abe/fabeo.ts'
import { makeTransformKey } from '../../shared/crypto/abe/outsource.ts'
import { decodeTransformed, encodeTransformed } from '../../shared/crypto/abe/codec.ts'
import { decodeEnvelope, finishEnvelope, openEnvelope, sealEnvelope, transformEnvelope } from '../../shared/crypto/envelope.ts'
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
