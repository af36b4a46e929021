/**
 * Sealed secrets (shared/crypto/sealed-secret.ts, docs/crypto.md §Sealed secrets): the KDF pinned
 * to RFC 7914 §12 and cross-checked against @noble/hashes, known-answer vectors, an independent
 * reader in Python, and every way a file can be wrong answered with a typed error.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { scryptSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { scrypt as nobleScrypt } from '@noble/hashes/scrypt.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import {
  deriveSealingKey,
  isSealedSecret,
  newSealingKey,
  openSealedSecret,
  openWithPassphrase,
  readSealedHeader,
  sealSecret,
  sealWithPassphrase,
} from '../../shared/crypto/sealed-secret.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { errorOf } from '../helpers/errors.ts'
import { computeSealedSecretVectors } from '../vectors/sealed-secret.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const unhex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))
const LOW = { log2N: 10, r: 8, p: 1 } as const
interface Vector {
  name: string
  passphrase: string
  label: string
  params: { log2N: number; r: number; p: number }
  secret: string
  sealed: string
}
const committed = JSON.parse(readFileSync(new URL('../vectors/sealed-secret.json', import.meta.url), 'utf8')) as Vector[]

describe('scrypt is RFC 7914 scrypt', () => {
  // RFC 7914 §12, vectors 2 and 3 (the fourth, N = 2^20, takes a gigabyte).
  const vectors = [
    { P: 'password', S: 'NaCl', N: 1024, r: 8, p: 16, dk: 'fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640' },
    { P: 'pleaseletmein', S: 'SodiumChloride', N: 16384, r: 8, p: 1, dk: '7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887' },
  ]
  it.each(vectors)('node:crypto (OpenSSL) and @noble/hashes both give the RFC output for P=$P', (v) => {
    expect(scryptSync(v.P, v.S, 64, { N: v.N, r: v.r, p: v.p, maxmem: 256 * 1024 * 1024 }).toString('hex')).toBe(v.dk)
    expect(hex(nobleScrypt(v.P, v.S, { N: v.N, r: v.r, p: v.p, dkLen: 64 }))).toBe(v.dk)
  })

  it('deriveSealingKey = HKDF-SHA256 over the scrypt output, recomputed with @noble/hashes', () => {
    const salt = unhex('000102030405060708090a0b0c0d0e0f')
    for (const pass of ['p', 'a longer passphrase with spaces', 'Ünïcödé']) {
      const k = deriveSealingKey(pass, salt, LOW)
      const kek = nobleScrypt(new TextEncoder().encode(pass.normalize('NFC')), salt, { N: 1024, r: 8, p: 1, dkLen: 32 })
      const okm = hkdf(sha256, kek, new TextEncoder().encode('careledger/v1/sealed-secret'), new Uint8Array(0), 64)
      expect(hex(k.key)).toBe(hex(okm.subarray(0, 32)))
      expect(hex(k.check)).toBe(hex(okm.subarray(32)))
    }
  })
})

describe('known-answer vectors (test/vectors/sealed-secret.json)', () => {
  const fresh = computeSealedSecretVectors()
  it.each(committed.map((c, i) => [c.name, i] as const))('%s: matches byte for byte and opens', (_, i) => {
    expect(fresh[i]).toEqual(committed[i])
    const c = committed[i]!
    expect(hex(openWithPassphrase(unhex(c.sealed), c.passphrase))).toBe(c.secret)
    expect(readSealedHeader(unhex(c.sealed))).toMatchObject({ label: c.label, params: c.params, secretLength: c.secret.length / 2 })
  })

  it('a passphrase typed in another Unicode normalisation (NFD) opens the NFC vector', () => {
    const c = committed[1]!
    expect(c.passphrase.normalize('NFD')).not.toBe(c.passphrase)
    expect(hex(openWithPassphrase(unhex(c.sealed), c.passphrase.normalize('NFD')))).toBe(c.secret)
  })

  const python = spawnSync('python3', ['-c', 'import cryptography'], { encoding: 'utf8' })
  it.skipIf(python.status !== 0)('an independent reader (Python hashlib + cryptography, from docs/crypto.md alone) opens every vector', () => {
    for (const c of committed) {
      const r = spawnSync('python3', [new URL('../vectors/open-sealed-secret.py', import.meta.url).pathname, c.sealed, c.passphrase], { encoding: 'utf8' })
      expect(r.stderr).toBe('')
      expect(r.stdout.trim()).toBe(c.secret)
    }
  })
})

describe('sealing and opening', () => {
  const key = newSealingKey('the passphrase', LOW, deterministicRng('sealed-secret test key'))
  const secret = deterministicRng('sealed-secret test secret')(32)
  const sealed = sealSecret(secret, key, 'test secret', deterministicRng('nonce'))

  it('round-trips, and one key seals many files each with its own nonce', () => {
    expect(isSealedSecret(sealed)).toBe(true)
    expect(hex(openSealedSecret(sealed, key))).toBe(hex(secret))
    const again = sealSecret(secret, key, 'test secret')
    expect(hex(again)).not.toBe(hex(sealed))
    expect(hex(openWithPassphrase(again, 'the passphrase'))).toBe(hex(secret))
    expect(hex(sealWithPassphrase(secret, 'x', 'y', { params: LOW })).length).toBeGreaterThan(0)
  })

  it('the secret does not appear in the file; the label does, in clear', () => {
    expect(Buffer.from(sealed).includes(Buffer.from(secret))).toBe(false)
    expect(Buffer.from(sealed).includes(Buffer.from('test secret'))).toBe(true)
  })

  it('a wrong passphrase is named as such (WRONG_PASSPHRASE), not as damage', () => {
    expect(errorOf(() => openWithPassphrase(sealed, 'the passphrasE'))).toEqual({ code: 'DECRYPTION_FAILED', reason: 'WRONG_PASSPHRASE' })
  })

  it('an altered label, nonce, ciphertext or tag is caught by the AEAD (AEAD_TAG)', () => {
    const labelAt = Buffer.from(sealed).indexOf('test secret')
    for (const at of [labelAt, 60, sealed.length - 20, sealed.length - 1]) {
      const bad = Uint8Array.from(sealed)
      bad[at]! ^= 0x01
      expect(errorOf(() => openSealedSecret(bad, (h) => deriveSealingKey('the passphrase', h.salt, h.params)))).toEqual({ code: 'DECRYPTION_FAILED', reason: 'AEAD_TAG' })
    }
  })

  it('every bit flip and truncation gives a typed error, never a wrong secret (property)', () => {
    fc.assert(
      fc.property(fc.nat(sealed.length * 8 - 1), (bit) => {
        const bad = Uint8Array.from(sealed)
        bad[bit >> 3]! ^= 1 << (bit & 7)
        const e = errorOf(() => openSealedSecret(bad, (h) => deriveSealingKey('the passphrase', h.salt, h.params)))
        expect(e).not.toBeNull()
        expect(['DECRYPTION_FAILED', 'INVALID_ENCODING', 'UNSUPPORTED_VERSION', 'INVALID_ARGUMENT']).toContain(e!.code)
      }),
      { numRuns: 200 },
    )
    for (let n = 0; n < sealed.length; n++) expect(errorOf(() => readSealedHeader(sealed.subarray(0, n)))?.code).toBe('INVALID_ENCODING')
    expect(errorOf(() => readSealedHeader(Uint8Array.of(...sealed, 0)))).toEqual({ code: 'INVALID_ENCODING', reason: 'TRAILING_BYTES' })
  })

  it('refuses an unknown scheme and KDF parameters that would cost gigabytes, before deriving anything', () => {
    const scheme = Uint8Array.from(sealed)
    scheme[4] = 2
    expect(errorOf(() => readSealedHeader(scheme))?.code).toBe('UNSUPPORTED_VERSION')
    for (const [at, value] of [[5, 30], [5, 9], [6, 0], [7, 0], [6, 16 + 1]] as const) {
      const bad = Uint8Array.from(sealed)
      bad[at] = value
      expect(errorOf(() => readSealedHeader(bad))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_KDF_PARAMS' })
    }
    // 128·r·N over 1 GiB: N = 2^20, r = 16.
    const big = Uint8Array.from(sealed)
    big[5] = 20
    big[6] = 16
    expect(errorOf(() => readSealedHeader(big))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_KDF_PARAMS' })
  })

  it('refuses an empty passphrase, an oversized label or secret, and a label that starts with a byte-order mark', () => {
    expect(errorOf(() => deriveSealingKey('', new Uint8Array(16), LOW))?.code).toBe('INVALID_ARGUMENT')
    expect(errorOf(() => sealSecret(secret, key, 'x'.repeat(257)))?.code).toBe('INVALID_ARGUMENT')
    expect(errorOf(() => sealSecret(new Uint8Array(1024 * 1024 + 1), key, 'big'))?.code).toBe('INVALID_ARGUMENT')
    expect(errorOf(() => sealSecret(secret, key, '\ufeffgateway key'))?.code).toBe('INVALID_ARGUMENT')
  })
})
