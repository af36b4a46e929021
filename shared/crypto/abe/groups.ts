/**
 * BLS12-381 groups as FABEO uses them: G1 (attribute hashes, key and ciphertext rows),
 * G2 (h^r, h^s), their compressed encodings, and RFC 9380 hashing of attributes to G1 — on the
 * pairing backend in force (backend.ts; noble by default, mcl once `useBackend` chose it).
 */
import { bls12_381 } from '@noble/curves/bls12-381.js'
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js'
import type { Reader } from '../../encoding/binary.ts'
import { backend, isPointFault, type G1, type G2, type GT, type PairingBackend, type PointFault } from './backend.ts'
import './backend-noble.ts'

export type { G1, G2 } from './backend.ts'

export const ORDER = bls12_381.fields.Fr.ORDER
export const G1_BYTES = 48
export const G2_BYTES = 96
export const SCALAR_BYTES = 32

/**
 * RFC 9380 §3.1 domain separation tag, unique to this application and version:
 * attribute points are H(attr) = hash_to_curve(DST, "attr\0" ‖ attr) on G1 (SSWU, random oracle).
 * A real hash-to-curve matters: a hash of the form g^h(x) has a known discrete log and lets a
 * key for one attribute be turned into a key for any attribute (the flaw of hashing to g^H(x),
 * as rabe does; see docs/crypto.md).
 */
export const ATTRIBUTE_DST = 'CARELEDGER-V01-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_'

/** H(attr) on G1, memoised by the backend (with a window table for attributes used again and again). */
export const hashAttribute = (attr: string): G1 => backend().attributePoint(`attr\0${attr}`, ATTRIBUTE_DST)

/** Drop the memo (benchmarks use it to measure the cold path). */
export const clearAttributeCache = (): void => backend().clearCaches()

const hbOf = new WeakMap<PairingBackend, G1>()
/** FABEO's extra hash point H(b), outside the attribute domain ("fabeo-b\0" never begins "attr\0"). */
export function hb(): G1 {
  const b = backend()
  let p = hbOf.get(b)
  if (!p) {
    p = b.fixedBaseG1(b.hashToG1(new TextEncoder().encode('fabeo-b\0'), ATTRIBUTE_DST))
    hbOf.set(b, p)
  }
  return p
}

const eghOf = new WeakMap<PairingBackend, GT>()
/** e(g, h) for the standard generators, computed once per backend. */
export function egh(): GT {
  const b = backend()
  let x = eghOf.get(b)
  if (!x) {
    x = b.pairing(b.g1Base(), b.g2Base())
    eghOf.set(b, x)
  }
  return x
}

/** k·h for the G2 generator h (a window table: Encaps does two of these every seal). */
export const mulG2Generator = (k: bigint): G2 => backend().mulG2Base(k)

export const scalarToBytes = (k: bigint): Uint8Array => numberToBytesBE(k, SCALAR_BYTES)

// ---- decoding with typed errors -------------------------------------------------------------

function readPoint<P extends G1 | G2>(r: Reader, bytes: number, parse: (b: Uint8Array) => P | PointFault, field: string): P {
  const p = parse(r.take(bytes))
  if (isPointFault(p)) return r.fail(p.reason, `${field}: ${p.detail}`, { field })
  if (p.is0()) r.fail('IDENTITY_POINT', `${field}: the identity point is not allowed`, { field })
  return p
}

export const readG1 = (r: Reader, field: string): G1 => readPoint(r, G1_BYTES, (b) => backend().g1FromBytes(b), field)
export const readG2 = (r: Reader, field: string): G2 => readPoint(r, G2_BYTES, (b) => backend().g2FromBytes(b), field)

/** A scalar in [1, r): 32 bytes big-endian, canonical. */
export function readScalar(r: Reader, field: string): bigint {
  const k = bytesToNumberBE(r.take(SCALAR_BYTES))
  if (k === 0n || k >= ORDER) r.fail('SCALAR_OUT_OF_RANGE', `${field}: scalar must be in [1, r)`, { field })
  return k
}

/**
 * Π e(P_i, Q_i) with one shared final exponentiation, on the backend in force. Pairs with an
 * identity on either side contribute 1. It does not re-run subgroup checks: every point must have
 * been validated when decoded or produced by our own arithmetic (decaps checks that it was).
 */
export const pairingProduct = (pairs: readonly { g1: G1; g2: G2 }[]): GT => backend().pairingProduct(pairs)
