/**
 * The pairing backend: the BLS12-381 group operations FABEO needs, behind one small interface with
 * two implementations — noble (pure TypeScript, the reference, always available and synchronous)
 * and mcl (herumi's mcl compiled to WebAssembly, 4–10× faster, loaded asynchronously).
 *
 * Both speak the same encodings, byte for byte: ZCash compressed points (G1 48 B, G2 96 B; the
 * serialisation of draft-irtf-cfrg-pairing-friendly-curves-11 Appendix C), RFC 9380 hash-to-curve
 * with our DST, and GT as 12 big-endian Fp coordinates in noble's order. So anything one backend
 * encrypts the other opens, and test/crypto/backends.test.ts checks the two against each other.
 *
 * Elements carry their backend. An operation takes its operands from any backend: a foreign one is
 * re-decoded through its encoding (`adopt*`), so an object made before a process switched backends
 * stays usable; the work is done by the backend of the receiving element.
 *
 * Choosing: `useBackend('auto' | 'noble' | 'mcl')` once at process start (select.ts); `withBackend`
 * runs synchronous code under another backend (tests, benchmarks).
 */
import { CareLedgerError } from '../../errors.ts'

export type BackendName = 'noble' | 'mcl'
/** What a process may ask for (select.ts): a backend, or `auto`. */
export type BackendChoice = BackendName | 'auto'
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'noble', 'mcl']

/** A configured value as a BackendChoice; INVALID_ARGUMENT naming `where` (a flag or variable) otherwise. */
export function parseBackendChoice(value: string, where: string): BackendChoice {
  const v = value.trim().toLowerCase()
  if ((BACKEND_CHOICES as readonly string[]).includes(v)) return v as BackendChoice
  throw new CareLedgerError('INVALID_ARGUMENT', `${where}=${JSON.stringify(value)}: the pairing backend must be one of ${BACKEND_CHOICES.join(', ')}`, {
    value,
    allowed: BACKEND_CHOICES,
  })
}

/** Why a point encoding was refused. The reasons and details are the same in every backend. */
export interface PointFault {
  readonly reason: 'BAD_POINT' | 'NOT_ON_CURVE' | 'NOT_IN_SUBGROUP'
  readonly detail: string
}

/** The BAD_POINT details, worded once so that both backends say the same. */
export const POINT_FAULTS = {
  flags: { reason: 'BAD_POINT', detail: 'the compression flag is not set, or the sort flag is set on the point at infinity' },
  infinity: { reason: 'BAD_POINT', detail: 'the infinity flag is set but the other bits are not all zero' },
  range: { reason: 'BAD_POINT', detail: 'a coordinate is not below the field modulus p' },
  curve: { reason: 'NOT_ON_CURVE', detail: 'point is not on the curve' },
  subgroup: { reason: 'NOT_IN_SUBGROUP', detail: 'point is not in the prime-order subgroup' },
} as const satisfies Record<string, PointFault>

/** What adopt* throws for an element that does not decode as a valid one. */
export const foreignElementError = (group: 'G1' | 'G2' | 'GT', detail: string): CareLedgerError =>
  new CareLedgerError('INVALID_ARGUMENT', `a ${group} element that was not validated: ${detail}`, { reason: 'UNVALIDATED_ELEMENT', group })

export const isPointFault = (x: unknown): x is PointFault => typeof x === 'object' && x !== null && 'reason' in x && 'detail' in x

interface Point<P> {
  readonly backend: PairingBackend
  add(other: P): P
  subtract(other: P): P
  negate(): P
  /** k·P for any k ≥ 0 (reduced mod r; 0 gives the identity). Uniform in k: use it for secrets. */
  multiply(k: bigint): P
  is0(): boolean
  equals(other: P): boolean
  /** ZCash compressed encoding. */
  toBytes(): Uint8Array
}

export interface G1 extends Point<G1> {
  readonly group: 'G1'
}
export interface G2 extends Point<G2> {
  readonly group: 'G2'
}

