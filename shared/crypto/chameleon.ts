/**
 * The redactable chain's record commitment: the key-exposure-free chameleon hash of Ateniese and
 * de Medeiros ("On the Key Exposure Problem in Chameleon Hashes", SCN 2004, §4, the scheme built
 * on Schnorr signatures), over the prime-order group ristretto255 (RFC 9496), generator G.
 *
 *   KeyGen   x ← [1, ℓ),  Y = x·G                              secret key x, public key encode(Y)
 *   Hash     r, s ← [1, ℓ);  e = H_e(Y, m, r);  P = e·Y + s·G;  C = r − f(P) mod ℓ
 *   Verify   C ≟ r − f(e·Y + s·G) mod ℓ
 *   Adapt    k ← [1, ℓ) (hedged);  P' = k·G;  r' = C + f(P');  e' = H_e(Y, m', r');  s' = k − e'·x
 *
 *   H_e(Y, m, r) = SHA-512("careledger/v1/ch/e\0" ‖ encode(Y) ‖ le32(r) ‖ u32be(|m|) ‖ m) mod ℓ
 *   f(P)         = SHA-512("careledger/v1/ch/f\0" ‖ encode(P)) mod ℓ
 *
 * Two encodings of one opening (64 bytes either way; the record format says which a record holds):
 *
 *   format 1   r ‖ s          records of format v1. Verify recomputes P = e·Y + s·G and encodes it.
 *   format 2   encode(P) ‖ s  records of format v2 (current). Verify recomputes r = C + f(P) from
 *                             the bytes of P and e = H_e(Y, m, r), then checks the linear equation
 *                             P = e·Y + s·G — which, unlike format 1's check, n records can share:
 *                             Σ z_i·P_i = (Σ z_i·e_i)·Y + (Σ z_i·s_i)·G (chameleon-batch.ts).
 *
 * They are the same hash function: (r, s) opens C to m iff (P, s) with P = e·Y + s·G does, and
 * r = C + f(P) maps one to the other. So a format-1 hash needs no re-hashing, Hash draws r and s
 * in the same order for both (same C for the same randomness), and a record of either format may
 * be redacted into a format-2 opening of the same C. P is a canonical ristretto255 encoding
 * (RFC 9496 §4.3.1: decoding rejects any other), because f hashes its bytes while the equation
 * speaks of the group element: only when each element has exactly one encoding is the f(P) the
 * verifier hashed the f of the P the equation checks (docs/crypto.md §Batch verification).
 *
 * For threshold signers (FROST, RFC 9591): a format-2 opening IS a Schnorr signature by Y.
 * Adapt's (P', s') is (R, z) with R = k·G the group commitment, the challenge c = −e' mod ℓ where
 * e' = H_e(Y, m', C + f(R)), and z = k + c·x = k − e'·x. A FROST round that computes R from the
 * signers' commitments, then e' from R as above (instead of RFC 9591's H2), and has each signer i
 * answer z_i = d_i + e_i·ρ_i − λ_i·x_i·e' yields the 64-byte opening encode(R) ‖ le32(Σ z_i),
 * which chameleonVerify(Y, m', C, opening) accepts; no other format is needed.
 *
 * Why this scheme and not Krawczyk–Rabin (C = H(m)·G + r·Y): there one published collision gives
 * the trapdoor away, x = (H(m) − H(m'))/(r' − r). Here an adapted opening is a Schnorr signature on
 * (m', r') with a fresh nonce k (s' = k − e'·x, and k·G = e'·Y + s'·G is what f hides), so any
 * number of published collisions are simulatable and say nothing about x. Adapt needs only the
 * trapdoor, the new message and the hash, never the old message.
 *
 * Scalars are 32 bytes little-endian and must be canonical (< ℓ), points are canonical ristretto255
 * encodings (RFC 9496 §4.3), hash outputs reduce 64 bytes mod ℓ (the wide reduction of RFC 8032
 * §5.1.6), so every value has exactly one encoding and a hash commits to one byte string.
 * SHA-512 is OpenSSL's (node:crypto): the same digest as noble's at a fifth of the cost.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { ristretto255 } from '@noble/curves/ed25519.js'
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../errors.ts'
import { Kind, Reader, Writer } from '../encoding/binary.ts'
import { randomScalar, systemRng, type Rng } from './random.ts'
import { fastDoubleScalarBase, ristrettoFastLoaded, ristrettoFastReady, ristrettoFastState } from './ristretto-fast.ts'
import { nativeHashPoint, ristrettoNative } from './ristretto-native.ts'

export type ChameleonPoint = InstanceType<typeof ristretto255.Point>
type Point = ChameleonPoint

const RistrettoPoint = ristretto255.Point
const G = RistrettoPoint.BASE
/** ℓ = 2^252 + 27742317777372353535851937790883648493, the order of ristretto255. */
export const CHAMELEON_ORDER: bigint = ristretto255.Point.Fn.ORDER
export const CHAMELEON_SCALAR_BYTES = 32
export const CHAMELEON_PUBLIC_KEY_BYTES = 32
export const CHAMELEON_SECRET_KEY_BYTES = 32
export const CHAMELEON_HASH_BYTES = 32
/** An opening is r ‖ s (format 1) or encode(P) ‖ s (format 2). */
export const CHAMELEON_OPENING_BYTES = 64
/** How an opening is encoded (see the header): 1 = r ‖ s, 2 = encode(P) ‖ s. */
export type OpeningFormat = 1 | 2
/** The format new openings are written in. */
export const CURRENT_OPENING_FORMAT: OpeningFormat = 2
/** Scheme byte after the preamble of key files: 1 = ADM/ristretto255 with the careledger/v1 hashes. */
export const SCHEME_ADM_RISTRETTO255 = 1

