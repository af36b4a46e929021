/**
 * Device and gateway identities: Ed25519 (RFC 8032 §5.1) through noble (verification also through
 * libsodium or OpenSSL, see verify), with domain separation.
 *
 *   signed bytes = "careledger/v1/" ‖ domain ‖ 0x00 ‖ payload        (encoding/canonical.ts)
 *
 * The domain names what the signature is for ("batch-manifest", "api-request", …), so a signature
 * over one kind of message can never be replayed as another. Verification is strict RFC 8032
 * §5.1.7 (noble's zip215: false): canonical encodings of A and R, S < L, small-order public keys
 * refused; it answers false for anything that does not verify.
 */
import { createPrivateKey, createPublicKey, sign as nodeSign, timingSafeEqual, verify as nodeVerify, type KeyObject } from 'node:crypto'
import { ed25519 } from '@noble/curves/ed25519.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../errors.ts'
import { domainSeparated } from '../encoding/canonical.ts'
import { systemRng, type Rng } from './random.ts'
import { loadOptionalModule } from './optional-module.ts'

export const SIGNING_SECRET_KEY_BYTES = 32
export const SIGNING_PUBLIC_KEY_BYTES = 32
export const SIGNATURE_BYTES = 64

export interface SigningKeyPair {
  /** The RFC 8032 §5.1.5 seed: 32 random bytes. */
  readonly secretKey: Uint8Array
  readonly publicKey: Uint8Array
}

function expectBytes(value: unknown, length: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new CareLedgerError('INVALID_ENCODING', `${what}: expected ${length} bytes, got ${typeof value}`, { what, reason: 'NOT_BYTES' })
  }
  if (value.length !== length) {
    throw new CareLedgerError('INVALID_ENCODING', `${what}: expected ${length} bytes, got ${value.length}`, { what, reason: 'BAD_LENGTH', length: value.length })
  }
  return value
}

/**
 * A 32-byte Ed25519 public key that strict verification can use: a canonical encoding of a
 * curve point (RFC 8032 §5.1.3) that is not of small order. For vetting keys when a device or
 * gateway is registered; INVALID_ENCODING otherwise.
 */
export function checkSigningPublicKey(publicKey: Uint8Array): Uint8Array {
  const what = 'Ed25519 public key'
  expectBytes(publicKey, SIGNING_PUBLIC_KEY_BYTES, what)
  let small: boolean
  try {
    small = ed25519.Point.fromBytes(publicKey, false).isSmallOrder()
  } catch {
    throw new CareLedgerError('INVALID_ENCODING', `${what}: not a canonical encoding of a curve point`, { what, reason: 'BAD_POINT' })
  }
  if (small) throw new CareLedgerError('INVALID_ENCODING', `${what}: a small-order point is not a usable key`, { what, reason: 'SMALL_ORDER' })
  return publicKey
}

export function generateSigningKey(rng: Rng = systemRng): SigningKeyPair {
  const secretKey = expectBytes(rng(SIGNING_SECRET_KEY_BYTES), SIGNING_SECRET_KEY_BYTES, 'random seed').slice()
  return { secretKey, publicKey: ed25519.getPublicKey(secretKey) }
}

/** The public key of a secret key (RFC 8032 §5.1.5). */
export const signingPublicKey = (secretKey: Uint8Array): Uint8Array =>
  ed25519.getPublicKey(expectBytes(secretKey, SIGNING_SECRET_KEY_BYTES, 'Ed25519 secret key'))

/**
 * Ed25519 signature (deterministic, RFC 8032 §5.1.6) over "careledger/v1/" ‖ domain ‖ 0x00 ‖ payload.
 * Through OpenSSL where node:crypto has it (~0.05 ms; noble recomputes the public key each call,
 * ~1.5 ms of a gateway's sealing pass per batch); RFC 8032 signing is deterministic, so both give the
 * same bytes (test/crypto/sign.test.ts checks it), and noble signs where OpenSSL is not there (the browser).
 */
export function sign(secretKey: Uint8Array, domain: string, payload: Uint8Array): Uint8Array {
  expectBytes(secretKey, SIGNING_SECRET_KEY_BYTES, 'Ed25519 secret key')
  const message = domainSeparated(domain, payload)
  const key = nativeSecretKey(secretKey)
  return key ? new Uint8Array(nodeSign(null, message, key)) : ed25519.sign(message, secretKey)
}

/** RFC 8410 PrivateKeyInfo for an Ed25519 seed: this DER prefix ‖ the 32-byte seed. */
const PKCS8_ED25519_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20])
/** Secret key array → its OpenSSL key object and the seed it was made from (a rewritten array is re-imported). */
const nativeSecretKeys = new WeakMap<Uint8Array, { readonly seed: Uint8Array; readonly key: KeyObject }>()
let nativeSigning = true