/** An element of the target group GT ⊂ Fp12*. */
export interface GT {
  readonly group: 'GT'
  readonly backend: PairingBackend
  mul(other: GT): GT
  /** The inverse (conjugation: GT lies in the cyclotomic subgroup). */
  inv(): GT
  /** x^e for any e ≥ 0 (reduced mod r). A constant sequence of operations, whatever e's digits. */
  pow(e: bigint): GT
  equals(other: GT): boolean
  isOne(): boolean
  /** 576 bytes: the 12 Fp coordinates, big-endian, in noble's order (c0.c0.c0, c0.c0.c1, …). */
  toBytes(): Uint8Array
}

export interface PairingBackend {
  readonly name: BackendName
  /** What the backend is, for logs: library and version. */
  readonly description: string

  g1Base(): G1
  g1Zero(): G1
  /** Decode 48 bytes: a point (possibly the identity) or why not. */
  g1FromBytes(bytes: Uint8Array): G1 | PointFault
  /** RFC 9380 hash_to_curve for BLS12381G1_XMD:SHA-256_SSWU_RO_ with the given DST. */
  hashToG1(msg: Uint8Array, dst: string): G1
  /**
   * H(attr) of an attribute point, memoised by the backend (which may also keep a table that makes
   * multiplying it cheaper). Same value as hashToG1.
   */
  attributePoint(msg: string, dst: string): G1
  /** The same point, carrying a window table that makes multiplying it cheaper (fixed bases like H(b)). */
  fixedBaseG1(p: G1): G1
  /** Σ k_i·P_i for public scalars (variable time). */
  g1Msm(points: readonly G1[], scalars: readonly bigint[]): G1

  g2Base(): G2
  g2Zero(): G2
  g2FromBytes(bytes: Uint8Array): G2 | PointFault
  /** k·h for the G2 generator h (secret k: uniform). */
  mulG2Base(k: bigint): G2

  gtOne(): GT
  /** Decode 576 bytes: null unless every coordinate is < p and the element lies in GT. */
  gtFromBytes(bytes: Uint8Array): GT | null
  /** Membership in the order-r subgroup GT. */
  isInGT(x: GT): boolean

  pairing(p: G1, q: G2): GT
  /** Π e(P_i, Q_i) with one final exponentiation; pairs with an identity on either side contribute 1. */
  pairingProduct(pairs: readonly { g1: G1; g2: G2 }[]): GT

  /**
   * The element as one of this backend's, validated: its own elements are returned as they are
   * (valid by construction), any other is re-decoded from its encoding with every check, and
   * refused with INVALID_ARGUMENT (reason UNVALIDATED_ELEMENT) if it is not a valid element.
   */
  adoptG1(p: G1): G1
  adoptG2(q: G2): G2
  adoptGT(x: GT): GT

  /** Forget memoised attribute points and tables (benchmarks measure the cold path with it). */
  clearCaches(): void
  /** Bytes of memory the backend holds outside the V8 heap (WebAssembly linear memory), 0 for none. */
  externalMemoryBytes(): number
}

let active: PairingBackend | undefined
let defaultBackend: (() => PairingBackend) | undefined

/** Registered by backend-noble.ts (imported by groups.ts), so there is always a synchronous default. */
export function registerDefaultBackend(make: () => PairingBackend): void {
  defaultBackend = make
}

/** The backend in force. */
export function backend(): PairingBackend {
  if (!active) {
    if (!defaultBackend) throw new Error('no pairing backend registered')
    active = defaultBackend()
  }
  return active
}

export function setBackend(b: PairingBackend): void {
  active = b
}

/** Run synchronous `fn` with `b` as the backend in force, then restore the previous one. */
export function withBackend<T>(b: PairingBackend, fn: () => T): T {
  const previous = backend()
  active = b
  try {
    const result = fn()
    if (result instanceof Promise) throw new Error('withBackend takes synchronous functions only')
    return result
  } finally {
    active = previous
  }
}
