/**
 * Batch verification of format-2 chameleon openings (chameleon.ts). Each opening's check ends in
 * the linear equation P_i = e_i·Y + s_i·G (chameleonEquation does the rest: the canonical decoding
 * of P_i, r_i = C_i + f(P_i), e_i = H_e(Y, m_i, r_i)). n of them are checked at once with random
 * 128-bit weights z_i — the small-exponents test of Bellare, Garay and Rabin ("Fast Batch
 * Verification for Modular Exponentiation and Digital Signatures", Eurocrypt 1998, §3.3):
 *
 *   Σ z_i·P_i  =  (Σ z_i·e_i mod ℓ)·Y + (Σ z_i·s_i mod ℓ)·G
 *
 * one multi-scalar multiplication of n points by 128-bit scalars and two by full ones, instead of
 * n double-scalar multiplications. Soundness (docs/crypto.md §Batch verification): if equation j
 * is false, D_j = P_j − e_j·Y − s_j·G ≠ 0; ristretto255 has prime order ℓ > 2^252, so for any
 * fixed other weights z ↦ z·D_j is injective on [0, ℓ) and at most one of the 2^128 values of z_j
 * makes the sum vanish: the batch passes with probability ≤ 2^-128. That needs weights the writer
 * of the data could not predict: they are drawn from `rng` (the OS CSPRNG in production) when the
 * batch is checked, never derived from the data.
 *
 * A failing batch is bisected (each half re-checked with fresh weights; a half is skipped when its
 * sibling passed, since the failure must then be in it) down to `LEAF` equations, checked one by
 * one, so every false equation is named; k bad ones in n cost O(k·log(n/k)) extra batches.
 *
 * Where the native addon is built (ristretto-native.ts, curve25519-dalek) a batch is first sent to
 * it as bytes: its yes is taken, its no is re-judged here by noble with the same weights, so the
 * verdicts and the bisection are those of noble (docs/crypto.md §The native ristretto255 addon).
 */
import { ristretto255 } from '@noble/curves/ed25519.js'
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js'
import { systemRng, type Rng } from './random.ts'
import { chameleonEquationEncoding, chameleonEquationHolds, chameleonPointBytes, type ChameleonEquation, type ChameleonPoint } from './chameleon.ts'
import { ristrettoNative } from './ristretto-native.ts'

const ℓ = ristretto255.Point.Fn.ORDER
const G = ristretto255.Point.BASE
const ZERO = ristretto255.Point.ZERO
const WEIGHT_BITS = 128
/** Below this many equations a failing batch's equations are checked one by one. */
const LEAF = 4

/**
 * Σ scalars_i·points_i for scalars < 2^bits, by Pippenger's bucket method with signed digits in
 * (−2^(c−1), 2^(c−1)]. noble's `pippenger` walks all 253 bits of ℓ whatever the scalars (adding
 * every point to a bucket in each window): with 128-bit weights that is twice the work, measured
 * 104 against 44 µs a point at n = 4096. Public inputs only (variable time).
 */
export function msmShort(points: readonly ChameleonPoint[], scalars: readonly bigint[], bits: number): ChameleonPoint {
  const n = points.length
  if (n !== scalars.length) throw new RangeError('msmShort: as many scalars as points')
  if (n === 0) return ZERO
  const c = Math.max(2, Math.round(Math.log2(n)) - 2)
  const windows = Math.ceil(bits / c) + 1 // + 1: the last carry
  const half = 1 << (c - 1)
  const mask = BigInt((1 << c) - 1)
  const shift = BigInt(c)
  const digits = new Int32Array(n * windows)
  for (let j = 0; j < n; j++) {
    let k = scalars[j]!
    if (k < 0n || k >> BigInt(bits) !== 0n) throw new RangeError(`msmShort: scalar ${j} is not below 2^${bits}`)
    let carry = 0
    for (let w = 0; w < windows; w++) {
      let d = Number(k & mask) + carry
      k >>= shift
      carry = d > half ? 1 : 0
      if (carry) d -= 1 << c
      digits[j * windows + w] = d
    }
  }
  const buckets: ChameleonPoint[] = new Array(half + 1)
  let sum = ZERO
  for (let w = windows - 1; w >= 0; w--) {
    if (w !== windows - 1) for (let i = 0; i < c; i++) sum = sum.double()
    buckets.fill(ZERO)
    for (let j = 0; j < n; j++) {
      const d = digits[j * windows + w]!
      if (d > 0) buckets[d] = buckets[d]!.add(points[j]!)
      else if (d < 0) buckets[-d] = buckets[-d]!.subtract(points[j]!)
    }
    // Σ d·bucket_d as running sums: bucket_half counted half times, …, bucket_1 once.
    let running = ZERO
    let acc = ZERO
    for (let d = half; d > 0; d--) {
      running = running.add(buckets[d]!)
      acc = acc.add(running)
    }
    sum = sum.add(acc)
  }
  return sum
}

