/**
 * The hybrid envelope every sealed batch travels in (KEM/DEM, as in ISO/IEC 18033-2):
 *
 *   (CT, K)        = FABEO.Encaps(mpk, policy)
 *   dek ‖ commit   = HKDF-SHA256(ikm = K, salt = "careledger/v1/envelope", info = SHA-256(CT))   (RFC 5869)
 *   sealed         = AES-256-GCM(dek, nonce, plaintext, aad = label ‖ SHA-256(CT) ‖ associatedData)  (SP 800-38D)
 *
 * The header is bound twice: into the KDF (a different or altered header gives a different key)
 * and into the AEAD. `commit` is a key-commitment tag: AES-GCM alone is not key-committing, and
 * the tag lets a user tell "the proxy lied / wrong key" from "the data was altered".
 * associatedData is what the caller binds in (the batch manifest's fields).
 *
 *   envelope = "CL" 01 08 ‖ blob(CT) ‖ nonce[12] ‖ commit[32] ‖ blob(sealed ‖ tag[16])
 */
import { createCipheriv, createDecipheriv, timingSafeEqual } from 'node:crypto'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { concatBytes } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../errors.ts'
import { Kind, Reader, Writer } from '../encoding/binary.ts'
import { systemRng, type Rng } from './random.ts'
import { decaps, encaps, type Ciphertext, type MasterPublicKey, type UserKey } from './abe/fabeo.ts'
import { decodeCiphertext, decodeTransformed, digestHeader, encodeCiphertext, encodeTransformed } from './abe/codec.ts'
import { gtToBytes, type GT } from './abe/gt.ts'
import { finish, transform, type RetrievalKey } from './abe/outsource.ts'

const LABEL = new TextEncoder().encode('careledger/v1/envelope')
const NONCE_BYTES = 12
const TAG_BYTES = 16
const COMMIT_BYTES = 32
/** Largest plaintext an envelope may carry (a batch is far smaller). */
export const MAX_ENVELOPE_PLAINTEXT = 64 * 1024 * 1024

export interface Envelope {
  /** Encoded ABE header (codec.ts); decode it with `envelopeCiphertext` when pairings need it. */
  readonly header: Uint8Array
  readonly nonce: Uint8Array
  readonly commitment: Uint8Array
  /** AES-GCM output with the 16-byte tag at the end. */
  readonly sealed: Uint8Array
}

function deriveKeys(kemKey: GT, header: Uint8Array): { dek: Uint8Array; commitment: Uint8Array } {
  const okm = hkdf(sha256, gtToBytes(kemKey), LABEL, digestHeader(header), 64)
  return { dek: okm.subarray(0, 32), commitment: okm.subarray(32) }
}

const aadFor = (header: Uint8Array, associatedData: Uint8Array): Uint8Array => concatBytes(LABEL, Uint8Array.of(0), digestHeader(header), associatedData)

/** Encrypt `plaintext` so that only keys satisfying `policy` can read it. */
export function sealEnvelope(mpk: MasterPublicKey, policy: string, plaintext: Uint8Array, associatedData: Uint8Array, rng: Rng = systemRng): Uint8Array {
  if (plaintext.length > MAX_ENVELOPE_PLAINTEXT) {
    throw new CareLedgerError('INVALID_ARGUMENT', `plaintext of ${plaintext.length} bytes exceeds the envelope limit of ${MAX_ENVELOPE_PLAINTEXT}`, {
      length: plaintext.length,
    })
  }
  const { ciphertext, key } = encaps(mpk, policy, rng)
  const header = encodeCiphertext(ciphertext)
  const { dek, commitment } = deriveKeys(key, header)
  const nonce = rng(NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', dek, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(aadFor(header, associatedData))
  const body = concatBytes(cipher.update(plaintext), cipher.final(), cipher.getAuthTag())
  return Writer.withPreamble(Kind.Envelope).blob(header).bytes(nonce).bytes(commitment).blob(body).finish()
}

export function decodeEnvelope(bytes: Uint8Array): Envelope {
  const r = Reader.open(bytes, Kind.Envelope, 'envelope')
  const header = r.blob(1 << 20).slice()
  const nonce = r.take(NONCE_BYTES).slice()
  const commitment = r.take(COMMIT_BYTES).slice()
  const sealed = r.blob(MAX_ENVELOPE_PLAINTEXT + TAG_BYTES).slice()
  if (sealed.length < TAG_BYTES) r.fail('TRUNCATED', 'sealed body is shorter than the GCM tag')
  r.end()
  return { header, nonce, commitment, sealed }
}

/**
 * The ABE header with every point validated (on the curve, in the subgroup). Only Decaps and
 * Transform need it; the outsourced Finish works on the header's digest alone.
 */
export const envelopeCiphertext = (envelope: Envelope): Ciphertext => decodeCiphertext(envelope.header)

/** Open with the encapsulated key, however it was obtained (Decaps or outsourced Finish). */
export function openWithKey(envelope: Envelope, kemKey: GT, associatedData: Uint8Array): Uint8Array {
  const { dek, commitment } = deriveKeys(kemKey, envelope.header)
  if (!timingSafeEqual(commitment, envelope.commitment)) {
    throw new CareLedgerError('DECRYPTION_FAILED', 'the decapsulated key does not match this envelope (wrong key, altered header, or a lying proxy)', {
      reason: 'KEY_COMMITMENT',
    })
  }
  const body = envelope.sealed
  const decipher = createDecipheriv('aes-256-gcm', dek, envelope.nonce, { authTagLength: TAG_BYTES })
  decipher.setAAD(aadFor(envelope.header, associatedData))
  decipher.setAuthTag(body.subarray(body.length - TAG_BYTES))
  try {
    return concatBytes(decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final())
  } catch (e) {
    throw new CareLedgerError('DECRYPTION_FAILED', 'envelope authentication failed: the ciphertext or its associated data was altered', {
      reason: 'AEAD_TAG',
    }, { cause: e })
  }
}

/** Decrypt directly with a user key (3 pairings on this machine). */
export function openEnvelope(key: UserKey, bytes: Uint8Array, associatedData: Uint8Array): Uint8Array {
  const envelope = decodeEnvelope(bytes)
  return openWithKey(envelope, decaps(key, envelopeCiphertext(envelope)), associatedData)
}

/** Proxy side of outsourced decryption: returns the encoded transformed ciphertext. */
export function transformEnvelope(transformKey: UserKey, bytes: Uint8Array): Uint8Array {
  const envelope = decodeEnvelope(bytes)
  return encodeTransformed({ headerDigest: digestHeader(envelope.header), t: transform(transformKey, envelopeCiphertext(envelope)) })
}

/** User side of outsourced decryption: one GT exponentiation, then the AEAD. */
export function finishEnvelope(rk: RetrievalKey, bytes: Uint8Array, transformed: Uint8Array, associatedData: Uint8Array): Uint8Array {
  const envelope = decodeEnvelope(bytes)
  const tc = decodeTransformed(transformed)
  if (!timingSafeEqual(tc.headerDigest, digestHeader(envelope.header))) {
    throw new CareLedgerError('DECRYPTION_FAILED', 'the transformed ciphertext was computed for a different envelope', { reason: 'HEADER_MISMATCH' })
  }
  return openWithKey(envelope, finish(rk, tc.t), associatedData)
}
