/**
 * The redactable chain's record commitment: the key-exposure-free chameleon hash of Ateniese and
 * de Medeiros ("On the Key Exposure Problem in Chameleon Hashes", SCN 2004, §4, the scheme built
 * on Schnorr signatures), over the prime-order group ristretto255 (RFC 9496), generator G.
 *
 *   KeyGen   x ← [1, ℓ),  Y = x·G                              secret key x, public key encode(Y)
 *   Hash     r, s ← [1, ℓ);  e = H_e(Y, m, r);  C = r − f(e·Y + s·G) mod ℓ        opening (r, s)
 *   Verify   C ≟ r − f(e·Y + s·G) mod ℓ
 *   Adapt    k ← [1, ℓ) (hedged);  r' = C + f(k·G);  e' = H_e(Y, m', r');  s' = k − e'·x   (trapdoor only)
 *
 *   H_e(Y, m, r) = SHA-512("careledger/v1/ch/e\0" ‖ encode(Y) ‖ le32(r) ‖ u32be(|m|) ‖ m) mod ℓ
 *   f(P)         = SHA-512("careledger/v1/ch/f\0" ‖ encode(P)) mod ℓ
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
 */
import { timingSafeEqual } from 'node:crypto'
import { ristretto255 } from '@noble/curves/ed25519.js'
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js'
import { sha256, sha512 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../errors.ts'
import { Kind, Reader, Writer } from '../encoding/binary.ts'
import { randomScalar, systemRng, type Rng } from './random.ts'

type Point = InstanceType<typeof ristretto255.Point>

const G = ristretto255.Point.BASE
/** ℓ = 2^252 + 27742317777372353535851937790883648493, the order of ristretto255. */
export const CHAMELEON_ORDER: bigint = ristretto255.Point.Fn.ORDER
export const CHAMELEON_SCALAR_BYTES = 32
export const CHAMELEON_PUBLIC_KEY_BYTES = 32
export const CHAMELEON_SECRET_KEY_BYTES = 32
export const CHAMELEON_HASH_BYTES = 32
/** An opening is r ‖ s. */
export const CHAMELEON_OPENING_BYTES = 64
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
  /** r ‖ s: 64 bytes, published with the record so anyone can verify it. */
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

/** H_e: the Schnorr challenge, bound to the key (as in EdDSA) so an opening cannot move between keys. */
function challenge(publicKey: Uint8Array, message: Uint8Array, r: bigint): bigint {
  return wide(sha512.create().update(E_TAG).update(publicKey).update(scalarBytes(r)).update(u32be(message.length)).update(message).digest())
}

/** f: the conversion of a group element to a scalar (in the paper: (y^e g^s mod p) mod q). */
const convert = (p: Point): bigint => wide(sha512.create().update(F_TAG).update(p.toBytes()).digest())

const mulPublic = (p: Point, k: bigint): Point => p.multiplyUnsafe(k) // k ∈ [0, ℓ): noble maps 0 to the identity

// ---- public-key cache --------------------------------------------------------------------------

const CACHE_LIMIT = 16
const keyCache = new Map<string, { point: Point; uses: number }>()

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
    if (keyCache.size >= CACHE_LIMIT) keyCache.delete(keyCache.keys().next().value!)
    keyCache.set(id, entry)
  }
  if (++entry.uses === 2) entry.point.precompute(8, false)
  return entry.point
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

/** Drop the memos (benchmarks use it to measure the cold path). */
export function clearChameleonKeyCache(): void {
  keyCache.clear()
  trapdoorCache.clear()
}

// ---- the scheme ----------------------------------------------------------------------------------

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

