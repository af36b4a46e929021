/**
 * Batch verification of format-2 chameleon openings (shared/crypto/chameleon-batch.ts): the
 * short-scalar MSM against noble's Pippenger and the plain sum, and — as a property — that a batch
 * holding one or several false equations is refused and bisected to exactly those.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ristretto255 } from '@noble/curves/ed25519.js'
import { pippenger } from '@noble/curves/abstract/curve.js'
import { bytesToNumberLE } from '@noble/curves/utils.js'
import { chameleonEquation, chameleonHash, chameleonKeyGen, chameleonPublicPoint, type ChameleonEquation } from '../../shared/crypto/chameleon.ts'
import { chameleonBatchHolds, failingChameleonEquations, msmShort } from '../../shared/crypto/chameleon-batch.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'

const Point = ristretto255.Point
const rng = deterministicRng('chameleon batch tests')
const keys = chameleonKeyGen(rng)
const Y = chameleonPublicPoint(keys.publicKey)
const N = 1200
/** N valid equations (Hash over distinct messages), made once. */
const equations: ChameleonEquation[] = Array.from({ length: N }, (_, i) => {
  const m = new TextEncoder().encode(`record ${i}: spo2 ${90 + (i % 10)} %`)
  const { hash, opening } = chameleonHash(keys.publicKey, m, rng)
  return chameleonEquation(keys.publicKey, m, hash, opening)
})

/** Ways one equation can be false: s, e or P off by something. */
function spoil(q: ChameleonEquation, how: number, other: ChameleonEquation): ChameleonEquation {
  switch (how % 4) {
    case 0:
      return { ...q, s: (q.s + 1n) % Point.Fn.ORDER }
    case 1:
      return { ...q, e: (q.e + 7n) % Point.Fn.ORDER }
    case 2:
      return { ...q, P: other.P } // another record's P
    default:
      return { ...q, P: q.P.add(Point.BASE) }
  }
}

describe('msmShort (Pippenger, signed digits, scalars below 2^bits)', () => {
  it('agrees with the plain sum and with noble’s pippenger, at every size that picks another window', () => {
    for (const n of [0, 1, 2, 3, 7, 16, 33, 100, 300]) {
      const points = equations.slice(0, n).map((q) => q.P)
      const scalars = points.map(() => bytesToNumberLE(rng(16)))
      const expected = points.reduce((acc, p, i) => acc.add(p.multiplyUnsafe(scalars[i]!)), Point.ZERO)
      expect(msmShort(points, scalars, 128).equals(expected), `n = ${n}`).toBe(true)
      if (n > 0) expect(pippenger(Point, points, scalars).equals(expected)).toBe(true)
    }
    // extreme digits: all-ones weights carry through every window; zero weights add nothing
    const points = equations.slice(0, 40).map((q) => q.P)
    const ones = points.map(() => (1n << 128n) - 1n)
    expect(msmShort(points, ones, 128).equals(points.reduce((a, p) => a.add(p.multiplyUnsafe(ones[0]!)), Point.ZERO))).toBe(true)
    expect(msmShort(points, points.map(() => 0n), 128).equals(Point.ZERO)).toBe(true)
    expect(() => msmShort(points.slice(0, 1), [1n << 128n], 128)).toThrow(RangeError)
    expect(() => msmShort(points.slice(0, 2), [1n], 128)).toThrow(RangeError)
  })
})

describe('batch verification', () => {
  it('a batch of true equations holds, under any weights; an empty batch holds', () => {
    expect(chameleonBatchHolds(Y, equations)).toBe(true)
    expect(chameleonBatchHolds(Y, equations.slice(0, 64), deterministicRng('other weights'))).toBe(true)
    expect(chameleonBatchHolds(Y, [])).toBe(true)
    expect(failingChameleonEquations(Y, equations)).toEqual([])
  })

  it('names every false equation among 1,200 (one or several, anywhere, any kind of damage) (property)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.nat(N - 1), { minLength: 1, maxLength: 12 }), fc.nat(), (bad, how) => {
        const batch = equations.map((q, i) => (bad.includes(i) ? spoil(q, how + i, equations[(i + 1) % N]!) : q))
        expect(chameleonBatchHolds(Y, batch, rng)).toBe(false)
        expect(failingChameleonEquations(Y, batch, rng)).toEqual([...bad].sort((a, b) => a - b))
      }),
      { numRuns: 12 },
    )
  })

  it('batches larger than one draw of the OS CSPRNG (> 4,096 weights, 64 KiB) are checked, not refused', () => {
    // crypto.getRandomValues gives at most 65,536 bytes a call; `chain verify --batch-size` allows 65,536 rows.
    const big = Array.from({ length: 4100 }, (_, i) => equations[i % N]!)
    expect(chameleonBatchHolds(Y, big)).toBe(true)
    big[4099] = spoil(big[4099]!, 0, big[0]!)
    expect(chameleonBatchHolds(Y, big)).toBe(false)
  })

  it('two false equations that cancel each other are still caught: the weights are random', () => {
    // P₁ + D and P₂ − D: the plain sum (all weights 1) would balance; random weights do not.
    const D = Point.BASE.multiply(12345n)
    const batch = [...equations.slice(0, 50)]
    batch[10] = { ...batch[10]!, P: batch[10]!.P.add(D) }
    batch[40] = { ...batch[40]!, P: batch[40]!.P.subtract(D) }
    const sum = batch.reduce((acc, q) => acc.add(q.P).subtract(Y.multiplyUnsafe(q.e)).subtract(Point.BASE.multiplyUnsafe(q.s)), Point.ZERO)
    expect(sum.equals(Point.ZERO)).toBe(true) // the unweighted check would pass
    expect(chameleonBatchHolds(Y, batch)).toBe(false)
    expect(failingChameleonEquations(Y, batch)).toEqual([10, 40])
  })
})