export interface ChameleonKeyPair {
  /** The trapdoor x: 32 bytes little-endian, in [1, ℓ). Only the regulator holds it. */
  readonly secretKey: Uint8Array
  /** encode(Y), Y = x·G: 32 bytes. */
  readonly publicKey: Uint8Array
}

export interface ChameleonDigest {
  /** C: 32 bytes little-endian, < ℓ. This is what the chain commits to. */
  readonly hash: Uint8Array
  /** encode(P) ‖ s (format 2) or r ‖ s (format 1): 64 bytes, published with the record so anyone can verify it. */
  readonly opening: Uint8Array
}

const utf8 = new TextEncoder()
const E_TAG = utf8.encode('careledger/v1/ch/e\0')
const F_TAG = utf8.encode('careledger/v1/ch/f\0')
const K_TAG = utf8.encode('careledger/v1/ch/k\0')
const MAX_MESSAGE = 0xffff_ffff

// ---- scalars, points and typed errors --------------------------------------------------------

function bad(what: string, reason: string, problem: string, extra: Record<string, unknown> = {}): never {
  throw new CareLedgerError('INVALID_ENCODING', `${what}: ${problem}`, { what, reason, ...extra })
}

function expectBytes(value: unknown, length: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) return bad(what, 'NOT_BYTES', `expected ${length} bytes, got ${typeof value}`)
  if (value.length !== length) return bad(what, 'BAD_LENGTH', `expected ${length} bytes, got ${value.length}`, { length: value.length })
  return value
}

function expectMessage(message: unknown): Uint8Array {
  if (!(message instanceof Uint8Array)) {
    throw new CareLedgerError('INVALID_ARGUMENT', `chameleon message: expected bytes, got ${typeof message}`, { type: typeof message })
  }
  if (message.length > MAX_MESSAGE) {
    throw new CareLedgerError('INVALID_ARGUMENT', `chameleon message of ${message.length} bytes exceeds 2^32 - 1`, { length: message.length })
  }
  return message
}

