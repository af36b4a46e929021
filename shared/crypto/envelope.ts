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
 *   envelope v1 = "CL" 01 08 ‖ blob(CT) ‖ nonce[12] ‖ commit[32] ‖ blob(sealed ‖ tag[16])
 *
 * Format 2 — one encapsulation per stream and key epoch (issue 11, docs/crypto.md §Stream keys).
 * The CP-ABE work is the same for every batch of a stream under an unchanged policy, so a gateway
 * encapsulates once per (stream, policy with its epoch) and derives each batch's keys from it:
 *
 *   dek ‖ commit   = HKDF-SHA256(ikm = K, salt = "careledger/v2/envelope",
 *                                info = SHA-256(CT) ‖ SHA-256(stream) ‖ u64be(seq) ‖ digest)     (RFC 5869)
 *   sealed         = AES-256-GCM(dek, nonce, plaintext, aad = label ‖ 0 ‖ SHA-256(CT) ‖ associatedData)
 *
 *   envelope v2 = "CL" 02 08 ‖ blob(CT) ‖ blob(stream) ‖ uvarint(seq) ‖ digest[32] ‖ nonce[12] ‖ commit[32] ‖ blob(sealed ‖ tag[16])
 *
 * `digest` is the batch's Merkle root (the manifest's merkleRoot), so every batch — and every
 * re-sealed correction of a batch — has its own key; K never leaves the holder's memory. Both
 * versions open with `openWithKey`: a reader needs no other change.
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
const LABEL_V2 = new TextEncoder().encode('careledger/v2/envelope')
export const ENVELOPE_V1 = 1
export const ENVELOPE_V2 = 2
const DIGEST_BYTES = 32
/** Longest stream id a v2 envelope carries (stream ids are 64 hex digits: shared/protocol/pseudonym.ts). */
const MAX_STREAM_BYTES = 256
const NONCE_BYTES = 12
const TAG_BYTES = 16
const COMMIT_BYTES = 32
/** Largest plaintext an envelope may carry (a batch is far smaller). */
export const MAX_ENVELOPE_PLAINTEXT = 64 * 1024 * 1024

/** Where a format-2 envelope's keys come from besides K: the batch it holds. */
export interface BatchKeyContext {
  readonly stream: string
  readonly seq: number
  /** 32 bytes: the batch's Merkle root. */
  readonly digest: Uint8Array
}

/**
 * One encapsulation, kept by the sealer for a stream while its policy (and epoch) is unchanged, and
 * recovered by a reader (Decaps or outsourced Finish): what re-seals a batch of the same stream and epoch.
 */
export interface StreamKem {
  /** The policy text encapsulated to, epoch included. */
  readonly policy: string
  /** Encoded ABE header (codec.ts). */
  readonly header: Uint8Array
  readonly key: GT
}

export interface Envelope {
  readonly version: typeof ENVELOPE_V1 | typeof ENVELOPE_V2
  /** Encoded ABE header (codec.ts); decode it with `envelopeCiphertext` when pairings need it. */
  readonly header: Uint8Array
  /** Format 2 only. */
  readonly context: BatchKeyContext | null
  readonly nonce: Uint8Array
  readonly commitment: Uint8Array
  /** AES-GCM output with the 16-byte tag at the end. */
  readonly sealed: Uint8Array
}

function contextInfo(header: Uint8Array, c: BatchKeyContext): Uint8Array {
  const seq = new Uint8Array(8)
  new DataView(seq.buffer).setBigUint64(0, BigInt(c.seq))
  return concatBytes(digestHeader(header), sha256(new TextEncoder().encode(c.stream)), seq, c.digest)
}

/** K's 576-byte encoding, kept per K: a format-2 stream key opens (and seals) many batches. */
const kemBytes = new WeakMap<GT, Uint8Array>()
function kemKeyBytes(k: GT): Uint8Array {
  let b = kemBytes.get(k)
  if (!b) kemBytes.set(k, (b = gtToBytes(k)))
  return b
}

function deriveKeys(kemKey: GT, header: Uint8Array, context: BatchKeyContext | null): { dek: Uint8Array; commitment: Uint8Array } {
  const okm = context
    ? hkdf(sha256, kemKeyBytes(kemKey), LABEL_V2, contextInfo(header, context), 64)
    : hkdf(sha256, kemKeyBytes(kemKey), LABEL, digestHeader(header), 64)
  return { dek: okm.subarray(0, 32), commitment: okm.subarray(32) }
}

const tooLarge = (plaintext: Uint8Array): CareLedgerError =>
  new CareLedgerError('INVALID_ARGUMENT', `plaintext of ${plaintext.length} bytes exceeds the envelope limit of ${MAX_ENVELOPE_PLAINTEXT}`, { length: plaintext.length })

