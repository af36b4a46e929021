import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ristretto255 } from '@noble/curves/ed25519.js'
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js'
import { sha256, sha512 } from '@noble/hashes/sha2.js'
import {
  CHAMELEON_ORDER,
  chameleonAdapt,
  chameleonEquation,
  chameleonEquationHolds,
  chameleonHash,
  chameleonKeyGen,
  chameleonKeyId,
  chameleonPublicKey,
  chameleonVerify,
  decodeChameleonPublicKey,
  decodeChameleonSecretKey,
  encodeChameleonPublicKey,
  encodeChameleonSecretKey,
} from '../../shared/crypto/chameleon.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { computeChameleonVectors } from '../vectors/chameleon.ts'

const Point = ristretto255.Point
const G = Point.BASE
const Fn = Point.Fn
const L = CHAMELEON_ORDER
const utf8 = new TextEncoder()
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))
const le = (k: bigint): Uint8Array => numberToBytesLE(k, 32)

const rng = deterministicRng('careledger chameleon tests')
const keys = chameleonKeyGen(rng)
const other = chameleonKeyGen(rng)
const x = bytesToNumberLE(keys.secretKey)
const Y = Point.fromBytes(keys.publicKey)

/** The code and reason of a CareLedgerError; anything untyped fails the test. */
function errorOf(f: () => unknown): { code: string; reason: unknown } | null {
  try {
    f()
    return null
  } catch (e) {
    if (!isCareLedgerError(e)) throw e
    return { code: e.code, reason: e.info.reason }
  }
}

// ---- the construction re-derived from the spec, independently of chameleon.ts ----------------

const u32be = (n: number): Uint8Array => Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255)
const wide = (d: Uint8Array): bigint => Fn.create(bytesToNumberLE(d))
/** H_e(Y, m, r) = SHA-512("careledger/v1/ch/e\0" ‖ encode(Y) ‖ le32(r) ‖ u32be(|m|) ‖ m) mod ℓ */
const He = (pk: Uint8Array, m: Uint8Array, r: bigint): bigint =>
  wide(sha512(Uint8Array.from([...utf8.encode('careledger/v1/ch/e\0'), ...pk, ...le(r), ...u32be(m.length), ...m])))
/** f(P) = SHA-512("careledger/v1/ch/f\0" ‖ encode(P)) mod ℓ */
const f = (P: InstanceType<typeof Point>): bigint => wide(sha512(Uint8Array.from([...utf8.encode('careledger/v1/ch/f\0'), ...P.toBytes()])))
const mulAny = (P: InstanceType<typeof Point>, k: bigint) => (k === 0n ? Point.ZERO : P.multiply(k))
/** C = r − f(e·Y + s·G) mod ℓ */
const referenceHash = (pk: Uint8Array, m: Uint8Array, r: bigint, s: bigint): bigint =>
  Fn.sub(r, f(mulAny(Point.fromBytes(pk), He(pk, m, r)).add(mulAny(G, s))))
/** (r, s) of a format-2 opening encode(P) ‖ s of hash C: r = C + f(P). */
const split = (opening: Uint8Array, hash: Uint8Array): [bigint, bigint] => [
  Fn.add(bytesToNumberLE(hash), f(Point.fromBytes(opening.subarray(0, 32)))),
  bytesToNumberLE(opening.subarray(32)),
]
/** The format-1 opening r ‖ s of the same (r, s). */
const asFormat1 = (opening: Uint8Array, hash: Uint8Array): Uint8Array => Uint8Array.from(split(opening, hash).flatMap((k) => [...le(k)]))

