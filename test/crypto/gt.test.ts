import { describe, expect, it } from 'vitest'
import { bls12_381 } from '@noble/curves/bls12-381.js'
import { checkInGT, GT_ORDER, gtFromBytes, gtPow, gtToBytes, isInGT } from '../../shared/crypto/abe/gt.ts'
import { deterministicRng, randomScalar } from '../../shared/crypto/random.ts'

const F12 = bls12_381.fields.Fp12
const rng = deterministicRng('gt tests')
const scalar = () => randomScalar(rng, GT_ORDER)
const randomGT = () => bls12_381.pairing(bls12_381.G1.Point.BASE.multiply(scalar()), bls12_381.G2.Point.BASE)
/** A random element of the cyclotomic subgroup that is (overwhelmingly likely) not in GT: the "easy part" of the final exponentiation. */
function randomCyclotomic(): ReturnType<typeof F12.fromBigTwelve> {
  const x = F12.fromBigTwelve(Array.from({ length: 12 }, () => scalar()) as Parameters<typeof F12.fromBigTwelve>[0])
  const t = F12.mul(F12.conjugate(x), F12.inv(x)) // x^(p^6 − 1)
  return F12.mul(F12.frobeniusMap(t, 2), t) // · ^(p^2 + 1)
}

describe('GT arithmetic', () => {
  it('gtPow agrees with the generic exponentiation, including edge exponents', () => {
    const g = randomGT()
    for (const e of [0n, 1n, 2n, 0xd201000000010000n, GT_ORDER - 1n, GT_ORDER, GT_ORDER + 5n, scalar(), scalar(), scalar()]) {
      expect(F12.eql(gtPow(g, e), F12.pow(g, e % GT_ORDER))).toBe(true)
    }
  })

  it('membership test agrees with x^r = 1 on GT elements, cyclotomic non-members and arbitrary elements', () => {
    for (let i = 0; i < 4; i++) {
      const inGT = randomGT()
      expect(isInGT(inGT)).toBe(true)
      const cyc = randomCyclotomic()
      expect(isInGT(cyc)).toBe(F12.eql(F12.pow(cyc, GT_ORDER), F12.ONE))
      expect(isInGT(cyc)).toBe(false)
      expect(isInGT(F12.mul(inGT, cyc))).toBe(false)
      const arbitrary = F12.fromBigTwelve(Array.from({ length: 12 }, () => scalar()) as Parameters<typeof F12.fromBigTwelve>[0])
      expect(isInGT(arbitrary)).toBe(false)
    }
    expect(isInGT(F12.ONE)).toBe(true)
    expect(isInGT(F12.ZERO)).toBe(false)
  })

  it('remembers a checked member (frozen, so it cannot change after the check) and never a non-member', () => {
    const g = gtFromBytes(gtToBytes(randomGT()))!
    expect(Object.isFrozen(g) && Object.isFrozen(g.c0) && Object.isFrozen(g.c0.c0)).toBe(true)
    expect(() => {
      ;(g.c0.c0 as { c0: bigint }).c0 = 1n
    }).toThrow(TypeError)
    expect(isInGT(g)).toBe(true)
    expect(checkInGT(g)).toBe(true)
    const cyc = randomCyclotomic()
    expect(isInGT(cyc)).toBe(false)
    expect(isInGT(cyc)).toBe(false) // asked again: checked again, still refused
  })

  it('decodes only canonical GT elements', () => {
    const g = randomGT()
    const bytes = gtToBytes(g)
    expect(F12.eql(gtFromBytes(bytes)!, g)).toBe(true)
    const notCanonical = bytes.slice()
    notCanonical.fill(0xff, 0, 48) // first coordinate ≥ p
    expect(gtFromBytes(notCanonical)).toBeNull()
    expect(gtFromBytes(gtToBytes(randomCyclotomic()))).toBeNull()
    expect(gtFromBytes(bytes.subarray(1))).toBeNull()
  })
})