function aeadSeal(dek: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const cipher = createCipheriv('aes-256-gcm', dek, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(aad)
  return concatBytes(cipher.update(plaintext), cipher.final(), cipher.getAuthTag())
}

const aadFor = (header: Uint8Array, associatedData: Uint8Array): Uint8Array => concatBytes(LABEL, Uint8Array.of(0), digestHeader(header), associatedData)

/** Format 1: encrypt `plaintext` under its own encapsulation, so that only keys satisfying `policy` can read it. */
export function sealEnvelope(mpk: MasterPublicKey, policy: string, plaintext: Uint8Array, associatedData: Uint8Array, rng: Rng = systemRng): Uint8Array {
  if (plaintext.length > MAX_ENVELOPE_PLAINTEXT) throw tooLarge(plaintext)
  const { ciphertext, key } = encaps(mpk, policy, rng)
  const header = encodeCiphertext(ciphertext)
  const { dek, commitment } = deriveKeys(key, header, null)
  const nonce = rng(NONCE_BYTES)
  const body = aeadSeal(dek, nonce, plaintext, aadFor(header, associatedData))
  return Writer.withPreamble(Kind.Envelope).blob(header).bytes(nonce).bytes(commitment).blob(body).finish()
}

/** FABEO.Encaps once, for a stream's batches under `policy` (format 2). */
export function encapsulate(mpk: MasterPublicKey, policy: string, rng: Rng = systemRng): StreamKem {
  const { ciphertext, key } = encaps(mpk, policy, rng)
  return { policy, header: encodeCiphertext(ciphertext), key }
}

function checkContext(c: BatchKeyContext): void {
  const streamBytes = new TextEncoder().encode(c.stream).length
  if (streamBytes === 0 || streamBytes > MAX_STREAM_BYTES || !Number.isSafeInteger(c.seq) || c.seq < 0 || c.seq > 0xffff_ffff || c.digest.length !== DIGEST_BYTES) {
    throw new CareLedgerError('INVALID_ARGUMENT', 'batch key context needs a stream id of 1–256 bytes, a seq in [0, 2^32) and a 32-byte digest', {
      stream: c.stream,
      seq: c.seq,
      digestLength: c.digest.length,
    })
  }
}

/**
 * Format 2: seal one batch with the stream's encapsulation. No pairing work: an HKDF and the AEAD.
 * Also the way a correction re-seals one batch (issue 10): whoever recovered `kem.key` for the batch's
 * header (Decaps or Finish) seals the corrected body under the same header, so every key that opened
 * the original opens the correction, and nothing else does.
 */
export function sealWithKem(kem: Pick<StreamKem, 'header' | 'key'>, context: BatchKeyContext, plaintext: Uint8Array, associatedData: Uint8Array, rng: Rng = systemRng): Uint8Array {
  if (plaintext.length > MAX_ENVELOPE_PLAINTEXT) throw tooLarge(plaintext)
  checkContext(context)
  const { dek, commitment } = deriveKeys(kem.key, kem.header, context)
  const nonce = rng(NONCE_BYTES)
  const body = aeadSeal(dek, nonce, plaintext, aadFor(kem.header, associatedData))
  return Writer.withPreamble(Kind.Envelope, ENVELOPE_V2)
    .blob(kem.header)
    .string(context.stream)
    .uvarint(context.seq)
    .bytes(context.digest)
    .bytes(nonce)
    .bytes(commitment)
    .blob(body)
    .finish()
}

export function decodeEnvelope(bytes: Uint8Array): Envelope {
  const { reader: r, version } = Reader.openVersion(bytes, Kind.Envelope, 'envelope', [ENVELOPE_V1, ENVELOPE_V2])
  const header = r.blob(1 << 20).slice()
  let context: BatchKeyContext | null = null
  if (version === ENVELOPE_V2) {
    const stream = r.string(MAX_STREAM_BYTES)
    if (stream.length === 0) r.fail('EMPTY_STREAM', 'names no stream')
    context = { stream, seq: r.uvarint(), digest: r.take(DIGEST_BYTES).slice() }
  }
  const nonce = r.take(NONCE_BYTES).slice()
  const commitment = r.take(COMMIT_BYTES).slice()
  const sealed = r.blob(MAX_ENVELOPE_PLAINTEXT + TAG_BYTES).slice()
  if (sealed.length < TAG_BYTES) r.fail('TRUNCATED', 'sealed body is shorter than the GCM tag')
  r.end()
  return { version: version === ENVELOPE_V2 ? ENVELOPE_V2 : ENVELOPE_V1, header, context, nonce, commitment, sealed }
}

/**
 * The ABE header with every point validated (on the curve, in the subgroup). Only Decaps and
 * Transform need it; the outsourced Finish works on the header's digest alone.
 */
export const envelopeCiphertext = (envelope: Envelope): Ciphertext => decodeCiphertext(envelope.header)

/** Open with the encapsulated key, however it was obtained (Decaps or outsourced Finish). */
export function openWithKey(envelope: Envelope, kemKey: GT, associatedData: Uint8Array): Uint8Array {
  const { dek, commitment } = deriveKeys(kemKey, envelope.header, envelope.context)
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