const mod = (a: bigint): bigint => ((a % CHAMELEON_ORDER) + CHAMELEON_ORDER) % CHAMELEON_ORDER
const scalarBytes = (k: bigint): Uint8Array => numberToBytesLE(k, CHAMELEON_SCALAR_BYTES)

/** RFC 9496 §4.4: scalars are little-endian and implementations reject non-canonical ones (≥ ℓ). */
function parseScalar(bytes: Uint8Array, what: string, allowZero: boolean): bigint {
  const k = bytesToNumberLE(bytes)
  if (k >= CHAMELEON_ORDER || (!allowZero && k === 0n)) {
    bad(what, 'SCALAR_OUT_OF_RANGE', `scalar must be in [${allowZero ? 0 : 1}, ℓ)`)
  }
  return k
}

/**
 * RFC 9496 §4.3.1 decoding (noble rejects non-canonical encodings). The identity is refused: it
 * would be Y = 0·G, a trapdoor everybody knows.
 */
function decodePoint(bytes: Uint8Array): Point | { reason: string; problem: string } {
  let p: Point
  try {
    p = ristretto255.Point.fromBytes(bytes)
  } catch {
    return { reason: 'BAD_POINT', problem: 'not a canonical ristretto255 encoding' }
  }
  return p.is0() ? { reason: 'IDENTITY_POINT', problem: 'the identity element is not a valid public key' } : p
}

function parsePoint(bytes: Uint8Array, what: string): Point {
  const p = decodePoint(bytes)
  return 'reason' in p ? bad(what, p.reason, p.problem) : p
}

/** Wide reduction: 64 uniform bytes mod ℓ leave a bias below 2^-259. */
const wide = (digest: Uint8Array): bigint => mod(bytesToNumberLE(digest))

function u32be(n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n)
  return b
}

const sha512 = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha512')
  for (const p of parts) h.update(p)
  return h.digest()
}

/** H_e: the Schnorr challenge, bound to the key (as in EdDSA) so an opening cannot move between keys. */
function challenge(publicKey: Uint8Array, message: Uint8Array, r: bigint): bigint {
  return wide(sha512(E_TAG, publicKey, scalarBytes(r), u32be(message.length), message))
}

/** f: the conversion of a group element, given by its canonical encoding, to a scalar (in the paper: (y^e g^s mod p) mod q). */
const convert = (encodedPoint: Uint8Array): bigint => wide(sha512(F_TAG, encodedPoint))

const mulPublic = (p: Point, k: bigint): Point => p.multiplyUnsafe(k) // k ∈ [0, ℓ): noble maps 0 to the identity

// ---- fixed-base tables -------------------------------------------------------------------------

const CACHE_LIMIT = 16
const keyCache = new Map<string, { point: Point; uses: number }>()
/**
 * The bytes each decoded key (publicPoint) and opening point (chameleonEquation) came from, for
 * the libsodium fast path (ristretto-fast.ts), which works on encodings. Keyed by the point
 * object: noble points are immutable, so an entry can never disagree with its point (a caller
 * that builds an equation with another P brings that point's own entry, or none: noble decides).
 */
const encodingOf = new WeakMap<Point, Uint8Array>()
/**
 * Width of the fixed-base tables of Hash (Y and G): a width-w wNAF table holds ⌈256/w⌉+1 rows of
 * 2^(w−1) points, and a multiplication then costs one addition per row. Measured here: w = 8
 * 0.23–0.29 ms, w = 12 0.14 ms per multiplication (table 0.45 s to build, ~10 MB), w = 14 no
 * faster. Verification does not use them (its multiplications by Y and G are one per batch).
 */
const HASH_TABLE_WIDTH = 12
/**
 * Hashes under one key before its tables are built lazily: they save ~0.1–0.25 ms a Hash and cost
 * ~1 s of CPU (more on a loaded machine), so they pay for themselves after a few thousand; a
 * process that hashes a handful (a test, a CLI) never builds them. A long-lived appender builds
 * them up front instead (chameleonPrepareHashTables, ChainStore.warmUp).
 */
