/**
 * BLS12-381 groups as FABEO uses them: G1 (attribute hashes, key and ciphertext rows),
 * G2 (h^r, h^s), their compressed encodings, and RFC 9380 hashing of attributes to G1.
 */
import { bls12_381 } from '@noble/curves/bls12-381.js'
import type { WeierstrassPoint } from '@noble/curves/abstract/weierstrass.js'
import type { Fp2 } from '@noble/curves/abstract/tower.js'
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js'
import type { Reader } from '../../encoding/binary.ts'

export type G1 = WeierstrassPoint<bigint>
export type G2 = WeierstrassPoint<Fp2>

export const G1Point = bls12_381.G1.Point
export const G2Point = bls12_381.G2.Point
export const ORDER = bls12_381.fields.Fr.ORDER
export const G1_BYTES = 48
export const G2_BYTES = 96
export const SCALAR_BYTES = 32

/**
 * RFC 9380 §3.1 domain separation tag, unique to this application and version:
 * attribute points are H(attr) = hash_to_curve(DST, "attr\0" ‖ attr) on G1 (SSWU, random oracle).
 * A real hash-to-curve matters: FABEO's proof models H as a random oracle into G1 (Riepel–Wee,
 * CCS 2022); a hash of the form g^h(x), as in the `rabe` crate, has a known discrete log and lets a
 * key for one attribute be turned into a key for any attribute.
 */
export const ATTRIBUTE_DST = 'CARELEDGER-V01-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_'

const utf8 = new TextEncoder()
const CACHE_LIMIT = 4096
/** Attributes promoted to an 8-bit table (0.8 MB and ~0.1 s each): the gateway's stream policies. */
const HOT_LIMIT = 32
const HOT_AFTER_USES = 3
const attributeCache = new Map<string, { point: G1; uses: number }>()
let hot = 0

/**
 * H(attr) on G1, memoised: the gateway encrypts under the same few attributes all day. A cached
 * point carries a 4-bit window table (its scalar multiplications are ~4× cheaper than a bare
 * point's); an attribute used again and again — a stream's policy, sealed every few seconds — is
 * promoted to an 8-bit table, ~2× cheaper again.
 */
export function hashAttribute(attr: string): G1 {
  let entry = attributeCache.get(attr)
  if (!entry) {
    if (attributeCache.size >= CACHE_LIMIT) clearAttributeCache()
    const point = bls12_381.G1.hashToCurve(utf8.encode(`attr\0${attr}`), { DST: ATTRIBUTE_DST }) as G1
    point.precompute(4, true)
    entry = { point, uses: 0 }
    attributeCache.set(attr, entry)
  }
  if (++entry.uses === HOT_AFTER_USES && hot < HOT_LIMIT) {
    hot++
    entry.point.precompute(8, true)
  }
  return entry.point
}

/** Drop the memo (benchmarks use it to measure the cold path). */
export function clearAttributeCache(): void {
  attributeCache.clear()
  hot = 0
}

/** FABEO's extra hash point H(b), outside the attribute domain ("b\0" never begins an attribute). */
export const HB: G1 = (() => {
  const p = bls12_381.G1.hashToCurve(utf8.encode('fabeo-b\0'), { DST: ATTRIBUTE_DST }) as G1
  p.precompute(8, false)
  return p
})()

/**
 * k·h for the G2 generator h with an 8-bit window table (2.7 MB, built once on first use, ~0.5 s):
 * about 30% faster than noble's default table for BASE, and Encaps does two of these every seal.
 */
let g2Table: G2 | undefined
export function mulG2Generator(k: bigint): G2 {
  if (!g2Table) {
    g2Table = G2Point.fromAffine(G2Point.BASE.toAffine())
    g2Table.precompute(8, false)
  }
  return g2Table.multiply(k)
}

/** k·P that accepts k = 0 (noble rejects it) — LSSS shares can legitimately be zero. */
export function mulG1(p: G1, k: bigint): G1 {
  k %= ORDER
  return k === 0n ? G1Point.ZERO : p.multiply(k)
}

export const scalarToBytes = (k: bigint): Uint8Array => numberToBytesBE(k, SCALAR_BYTES)

// ---- decoding with typed errors -------------------------------------------------------------

function pointProblem(e: unknown): { reason: string; problem: string } {
  const msg = e instanceof Error ? e.message : String(e)
  if (/subgroup/i.test(msg)) return { reason: 'NOT_IN_SUBGROUP', problem: 'point is not in the prime-order subgroup' }
  if (/curve|compressed|sqrt|square root|equation/i.test(msg)) return { reason: 'NOT_ON_CURVE', problem: 'point is not on the curve' }
  return { reason: 'BAD_POINT', problem: `point encoding is invalid (${msg})` }
}

function readPoint<P extends { is0(): boolean }>(r: Reader, bytes: number, parse: (b: Uint8Array) => P, field: string): P {
  const raw = r.take(bytes)
  let p: P
  try {
    p = parse(raw)
  } catch (e) {
    const { reason, problem } = pointProblem(e)
    return r.fail(reason, `${field}: ${problem}`, { field })
  }
  if (p.is0()) r.fail('IDENTITY_POINT', `${field}: the identity point is not allowed`, { field })
  return p
}

export const readG1 = (r: Reader, field: string): G1 => readPoint(r, G1_BYTES, (b) => G1Point.fromBytes(b), field)
export const readG2 = (r: Reader, field: string): G2 => readPoint(r, G2_BYTES, (b) => G2Point.fromBytes(b), field)

/** A scalar in [1, r): 32 bytes big-endian, canonical. */
export function readScalar(r: Reader, field: string): bigint {
  const k = bytesToNumberBE(r.take(SCALAR_BYTES))
  if (k === 0n || k >= ORDER) r.fail('SCALAR_OUT_OF_RANGE', `${field}: scalar must be in [1, r)`, { field })
  return k
}

// ---- pairing products -----------------------------------------------------------------------

type Precompute = ReturnType<typeof bls12_381.utils.calcPairingPrecomputes>
const lineCache = new WeakMap<G2, Precompute>()

/** Miller-loop line coefficients of a G2 point, memoised per point object (a key's K0 is reused). */
function linesOf(q: G2): Precompute {
  let pre = lineCache.get(q)
  if (!pre) {
    pre = bls12_381.utils.calcPairingPrecomputes(q)
    lineCache.set(q, pre)
  }
  return pre
}

/**
 * Π e(P_i, Q_i) with one shared final exponentiation. Pairs with an identity on either side
 * contribute 1 and are skipped. Unlike noble's pairingBatch it does not re-run the subgroup
 * checks: every point here was validated when decoded or produced by our own arithmetic.
 */
export function pairingProduct(pairs: readonly { g1: G1; g2: G2 }[]): import('./gt.ts').GT {
  const terms: [Precompute, bigint, bigint][] = []
  for (const { g1, g2 } of pairs) {
    if (g1.is0() || g2.is0()) continue
    const { x, y } = g1.toAffine()
    terms.push([linesOf(g2), x, y])
  }
  const F12 = bls12_381.fields.Fp12
  return terms.length ? F12.finalExponentiate(bls12_381.millerLoopBatch(terms)) : F12.ONE
}