/** Weights drawn per call of `rng`: the OS CSPRNG (crypto.getRandomValues) gives at most 65,536 bytes a call. */
const WEIGHTS_PER_DRAW = 4096

/** 128-bit weights, one per equation, little-endian from `rng`: as numbers, and as the n×16 bytes they came from. */
function weights(rng: Rng, n: number): { z: bigint[]; bytes: Uint8Array } {
  const z: bigint[] = new Array(n)
  const all = new Uint8Array(16 * n)
  for (let at = 0; at < n; at += WEIGHTS_PER_DRAW) {
    const m = Math.min(WEIGHTS_PER_DRAW, n - at)
    const bytes = rng(16 * m)
    all.set(bytes.subarray(0, 16 * m), 16 * at)
    for (let i = 0; i < m; i++) z[at + i] = bytesToNumberLE(bytes.subarray(16 * i, 16 * i + 16))
  }
  return { z, bytes: all }
}

/** Does every equation hold? One random linear combination (error ≤ 2^-128 when one does not). */
export function chameleonBatchHolds(Y: ChameleonPoint, eqs: readonly ChameleonEquation[], rng: Rng = systemRng): boolean {
  if (eqs.length === 0) return true
  if (eqs.length === 1) return leafHolds(Y, eqs[0]!)
  const { z, bytes } = weights(rng, eqs.length)
  let a = 0n
  let b = 0n
  for (let i = 0; i < eqs.length; i++) {
    a += z[i]! * eqs[i]!.e
    b += z[i]! * eqs[i]!.s
  }
  a %= ℓ
  b %= ℓ
  // The native addon's yes is taken; its no (or no addon) is re-judged by noble, same weights.
  if (nativeBatchHolds(Y, eqs, bytes, a, b)) return true
  let points: ChameleonPoint[]
  try {
    points = eqs.map((q) => q.P)
  } catch {
    return false // a P the addon decoded and noble refuses: the batch fails, bisection names it
  }
  const left = msmShort(points, z, WEIGHT_BITS)
  const right = Y.multiplyUnsafe(a).add(G.multiplyUnsafe(b))
  return left.equals(right)
}

/**
 * The batch equation by the native addon (ristretto-native.ts), when it is loaded and vouched for
 * every P's bytes (chameleonEquation); false means "not shown", never "does not hold".
 */
function nativeBatchHolds(Y: ChameleonPoint, eqs: readonly ChameleonEquation[], weightBytes: Uint8Array, a: bigint, b: bigint): boolean {
  if (!ristrettoNative) return false
  const points = new Uint8Array(32 * eqs.length)
  for (let i = 0; i < eqs.length; i++) {
    const bytes = chameleonEquationEncoding(eqs[i]!)
    if (!bytes) return false
    points.set(bytes, 32 * i)
  }
  return ristrettoNative.batchHolds(chameleonPointBytes(Y), points, weightBytes, numberToBytesLE(a, 32), numberToBytesLE(b, 32))
}

/**
 * The indices (ascending) of the equations that do not hold: [] after one batch check when all
 * hold; otherwise bisection, each part re-checked with fresh weights.
 */
export function failingChameleonEquations(Y: ChameleonPoint, eqs: readonly ChameleonEquation[], rng: Rng = systemRng): number[] {
  const failing: number[] = []
  /** [lo, hi): `knownBad` when the caller already knows some equation in it fails. */
  const visit = (lo: number, hi: number, knownBad: boolean): void => {
    if (hi - lo <= LEAF) {
      for (let i = lo; i < hi; i++) if (!leafHolds(Y, eqs[i]!)) failing.push(i)
      return
    }
    if (!knownBad && chameleonBatchHolds(Y, eqs.slice(lo, hi), rng)) return
    const mid = (lo + hi) >>> 1
    const before = failing.length
    visit(lo, mid, false)
    // This range fails (a batch of true equations always passes), so if the left half turned out
    // clean the failure is in the right half: no need to check it as a whole.
    visit(mid, hi, failing.length === before)
  }
  visit(0, eqs.length, false)
  return failing
}

/** One equation by noble (with libsodium's yes, chameleon.ts); a P noble refuses to decode fails it. */
function leafHolds(Y: ChameleonPoint, q: ChameleonEquation): boolean {
  try {
    return chameleonEquationHolds(Y, q)
  } catch {
    return false
  }
}