describe('chameleon hash (Ateniese–de Medeiros over ristretto255)', () => {
  const m1 = utf8.encode('record #7: SpO2 97 %')
  const m2 = utf8.encode('record #7 corrected: SpO2 93 %')
  const d = chameleonHash(keys.publicKey, m1, rng)

  it('Hash → Verify round-trips, with the documented sizes', () => {
    expect(keys.secretKey.length).toBe(32)
    expect(keys.publicKey.length).toBe(32)
    expect(d.hash.length).toBe(32)
    expect(d.opening.length).toBe(64)
    expect(chameleonVerify(keys.publicKey, m1, d.hash, d.opening)).toBe(true)
    const empty = chameleonHash(keys.publicKey, new Uint8Array(0), rng)
    expect(chameleonVerify(keys.publicKey, new Uint8Array(0), empty.hash, empty.opening)).toBe(true)
    expect(chameleonPublicKey(keys.secretKey)).toEqual(keys.publicKey)
    chameleonPublicKey(keys.secretKey).fill(0) // a copy: the memo behind it is not exposed
    expect(chameleonPublicKey(keys.secretKey)).toEqual(keys.publicKey)
  })

  it('matches the construction re-derived from the spec (C = r − f(e·Y + s·G), e = H_e(Y, m, r))', () => {
    const [r, s] = split(d.opening, d.hash)
    expect(hex(le(referenceHash(keys.publicKey, m1, r, s)))).toBe(hex(d.hash))
  })

  it('Adapt opens the same hash to a new message, knowing only the trapdoor, the message and the hash', () => {
    const adapted = chameleonAdapt(keys.secretKey, m2, d.hash, rng)
    expect(chameleonVerify(keys.publicKey, m2, d.hash, adapted)).toBe(true)
    // the old opening still opens the old message, and the openings do not cross over
    expect(chameleonVerify(keys.publicKey, m1, d.hash, d.opening)).toBe(true)
    expect(chameleonVerify(keys.publicKey, m1, d.hash, adapted)).toBe(false)
    expect(chameleonVerify(keys.publicKey, m2, d.hash, d.opening)).toBe(false)
    // adapting again (or adapting back) works as well, each time with a fresh opening
    const again = chameleonAdapt(keys.secretKey, m2, d.hash, rng)
    expect(hex(again)).not.toBe(hex(adapted))
    expect(chameleonVerify(keys.publicKey, m2, d.hash, again)).toBe(true)
    expect(chameleonVerify(keys.publicKey, m1, d.hash, chameleonAdapt(keys.secretKey, m1, d.hash, rng))).toBe(true)
  })

  it('rejects a wrong message, opening, hash or key', () => {
    const flip = (b: Uint8Array, i: number): Uint8Array => {
      const c = b.slice()
      c[i]! ^= 1
      return c
    }
    expect(chameleonVerify(keys.publicKey, utf8.encode('record #7: SpO2 98 %'), d.hash, d.opening)).toBe(false)
    expect(chameleonVerify(keys.publicKey, flip(m1, 0), d.hash, d.opening)).toBe(false)
    expect(chameleonVerify(keys.publicKey, m1, flip(d.hash, 0), d.opening)).toBe(false)
    // P: a flipped bit gives another point (false) or no canonical encoding at all (BAD_POINT)
    for (let i = 0; i < 32; i++) {
      const err = errorOf(() => expect(chameleonVerify(keys.publicKey, m1, d.hash, flip(d.opening, i))).toBe(false))
      if (err) expect(err).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_POINT' })
    }
    expect(chameleonVerify(keys.publicKey, m1, d.hash, flip(d.opening, 32))).toBe(false) // s
    expect(chameleonVerify(other.publicKey, m1, d.hash, d.opening)).toBe(false)
    // an opening made under another key does not verify under this one, even adapted to the same message
    const foreign = chameleonAdapt(other.secretKey, m2, d.hash, rng)
    expect(chameleonVerify(other.publicKey, m2, d.hash, foreign)).toBe(true)
    expect(chameleonVerify(keys.publicKey, m2, d.hash, foreign)).toBe(false)
  })

  it('holds for arbitrary messages (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), fc.integer(), (a, b, seed) => {
        const local = deterministicRng(`prop ${seed}`)
        const h = chameleonHash(keys.publicKey, a, local)
        expect(chameleonVerify(keys.publicKey, a, h.hash, h.opening)).toBe(true)
        const o = chameleonAdapt(keys.secretKey, b, h.hash, local)
        expect(chameleonVerify(keys.publicKey, b, h.hash, o)).toBe(true)
        if (hex(a) !== hex(b)) {
          expect(chameleonVerify(keys.publicKey, a, h.hash, o)).toBe(false)
          expect(chameleonVerify(keys.publicKey, b, h.hash, h.opening)).toBe(false)
        }
      }),
      { numRuns: 40 },
    )
  })

  it('is deterministic under a deterministic RNG and fresh under the system RNG', () => {
    const a = chameleonHash(keys.publicKey, m1, deterministicRng('same'))
    const b = chameleonHash(keys.publicKey, m1, deterministicRng('same'))
    expect(hex(a.hash)).toBe(hex(b.hash))
    expect(hex(chameleonHash(keys.publicKey, m1).hash)).not.toBe(hex(chameleonHash(keys.publicKey, m1).hash))
  })

  it('hedges the Adapt nonce: a stuck RNG does not repeat k across messages', () => {
    const stuck = () => (n: number) => new Uint8Array(n) // always zeros
    const o1 = chameleonAdapt(keys.secretKey, m1, d.hash, stuck())
    const o2 = chameleonAdapt(keys.secretKey, m2, d.hash, stuck())
    expect(chameleonVerify(keys.publicKey, m1, d.hash, o1)).toBe(true)
    expect(chameleonVerify(keys.publicKey, m2, d.hash, o2)).toBe(true)
    const [r1, s1] = split(o1, d.hash)
    const [r2, s2] = split(o2, d.hash)
    expect(r1).not.toBe(r2) // r' = C + f(k·G): equal r' would mean equal k
    const guess = Fn.div(Fn.sub(s1, s2), Fn.sub(He(keys.publicKey, m2, r2), He(keys.publicKey, m1, r1)))
    expect(G.multiply(guess).equals(Y)).toBe(false)
  })

  describe('input checking', () => {
    it('throws INVALID_ENCODING with a reason for wrong lengths, non-canonical scalars and bad points', () => {
      expect(errorOf(() => chameleonVerify(keys.publicKey.subarray(1), m1, d.hash, d.opening))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_LENGTH' })
      expect(errorOf(() => chameleonVerify(keys.publicKey, m1, d.hash.subarray(1), d.opening))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_LENGTH' })
      expect(errorOf(() => chameleonVerify(keys.publicKey, m1, d.hash, new Uint8Array(65)))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_LENGTH' })
      const v1 = asFormat1(d.opening, d.hash)
      const rIsL = v1.slice()
      rIsL.set(le(L), 0)
      expect(errorOf(() => chameleonVerify(keys.publicKey, m1, d.hash, rIsL, 1))).toEqual({ code: 'INVALID_ENCODING', reason: 'SCALAR_OUT_OF_RANGE' })
      // P must be a canonical ristretto255 encoding: p + 1 (≥ p) and a negative field element are not
      const pPlus1 = d.opening.slice()
      pPlus1.set(le(2n ** 255n - 18n), 0)
      expect(errorOf(() => chameleonVerify(keys.publicKey, m1, d.hash, pPlus1))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_POINT' })
      const negative = d.opening.slice()
      negative.set(le(1n), 0)
      expect(errorOf(() => chameleonVerify(keys.publicKey, m1, d.hash, negative))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_POINT' })
      const sHigh = d.opening.slice()
      sHigh.fill(0xff, 32)
      expect(errorOf(() => chameleonVerify(keys.publicKey, m1, d.hash, sHigh))).toEqual({ code: 'INVALID_ENCODING', reason: 'SCALAR_OUT_OF_RANGE' })
      expect(errorOf(() => chameleonVerify(keys.publicKey, m1, le(L + 1n), d.opening))).toEqual({ code: 'INVALID_ENCODING', reason: 'SCALAR_OUT_OF_RANGE' })
      // non-canonical r' = r + ℓ would otherwise be a second encoding of the same opening
      const [r, s] = split(d.opening, d.hash)
      const malleated = Uint8Array.from([...le(r + L), ...le(s)])
      expect(errorOf(() => chameleonVerify(keys.publicKey, m1, d.hash, malleated, 1))?.reason).toBe('SCALAR_OUT_OF_RANGE')
      const sPlusL = Uint8Array.from([...d.opening.subarray(0, 32), ...le(s + L)])
      expect(errorOf(() => chameleonVerify(keys.publicKey, m1, d.hash, sPlusL))?.reason).toBe('SCALAR_OUT_OF_RANGE')
      expect(errorOf(() => chameleonVerify(keys.publicKey, m1, d.hash, d.opening, 3 as never))?.code).toBe('INVALID_ARGUMENT')
      expect(errorOf(() => chameleonVerify(new Uint8Array(32).fill(0xff), m1, d.hash, d.opening))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_POINT' })
      expect(errorOf(() => chameleonVerify(new Uint8Array(32), m1, d.hash, d.opening))).toEqual({ code: 'INVALID_ENCODING', reason: 'IDENTITY_POINT' })
      expect(errorOf(() => chameleonHash(new Uint8Array(32), m1))).toEqual({ code: 'INVALID_ENCODING', reason: 'IDENTITY_POINT' })
      expect(errorOf(() => chameleonAdapt(new Uint8Array(32), m2, d.hash))).toEqual({ code: 'INVALID_ENCODING', reason: 'SCALAR_OUT_OF_RANGE' })
      expect(errorOf(() => chameleonAdapt(le(L), m2, d.hash))).toEqual({ code: 'INVALID_ENCODING', reason: 'SCALAR_OUT_OF_RANGE' })
      expect(errorOf(() => chameleonAdapt(keys.secretKey, m2, le(L)))).toEqual({ code: 'INVALID_ENCODING', reason: 'SCALAR_OUT_OF_RANGE' })
    })

    it('throws INVALID_ARGUMENT for a message that is not bytes, INVALID_ENCODING for keys that are not bytes', () => {
      expect(errorOf(() => chameleonVerify(keys.publicKey, 'text' as never, d.hash, d.opening))?.code).toBe('INVALID_ARGUMENT')
      expect(errorOf(() => chameleonHash(keys.publicKey, null as never))?.code).toBe('INVALID_ARGUMENT')
      expect(errorOf(() => chameleonVerify([...keys.publicKey] as never, m1, d.hash, d.opening))).toEqual({ code: 'INVALID_ENCODING', reason: 'NOT_BYTES' })
    })

    it('garbage in Verify gives a boolean or a CareLedgerError, never anything else', () => {
      const bytes = fc.oneof(fc.uint8Array({ minLength: 0, maxLength: 70 }), fc.constantFrom(32, 64).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })))
      fc.assert(
        fc.property(bytes, fc.uint8Array({ maxLength: 40 }), bytes, bytes, (pk, m, h, o) => {
          const err = errorOf(() => expect(chameleonVerify(pk, m, h, o)).toBe(false))
          if (err) expect(['INVALID_ENCODING', 'INVALID_ARGUMENT']).toContain(err.code)
        }),
        { numRuns: 300 },
      )
    })
  })

  describe('key files', () => {
    const pkFile = encodeChameleonPublicKey(keys.publicKey)
    const skFile = encodeChameleonSecretKey(keys.secretKey)

    it('round-trip, with the preamble "CL" 01 kind and the scheme byte', () => {
      expect(hex(pkFile.subarray(0, 5))).toBe('434c010901')
      expect(hex(skFile.subarray(0, 5))).toBe('434c010a01')
      expect(pkFile.length).toBe(37)
      expect(decodeChameleonPublicKey(pkFile)).toEqual(keys.publicKey)
      expect(decodeChameleonSecretKey(skFile)).toEqual(keys.secretKey)
    })

    it('reject bad lengths, kinds, schemes, points and scalars with a named reason', () => {
      const withBody = (file: Uint8Array, body: Uint8Array) => Uint8Array.from([...file.subarray(0, 5), ...body])
      expect(errorOf(() => decodeChameleonPublicKey(pkFile.subarray(0, 36)))).toEqual({ code: 'INVALID_ENCODING', reason: 'TRUNCATED' })
      expect(errorOf(() => decodeChameleonPublicKey(Uint8Array.from([...pkFile, 0])))).toEqual({ code: 'INVALID_ENCODING', reason: 'TRAILING_BYTES' })
      expect(errorOf(() => decodeChameleonPublicKey(skFile))).toEqual({ code: 'INVALID_ENCODING', reason: 'WRONG_KIND' })
      expect(errorOf(() => decodeChameleonSecretKey(pkFile))).toEqual({ code: 'INVALID_ENCODING', reason: 'WRONG_KIND' })
      expect(errorOf(() => decodeChameleonPublicKey(Uint8Array.from([0x43, 0x4d, ...pkFile.subarray(2)])))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_MAGIC' })
      expect(errorOf(() => decodeChameleonPublicKey(Uint8Array.from([...pkFile.subarray(0, 4), 2, ...keys.publicKey])))?.code).toBe('UNSUPPORTED_VERSION')
      expect(errorOf(() => decodeChameleonPublicKey(withBody(pkFile, new Uint8Array(32).fill(0xff))))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_POINT' })
      expect(errorOf(() => decodeChameleonPublicKey(withBody(pkFile, new Uint8Array(32))))).toEqual({ code: 'INVALID_ENCODING', reason: 'IDENTITY_POINT' })
      expect(errorOf(() => decodeChameleonSecretKey(withBody(skFile, new Uint8Array(32))))).toEqual({ code: 'INVALID_ENCODING', reason: 'SCALAR_OUT_OF_RANGE' })
      expect(errorOf(() => decodeChameleonSecretKey(withBody(skFile, le(L))))).toEqual({ code: 'INVALID_ENCODING', reason: 'SCALAR_OUT_OF_RANGE' })
      expect(errorOf(() => decodeChameleonSecretKey(withBody(skFile, le(L - 1n))))).toBeNull()
      expect(errorOf(() => encodeChameleonSecretKey(new Uint8Array(32)))?.reason).toBe('SCALAR_OUT_OF_RANGE')
      expect(errorOf(() => encodeChameleonPublicKey(new Uint8Array(31)))?.reason).toBe('BAD_LENGTH')
    })

    it('garbage and mutated files throw only CareLedgerError (property)', () => {
      const mutated = (file: Uint8Array) =>
        fc.tuple(fc.nat(file.length - 1), fc.integer({ min: 1, max: 255 }), fc.nat(file.length)).map(([i, v, cut]) => {
          const b = file.slice(0, Math.max(cut, i + 1))
          b[i]! ^= v
          return b
        })
      for (const [decode, file] of [
        [decodeChameleonPublicKey, pkFile],
        [decodeChameleonSecretKey, skFile],
      ] as const) {
        fc.assert(
          fc.property(fc.oneof(fc.uint8Array({ maxLength: 80 }), mutated(file)), (bytes) => {
            errorOf(() => decode(bytes))
          }),
          { numRuns: 400 },
        )
      }
      for (const junk of [undefined, null, 'CL', 42, [1, 2, 3], {}]) {
        expect(errorOf(() => decodeChameleonPublicKey(junk as never))?.code).toBe('INVALID_ENCODING')
        expect(errorOf(() => decodeChameleonSecretKey(junk as never))?.code).toBe('INVALID_ENCODING')
      }
    })

    it('fingerprints a key with the first 8 bytes of SHA-256(pk)', () => {
      expect(chameleonKeyId(keys.publicKey)).toBe(hex(sha256(keys.publicKey).subarray(0, 8)))
      expect(chameleonKeyId(keys.publicKey)).toMatch(/^[0-9a-f]{16}$/)
      expect(errorOf(() => chameleonKeyId(new Uint8Array(3)))?.code).toBe('INVALID_ENCODING')
    })
  })

  describe('key exposure', () => {
    /** Toy Krawczyk–Rabin hash over ristretto255: C = H(m)·G + r·Y, the trapdoor x with Y = x·G. */
    const Hm = (m: Uint8Array): bigint => wide(sha512(m))
    const krHash = (m: Uint8Array, r: bigint) => G.multiply(Hm(m)).add(Y.multiply(r))
    /** Trapdoor collision: H(m) + r·x = H(m') + r'·x  ⇒  r' = r + (H(m) − H(m'))/x. */
    const krCollide = (m: Uint8Array, r: bigint, m2: Uint8Array): bigint => Fn.add(r, Fn.div(Fn.sub(Hm(m), Hm(m2)), x))

    it('control: one published Krawczyk–Rabin collision gives the trapdoor away', () => {
      const r = 0x1234567n
      const r2 = krCollide(m1, r, m2)
      expect(krHash(m2, r2).equals(krHash(m1, r))).toBe(true)
      // anyone holding the two openings: x = (H(m) − H(m'))/(r' − r)
      const extracted = Fn.div(Fn.sub(Hm(m1), Hm(m2)), Fn.sub(r2, r))
      expect(extracted).toBe(x)
      expect(G.multiply(extracted).equals(Y)).toBe(true)
    })

    it('control: the ADM extraction formula is right, and works if a nonce k were ever reused', () => {
      // two adaptations forced to share k: s'ᵢ = k − e'ᵢ·x  ⇒  x = (s'₁ − s'₂)/(e'₂ − e'₁)
      const C = bytesToNumberLE(d.hash)
      const k = 0xabcdefn
      const r = Fn.add(C, f(G.multiply(k)))
      const s1 = Fn.sub(k, Fn.mul(He(keys.publicKey, m1, r), x))
      const s2 = Fn.sub(k, Fn.mul(He(keys.publicKey, m2, r), x))
      expect(chameleonVerify(keys.publicKey, m1, d.hash, Uint8Array.from([...le(r), ...le(s1)]), 1)).toBe(true)
      expect(chameleonVerify(keys.publicKey, m2, d.hash, Uint8Array.from([...le(r), ...le(s2)]), 1)).toBe(true)
      const extracted = Fn.div(Fn.sub(s1, s2), Fn.sub(He(keys.publicKey, m2, r), He(keys.publicKey, m1, r)))
      expect(G.multiply(extracted).equals(Y)).toBe(true)
    })

    /** Every linear combination an attacker could try on two openings (rᵢ, sᵢ), (rⱼ, sⱼ) of one hash. */
    function candidates(a: { m: Uint8Array; r: bigint; s: bigint }, b: { m: Uint8Array; r: bigint; s: bigint }): bigint[] {
      const ea = He(keys.publicKey, a.m, a.r)
      const eb = He(keys.publicKey, b.m, b.r)
      const ratios: [bigint, bigint][] = [
        [Fn.sub(a.s, b.s), Fn.sub(eb, ea)], // the Schnorr nonce-reuse formula
        [Fn.sub(a.r, b.r), Fn.sub(eb, ea)],
        [Fn.sub(a.s, b.s), Fn.sub(b.r, a.r)],
        [Fn.sub(a.r, b.r), Fn.sub(b.s, a.s)],
        [Fn.sub(Hm(a.m), Hm(b.m)), Fn.sub(b.r, a.r)], // Krawczyk–Rabin's
        [Fn.sub(Hm(a.m), Hm(b.m)), Fn.sub(b.s, a.s)],
        [Fn.sub(Fn.add(a.r, a.s), Fn.add(b.r, b.s)), Fn.sub(eb, ea)],
      ]
      const out: bigint[] = []
      for (const [num, den] of ratios) {
        if (den === 0n) continue
        const q = Fn.div(num, den)
        out.push(q, Fn.neg(q), Fn.inv(q === 0n ? 1n : q))
      }
      return out
    }

    it('ADM: no pairing of two or three public openings of one hash yields x with x·G = Y', () => {
      const openings = [
        { m: m1, o: d.opening },
        { m: m2, o: chameleonAdapt(keys.secretKey, m2, d.hash, rng) },
        { m: utf8.encode('record #7 deleted'), o: chameleonAdapt(keys.secretKey, utf8.encode('record #7 deleted'), d.hash, rng) },
      ].map(({ m, o }) => {
        expect(chameleonVerify(keys.publicKey, m, d.hash, o)).toBe(true)
        const [r, s] = split(o, d.hash)
        return { m, r, s }
      })
      let tried = 0
      for (const a of openings) {
        for (const b of openings) {
          if (a === b) continue
          for (const guess of candidates(a, b)) {
            tried++
            expect(guess === x || (guess !== 0n && G.multiply(guess).equals(Y))).toBe(false)
          }
        }
      }
      expect(tried).toBeGreaterThanOrEqual(6 * 7 * 3)
    })

    it('ADM: extraction fails for arbitrary messages (property)', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), (a, b) => {
          fc.pre(hex(a) !== hex(b))
          const h = chameleonHash(keys.publicKey, a, rng)
          const ob = chameleonAdapt(keys.secretKey, b, h.hash, rng)
          const [ra, sa] = split(h.opening, h.hash)
          const [rb, sb] = split(ob, h.hash)
          for (const guess of candidates({ m: a, r: ra, s: sa }, { m: b, r: rb, s: sb })) expect(guess).not.toBe(x)
        }),
        { numRuns: 30 },
      )
    })
  })

  describe('known-answer vectors', () => {
    const committed = JSON.parse(readFileSync(new URL('../vectors/chameleon.json', import.meta.url), 'utf8')) as Record<string, string>
    const fresh = computeChameleonVectors()

    it.each(Object.keys(committed))('%s matches the committed vector byte for byte', (name) => {
      expect(fresh[name]).toBe(committed[name])
    })

    it('the committed vectors are self-consistent and match the construction re-derived from the spec', () => {
      expect(Object.keys(fresh).sort()).toEqual(Object.keys(committed).sort())
      const pk = unhex(committed.publicKey!)
      const hash = unhex(committed.hash!)
      const message = unhex(committed.message!)
      const adapted = unhex(committed.adaptedMessage!)
      expect(hex(G.multiply(bytesToNumberLE(unhex(committed.secretKey!))).toBytes())).toBe(committed.publicKey)
      expect(chameleonVerify(pk, message, hash, unhex(committed.opening!))).toBe(true)
      expect(chameleonVerify(pk, adapted, hash, unhex(committed.adaptedOpening!))).toBe(true)
      expect(hex(le(referenceHash(pk, message, ...split(unhex(committed.opening!), hash))))).toBe(committed.hash)
      expect(hex(le(referenceHash(pk, adapted, ...split(unhex(committed.adaptedOpening!), hash))))).toBe(committed.hash)
      expect(decodeChameleonPublicKey(unhex(committed.publicKeyFile!))).toEqual(pk)
      expect(hex(decodeChameleonSecretKey(unhex(committed.secretKeyFile!)))).toBe(committed.secretKey)
    })
  })
})

