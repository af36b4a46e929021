import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ed25519 } from '@noble/curves/ed25519.js'
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { checkSigningPublicKey, generateSigningKey, sign, signingKeyId, signingPublicKey, verify } from '../../shared/crypto/sign.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { domainSeparated } from '../../shared/encoding/canonical.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))
const utf8 = new TextEncoder()

function errorOf(f: () => unknown): { code: string; reason: unknown } | null {
  try {
    f()
    return null
  } catch (e) {
    if (!isCareLedgerError(e)) throw e
    return { code: e.code, reason: e.info.reason }
  }
}

// RFC 8032 §7.1, TEST 1–3 (SECRET KEY, PUBLIC KEY, MESSAGE, SIGNATURE).
const RFC8032: [string, string, string, string, string][] = [
  [
    'TEST 1',
    '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    '',
    'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  ],
  [
    'TEST 2',
    '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    '72',
    '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  ],
  [
    'TEST 3',
    'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    'af82',
    '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  ],
]

const L = ed25519.Point.Fn.ORDER

describe('Ed25519 signatures with domain separation (RFC 8032)', () => {
  it.each(RFC8032)('noble reproduces RFC 8032 §7.1 %s', (_, sk, pk, msg, sig) => {
    expect(hex(ed25519.getPublicKey(unhex(sk)))).toBe(pk)
    expect(hex(ed25519.sign(unhex(msg), unhex(sk)))).toBe(sig)
    expect(ed25519.verify(unhex(sig), unhex(msg), unhex(pk), { zip215: false })).toBe(true)
    expect(hex(signingPublicKey(unhex(sk)))).toBe(pk)
  })

  const device = generateSigningKey(deterministicRng('careledger sign tests'))
  const payload = utf8.encode('{"batch":17,"records":64}')

  it('signs "careledger/v1/" ‖ domain ‖ 0x00 ‖ payload and verifies it', () => {
    const sig = sign(device.secretKey, 'batch-manifest', payload)
    expect(sig.length).toBe(64)
    expect(verify(device.publicKey, 'batch-manifest', payload, sig)).toBe(true)
    const framed = Uint8Array.from([...utf8.encode('careledger/v1/batch-manifest'), 0, ...payload])
    expect(hex(sig)).toBe(hex(ed25519.sign(framed, device.secretKey)))
    // and it is not a signature over the bare payload
    expect(ed25519.verify(sig, payload, device.publicKey)).toBe(false)
  })

  it('keeps domains apart: a batch-manifest signature is not an api-request signature', () => {
    const sig = sign(device.secretKey, 'batch-manifest', payload)
    expect(verify(device.publicKey, 'api-request', payload, sig)).toBe(false)
    expect(verify(device.publicKey, 'batch-manifes', utf8.encode(`t\0${new TextDecoder().decode(payload)}`), sig)).toBe(false)
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), fc.uint8Array({ maxLength: 64 }), (a, b, p) => {
        fc.pre(a !== b)
        expect(verify(device.publicKey, b, p, sign(device.secretKey, a, p))).toBe(false)
      }),
      { numRuns: 100 },
    )
  })

  it('rejects tampered payloads, signatures and keys', () => {
    const sig = sign(device.secretKey, 'batch-manifest', payload)
    const other = generateSigningKey(deterministicRng('another device'))
    fc.assert(
      fc.property(fc.nat(payload.length * 8 - 1), fc.nat(511), (pbit, sbit) => {
        const p = payload.slice()
        p[pbit >> 3]! ^= 1 << (pbit & 7)
        expect(verify(device.publicKey, 'batch-manifest', p, sig)).toBe(false)
        const s = sig.slice()
        s[sbit >> 3]! ^= 1 << (sbit & 7)
        // a flipped bit may also make R or S non-canonical: still just "false"
        expect(verify(device.publicKey, 'batch-manifest', payload, s)).toBe(false)
      }),
      { numRuns: 200 },
    )
    expect(verify(other.publicKey, 'batch-manifest', payload, sig)).toBe(false)
  })

  it('is strict (zip215: false): S ≥ L and small-order keys do not verify', () => {
    const sig = sign(device.secretKey, 'batch-manifest', payload)
    const S = bytesToNumberLE(sig.subarray(32))
    const malleated = Uint8Array.from([...sig.subarray(0, 32), ...numberToBytesLE(S + L, 32)])
    expect(verify(device.publicKey, 'batch-manifest', payload, malleated)).toBe(false)
    // the identity (y = 1) is a small-order point: anything "signed" by it must fail
    const identity = numberToBytesLE(1n, 32)
    const forged = Uint8Array.from([...identity, ...new Uint8Array(32)])
    expect(verify(identity, 'batch-manifest', payload, forged)).toBe(false)
    expect(errorOf(() => checkSigningPublicKey(identity))).toEqual({ code: 'INVALID_ENCODING', reason: 'SMALL_ORDER' })
    expect(checkSigningPublicKey(device.publicKey)).toBe(device.publicKey)
  })

  it('derives keys from the injected RNG and fingerprints them', () => {
    const a = generateSigningKey(deterministicRng('seed'))
    const b = generateSigningKey(deterministicRng('seed'))
    expect(hex(a.secretKey)).toBe(hex(b.secretKey))
    expect(hex(a.publicKey)).toBe(hex(ed25519.getPublicKey(a.secretKey)))
    expect(hex(generateSigningKey().publicKey)).not.toBe(hex(generateSigningKey().publicKey))
    expect(signingKeyId(a.publicKey)).toBe(hex(sha256(a.publicKey)).slice(0, 16))
    expect(signingKeyId(a.publicKey)).toMatch(/^[0-9a-f]{16}$/)
  })

  describe('input checking', () => {
    const sig = sign(device.secretKey, 'batch-manifest', payload)

    it('throws INVALID_ENCODING for wrong lengths and undecodable public keys', () => {
      expect(errorOf(() => sign(device.secretKey.subarray(1), 'batch-manifest', payload))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_LENGTH' })
      expect(errorOf(() => verify(device.publicKey.subarray(1), 'batch-manifest', payload, sig))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_LENGTH' })
      expect(errorOf(() => verify(device.publicKey, 'batch-manifest', payload, sig.subarray(1)))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_LENGTH' })
      expect(errorOf(() => verify('key' as never, 'batch-manifest', payload, sig))).toEqual({ code: 'INVALID_ENCODING', reason: 'NOT_BYTES' })
      // y = 2 is not the y-coordinate of any curve point
      expect(errorOf(() => verify(numberToBytesLE(2n, 32), 'batch-manifest', payload, sig))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_POINT' })
      expect(errorOf(() => checkSigningPublicKey(numberToBytesLE(2n, 32)))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_POINT' })
      expect(errorOf(() => signingKeyId(new Uint8Array(31)))?.code).toBe('INVALID_ENCODING')
      expect(errorOf(() => generateSigningKey(() => new Uint8Array(3)))?.code).toBe('INVALID_ENCODING')
    })

    it('throws INVALID_ARGUMENT for a bad domain or a payload that is not bytes', () => {
      expect(errorOf(() => sign(device.secretKey, '', payload))?.code).toBe('INVALID_ARGUMENT')
      expect(errorOf(() => sign(device.secretKey, 'a\0b', payload))?.code).toBe('INVALID_ARGUMENT')
      expect(errorOf(() => verify(device.publicKey, 'batch-manifest', 'text' as never, sig))?.code).toBe('INVALID_ARGUMENT')
    })

    it('garbage gives a boolean or a CareLedgerError, never anything else (property)', () => {
      const junk = { withBigInt: true, withNullPrototype: true, withBoxedValues: true, withMap: true, withTypedArray: true }
      const bytes = fc.oneof(fc.uint8Array({ maxLength: 70 }), fc.constantFrom(32, 64).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })), fc.anything(junk))
      fc.assert(
        fc.property(bytes, fc.oneof(fc.string(), fc.anything(junk)), bytes, bytes, (pk, domain, p, s) => {
          const err = errorOf(() => expect(verify(pk as never, domain as never, p as never, s as never)).toBe(false))
          if (err) expect(['INVALID_ENCODING', 'INVALID_ARGUMENT']).toContain(err.code)
          errorOf(() => sign(pk as never, domain as never, p as never))
        }),
        { numRuns: 500 },
      )
    })
  })
})

/** noble's strict RFC 8032 verdict, the reference the OpenSSL fast path must agree with. */
const strictNoble = (pk: Uint8Array, domain: string, m: Uint8Array, sig: Uint8Array): boolean => {
  try {
    return ed25519.verify(sig, domainSeparated(domain, m), pk, { zip215: false })
  } catch {
    return false
  }
}

describe('verify: native fast path (libsodium, else OpenSSL), noble verdict', () => {
  it('answers exactly what strict noble verification answers (valid, mutated, small-order and non-canonical inputs)', () => {
    const pair = generateSigningKey(deterministicRng('fast path'))
    const msg = new TextEncoder().encode('block header bytes')
    const good = ed25519.sign(new Uint8Array([...new TextEncoder().encode('careledger/v1/block-header'), 0, ...msg]), pair.secretKey)
    expect(verify(pair.publicKey, 'block-header', msg, good)).toBe(true)
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 1, max: 255 }), fc.boolean(), (i, x, onMessage) => {
        const sig = good.slice()
        const m = msg.slice()
        if (onMessage) m[i % m.length]! ^= x
        else sig[i]! ^= x
        expect(verify(pair.publicKey, 'block-header', m, sig)).toBe(strictNoble(pair.publicKey, 'block-header', m, sig))
      }),
      { numRuns: 60 },
    )
    // S + L: the same signature with a non-canonical S (RFC 8032 §5.1.7 step 1 rejects it).
    let s = 0n
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(good[i]!)
    s += ed25519.Point.Fn.ORDER
    const big = good.slice()
    for (let i = 32; i < 64; i++) (big[i] = Number(s & 255n)), (s >>= 8n)
    expect(verify(pair.publicKey, 'block-header', msg, big)).toBe(false)
    expect(strictNoble(pair.publicKey, 'block-header', msg, big)).toBe(false)
    // A small-order key (the identity) with R = S·B "verifies" any message under the cofactorless
    // equation; strict verification refuses small-order keys, and so does the fast path.
    const identity = new Uint8Array(32)
    identity[0] = 1
    const forged = new Uint8Array(64)
    forged.set(ed25519.Point.BASE.multiply(12345n).toBytes())
    forged[32] = 12345 & 255
    forged[33] = 12345 >> 8
    expect(verify(identity, 'block-header', msg, forged)).toBe(false)
    expect(strictNoble(identity, 'block-header', msg, forged)).toBe(false)
  })
})


describe('sign: OpenSSL fast path (issue 11)', () => {
  it('gives the bytes noble gives, for RFC 8032 §7.1 and random seeds and messages (property)', () => {
    for (const [, sk, , msg] of RFC8032) {
      const payload = unhex(msg)
      expect(hex(sign(unhex(sk), 'test', payload))).toBe(hex(ed25519.sign(domainSeparated('test', payload), unhex(sk))))
    }
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), (sk, payload) => {
        expect(hex(sign(sk, 'batch-manifest', payload))).toBe(hex(ed25519.sign(domainSeparated('batch-manifest', payload), sk)))
      }),
      { numRuns: 50 },
    )
  })

  it('follows a secret-key array rewritten in place', () => {
    const sk = new Uint8Array(32).fill(1)
    const payload = utf8.encode('x')
    sign(sk, 'test', payload)
    sk.fill(2)
    expect(hex(sign(sk, 'test', payload))).toBe(hex(ed25519.sign(domainSeparated('test', payload), sk)))
  })
})
