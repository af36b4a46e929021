/**
 * Ed25519 verification for the chain's hot loops: node:crypto (OpenSSL, ~0.15 ms) first, noble
 * (shared/crypto/sign.ts, strict RFC 8032 §5.1.7, ~2–3 ms here) for the verdict whenever OpenSSL
 * says no. The answer is always exactly sign.ts `verify`'s answer, only faster for valid signatures:
 *
 *   OpenSSL accepts ⇒ S < L, and R's bytes equal encode([S]B − [k]A) (it re-encodes and compares,
 *   so R is canonical), with k = SHA-512(R ‖ A ‖ M) mod L over the same bytes noble hashes.
 *   If A is a canonical encoding of a point that is not of small order (checked once per key,
 *   checkSigningPublicKey), noble decodes the same A and R, and R + [k]A − [S]B = 0 satisfies its
 *   cofactored equation too. So native true ⇒ noble true, and native false defers to noble.
 *
 * Keys that fail the canonical/small-order check never take the fast path.
 */
import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto'
import { CareLedgerError } from '../../shared/errors.ts'
import { domainSeparated } from '../../shared/encoding/canonical.ts'
import { checkSigningPublicKey, SIGNATURE_BYTES, SIGNING_PUBLIC_KEY_BYTES, verify as nobleVerify } from '../../shared/crypto/sign.ts'

const CACHE_LIMIT = 4096
/** hex(public key) → OpenSSL key, or null when only noble may judge this key. */
const keys = new Map<string, KeyObject | null>()

function nativeKey(publicKey: Uint8Array): KeyObject | null {
  const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.length).toString('hex')
  let key = keys.get(id)
  if (key === undefined) {
    try {
      checkSigningPublicKey(publicKey)
      key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' })
    } catch {
      key = null
    }
    if (keys.size >= CACHE_LIMIT) keys.delete(keys.keys().next().value!)
    keys.set(id, key)
  }
  return key
}

function expectBytes(value: unknown, length: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    const got = value instanceof Uint8Array ? `${value.length} bytes` : typeof value
    throw new CareLedgerError('INVALID_ENCODING', `${what}: expected ${length} bytes, got ${got}`, { what, reason: value instanceof Uint8Array ? 'BAD_LENGTH' : 'NOT_BYTES' })
  }
  return value
}

/** Same contract as shared/crypto/sign.ts `verify` (including its errors), faster on success. */
export function verifySignature(publicKey: Uint8Array, domain: string, payload: Uint8Array, signature: Uint8Array): boolean {
  expectBytes(publicKey, SIGNING_PUBLIC_KEY_BYTES, 'Ed25519 public key')
  expectBytes(signature, SIGNATURE_BYTES, 'Ed25519 signature')
  const key = nativeKey(publicKey)
  if (key !== null && nodeVerify(null, domainSeparated(domain, payload), key, signature)) return true
  return nobleVerify(publicKey, domain, payload, signature)
}

/**
 * checkSigningPublicKey's verdict (canonical encoding, not of small order), remembered per key:
 * gateways are few and uploads many, and the check is a point decompression (~0.2 ms).
 */
export const isUsableSigningKey = (publicKey: Uint8Array): boolean => publicKey instanceof Uint8Array && publicKey.length === SIGNING_PUBLIC_KEY_BYTES && nativeKey(publicKey) !== null

/** For tests and benchmarks: forget the cached OpenSSL keys. */
export const clearSignatureKeyCache = (): void => keys.clear()
