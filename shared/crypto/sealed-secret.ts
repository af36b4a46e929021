/**
 * A sealed secret: a small secret (a key file's bytes) encrypted under a passphrase, in one
 * self-describing file. One construction:
 *
 *   kek           = scrypt(P = UTF-8(NFC(passphrase)), S = salt, N = 2^log2N, r, p, dkLen = 32)   RFC 7914 §2
 *   key ‖ check   = HKDF-SHA256(ikm = kek, salt = "careledger/v1/sealed-secret", info = "", L = 64)  RFC 5869
 *   header        = "CL" 01 0B ‖ scheme 01 ‖ log2N ‖ r ‖ p ‖ salt[16] ‖ check[32] ‖ nonce[12] ‖ str(label)
 *   sealed        = header ‖ blob(AES-256-GCM(key, nonce, secret, aad = header) ‖ tag[16])        SP 800-38D
 *
 * `label` is a public, authenticated description ("gateway signing key (Ed25519 seed)"): anyone can
 * read it without the passphrase (`careledger keys show`), nobody can change it unnoticed. `check`
 * tells a wrong passphrase (check differs) from an altered file (check matches, tag does not);
 * it gives an attacker nothing the tag does not: every guess still costs one scrypt.
 *
 * scrypt is OpenSSL's (node:crypto; the test suite checks it against RFC 7914 §12 and @noble/hashes),
 * AES-GCM is OpenSSL's as in envelope.ts. Pure: randomness (salt, nonce) is injected.
 * docs/crypto.md §Sealed secrets; vectors in test/vectors/sealed-secret.json.
 */
import { createCipheriv, createDecipheriv, scryptSync, timingSafeEqual } from 'node:crypto'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { CareLedgerError } from '../errors.ts'
import { Kind, MAGIC, Reader, Writer } from '../encoding/binary.ts'
import { systemRng, type Rng } from './random.ts'

/** scrypt (RFC 7914) + HKDF-SHA256 + AES-256-GCM. The only scheme so far; another would be 2. */
export const SEALED_SECRET_SCHEME = 1

export interface ScryptParams {
  /** N = 2^log2N (CPU/memory cost). */
  readonly log2N: number
  /** Block size. */
  readonly r: number
  /** Parallelisation. */
  readonly p: number
}

/** 128 MiB, ≈ 0.6 s of one core on the development VM: the cost of every newly sealed file unless told otherwise. */
export const DEFAULT_SCRYPT: ScryptParams = { log2N: 17, r: 8, p: 1 }
/** What a sealed file may ask for: bounded so a crafted file cannot make us allocate gigabytes or spin for minutes. */
export const SCRYPT_LIMITS = { log2N: [10, 20], r: [1, 16], p: [1, 16], maxMemoryBytes: 1024 * 1024 * 1024 } as const

const SALT_BYTES = 16
const CHECK_BYTES = 32
const NONCE_BYTES = 12
const TAG_BYTES = 16
const KEY_BYTES = 32
export const MAX_LABEL_BYTES = 256
export const MAX_SECRET_BYTES = 1024 * 1024
const HKDF_SALT = new TextEncoder().encode('careledger/v1/sealed-secret')

/** What `deriveSealingKey` returns: everything needed to seal or open files sealed with (salt, params). */
export interface SealingKey {
  readonly salt: Uint8Array
  readonly params: ScryptParams
  readonly key: Uint8Array
  readonly check: Uint8Array
}

export interface SealedHeader {
  readonly params: ScryptParams
  readonly salt: Uint8Array
  readonly check: Uint8Array
  readonly nonce: Uint8Array
  readonly label: string
  /** Length of the secret inside. */
  readonly secretLength: number
}

const memoryOf = (p: ScryptParams): number => 128 * p.r * 2 ** p.log2N

