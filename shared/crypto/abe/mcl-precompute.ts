/**
 * What makes the mcl backend fast beyond mcl's own routines, all on mcl's C API:
 *
 * - Fixed-base comb tables (Lim–Lee style, 64 windows of 4 bits) for bases used again and again:
 *   the G2 generator, H(b), hot attribute points and the master public key e(g,h)^α. A
 *   multiplication is then 64 additions (or 64 GT products) instead of ~255 doublings.
 *   Uniform: every window adds its entry, also for a zero digit. For points the entries are offset
 *   by a fixed point Z (T[i][d] = d·16^i·B + Z, never the identity, so mcl's addition never takes
 *   its identity shortcut), and 64·Z is subtracted once at the start.
 * - The Frobenius map x ↦ x^p on GT, which mcl-wasm does not export: for x = Σ c_k w^k (k = 0…5,
 *   Fp12 = Fp2[w]/(w^6 − ξ), ξ = 1 + i), x^p = Σ conj(c_k)·γ_k·w^k with γ_k = ξ^(k(p−1)/6).
 *   It gives GT exponentiation by the 4-way split of gt.ts and Scott's membership test; the
 *   backend checks it against x^p = x^(p mod r) on GT before it is used.
 *
 * Tables live in the WebAssembly heap (G1 147 KB, G2 295 KB, GT 590 KB each); their number is
 * bounded by the backend, and a table is freed when it is evicted.
 */
import { FP, GT_WORDS, type Heap } from './mcl-heap.ts'

const WINDOWS = 64
const DIGITS = 16

export interface Comb {
  /** Start of the 64 × 16 entries in the WebAssembly heap; 0 once freed. */
  ptr: number
  readonly entryBytes: number
  /** −64·Z for point tables; unused for GT. */
  readonly correction: Uint32Array | null
}

type Fn = (...args: number[]) => number
const fn = (heap: Heap, name: string): Fn => {
  const f = heap.mod[`_mclBn${name}` as `_mclBn${string}`]
  if (!f) throw new Error(`mcl: ${name} is not exported`)
  return f
}

/** Table for k·B in group `g` ('G1' | 'G2', `words` per point), offset by the point Z. */
export function buildPointComb(heap: Heap, g: 'G1' | 'G2', words: number, base: Uint32Array, offset: Uint32Array): Comb {
  const add = fn(heap, `${g}_add`)
  const dbl = fn(heap, `${g}_dbl`)
  const neg = fn(heap, `${g}_neg`)
  const entryBytes = words * 4
  const ptr = heap.mod._malloc(WINDOWS * DIGITS * entryBytes)
  if (!ptr) throw new Error('mcl: out of WebAssembly memory for a table')
  const [, , , , , , B, T] = heap.slot as [number, number, number, number, number, number, number, number]
  heap.put(B, base)
  for (let i = 0; i < WINDOWS; i++) {
    const row = ptr + i * DIGITS * entryBytes
    heap.put(row, offset)
    for (let d = 1; d < DIGITS; d++) add(row + d * entryBytes, row + (d - 1) * entryBytes, B)
    for (let s = 0; s < 4; s++) {
      dbl(T, B)
      heap.put(B, heap.get(T, words))
    }
  }
  fn(heap, `${g}_normalizeVec`)(ptr, ptr, WINDOWS * DIGITS)
  // correction = −64·Z
  heap.put(B, offset)
  for (let s = 0; s < 6; s++) {
    dbl(T, B)
    heap.put(B, heap.get(T, words))
  }
  neg(T, B)
  return { ptr, entryBytes, correction: heap.get(T, words) }
}

/** The 64 base-16 digits of k < 2^256, least significant first. */
function nibbles(k: bigint): Uint8Array {
  const hex = k.toString(16).padStart(WINDOWS, '0')
  const out = new Uint8Array(WINDOWS)
  for (let i = 0; i < WINDOWS; i++) out[i] = parseInt(hex[WINDOWS - 1 - i]!, 16)
  return out
}

/** k·B (k < 2^256) from a point table: 64 additions whatever k's digits. */
export function combMultiply(heap: Heap, g: 'G1' | 'G2', comb: Comb, k: bigint): Uint32Array {
  const add = g === 'G1' ? heap.mod._mclBnG1_add! : heap.mod._mclBnG2_add!
  const words = comb.entryBytes / 4
  const digits = nibbles(k)
  let [, , , , , , acc, next] = heap.slot as [number, number, number, number, number, number, number, number]
  heap.put(acc, comb.correction!)
  for (let i = 0; i < WINDOWS; i++) {
    add(next, acc, comb.ptr + (i * DIGITS + digits[i]!) * comb.entryBytes)
    ;[acc, next] = [next, acc]
  }
  return heap.get(acc, words)
}