function nativeSecretKey(secretKey: Uint8Array): KeyObject | null {
  if (!nativeSigning) return null
  const kept = nativeSecretKeys.get(secretKey)
  if (kept && timingSafeEqual(kept.seed, secretKey)) return kept.key
  try {
    const key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, secretKey]), format: 'der', type: 'pkcs8' })
    nativeSecretKeys.set(secretKey, { seed: secretKey.slice(), key })
    return key
  } catch {
    nativeSigning = false // no OpenSSL Ed25519 here (the browser's shim): noble signs
    return null
  }
}

/**
 * Strict RFC 8032 §5.1.7 verification of `signature` on `payload` for `domain`. False for a
 * signature that does not verify, including one whose R or S is not canonical (§5.1.7 step 1:
 * "the signature is invalid"); INVALID_ENCODING for wrong lengths or a public key that is not a
 * point; INVALID_ARGUMENT for a bad domain or a payload that is not bytes.
 *
 * Fast path: libsodium's crypto_sign_verify_detached (sodium-native's prebuilt binding, ~0.05 ms
 * of CPU here), or where it does not load OpenSSL (node:crypto, ~0.08 ms); noble (~2 ms) decides
 * whenever the fast path says no, so the verdict is always noble's strict one:
 *   Either accepts ⇒ S < L and R's bytes equal encode([S]B − [k]A) (both re-encode and compare,
 *   so R is canonical), with k = SHA-512(R ‖ A ‖ M) mod L over the same bytes noble hashes. For an A
 *   that is a canonical encoding of a point not of small order (checked once per key), noble decodes
 *   the same A and R, and R + [k]A − [S]B = 0 satisfies its cofactored equation too. So native true ⇒
 *   noble true; native false defers to noble. Keys failing that check never take the fast path.
 *   (libsodium checks more besides: S canonical, A canonical and not of small order, R not of
 *   small order; each can only turn a true into a false, which noble then re-judges.)
 */
export function verify(publicKey: Uint8Array, domain: string, payload: Uint8Array, signature: Uint8Array): boolean {
  expectBytes(publicKey, SIGNING_PUBLIC_KEY_BYTES, 'Ed25519 public key')
  expectBytes(signature, SIGNATURE_BYTES, 'Ed25519 signature')
  const message = domainSeparated(domain, payload)
  const key = nativeKey(publicKey)
  if (key !== null && (sodium ? sodium.crypto_sign_verify_detached(signature, message, publicKey) : nodeVerify(null, message, key, signature))) return true
  if (!ed25519.utils.isValidPublicKey(publicKey, false)) {
    throw new CareLedgerError('INVALID_ENCODING', 'Ed25519 public key: not a canonical encoding of a curve point', { what: 'Ed25519 public key', reason: 'BAD_POINT' })
  }
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false })
  } catch {
    return false
  }
}

interface SodiumVerify {
  crypto_sign_verify_detached(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean
}

/**
 * libsodium through sodium-native where it loads (Node on a platform it ships a prebuilt binary
 * for), else null: in a browser bundle there is no `process`, and the require is built at run
 * time so bundlers leave it alone. CARELEDGER_NO_SODIUM=1 forces OpenSSL (benchmarks compare).
 */
function loadSodium(): SodiumVerify | null {
  return loadOptionalModule<SodiumVerify>('sodium-native', 'CARELEDGER_NO_SODIUM', (s) => typeof s.crypto_sign_verify_detached === 'function')
}
const sodium = loadSodium()

/** Which library the fast path of verify uses here. */
export const nativeVerifier = (): 'libsodium' | 'openssl' => (sodium ? 'libsodium' : 'openssl')

const NATIVE_KEY_LIMIT = 4096
/** hex(public key) → OpenSSL key object, or null when only noble may judge this key. */
const nativeKeys = new Map<string, KeyObject | null>()

function nativeKey(publicKey: Uint8Array): KeyObject | null {
  const id = bytesToHex(publicKey)
  let key = nativeKeys.get(id)
  if (key === undefined) {
    try {
      checkSigningPublicKey(publicKey)
      key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' })
    } catch {
      key = null
    }
    if (nativeKeys.size >= NATIVE_KEY_LIMIT) nativeKeys.delete(nativeKeys.keys().next().value!)
    nativeKeys.set(id, key)
  }
  return key
}

/** checkSigningPublicKey's verdict, remembered per key (a point decompression costs ~0.2 ms). */
export const isUsableSigningKey = (publicKey: Uint8Array): boolean =>
  publicKey instanceof Uint8Array && publicKey.length === SIGNING_PUBLIC_KEY_BYTES && nativeKey(publicKey) !== null

/** A short fingerprint for logs and registries: the first 16 hex digits of SHA-256(pk). */
export function signingKeyId(publicKey: Uint8Array): string {
  return bytesToHex(sha256(expectBytes(publicKey, SIGNING_PUBLIC_KEY_BYTES, 'Ed25519 public key'))).slice(0, 16)
}