/** INVALID_ARGUMENT (or, while decoding, INVALID_ENCODING) for parameters outside SCRYPT_LIMITS. */
export function checkScryptParams(p: ScryptParams, fail: (problem: string) => never = (problem) => {
  throw new CareLedgerError('INVALID_ARGUMENT', `scrypt parameters: ${problem}`, { params: p })
}): ScryptParams {
  const within = (v: number, [lo, hi]: readonly [number, number]) => Number.isInteger(v) && v >= lo && v <= hi
  if (!within(p.log2N, SCRYPT_LIMITS.log2N)) fail(`log2N must be an integer ${SCRYPT_LIMITS.log2N[0]}–${SCRYPT_LIMITS.log2N[1]}, got ${p.log2N}`)
  if (!within(p.r, SCRYPT_LIMITS.r)) fail(`r must be an integer ${SCRYPT_LIMITS.r[0]}–${SCRYPT_LIMITS.r[1]}, got ${p.r}`)
  if (!within(p.p, SCRYPT_LIMITS.p)) fail(`p must be an integer ${SCRYPT_LIMITS.p[0]}–${SCRYPT_LIMITS.p[1]}, got ${p.p}`)
  if (memoryOf(p) > SCRYPT_LIMITS.maxMemoryBytes) fail(`128·r·N = ${memoryOf(p)} bytes exceeds ${SCRYPT_LIMITS.maxMemoryBytes}`)
  return p
}

/**
 * The passphrase as bytes: Unicode NFC (RFC 8265 §4.2, the OpaqueString profile), then UTF-8, so
 * the same passphrase typed on two systems that compose accents differently opens the same file.
 */
export function passphraseBytes(passphrase: string): Uint8Array {
  if (typeof passphrase !== 'string' || passphrase.length === 0) throw new CareLedgerError('INVALID_ARGUMENT', 'the passphrase is empty', {})
  if (!passphrase.isWellFormed()) throw new CareLedgerError('INVALID_ARGUMENT', 'the passphrase holds a lone UTF-16 surrogate (not valid Unicode)', {})
  return new TextEncoder().encode(passphrase.normalize('NFC'))
}

/** The expensive step (one scrypt): do it once per (passphrase, salt, params) and reuse the result. */
export function deriveSealingKey(passphrase: string, salt: Uint8Array, params: ScryptParams): SealingKey {
  checkScryptParams(params)
  if (!(salt instanceof Uint8Array) || salt.length !== SALT_BYTES) throw new CareLedgerError('INVALID_ARGUMENT', `the salt must be ${SALT_BYTES} bytes`, {})
  const N = 2 ** params.log2N
  const kek = scryptSync(passphraseBytes(passphrase), salt, KEY_BYTES, { N, r: params.r, p: params.p, maxmem: memoryOf(params) + 2 * 1024 * 1024 })
  const okm = hkdf(sha256, new Uint8Array(kek), HKDF_SALT, new Uint8Array(0), KEY_BYTES + CHECK_BYTES)
  kek.fill(0)
  return { salt: Uint8Array.from(salt), params: { ...params }, key: okm.slice(0, KEY_BYTES), check: okm.slice(KEY_BYTES) }
}

/** A fresh salt for a new sealing key. */
export const newSealingKey = (passphrase: string, params: ScryptParams = DEFAULT_SCRYPT, rng: Rng = systemRng): SealingKey =>
  deriveSealingKey(passphrase, rng(SALT_BYTES), params)

function encodeHeader(k: SealingKey, nonce: Uint8Array, label: string): Uint8Array {
  return Writer.withPreamble(Kind.SealedSecret)
    .u8(SEALED_SECRET_SCHEME)
    .u8(k.params.log2N)
    .u8(k.params.r)
    .u8(k.params.p)
    .bytes(k.salt)
    .bytes(k.check)
    .bytes(nonce)
    .string(label)
    .finish()
}

/** Seal `secret` (≤ 1 MiB) under `key`, with a public `label` saying what it is. */
export function sealSecret(secret: Uint8Array, key: SealingKey, label: string, rng: Rng = systemRng): Uint8Array {
  if (!(secret instanceof Uint8Array)) throw new CareLedgerError('INVALID_ARGUMENT', `the secret must be bytes, got ${typeof secret}`, {})
  if (secret.length > MAX_SECRET_BYTES) throw new CareLedgerError('INVALID_ARGUMENT', `a sealed secret holds at most ${MAX_SECRET_BYTES} bytes, got ${secret.length}`, { length: secret.length })
  const labelBytes = new TextEncoder().encode(label)
  if (labelBytes.length > MAX_LABEL_BYTES) throw new CareLedgerError('INVALID_ARGUMENT', `the label is ${labelBytes.length} bytes; at most ${MAX_LABEL_BYTES}`, { label })
  const nonce = rng(NONCE_BYTES)
  const header = encodeHeader(key, nonce, label)
  const cipher = createCipheriv('aes-256-gcm', key.key, nonce)
  cipher.setAAD(header)
  const body = Buffer.concat([cipher.update(secret), cipher.final(), cipher.getAuthTag()])
  return new Writer().bytes(header).blob(body).finish()
}

