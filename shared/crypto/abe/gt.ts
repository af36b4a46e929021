/**
 * The pairing target group GT ⊂ Fp12* of BLS12-381: fast exponentiation and membership.
 *
 * Both use one fact: in GT, x^p = x^u where u = −0xd201000000010000 is the BLS parameter,
 * because p ≡ u (mod r) for BLS12 curves (p = (u−1)²·r/3 + u). With U = |u| and r < U⁴, any
 * exponent e < r splits into four 64-bit digits e = d0 + d1·U + d2·U² + d3·U³, and
 * x^(U^i) is a Frobenius map plus a conjugation (inversion in the cyclotomic subgroup), so
 * x^e costs 64 cyclotomic squarings (Granger–Scott) and ≤ 64 multiplications with a 16-entry
 * table (Straus–Shamir), instead of noble's generic 255-bit square-and-multiply.
 *
 * Membership follows Scott, "A note on group membership tests for G1, G2 and GT on BLS
 * pairing-friendly curves" (ePrint 2021/1130, §6): x is in the cyclotomic subgroup and x^p = x^u.
 * test/crypto/gt.test.ts cross-checks it against the definition x^r = 1.
 */
import { bls12_381 } from '@noble/curves/bls12-381.js'
import type { Fp12 } from '@noble/curves/abstract/tower.js'

export type GT = Fp12

const F12 = bls12_381.fields.Fp12
export const GT_ORDER = bls12_381.fields.Fr.ORDER
/** |u| for BLS12-381. */
const U = 0xd201000000010000n
const DIGIT_BITS = 64

export const gtOne = (): GT => F12.ONE
export const gtEquals = (a: GT, b: GT): boolean => F12.eql(a, b)
export const gtMul = (a: GT, b: GT): GT => F12.mul(a, b)
/** Inverse of a GT element (conjugation is the inverse inside the cyclotomic subgroup). */
export const gtInv = (a: GT): GT => F12.conjugate(a)

/** x^e for x in GT and any e ≥ 0 (reduced mod r). Variable-time in e, like noble's pow. */
export function gtPow(x: GT, e: bigint): GT {
  e %= GT_ORDER
  if (e < 0n) e += GT_ORDER
  if (e === 0n) return F12.ONE
  // bases[i] = x^(U^i)
  const f1 = F12.frobeniusMap(x, 1)
  const bases = [x, F12.conjugate(f1), F12.frobeniusMap(x, 2), F12.conjugate(F12.frobeniusMap(x, 3))]
  const digits = [0n, 0n, 0n, 0n]
  for (let i = 0; i < 4; i++) {
    digits[i] = e % U
    e /= U
  }
  // table[m] = product of bases[i] for the bits i set in m
  const table: GT[] = new Array(16)
  table[0] = F12.ONE
  for (let m = 1; m < 16; m++) {
    const low = m & -m
    const i = 31 - Math.clz32(low)
    table[m] = m === low ? bases[i]! : F12.mul(table[m ^ low]!, bases[i]!)
  }
  let acc: GT | null = null
  for (let bit = DIGIT_BITS - 1; bit >= 0; bit--) {
    if (acc) acc = F12._cyclotomicSquare(acc)
    const b = BigInt(bit)
    const m =
      Number((digits[0]! >> b) & 1n) |
      (Number((digits[1]! >> b) & 1n) << 1) |
      (Number((digits[2]! >> b) & 1n) << 2) |
      (Number((digits[3]! >> b) & 1n) << 3)
    if (m) acc = acc ? F12.mul(acc, table[m]!) : table[m]!
  }
  return acc ?? F12.ONE
}

/** x^U by cyclotomic squaring (U has only six bits set). */
function cyclotomicPowU(x: GT): GT {
  let acc = x
  for (let bit = 62; bit >= 0; bit--) {
    acc = F12._cyclotomicSquare(acc)
    if ((U >> BigInt(bit)) & 1n) acc = F12.mul(acc, x)
  }
  return acc
}

/**
 * Elements already shown to be in GT (by gtFromBytes or an earlier isInGT), frozen so they cannot
 * change afterwards: decoding a transformed ciphertext checks membership, and Finish must not pay
 * for the same check twice (~3.4 ms, a third of Finish here).
 */
const knownInGT = new WeakSet<object>()

/** True iff x lies in the order-r subgroup GT (Scott 2021, §6). */
export function isInGT(x: GT): boolean {
  if (knownInGT.has(x)) return true
  if (!checkInGT(x)) return false
  freezeDeep(x)
  knownInGT.add(x)
  return true
}

function freezeDeep(o: object): void {
  for (const v of Object.values(o)) if (typeof v === 'object' && v !== null) freezeDeep(v)
  Object.freeze(o)
}

/** The membership test itself, without the memo (benchmarks, tests). */
export function checkInGT(x: GT): boolean {
  if (F12.is0(x)) return false
  // Cyclotomic subgroup: x^(p^4 − p^2 + 1) = 1  ⇔  x^(p^4) · x = x^(p^2).
  if (!F12.eql(F12.mul(F12.frobeniusMap(x, 4), x), F12.frobeniusMap(x, 2))) return false
  // x^p = x^u = (x^U)^-1.
  return F12.eql(F12.frobeniusMap(x, 1), F12.conjugate(cyclotomicPowU(x)))
}

export const GT_BYTES = 576

export const gtToBytes = (x: GT): Uint8Array => F12.toBytes(x)

/**
 * Decode 576 bytes; returns null unless the encoding is canonical (every coordinate < p) and
 * the element is in GT. Callers turn null into their own typed error.
 */
export function gtFromBytes(bytes: Uint8Array): GT | null {
  if (bytes.length !== GT_BYTES) return null
  let x: GT
  try {
    x = F12.fromBytes(bytes)
  } catch {
    return null
  }
  const again = F12.toBytes(x)
  for (let i = 0; i < GT_BYTES; i++) if (again[i] !== bytes[i]) return null
  return isInGT(x) ? x : null
}