describe('opening formats: 1 = r ‖ s (record format v1), 2 = encode(P) ‖ s (v2)', () => {
  const m = utf8.encode('record #9: heart_rate 64 /min')
  const m2 = utf8.encode('record #9 corrected: heart_rate 66 /min')

  it('the same randomness gives the same hash C in both formats, and the openings convert into each other', () => {
    const v1 = chameleonHash(keys.publicKey, m, deterministicRng('formats'), 1)
    const v2 = chameleonHash(keys.publicKey, m, deterministicRng('formats'), 2)
    expect(hex(v1.hash)).toBe(hex(v2.hash))
    expect(hex(asFormat1(v2.opening, v2.hash))).toBe(hex(v1.opening))
    expect(chameleonVerify(keys.publicKey, m, v1.hash, v1.opening, 1)).toBe(true)
    expect(chameleonVerify(keys.publicKey, m, v2.hash, v2.opening, 2)).toBe(true)
    // An opening read in the other format does not open the hash.
    expect(errorOf(() => expect(chameleonVerify(keys.publicKey, m, v1.hash, v1.opening, 2)).toBe(false))?.reason ?? 'false').toMatch(/false|BAD_POINT/)
    expect(errorOf(() => expect(chameleonVerify(keys.publicKey, m, v2.hash, v2.opening, 1)).toBe(false))?.reason ?? 'false').toMatch(/false|SCALAR_OUT_OF_RANGE/)
    // A format-1 hash can be adapted into a format-2 opening of the same C (how an old record is redacted).
    const adapted = chameleonAdapt(keys.secretKey, m2, v1.hash, rng, 2)
    expect(chameleonVerify(keys.publicKey, m2, v1.hash, adapted)).toBe(true)
    expect(chameleonVerify(keys.publicKey, m2, v1.hash, asFormat1(adapted, v1.hash), 1)).toBe(true)
  })

  it('the format-2 check is P = e·Y + s·G with r = C + f(P) recomputed (chameleonEquation)', () => {
    const h = chameleonHash(keys.publicKey, m, rng)
    const q = chameleonEquation(keys.publicKey, m, h.hash, h.opening)
    expect(hex(q.P.toBytes())).toBe(hex(h.opening.subarray(0, 32)))
    expect(q.e).toBe(He(keys.publicKey, m, split(h.opening, h.hash)[0]))
    expect(chameleonEquationHolds(Y, q)).toBe(true)
    expect(chameleonEquationHolds(Y, { ...q, s: Fn.add(q.s, 1n) })).toBe(false)
  })

  it('an adapted format-2 opening is a Schnorr signature (R, z) by Y: what a FROST round must produce', () => {
    // R = k·G, challenge c = −e' with e' = H_e(Y, m', C + f(R)), z = k + c·x (RFC 9591's z = k + c·sk)
    const h = chameleonHash(keys.publicKey, m, rng)
    const k = Fn.create(bytesToNumberLE(rng(48)))
    const R = G.multiply(k)
    const e = He(keys.publicKey, m2, Fn.add(bytesToNumberLE(h.hash), f(R)))
    const z = Fn.add(k, Fn.mul(Fn.neg(e), x))
    expect(G.multiply(z).equals(R.add(Y.multiply(Fn.neg(e))))).toBe(true) // z·G = R + c·Y: Schnorr verification
    expect(chameleonVerify(keys.publicKey, m2, h.hash, Uint8Array.from([...R.toBytes(), ...le(z)]))).toBe(true)
  })

  it('format-1 known-answer vectors (committed before format 2) are still reproduced byte for byte', () => {
    const committed = JSON.parse(readFileSync(new URL('../vectors/chameleon-v1.json', import.meta.url), 'utf8')) as Record<string, string>
    const fresh = computeChameleonVectors(1)
    expect(Object.keys(fresh).sort()).toEqual(Object.keys(committed).sort())
    for (const name of Object.keys(committed)) expect(fresh[name], name).toBe(committed[name])
    const current = JSON.parse(readFileSync(new URL('../vectors/chameleon.json', import.meta.url), 'utf8')) as Record<string, string>
    expect(current.hash).toBe(committed.hash) // one hash function, two encodings of its openings
    expect(hex(asFormat1(unhex(current.opening!), unhex(current.hash!)))).toBe(committed.opening)
    expect(hex(asFormat1(unhex(current.adaptedOpening!), unhex(current.hash!)))).toBe(committed.adaptedOpening)
  })
})