/** Does `bytes` start like a sealed secret ("CL", a version byte, kind 11)? Says nothing about validity. */
export const isSealedSecret = (bytes: Uint8Array): boolean =>
  bytes.length >= 4 && bytes[0] === MAGIC[0] && bytes[1] === MAGIC[1] && bytes[3] === Kind.SealedSecret

interface Parsed extends SealedHeader {
  readonly header: Uint8Array
  readonly body: Uint8Array
}

function parse(bytes: Uint8Array): Parsed {
  const r = Reader.open(bytes, Kind.SealedSecret, 'sealed secret')
  const scheme = r.u8()
  if (scheme !== SEALED_SECRET_SCHEME) {
    throw new CareLedgerError('UNSUPPORTED_VERSION', `sealed secret: scheme ${scheme} is not supported (this build reads scheme ${SEALED_SECRET_SCHEME}: scrypt + AES-256-GCM)`, { what: 'sealed secret', scheme })
  }
  const params = checkScryptParams({ log2N: r.u8(), r: r.u8(), p: r.u8() }, (problem) => r.fail('BAD_KDF_PARAMS', `scrypt parameters: ${problem}`))
  const salt = r.take(SALT_BYTES)
  const check = r.take(CHECK_BYTES)
  const nonce = r.take(NONCE_BYTES)
  const label = r.string(MAX_LABEL_BYTES)
  const header = bytes.subarray(0, bytes.length - r.remaining)
  const body = r.blob(MAX_SECRET_BYTES + TAG_BYTES)
  if (body.length < TAG_BYTES) r.fail('TRUNCATED', 'the ciphertext is shorter than its 16-byte tag')
  r.end()
  return { params, salt, check, nonce, label, secretLength: body.length - TAG_BYTES, header, body }
}

/** The public part: cost, salt, label, size. Needs no passphrase. */
export function readSealedHeader(bytes: Uint8Array): SealedHeader {
  const { header: _h, body: _b, ...h } = parse(bytes)
  return h
}

/**
 * Open a sealed secret. `key` is the SealingKey for the file's salt and parameters, or a function
 * returning it (so a caller can derive — or look up a cached — key once it has read the header).
 * DECRYPTION_FAILED with info.reason WRONG_PASSPHRASE or AEAD_TAG (the file was altered).
 */
export function openSealedSecret(bytes: Uint8Array, key: SealingKey | ((h: SealedHeader) => SealingKey)): Uint8Array {
  const p = parse(bytes)
  const k = typeof key === 'function' ? key(p) : key
  const same = k.salt.length === p.salt.length && timingSafeEqual(k.salt, p.salt) && k.params.log2N === p.params.log2N && k.params.r === p.params.r && k.params.p === p.params.p
  if (!same) throw new CareLedgerError('INVALID_ARGUMENT', 'this sealing key was derived for another salt or other scrypt parameters than the file', {})
  if (!timingSafeEqual(k.check, p.check)) {
    throw new CareLedgerError('DECRYPTION_FAILED', `wrong passphrase for the sealed secret "${p.label}"`, { reason: 'WRONG_PASSPHRASE', label: p.label })
  }
  const decipher = createDecipheriv('aes-256-gcm', k.key, p.nonce)
  decipher.setAAD(p.header)
  decipher.setAuthTag(p.body.subarray(p.body.length - TAG_BYTES))
  try {
    return new Uint8Array(Buffer.concat([decipher.update(p.body.subarray(0, p.body.length - TAG_BYTES)), decipher.final()]))
  } catch (e) {
    throw new CareLedgerError('DECRYPTION_FAILED', `the sealed secret "${p.label}" was altered or is damaged (the passphrase is right, the authentication tag does not verify)`, { reason: 'AEAD_TAG', label: p.label }, { cause: e })
  }
}

/** One-off convenience: derive (one scrypt) and seal. Many files under one passphrase: derive once, use sealSecret. */
export const sealWithPassphrase = (secret: Uint8Array, passphrase: string, label: string, opts: { params?: ScryptParams; rng?: Rng } = {}): Uint8Array =>
  sealSecret(secret, newSealingKey(passphrase, opts.params ?? DEFAULT_SCRYPT, opts.rng ?? systemRng), label, opts.rng ?? systemRng)

/** One-off convenience: read the header, derive (one scrypt), open. */
export const openWithPassphrase = (bytes: Uint8Array, passphrase: string): Uint8Array =>
  openSealedSecret(bytes, (h) => deriveSealingKey(passphrase, h.salt, h.params))