const HASH_TABLE_AFTER = 5000
let tableG: Point | null = null
const tablesY = new Map<string, Point>()

/**
 * Decoded public keys, memoised: the chain verifies every record under the same regulator key, and
 * a cached point carries a width-8 window table (~50 ms to build, then a multiplication costs
 * ~0.2 ms instead of ~1.2 ms). The table is built on a key's second use, so a one-off
 * verification under a stranger's key does not pay for it.
 */
function publicPoint(publicKey: unknown): Point {
  const bytes = expectBytes(publicKey, CHAMELEON_PUBLIC_KEY_BYTES, 'chameleon public key')
  const id = bytesToHex(bytes)
  let entry = keyCache.get(id)
  if (!entry) {
    entry = { point: parsePoint(bytes, 'chameleon public key'), uses: 0 }
    encodingOf.set(entry.point, bytes.slice())
    if (keyCache.size >= CACHE_LIMIT) keyCache.delete(keyCache.keys().next().value!)
    keyCache.set(id, entry)
  }
  if (++entry.uses === 2) entry.point.precompute(8, false)
  return entry.point
}

/** The decoded regulator key Y (memoised, INVALID_ENCODING if it is not a usable key): for chameleon-batch.ts. */
export const chameleonPublicPoint = (publicKey: Uint8Array): Point => publicPoint(publicKey)

/** The encoding of a point (a decoded key's own bytes when it is one): for the native batch check. */
export const chameleonPointBytes = (point: Point): Uint8Array => encodingOf.get(point) ?? point.toBytes()

/**
 * encode(e·Y + s·G) for Hash: by the native addon where it is built (ristretto-native.ts,
 * curve25519-dalek's fixed-base tables, ~0.03 ms), else by libsodium where it is loaded
 * (ristretto-fast.ts, ~0.14 ms), else by noble through fixed-base tables of width
 * HASH_TABLE_WIDTH, built after HASH_TABLE_AFTER uses of the key (the cloud hashes every record
 * under one key).
 */
function hashPoint(publicKey: Uint8Array, Y: Point, e: bigint, s: bigint): Uint8Array {
  return nativeHashPoint(publicKey, e, s) ?? fastDoubleScalarBase(publicKey, e, s) ?? noblePoint(publicKey, Y, e, s).toBytes()
}

function noblePoint(publicKey: Uint8Array, Y: Point, e: bigint, s: bigint): Point {
  const id = bytesToHex(publicKey)
  const tY = tablesY.get(id) ?? ((keyCache.get(id)?.uses ?? 0) >= HASH_TABLE_AFTER ? buildHashTables(publicKey, id) : undefined)
  return tY && tableG ? mulPublic(tY, e).add(mulPublic(tableG, s)) : mulPublic(Y, e).add(mulPublic(G, s))
}

function buildHashTables(publicKey: Uint8Array, id: string): Point {
  const tY = RistrettoPoint.fromBytes(publicKey).precompute(HASH_TABLE_WIDTH, false)
  if (tablesY.size >= 2) tablesY.delete(tablesY.keys().next().value!)
  tablesY.set(id, tY)
  tableG ??= RistrettoPoint.fromBytes(G.toBytes()).precompute(HASH_TABLE_WIDTH, false) // its own object: BASE keeps noble's table
  return tY
}

/**
 * Make Hash fast for this key now, e.g. when an appender starts: nothing where the native addon
 * hashes; else start loading libsodium (ristretto-fast.ts), which needs no tables; only where it is off, noble's fixed-base tables
 * (~1 s, ~20 MB). Should it fail to load, noble builds them after HASH_TABLE_AFTER Hashes.
 */
export function chameleonPrepareHashTables(publicKey: Uint8Array): void {
  publicPoint(publicKey)
  const id = bytesToHex(publicKey)
  if (ristrettoNative?.hashPoint) return // the addon builds its table of Y at its first Hash (~0.1 ms)
  if (ristrettoFastState() !== 'off') void ristrettoFastReady()
  else if (!tablesY.has(id)) buildHashTables(publicKey, id)
}

