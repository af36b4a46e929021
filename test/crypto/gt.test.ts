import { describe, expect, it } from 'vitest'
import { bls12_381 } from '@noble/curves/bls12-381.js'
import { checkInGT, fp12CyclotomicOps, fp12FromBytes, fp12InGT, fp12Pow, GT_ORDER, type Fp12 } from '../../shared/crypto/abe/gt.ts'
import { jointPowUniform, type MulOps } from '../../shared/crypto/abe/ladder.ts'
import { deterministicRng, randomScalar } from '../../shared/crypto/random.ts'

const F12 = bls12_381.fields.Fp12
const rng = deterministicRng('gt tests')
const scalar = () => randomScalar(rng, GT_ORDER)
const randomGT = () => bls12_381.pairing(bls12_381.G1.Point.BASE.multiply(scalar()), bls12_381.G2.Point.BASE)
/** A random element of the cyclotomic subgroup that is (overwhelmingly likely) not in GT: the "easy part" of the final exponentiation. */
function randomCyclotomic(): Fp12 {
  const x = F12.fromBigTwelve(Array.from({ length: 12 }, () => scalar()) as Parameters<typeof F12.fromBigTwelve>[0])
  const t = F12.mul(F12.conjugate(x), F12.inv(x)) // x^(p^6 − 1)
  return F12.mul(F12.frobeniusMap(t, 2), t) // · ^(p^2 + 1)
}

/** The ladder's operations with a log of which ran, in order. */
function counting<T>(ops: MulOps<T>): { ops: MulOps<T>; log: string[] } {
  const log: string[] = []
  return {
    log,
    ops: {
      one: () => ops.one(),
      mul: (a, b) => (log.push('mul'), ops.mul(a, b)),
      sqr: (a) => (log.push('sqr'), ops.sqr(a)),
    },
  }
}

describe('GT arithmetic (noble backend)', () => {
  it('fp12Pow agrees with the generic exponentiation, including edge exponents', () => {
    const g = randomGT()
    for (const e of [0n, 1n, 2n, 0xd201000000010000n, GT_ORDER - 1n, GT_ORDER, GT_ORDER + 5n, scalar(), scalar(), scalar()]) {
      expect(F12.eql(fp12Pow(g, e), F12.pow(g, e % GT_ORDER))).toBe(true)
    }
  })

  it('exponentiation runs the same sequence of operations whatever the exponent (issue 8, item 14)', () => {
    const g = randomGT()
    // Digits that are all zero, all ones, sparse, dense: once each digit was skipped when zero.
    const exponents = [0n, 1n, 2n, 1n << 200n, 0xd201000000010000n, GT_ORDER - 1n, (1n << 254n) - 1n, scalar(), scalar()]
    const logs = exponents.map((e) => {
      const c = counting(fp12CyclotomicOps)
      const r = fp12Pow(g, e, c.ops)
      expect(F12.eql(r, F12.pow(g, e % GT_ORDER))).toBe(true)
      return c.log.join(',')
    })
    expect(new Set(logs).size).toBe(1)
    expect(logs[0]!.split(',').filter((o) => o === 'sqr')).toHaveLength(64)
    expect(logs[0]!.split(',').filter((o) => o === 'mul')).toHaveLength(64 + 11)
  })

  it('the joint ladder squares once and multiplies once per bit, whatever the digits', () => {
    const g = randomGT()
    const ops: MulOps<Fp12> = { one: () => F12.ONE, mul: (a, b) => F12.mul(a, b), sqr: (a) => F12.sqr(a) }
    const logs = [[0n, 0n], [255n, 0n], [1n, 128n], [77n, 200n]].map((digits) => {
      const c = counting(ops)
      const r = jointPowUniform(c.ops, [g, F12.sqr(g)], digits, 8)
      expect(F12.eql(r, F12.pow(g, digits[0]! + 2n * digits[1]!))).toBe(true)
      return c.log.join(',')
    })
    expect(new Set(logs).size).toBe(1)
    expect(logs[0]!.split(',').filter((o) => o === 'sqr')).toHaveLength(8)
  })

  it('membership test agrees with x^r = 1 on GT elements, cyclotomic non-members and arbitrary elements', () => {
    for (let i = 0; i < 4; i++) {
      const inGT = randomGT()
      expect(fp12InGT(inGT)).toBe(true)
      const cyc = randomCyclotomic()
      expect(fp12InGT(cyc)).toBe(F12.eql(F12.pow(cyc, GT_ORDER), F12.ONE))
      expect(fp12InGT(cyc)).toBe(false)
      expect(fp12InGT(F12.mul(inGT, cyc))).toBe(false)
      const arbitrary = F12.fromBigTwelve(Array.from({ length: 12 }, () => scalar()) as Parameters<typeof F12.fromBigTwelve>[0])
      expect(fp12InGT(arbitrary)).toBe(false)
    }
    expect(fp12InGT(F12.ONE)).toBe(true)
    expect(fp12InGT(F12.ZERO)).toBe(false)
  })

  it('remembers a checked member (frozen, so it cannot change after the check) and never a non-member', () => {
    const g = fp12FromBytes(F12.toBytes(randomGT()))!
    expect(Object.isFrozen(g) && Object.isFrozen(g.c0) && Object.isFrozen(g.c0.c0)).toBe(true)
    expect(() => {
      ;(g.c0.c0 as { c0: bigint }).c0 = 1n
    }).toThrow(TypeError)
    expect(fp12InGT(g)).toBe(true)
    expect(checkInGT(g)).toBe(true)
    const cyc = randomCyclotomic()
    expect(fp12InGT(cyc)).toBe(false)
    expect(fp12InGT(cyc)).toBe(false) // asked again: checked again, still refused
  })

  it('decodes only canonical GT elements', () => {
    const g = randomGT()
    const bytes = F12.toBytes(g)
    expect(F12.eql(fp12FromBytes(bytes)!, g)).toBe(true)
    const notCanonical = bytes.slice()
    notCanonical.fill(0xff, 0, 48) // first coordinate ≥ p
    expect(fp12FromBytes(notCanonical)).toBeNull()
    expect(fp12FromBytes(F12.toBytes(randomCyclotomic()))).toBeNull()
    expect(fp12FromBytes(bytes.subarray(1))).toBeNull()
  })
})
