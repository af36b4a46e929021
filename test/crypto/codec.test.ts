import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { bls12_381 } from '@noble/curves/bls12-381.js'
import { numberToBytesBE } from '@noble/curves/utils.js'
import { encaps, keyGen } from '../../shared/crypto/abe/fabeo.ts'
import { makeTransformKey, transform } from '../../shared/crypto/abe/outsource.ts'
import * as codec from '../../shared/crypto/abe/codec.ts'
import { decodeEnvelope, sealEnvelope } from '../../shared/crypto/envelope.ts'
import { ORDER } from '../../shared/crypto/abe/groups.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { msk, mpk, rng } from '../helpers/authority.ts'

const key = keyGen(msk, ['role:doctor', 'hospital:h1', 'dept:cardiology'], rng)
const { transformKey, retrievalKey } = makeTransformKey(key, rng)
const { ciphertext } = encaps(mpk, '(role:doctor AND hospital:h1) OR 2 of (a:1, b:2, c:3)', rng)
const transformed = { headerDigest: new Uint8Array(32).fill(7), t: transform(transformKey, encaps(mpk, 'role:doctor', rng).ciphertext) }

const samples: [string, Uint8Array, (b: Uint8Array) => unknown][] = [
  ['master public key', codec.encodeMasterPublicKey(mpk), codec.decodeMasterPublicKey],
  ['master secret key', codec.encodeMasterSecretKey(msk), codec.decodeMasterSecretKey],
  ['secret key', codec.encodeUserKey(key), codec.decodeUserKey],
  ['transformation key', codec.encodeTransformKey(transformKey), codec.decodeTransformKey],
  ['retrieval key', codec.encodeRetrievalKey(retrievalKey), codec.decodeRetrievalKey],
  ['ciphertext', codec.encodeCiphertext(ciphertext), codec.decodeCiphertext],
  ['transformed ciphertext', codec.encodeTransformed(transformed), codec.decodeTransformed],
  ['envelope', sealEnvelope(mpk, 'role:doctor', new Uint8Array([1, 2, 3]), new Uint8Array(), rng), decodeEnvelope],
]

function errorOf(f: () => unknown): { code: string; reason: unknown } | null {
  try {
    f()
    return null
  } catch (e) {
    if (!isCareLedgerError(e)) throw e // anything untyped fails the test
    return { code: e.code, reason: e.info.reason }
  }
}

/** Re-encode a decoded object with the matching encoder, to compare byte for byte. */
const reencode: Record<string, (x: never) => Uint8Array> = {
  'master public key': codec.encodeMasterPublicKey,
  'master secret key': codec.encodeMasterSecretKey,
  'secret key': codec.encodeUserKey,
  'transformation key': codec.encodeTransformKey,
  'retrieval key': codec.encodeRetrievalKey,
  ciphertext: codec.encodeCiphertext,
  'transformed ciphertext': codec.encodeTransformed,
}

/** Euler's criterion in Fp. */
const isSquare = (v: bigint): boolean => {
  const Fp = bls12_381.fields.Fp
  return v === 0n || Fp.pow(v, (Fp.ORDER - 1n) / 2n) === 1n
}