/**
 * For a thread about to hash many records: nothing to wait for where the native addon hashes;
 * else wait for the libsodium fast path (ristretto-fast.ts, ~60 ms of CPU and a WebAssembly
 * memory a thread), then chameleonPrepareHashTables.
 */
export async function chameleonPrepareHash(publicKey: Uint8Array): Promise<void> {
  if (!ristrettoNative?.hashPoint) await ristrettoFastReady()
  chameleonPrepareHashTables(publicKey)
}

const trapdoorCache = new Map<string, Uint8Array>()
const ID_TAG = utf8.encode('careledger/v1/ch/id\0')

/**
 * encode(x·G) for a trapdoor, memoised under a hash of x: Adapt needs Y for its challenge, and
 * the regulator adapts under one trapdoor, so this saves a base-point multiplication and an
 * encoding (~0.45 ms) per call. Only public keys are stored; the map never holds x itself.
 */
function trapdoorPublicKey(x: bigint, secretKey: Uint8Array): Uint8Array {
  const id = bytesToHex(sha256.create().update(ID_TAG).update(secretKey).digest())
  let pk = trapdoorCache.get(id)
  if (!pk) {
    pk = G.multiply(x).toBytes()
    if (trapdoorCache.size >= CACHE_LIMIT) trapdoorCache.delete(trapdoorCache.keys().next().value!)
    trapdoorCache.set(id, pk)
  }
  return pk
}

/** Drop the memos and tables (benchmarks use it to measure the cold path). */
export function clearChameleonKeyCache(): void {
  keyCache.clear()
  trapdoorCache.clear()
  tablesY.clear()
  tableG = null
}

// ---- the scheme ----------------------------------------------------------------------------------

function expectFormat(format: unknown): OpeningFormat {
  if (format !== 1 && format !== 2) throw new CareLedgerError('INVALID_ARGUMENT', `chameleon opening format ${String(format)}: expected 1 (r ‖ s) or 2 (P ‖ s)`, { format })
  return format
}

function encodeOpening(first: Uint8Array, s: bigint): Uint8Array {
  const opening = new Uint8Array(CHAMELEON_OPENING_BYTES)
  opening.set(first, 0)
  opening.set(scalarBytes(s), CHAMELEON_SCALAR_BYTES)
  return opening
}

/** KeyGen: x ← [1, ℓ), Y = x·G. */
export function chameleonKeyGen(rng: Rng = systemRng): ChameleonKeyPair {
  const x = randomScalar(rng, CHAMELEON_ORDER)
  return { secretKey: scalarBytes(x), publicKey: G.multiply(x).toBytes() }
}

/** The public key of a trapdoor (Y = x·G). */
export function chameleonPublicKey(secretKey: Uint8Array): Uint8Array {
  const x = parseScalar(expectBytes(secretKey, CHAMELEON_SECRET_KEY_BYTES, 'chameleon secret key'), 'chameleon secret key', false)
  return trapdoorPublicKey(x, secretKey).slice()
}

/**
 * Hash: anyone holding the public key commits to `message`; the opening is fresh randomness, in
 * `format` (default: format 2, encode(P) ‖ s). r and s are drawn in this order for both formats.
 */
export function chameleonHash(publicKey: Uint8Array, message: Uint8Array, rng: Rng = systemRng, format: OpeningFormat = CURRENT_OPENING_FORMAT): ChameleonDigest {
  const Y = publicPoint(publicKey)
  expectMessage(message)
  expectFormat(format)
  const r = randomScalar(rng, CHAMELEON_ORDER)
  const s = randomScalar(rng, CHAMELEON_ORDER)
  const e = challenge(publicKey, message, r)
  // Nothing here is secret: the opening is published beside the record, and the hash's binding
  // rests on the trapdoor x alone. So the faster variable-time multiplications are safe (only
  // Adapt, which uses x and the nonce k, must stay constant-time).
  const P = hashPoint(publicKey, Y, e, s)
  const C = mod(r - convert(P))
  return { hash: scalarBytes(C), opening: encodeOpening(format === 2 ? P : scalarBytes(r), s) }
}

