/**
 * The pairing target group GT ⊂ Fp12* of BLS12-381: its encoding, and the noble backend's
 * exponentiation and membership test on noble's Fp12 (the mcl backend has its own, backend-mcl.ts).
 *
 * Both use one fact: in GT, x^p = x^u where u = −0xd201000000010000 is the BLS parameter,
 * because p ≡ u (mod r) for BLS12 curves (p = (u−1)²·r/3 + u). With U = |u| and r < U⁴, any
 * exponent e < r splits into four 64-bit digits e = d0 + d1·U + d2·U² + d3·U³, and
 * x^(U^i) is a Frobenius map plus a conjugation (inversion in the cyclotomic subgroup), so
 * x^e costs 64 cyclotomic squarings (Granger–Scott, "Faster squaring in the cyclotomic subgroup of
 * sixth degree extensions", PKC 2010) and 64 multiplications with a 16-entry table (Straus–Shamir),
 * the same 64 + 64 whatever the digits (ladder.ts), instead of noble's generic square-and-multiply.
 *
 * Membership follows Scott, "A note on group membership tests for G1, G2 and GT on BLS
 * pairing-friendly curves" (ePrint 2021/1130, §6): x is in the cyclotomic subgroup and x^p = x^u.
 * test/crypto/gt.test.ts cross-checks it against the definition x^r = 1, and
 * test/crypto/backends.test.ts against mcl's own test (which is x^r = 1).
 */
import { bls12_381 } from '@noble/curves/bls12-381.js'
import type { Fp12 } from '@noble/curves/abstract/tower.js'
import type { GT } from './backend.ts'
import { backend } from './backend.ts'
import { jointPowUniform, type MulOps } from './ladder.ts'

export type { GT } from './backend.ts'
export type { Fp12 }

const F12 = bls12_381.fields.Fp12
export const GT_ORDER = bls12_381.fields.Fr.ORDER
export const GT_BYTES = 576
/** |u| for BLS12-381. */
const U = 0xd201000000010000n
const DIGIT_BITS = 64

/** The 576-byte encoding (12 big-endian Fp coordinates in noble's order), whatever the backend. */
export const gtToBytes = (x: GT): Uint8Array => x.toBytes()

/**
 * Decode 576 bytes with the backend in force; returns null unless the encoding is canonical
 * (every coordinate < p) and the element is in GT. Callers turn null into their own typed error.
 */
export const gtFromBytes = (bytes: Uint8Array): GT | null => backend().gtFromBytes(bytes)

/** Cyclotomic-subgroup arithmetic on noble's Fp12, as the uniform ladder wants it. */
export const fp12CyclotomicOps: MulOps<Fp12> = {
  one: () => F12.ONE,
  mul: (a, b) => F12.mul(a, b),
  sqr: (a) => F12._cyclotomicSquare(a),
}

/**
 * x^e for x in GT and any e ≥ 0 (reduced mod r): 64 cyclotomic squarings and 64 multiplications
 * for every e (`ops` lets the tests count them).
 */
export function fp12Pow(x: Fp12, e: bigint, ops: MulOps<Fp12> = fp12CyclotomicOps): Fp12 {
  e %= GT_ORDER
  if (e < 0n) e += GT_ORDER
  // bases[i] = x^(U^i) = x^(u^i)·(sign) : Frobenius maps, conjugated for odd i (u is negative).
  const bases = [x, F12.conjugate(F12.frobeniusMap(x, 1)), F12.frobeniusMap(x, 2), F12.conjugate(F12.frobeniusMap(x, 3))]
  const digits: bigint[] = []
  for (let i = 0; i < 4; i++) {
    digits.push(e % U)
    e /= U
  }
  return jointPowUniform(ops, bases, digits, DIGIT_BITS)
}

/** x^U by cyclotomic squaring (U is public and has only six bits set). */
function cyclotomicPowU(x: Fp12): Fp12 {
  let acc = x
  for (let bit = 62; bit >= 0; bit--) {
    acc = F12._cyclotomicSquare(acc)
    if ((U >> BigInt(bit)) & 1n) acc = F12.mul(acc, x)
  }
  return acc
}

/**
 * Elements already shown to be in GT (by decoding or an earlier check), frozen so they cannot
 * change afterwards: decoding a transformed ciphertext checks membership, and Finish must not pay
 * for the same check twice (~3.4 ms with noble, a third of Finish).
 */
const knownInGT = new WeakSet<object>()

/** True iff x lies in the order-r subgroup GT (Scott 2021, §6), memoised for frozen members. */
export function fp12InGT(x: Fp12): boolean {
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
export function checkInGT(x: Fp12): boolean {
  if (F12.is0(x)) return false
  // Cyclotomic subgroup: x^(p^4 − p^2 + 1) = 1  ⇔  x^(p^4) · x = x^(p^2).
  if (!F12.eql(F12.mul(F12.frobeniusMap(x, 4), x), F12.frobeniusMap(x, 2))) return false
  // x^p = x^u = (x^U)^-1.
  return F12.eql(F12.frobeniusMap(x, 1), F12.conjugate(cyclotomicPowU(x)))
}

/** Decode into noble's Fp12: null unless canonical (re-encoding gives the same bytes) and in GT. */
export function fp12FromBytes(bytes: Uint8Array): Fp12 | null {
  if (bytes.length !== GT_BYTES) return null
  let x: Fp12
  try {
    x = F12.fromBytes(bytes)
  } catch {
    return null
  }
  const again = F12.toBytes(x)
  for (let i = 0; i < GT_BYTES; i++) if (again[i] !== bytes[i]) return null
  return fp12InGT(x) ? x : null
}