describe('binary encodings', () => {
  it.each(samples)('%s round-trips byte for byte', (name, bytes, decode) => {
    const decoded = decode(bytes)
    if (reencode[name]) expect(reencode[name]!(decoded as never)).toEqual(bytes)
  })

  it('has the documented sizes: ciphertext 192 + 48n bytes of group elements', () => {
    const bytes = codec.encodeCiphertext(ciphertext)
    expect(bytes.length).toBe(codec.ciphertextSize(new TextEncoder().encode(ciphertext.policy).length, ciphertext.rows.length))
    expect(codec.encodeUserKey(key).length).toBeLessThan(4 + 1 + 16 + 96 + 48 + 1 + 3 * (48 + 20))
  })

  it.each(samples)('%s: truncation, trailing bytes, wrong kind and unknown versions are typed errors', (_name, bytes, decode) => {
    for (let n = 0; n < bytes.length; n += Math.max(1, Math.floor(bytes.length / 40))) {
      expect(errorOf(() => decode(bytes.subarray(0, n)))?.code).toMatch(/INVALID_ENCODING|UNSUPPORTED_VERSION/)
    }
    expect(errorOf(() => decode(new Uint8Array([...bytes, 0])))).toMatchObject({ code: 'INVALID_ENCODING', reason: 'TRAILING_BYTES' })
    const unknown = bytes.slice()
    unknown[2] = 9 // versions 1 and, for envelopes, 2 are read; 9 is nobody's
    expect(errorOf(() => decode(unknown))?.code).toBe('UNSUPPORTED_VERSION')
    const wrongKind = bytes.slice()
    wrongKind[3] = wrongKind[3] === 1 ? 2 : 1
    expect(errorOf(() => decode(wrongKind))).toMatchObject({ code: 'INVALID_ENCODING', reason: 'WRONG_KIND' })
    const badMagic = bytes.slice()
    badMagic[0] = 0
    expect(errorOf(() => decode(badMagic))).toMatchObject({ code: 'INVALID_ENCODING', reason: 'BAD_MAGIC' })
  })

  it('garbage and bit flips never throw anything but typed errors (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: samples.length - 1 }),
        fc.oneof(
          fc.uint8Array({ maxLength: 700 }).map((b) => ({ kind: 'random' as const, b })),
          fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })).map(([at, bit]) => ({ kind: 'flip' as const, at, bit })),
        ),
        (which, mutation) => {
          const [, bytes, decode] = samples[which]!
          let input: Uint8Array
          if (mutation.kind === 'random') input = mutation.b
          else {
            input = bytes.slice()
            input[mutation.at % input.length]! ^= 1 << mutation.bit
          }
          errorOf(() => decode(input)) // must not throw an untyped error
        },
      ),
      { numRuns: 300 },
    )
  })

  describe('point and scalar validation', () => {
    const ctBytes = codec.encodeCiphertext(ciphertext)
    const firstRowAt = ctBytes.length - 48 * ciphertext.rows.length
    const withRow = (row: Uint8Array): Uint8Array => {
      const b = ctBytes.slice()
      b.set(row, firstRowAt)
      return b
    }

    it('rejects a G1 point that is on the curve but outside the prime-order subgroup', () => {
      // Find x with x^3 + 4 a square: a point on E(Fp); the cofactor makes it almost surely not in G1.
      const Fp = bls12_381.fields.Fp
      let x = 5n
      while (!isSquare(Fp.add(Fp.pow(x, 3n), 4n))) x++
      const enc = numberToBytesBE(x, 48)
      enc[0]! |= 0x80 // compressed flag
      expect(errorOf(() => codec.decodeCiphertext(withRow(enc)))).toMatchObject({ code: 'INVALID_ENCODING', reason: 'NOT_IN_SUBGROUP' })
    })

    it('rejects an x-coordinate that is not on the curve', () => {
      const Fp = bls12_381.fields.Fp
      let x = 5n
      while (isSquare(Fp.add(Fp.pow(x, 3n), 4n))) x++
      const enc = numberToBytesBE(x, 48)
      enc[0]! |= 0x80
      expect(errorOf(() => codec.decodeCiphertext(withRow(enc)))).toMatchObject({ code: 'INVALID_ENCODING', reason: 'NOT_ON_CURVE' })
    })

    it('rejects the identity point and non-canonical coordinates', () => {
      const identity = new Uint8Array(48)
      identity[0] = 0xc0 // compressed + infinity
      expect(errorOf(() => codec.decodeCiphertext(withRow(identity)))).toMatchObject({ code: 'INVALID_ENCODING', reason: 'IDENTITY_POINT' })
      const tooBig = numberToBytesBE(bls12_381.fields.Fp.ORDER, 48)
      tooBig[0]! |= 0x80
      expect(errorOf(() => codec.decodeCiphertext(withRow(tooBig)))?.code).toBe('INVALID_ENCODING')
    })

    it('rejects zero and out-of-range scalars', () => {
      const rk = codec.encodeRetrievalKey(retrievalKey)
      const zero = rk.slice()
      zero.fill(0, rk.length - 32)
      expect(errorOf(() => codec.decodeRetrievalKey(zero))).toMatchObject({ reason: 'SCALAR_OUT_OF_RANGE' })
      const big = rk.slice()
      big.set(numberToBytesBE(ORDER, 32), rk.length - 32)
      expect(errorOf(() => codec.decodeRetrievalKey(big))).toMatchObject({ reason: 'SCALAR_OUT_OF_RANGE' })
    })

    it('rejects a ciphertext whose policy is not canonical or whose row count disagrees', () => {
      const reordered = { ...ciphertext, policy: ciphertext.policy.replace('role:doctor AND hospital:h1', 'role:doctor and hospital:h1') }
      expect(errorOf(() => codec.decodeCiphertext(codec.encodeCiphertext(reordered)))).toMatchObject({ reason: 'NON_CANONICAL_POLICY' })
      const short = { ...ciphertext, rows: ciphertext.rows.slice(1) }
      expect(errorOf(() => codec.decodeCiphertext(codec.encodeCiphertext(short)))).toMatchObject({ reason: 'ROW_COUNT' })
      const repeated = { ...ciphertext, policy: 'role:doctor OR role:doctor', rows: ciphertext.rows.slice(0, 2) }
      expect(errorOf(() => codec.decodeCiphertext(codec.encodeCiphertext(repeated)))).toMatchObject({ reason: 'BAD_POLICY' })
    })

    it('rejects keys with unsorted, repeated or malformed attributes', () => {
      const unsorted = { ...key, attributes: [...key.attributes].reverse(), kx: [...key.kx].reverse() }
      expect(errorOf(() => codec.decodeUserKey(codec.encodeUserKey(unsorted)))).toMatchObject({ reason: 'UNSORTED_ATTRIBUTES' })
      const upper = { ...key, attributes: ['DEPT:cardiology', ...key.attributes.slice(1)] }
      expect(errorOf(() => codec.decodeUserKey(codec.encodeUserKey(upper)))).toMatchObject({ reason: 'BAD_ATTRIBUTE' })
    })
  })
})