/** Table for x^e in GT: T[i][d] = x^(d·16^i). */
export function buildGtComb(heap: Heap, x: Uint32Array, one: Uint32Array): Comb {
  const mul = fn(heap, 'GT_mul')
  const sqr = fn(heap, 'GT_sqr')
  const entryBytes = GT_WORDS * 4
  const ptr = heap.mod._malloc(WINDOWS * DIGITS * entryBytes)
  if (!ptr) throw new Error('mcl: out of WebAssembly memory for a table')
  const [, , , , , , X, T] = heap.slot as [number, number, number, number, number, number, number, number]
  heap.put(X, x)
  for (let i = 0; i < WINDOWS; i++) {
    const row = ptr + i * DIGITS * entryBytes
    heap.put(row, one)
    for (let d = 1; d < DIGITS; d++) mul(row + d * entryBytes, row + (d - 1) * entryBytes, X)
    for (let s = 0; s < 4; s++) {
      sqr(T, X)
      heap.put(X, heap.get(T, GT_WORDS))
    }
  }
  return { ptr, entryBytes, correction: null }
}

/** x^e (e < 2^256) from a GT table: 64 products whatever e's digits (entry 0 is 1, multiplied all the same). */
export function combPow(heap: Heap, comb: Comb, e: bigint, one: Uint32Array): Uint32Array {
  const mul = heap.mod._mclBnGT_mul!
  const digits = nibbles(e)
  let [, , , , , , acc, next] = heap.slot as [number, number, number, number, number, number, number, number]
  heap.put(acc, one)
  for (let i = 0; i < WINDOWS; i++) {
    mul(next, acc, comb.ptr + (i * DIGITS + digits[i]!) * comb.entryBytes)
    ;[acc, next] = [next, acc]
  }
  return heap.get(acc, GT_WORDS)
}

export function freeComb(heap: Heap, comb: Comb): void {
  if (comb.ptr) heap.mod._free(comb.ptr)
  comb.ptr = 0
}

// ---- Frobenius on GT ------------------------------------------------------------------------

/** Fp2 arithmetic on bigints, only to compute the six constants γ_k once. */
function fp2Pow(p: bigint, base: [bigint, bigint], e: bigint): [bigint, bigint] {
  const mul = ([a, b]: [bigint, bigint], [c, d]: [bigint, bigint]): [bigint, bigint] => [(((a * c - b * d) % p) + p) % p, (a * d + b * c) % p]
  let acc: [bigint, bigint] = [1n, 0n]
  let x = base
  for (; e > 0n; e >>= 1n) {
    if (e & 1n) acc = mul(acc, x)
    x = mul(x, x)
  }
  return acc
}

/** Where the six Fp2 coefficients of an Fp12 sit in mcl's layout (a0 a1 a2 b0 b1 b2), as powers of w. */
const W_POWER = [0, 2, 4, 1, 3, 5] as const

export interface Frobenius {
  /** x^(p^times) for an element of Fp12 in mcl's internal words. */
  (x: Uint32Array, times: number): Uint32Array
}

/** Build the Frobenius map for field modulus p: γ_k = ξ^(k(p−1)/6) loaded into the heap once. */
export function makeFrobenius(heap: Heap, p: bigint): Frobenius {
  const setBE = fn(heap, 'Fp_setBigEndianMod')
  const negFp = fn(heap, 'Fp_neg')
  const mulFp2 = fn(heap, 'Fp2_mul')
  const gammas = heap.mod._malloc(6 * 2 * FP)
  if (!gammas) throw new Error('mcl: out of WebAssembly memory')
  const [, , , , , scratch] = heap.slot as [number, number, number, number, number, number]
  for (let k = 0; k < 6; k++) {
    const g = fp2Pow(p, [1n, 1n], (BigInt(k) * (p - 1n)) / 6n)
    g.forEach((v, half) => {
      const be = new Uint8Array(FP)
      for (let i = FP - 1, t = v; i >= 0; i--, t >>= 8n) be[i] = Number(t & 0xffn)
      heap.putBytes(scratch, be)
      if (setBE(gammas + k * 2 * FP + half * FP, scratch, FP) !== 0) throw new Error('mcl: Frobenius constant not accepted')
    })
  }
  const [, , , , , , X] = heap.slot as [number, number, number, number, number, number, number]
  return (x, times) => {
    heap.put(X, x)
    for (let t = 0; t < times; t++) {
      for (let j = 0; j < 6; j++) {
        const c = X + j * 2 * FP
        negFp(c + FP, c + FP) // conjugate: a + b·i ↦ a − b·i
        if (W_POWER[j] !== 0) mulFp2(c, c, gammas + W_POWER[j]! * 2 * FP)
      }
    }
    return heap.get(X, GT_WORDS)
  }
}