/** A format-2 opening's check as the linear equation P = e·Y + s·G, everything else done. */
export interface ChameleonEquation {
  readonly P: Point
  readonly e: bigint
  readonly s: bigint
}

/**
 * The non-linear part of Verify for a format-2 opening: decode P (canonical, RFC 9496 §4.3.1),
 * r = C + f(P), e = H_e(Y, m, r). The opening opens C to m iff the returned equation holds
 * (chameleonVerify checks it alone, chameleon-batch.ts many at once). Throws like chameleonVerify
 * for malformed input; INVALID_ENCODING reason BAD_POINT for an invalid P.
 */
export function chameleonEquation(publicKey: Uint8Array, message: Uint8Array, hash: Uint8Array, opening: Uint8Array): ChameleonEquation {
  const { encodedP, e, s } = equationScalars(publicKey, message, hash, opening)
  // With the native addon (ristretto-native.ts) its decoding vouches for P (~7 µs against noble's
  // ~100): P is then decoded by noble only if asked for (a failing batch), and the batch check
  // takes the bytes. Its "no" is re-judged: noble decodes, and throws for an invalid P.
  if (ristrettoNative?.decodeCheck(encodedP) === -1) {
    const bytes = encodedP.slice()
    let P: Point | undefined
    const q: ChameleonEquation = { get P() { return (P ??= decodeOpeningPoint(bytes)) }, e, s }
    nativeEncodingOf.set(q, bytes)
    return q
  }
  return { P: decodeOpeningPoint(encodedP), e, s }
}

/**
 * The encoding of each equation's P that the native addon has decoded (chameleonEquation), keyed
 * by the equation object: a copy made with another P (`{ ...q, P }`) is another object, without an
 * entry, so the batch can never check bytes other than its P's.
 */
const nativeEncodingOf = new WeakMap<ChameleonEquation, Uint8Array>()

/** The bytes of q.P the native addon decoded, or undefined (then only noble can check q). */
export const chameleonEquationEncoding = (q: ChameleonEquation): Uint8Array | undefined => nativeEncodingOf.get(q)

function decodeOpeningPoint(encodedP: Uint8Array): Point {
  try {
    const P = RistrettoPoint.fromBytes(encodedP)
    // Only where libsodium is loaded: a verify worker's batch (noble's MSM) needs no bytes kept.
    if (ristrettoFastLoaded()) encodingOf.set(P, encodedP.slice())
    return P
  } catch {
    return bad('chameleon opening (P)', 'BAD_POINT', 'not a canonical ristretto255 encoding')
  }
}

/** chameleonEquation but for decoding P: its bytes, r = C + f(P), e = H_e(Y, m, r), s. */
function equationScalars(publicKey: Uint8Array, message: Uint8Array, hash: Uint8Array, opening: Uint8Array): { encodedP: Uint8Array; e: bigint; s: bigint } {
  publicPoint(publicKey)
  expectMessage(message)
  const C = parseScalar(expectBytes(hash, CHAMELEON_HASH_BYTES, 'chameleon hash'), 'chameleon hash', true)
  const o = expectBytes(opening, CHAMELEON_OPENING_BYTES, 'chameleon opening')
  const encodedP = o.subarray(0, CHAMELEON_SCALAR_BYTES)
  const s = parseScalar(o.subarray(CHAMELEON_SCALAR_BYTES), 'chameleon opening (s)', true)
  return { encodedP, e: challenge(publicKey, message, mod(C + convert(encodedP))), s }
}