/** Hash: anyone holding the public key commits to `message`; the opening (r, s) is fresh randomness. */
export function chameleonHash(publicKey: Uint8Array, message: Uint8Array, rng: Rng = systemRng): ChameleonDigest {
  const Y = publicPoint(publicKey)
  expectMessage(message)
  const r = randomScalar(rng, CHAMELEON_ORDER)
  const s = randomScalar(rng, CHAMELEON_ORDER)
  const e = challenge(publicKey, message, r)
  // Nothing here is secret: (r, s) is published as the opening beside the record, and the hash's
  // binding rests on the trapdoor x alone. So the faster variable-time multiplications are safe
  // (only Adapt, which uses x and the nonce k, must stay constant-time).
  const P = mulPublic(Y, e).add(mulPublic(G, s))
  const C = mod(r - convert(P))
  const opening = new Uint8Array(CHAMELEON_OPENING_BYTES)
  opening.set(scalarBytes(r), 0)
  opening.set(scalarBytes(s), CHAMELEON_SCALAR_BYTES)
  return { hash: scalarBytes(C), opening }
}

/**
 * Verify: does (r, s) open `hash` to `message` under `publicKey`? False for a wrong message,
 * opening, hash or key; INVALID_ENCODING (with `reason`) for wrong lengths, non-canonical scalars
 * or an invalid point; INVALID_ARGUMENT if the message is not bytes.
 */
export function chameleonVerify(publicKey: Uint8Array, message: Uint8Array, hash: Uint8Array, opening: Uint8Array): boolean {
  const Y = publicPoint(publicKey)
  expectMessage(message)
  const C = expectBytes(hash, CHAMELEON_HASH_BYTES, 'chameleon hash')
  parseScalar(C, 'chameleon hash', true)
  const o = expectBytes(opening, CHAMELEON_OPENING_BYTES, 'chameleon opening')
  const r = parseScalar(o.subarray(0, CHAMELEON_SCALAR_BYTES), 'chameleon opening (r)', true)
  const s = parseScalar(o.subarray(CHAMELEON_SCALAR_BYTES), 'chameleon opening (s)', true)
  // e and s are public here, so the variable-time multiplication is safe.
  const e = challenge(publicKey, message, r)
  const expected = scalarBytes(mod(r - convert(mulPublic(Y, e).add(mulPublic(G, s)))))
  return timingSafeEqual(expected, C)
}

/**
 * Adapt: the trapdoor holder opens `hash` to a new message. Returns the new opening (r', s').
 *
 * The nonce k is hedged (RFC 6979 §3.6 style): SHA-512 over the trapdoor, the hash, the new message
 * and 32 fresh random bytes. Two adaptations sharing k under different challenges would reveal
 * x = (s'₁ − s'₂)/(e'₂ − e'₁), so a stuck or repeating RNG must not be able to repeat k.
 */
export function chameleonAdapt(secretKey: Uint8Array, message: Uint8Array, hash: Uint8Array, rng: Rng = systemRng): Uint8Array {
  const skBytes = expectBytes(secretKey, CHAMELEON_SECRET_KEY_BYTES, 'chameleon secret key')
  const x = parseScalar(skBytes, 'chameleon secret key', false)
  expectMessage(message)
  const C = parseScalar(expectBytes(hash, CHAMELEON_HASH_BYTES, 'chameleon hash'), 'chameleon hash', true)
  const publicKey = trapdoorPublicKey(x, skBytes)
  let k = 0n
  while (k === 0n) {
    k = wide(sha512.create().update(K_TAG).update(skBytes).update(hash).update(u32be(message.length)).update(message).update(rng(32)).digest())
  }
  const r = mod(C + convert(G.multiply(k)))
  const e = challenge(publicKey, message, r)
  const s = mod(k - e * x)
  const opening = new Uint8Array(CHAMELEON_OPENING_BYTES)
  opening.set(scalarBytes(r), 0)
  opening.set(scalarBytes(s), CHAMELEON_SCALAR_BYTES)
  return opening
}

/** A short fingerprint for logs and file names: hex of the first 8 bytes of SHA-256(pk). */
export function chameleonKeyId(publicKey: Uint8Array): string {
  parsePoint(expectBytes(publicKey, CHAMELEON_PUBLIC_KEY_BYTES, 'chameleon public key'), 'chameleon public key')
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
