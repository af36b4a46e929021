/**
 * `node:crypto` for the browser bundle of the console's doctor view (cloud/console/bundle.ts
 * aliases it in): the few calls shared/ makes, on audited libraries — AES-256-GCM from
 * @noble/ciphers, SHA-256 and SHA-512 from @noble/hashes — so the browser runs the very same envelope, Merkle
 * and signature code as Node, not a second implementation of it. Ed25519's OpenSSL fast path
 * (shared/crypto/sign.ts) answers "not verified here" so that noble decides, as it does whenever
 * OpenSSL says no.
 */
import { gcm } from '@noble/ciphers/aes.js'
import { scrypt as nobleScrypt } from '@noble/hashes/scrypt.js'
import { sha256, sha512 } from '@noble/hashes/sha2.js'
import { concatBytes } from '@noble/hashes/utils.js'

const GCM = 'aes-256-gcm'

function expectGcm(algorithm: string): void {
  if (algorithm !== GCM) throw new Error(`node:crypto in the browser: only ${GCM} is available, not ${algorithm}`)
}

class GcmCipher {
  readonly #key: Uint8Array
  readonly #iv: Uint8Array
  readonly #decrypt: boolean
  #aad: Uint8Array | undefined
  #tag: Uint8Array | undefined
  readonly #parts: Uint8Array[] = []

  constructor(key: Uint8Array, iv: Uint8Array, decrypt: boolean) {
    this.#key = key
    this.#iv = iv
    this.#decrypt = decrypt
  }

  setAAD(aad: Uint8Array): this {
    this.#aad = aad
    return this
  }

  setAuthTag(tag: Uint8Array): this {
    this.#tag = tag
    return this
  }

  getAuthTag(): Uint8Array {
    return this.#tag!
  }

  update(data: Uint8Array): Uint8Array {
    this.#parts.push(data)
    return new Uint8Array(0)
  }

  final(): Uint8Array {
    const aead = gcm(this.#key, this.#iv, this.#aad)
    const data = concatBytes(...this.#parts)
    if (this.#decrypt) return aead.decrypt(concatBytes(data, this.#tag!)) // throws on a bad tag, as OpenSSL does
    const sealed = aead.encrypt(data)
    this.#tag = sealed.subarray(sealed.length - 16)
    return sealed.subarray(0, sealed.length - 16)
  }
}

export function createCipheriv(algorithm: string, key: Uint8Array, iv: Uint8Array): GcmCipher {
  expectGcm(algorithm)
  return new GcmCipher(key, iv, false)
}

export function createDecipheriv(algorithm: string, key: Uint8Array, iv: Uint8Array): GcmCipher {
  expectGcm(algorithm)
  return new GcmCipher(key, iv, true)
}

export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) throw new RangeError('Input buffers must have the same byte length')
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!
  return diff === 0
}

/** The digests shared/ asks node:crypto for: SHA-256 (Merkle, envelope) and SHA-512 (chameleon, RFC 9496 hash-to-group). */
const DIGESTS = { sha256, sha512 } as const
function digestFor(algorithm: string): (typeof DIGESTS)[keyof typeof DIGESTS] {
  const d = DIGESTS[algorithm as keyof typeof DIGESTS]
  if (!d) throw new Error(`node:crypto in the browser: only ${Object.keys(DIGESTS).join(', ')} are available, not ${algorithm}`)
  return d
}

export function hash(algorithm: string, data: Uint8Array): Uint8Array {
  return digestFor(algorithm)(data)
}

export function createHash(algorithm: string) {
  const h = digestFor(algorithm).create()
  const self = {
    update: (d: Uint8Array | string) => (h.update(typeof d === 'string' ? new TextEncoder().encode(d) : d), self),
    digest: () => h.digest(),
  }
  return self
}

/** No OpenSSL key objects here: returning a placeholder lets sign.ts fall through to noble. */
export const createPublicKey = (): object => ({})
/** No OpenSSL signing here: shared/crypto/sign.ts falls back to noble when this throws. */
export const createPrivateKey = (): never => {
  throw new Error('no native Ed25519 signing in the browser')
}
export const sign = (): never => {
  throw new Error('no native Ed25519 signing in the browser')
}
export const verify = (): boolean => false

export const randomBytes = (n: number): Uint8Array => crypto.getRandomValues(new Uint8Array(n))

/** RFC 7914 scrypt for opening sealed key files in the page (shared/crypto/sealed-secret.ts), on @noble/hashes. */
export function scryptSync(password: Uint8Array, salt: Uint8Array, keylen: number, o: { N: number; r: number; p: number; maxmem?: number }): Uint8Array {
  return nobleScrypt(password, salt, { N: o.N, r: o.r, p: o.p, dkLen: keylen, maxmem: o.maxmem })
}