/**
 * libsodium's yes to P = e·Y + s·G: the bytes it computed for e·Y + s·G are the opening's bytes of
 * P, so P is that element's canonical encoding — exactly what noble's check establishes. False
 * means "not shown" (not loaded, refused, or different bytes), never "does not hold": noble judges.
 */
function fastHolds(publicKey: Uint8Array | undefined, encodedP: Uint8Array | undefined, e: bigint, s: bigint): boolean {
  if (!publicKey || !encodedP) return false
  const computed = fastDoubleScalarBase(publicKey, e, s)
  return computed !== null && computed.length === encodedP.length && timingSafeEqual(computed, encodedP)
}

/** Does P = e·Y + s·G hold? (Y decoded; e, s public, so variable time is safe.) libsodium first, noble judges every no. */
export const chameleonEquationHolds = (Y: Point, q: ChameleonEquation): boolean => fastHolds(encodingOf.get(Y), encodingOf.get(q.P), q.e, q.s) || nobleHolds(Y, q)

const nobleHolds = (Y: Point, q: ChameleonEquation): boolean => mulPublic(Y, q.e).add(mulPublic(G, q.s)).equals(q.P)

/**
 * Verify: does the opening (in `format`, default 2) open `hash` to `message` under `publicKey`?
 * False for a wrong message, opening, hash or key; INVALID_ENCODING (with `reason`) for wrong
 * lengths, non-canonical scalars or an invalid point; INVALID_ARGUMENT if the message is not bytes.
 */
export function chameleonVerify(publicKey: Uint8Array, message: Uint8Array, hash: Uint8Array, opening: Uint8Array, format: OpeningFormat = CURRENT_OPENING_FORMAT): boolean {
  const Y = publicPoint(publicKey)
  if (expectFormat(format) === 2) {
    // libsodium's yes needs no decoding of P (its bytes are compared); a no is re-judged by noble.
    const { encodedP, e, s } = equationScalars(publicKey, message, hash, opening)
    return fastHolds(publicKey, encodedP, e, s) || nobleHolds(Y, { P: decodeOpeningPoint(encodedP), e, s })
  }
  expectMessage(message)
  const C = expectBytes(hash, CHAMELEON_HASH_BYTES, 'chameleon hash')
  parseScalar(C, 'chameleon hash', true)
  const o = expectBytes(opening, CHAMELEON_OPENING_BYTES, 'chameleon opening')
  const r = parseScalar(o.subarray(0, CHAMELEON_SCALAR_BYTES), 'chameleon opening (r)', true)
  const s = parseScalar(o.subarray(CHAMELEON_SCALAR_BYTES), 'chameleon opening (s)', true)
  // e and s are public here, so the variable-time multiplication is safe.
  const e = challenge(publicKey, message, r)
  const fast = fastDoubleScalarBase(publicKey, e, s)
  if (fast !== null && timingSafeEqual(scalarBytes(mod(r - convert(fast))), C)) return true // a no is re-judged by noble
  const expected = scalarBytes(mod(r - convert(mulPublic(Y, e).add(mulPublic(G, s)).toBytes())))
  return timingSafeEqual(expected, C)
}

/**
 * Adapt: the trapdoor holder opens `hash` to a new message. Returns the new opening, in `format`
 * (default 2: encode(k·G) ‖ s', a Schnorr signature — see the header for FROST).
 *
 * The nonce k is hedged (RFC 6979 §3.6 style): SHA-512 over the trapdoor, the hash, the new message
 * and 32 fresh random bytes. Two adaptations sharing k under different challenges would reveal
 * x = (s'₁ − s'₂)/(e'₂ − e'₁), so a stuck or repeating RNG must not be able to repeat k.
 */
export function chameleonAdapt(secretKey: Uint8Array, message: Uint8Array, hash: Uint8Array, rng: Rng = systemRng, format: OpeningFormat = CURRENT_OPENING_FORMAT): Uint8Array {
  const skBytes = expectBytes(secretKey, CHAMELEON_SECRET_KEY_BYTES, 'chameleon secret key')
  const x = parseScalar(skBytes, 'chameleon secret key', false)
  expectMessage(message)
  const C = parseScalar(expectBytes(hash, CHAMELEON_HASH_BYTES, 'chameleon hash'), 'chameleon hash', true)
  expectFormat(format)
  const publicKey = trapdoorPublicKey(x, skBytes)
  let k = 0n
  while (k === 0n) k = wide(sha512(K_TAG, skBytes, hash, u32be(message.length), message, rng(32)))
  const P = G.multiply(k).toBytes()
  const r = mod(C + convert(P))
  const e = challenge(publicKey, message, r)
  const s = mod(k - e * x)
  return encodeOpening(format === 2 ? P : scalarBytes(r), s)
}

/** A short fingerprint for logs and file names: hex of the first 8 bytes of SHA-256(pk). */
export function chameleonKeyId(publicKey: Uint8Array): string {
  publicPoint(publicKey) // validates (and memoises: every record proof names the key)
  return bytesToHex(sha256(publicKey).subarray(0, 8))
}

// ---- key files: "CL" 01 kind ‖ scheme 01 ‖ 32 bytes ---------------------------------------------

function openKey(bytes: Uint8Array, kind: Kind, what: string): Reader {
  const r = Reader.open(bytes, kind, what)
  const scheme = r.u8()
  if (scheme !== SCHEME_ADM_RISTRETTO255) {
    throw new CareLedgerError('UNSUPPORTED_VERSION', `${what}: scheme ${scheme} is not supported (this build knows 1 = ADM/ristretto255)`, {
      what,
      scheme,
    })
  }
  return r
}

export function encodeChameleonPublicKey(publicKey: Uint8Array): Uint8Array {
  parsePoint(expectBytes(publicKey, CHAMELEON_PUBLIC_KEY_BYTES, 'chameleon public key'), 'chameleon public key')
  return Writer.withPreamble(Kind.ChameleonPublicKey).u8(SCHEME_ADM_RISTRETTO255).bytes(publicKey).finish()
}

/** Returns the 32-byte public key; throws INVALID_ENCODING (reason in `info.reason`) or UNSUPPORTED_VERSION. */
export function decodeChameleonPublicKey(bytes: Uint8Array): Uint8Array {
  const what = 'chameleon public key'
  const r = openKey(bytes, Kind.ChameleonPublicKey, what)
  const pk = r.take(CHAMELEON_PUBLIC_KEY_BYTES).slice()
  const p = decodePoint(pk)
  if ('reason' in p) r.fail(p.reason, `Y: ${p.problem}`, { field: 'Y' })
  r.end()
  return pk
}

export function encodeChameleonSecretKey(secretKey: Uint8Array): Uint8Array {
  parseScalar(expectBytes(secretKey, CHAMELEON_SECRET_KEY_BYTES, 'chameleon secret key'), 'chameleon secret key', false)
  return Writer.withPreamble(Kind.ChameleonSecretKey).u8(SCHEME_ADM_RISTRETTO255).bytes(secretKey).finish()
}

/** Returns the 32-byte trapdoor; rejects 0 and non-canonical scalars (≥ ℓ). */
export function decodeChameleonSecretKey(bytes: Uint8Array): Uint8Array {
  const what = 'chameleon secret key'
  const r = openKey(bytes, Kind.ChameleonSecretKey, what)
  const sk = r.take(CHAMELEON_SECRET_KEY_BYTES).slice()
  const x = bytesToNumberLE(sk)
  if (x === 0n || x >= CHAMELEON_ORDER) r.fail('SCALAR_OUT_OF_RANGE', 'x: scalar must be in [1, ℓ)', { field: 'x' })
  r.end()
  return sk
}

// The scheme's two hashes, for the threshold Adapt (shared/crypto/chameleon-threshold.ts), which computes s' = k − e'·x with FROST.
export { challenge as chameleonChallenge, convert as chameleonConvert }
