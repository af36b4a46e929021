/**
 * The libsodium fast path of the chameleon hash (shared/crypto/ristretto-fast.ts) against noble,
 * the reference: the same bytes for e·Y + s·G on random and edge inputs, null (noble decides)
 * wherever libsodium refuses, and chameleonVerify / chameleonEquationHolds giving noble's verdict
 * on valid openings and on every kind of invalid one (non-canonical P, identity, wrong s, wrong P,
 * wrong message, wrong hash), in both opening formats. And that with the fast path off, noble
 * alone gives the same answers (a child process with CARELEDGER_RISTRETTO_FAST=0).
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ristretto255 } from '@noble/curves/ed25519.js'
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import {
  chameleonAdapt,
  chameleonEquation,
  chameleonEquationHolds,
  chameleonHash,
  chameleonKeyGen,
  chameleonPublicPoint,
  chameleonVerify,
  CHAMELEON_ORDER,
  type OpeningFormat,
} from '../../shared/crypto/chameleon.ts'
import { fastDoubleScalarBase, ristrettoFastLibrary, ristrettoFastReady, ristrettoFastState } from '../../shared/crypto/ristretto-fast.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { plusP, RFC_BAD } from './ristretto-bad-encodings.ts'

const Point = ristretto255.Point
const G = Point.BASE
const ℓ = CHAMELEON_ORDER
const rng = deterministicRng('ristretto fast path tests')
const keys = chameleonKeyGen(rng)
const Y = Point.fromBytes(keys.publicKey)
const scalar = fc.bigInt({ min: 1n, max: ℓ - 1n })
const noble = (Yp: InstanceType<typeof Point>, e: bigint, s: bigint): string => bytesToHex(Yp.multiplyUnsafe(e).add(G.multiplyUnsafe(s)).toBytes())


beforeAll(async () => {
  expect(await ristrettoFastReady()).toBe(true)
})

describe('fastDoubleScalarBase: libsodium against noble', () => {
  it('is loaded (libsodium-wrappers-sumo) and checked itself with a known answer', () => {
    expect(ristrettoFastState()).toBe('ready')
    expect(ristrettoFastLibrary()).toBe('libsodium')
  })

  it('gives noble’s bytes for e·Y + s·G, random keys and scalars (property)', () => {
    fc.assert(
      fc.property(scalar, scalar, scalar, (x, e, s) => {
        const Yx = G.multiply(x)
        expect(bytesToHex(fastDoubleScalarBase(Yx.toBytes(), e, s)!)).toBe(noble(Yx, e, s))
      }),
      { numRuns: 200 },
    )
  })

  it('gives noble’s bytes at the edges: 1, 2, ℓ − 1, and a result that is the identity', () => {
    for (const [e, s] of [[1n, 1n], [2n, ℓ - 1n], [ℓ - 1n, ℓ - 1n], [ℓ - 1n, 1n]] as const) expect(bytesToHex(fastDoubleScalarBase(keys.publicKey, e, s)!)).toBe(noble(Y, e, s))
    // Y = G, e = 1, s = ℓ − 1: e·Y + s·G = 0, which RFC 9496 encodes as 32 zero bytes (noble too)
    expect(bytesToHex(fastDoubleScalarBase(G.toBytes(), 1n, ℓ - 1n)!)).toBe(noble(G, 1n, ℓ - 1n))
    expect(noble(G, 1n, ℓ - 1n)).toBe('00'.repeat(32))
  })

  it('returns null (noble decides) for scalars outside [1, ℓ) and keys that are not valid non-identity elements', () => {
    for (const [e, s] of [[0n, 1n], [1n, 0n], [ℓ, 1n], [1n, ℓ], [2n ** 255n + 1n, 1n]] as const) expect(fastDoubleScalarBase(keys.publicKey, e, s)).toBeNull()
    for (const bad of [...RFC_BAD, plusP(keys.publicKey), new Uint8Array(32)]) {
      expect(fastDoubleScalarBase(bad, 5n, 7n)).toBeNull()
    }
    for (const bad of RFC_BAD) expect(() => Point.fromBytes(bad)).toThrow() // noble refuses them too
  })
})

describe('chameleon Verify with the fast path gives noble’s verdict', () => {
  const enc = new TextEncoder()
  /** noble alone: the format-2 equation, or format 1's C = r − f(e·Y + s·G), by hand from chameleonEquation's parts. */
  const thrown = (e: unknown): string => {
    const err = e as { code?: string; info?: { reason?: string } }
    return `throws ${err.code}/${err.info?.reason}`
  }
  const reference = (m: Uint8Array, hash: Uint8Array, opening: Uint8Array): boolean | string => {
    try {
      const q = chameleonEquation(keys.publicKey, m, hash, opening)
      return Y.multiplyUnsafe(q.e).add(G.multiplyUnsafe(q.s)).equals(q.P)
    } catch (e) {
      return thrown(e)
    }
  }
  const verdict = (m: Uint8Array, hash: Uint8Array, opening: Uint8Array, format: OpeningFormat = 2): boolean | string => {
    try {
      return chameleonVerify(keys.publicKey, m, hash, opening, format)
    } catch (e) {
      return thrown(e)
    }
  }

  it('valid openings (Hash and Adapt, both formats) verify; the Hash bytes are noble’s e·Y + s·G', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 200 }), (m, m2) => {
        const h = chameleonHash(keys.publicKey, m, rng)
        const q = chameleonEquation(keys.publicKey, m, h.hash, h.opening)
        expect(bytesToHex(h.opening.subarray(0, 32))).toBe(noble(Y, q.e, q.s)) // the fast path's Hash output is noble's
        expect(reference(m, h.hash, h.opening)).toBe(true)
        expect(verdict(m, h.hash, h.opening)).toBe(true)
        expect(chameleonEquationHolds(chameleonPublicPoint(keys.publicKey), q)).toBe(true)
        const h1 = chameleonHash(keys.publicKey, m, rng, 1)
        expect(verdict(m, h1.hash, h1.opening, 1)).toBe(true)
        for (const format of [1, 2] as const) expect(verdict(m2, h.hash, chameleonAdapt(keys.secretKey, m2, h.hash, rng, format), format)).toBe(true)
      }),
      { numRuns: 40 },
    )
  })

  it('every kind of invalid opening gets noble’s answer: false, or the same INVALID_ENCODING (property)', () => {
    const kinds = ['wrong s', 'wrong P', 'identity P', 'non-canonical P', 'RFC bad P', 'wrong message', 'wrong hash', 's ≥ ℓ'] as const
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 100 }), fc.constantFrom(...kinds), fc.nat(5), (m, kind, k) => {
        const h = chameleonHash(keys.publicKey, m, rng)
        let { hash, opening } = h
        let message = m
        opening = opening.slice()
        if (kind === 'wrong s') opening.set(numberToBytesLE((bytesToNumberLE(opening.subarray(32)) + 1n) % ℓ, 32), 32)
        if (kind === 'wrong P') opening.set(Point.fromBytes(opening.subarray(0, 32)).add(G).toBytes(), 0)
        if (kind === 'identity P') opening.set(new Uint8Array(32), 0)
        if (kind === 'non-canonical P') opening.set(plusP(opening.subarray(0, 32)), 0)
        if (kind === 'RFC bad P') opening.set(RFC_BAD[k]!, 0)
        if (kind === 'wrong message') message = Uint8Array.from([...m.subarray(1), m[0]! ^ 1])
        if (kind === 'wrong hash') hash = numberToBytesLE((bytesToNumberLE(hash) + 1n) % ℓ, 32)
        if (kind === 's ≥ ℓ') opening.set(numberToBytesLE(bytesToNumberLE(opening.subarray(32)) + ℓ, 32), 32)
        const expected = reference(message, hash, opening)
        expect(expected).not.toBe(true)
        expect(verdict(message, hash, opening), kind).toBe(expected)
        // format 1 too: the same bytes read as r ‖ s never open it (noble and the fast path agree)
        const asFormat1 = verdict(message, hash, opening, 1)
        expect(asFormat1 === false || String(asFormat1).startsWith('throws INVALID_ENCODING/')).toBe(true)
      }),
      { numRuns: 120 },
    )
  })

  it('an equation whose P was replaced after decoding is judged on that P (no stale encoding)', () => {
    const m = enc.encode('record 1')
    const h = chameleonHash(keys.publicKey, m, rng)
    const q = chameleonEquation(keys.publicKey, m, h.hash, h.opening)
    const Yp = chameleonPublicPoint(keys.publicKey)
    expect(chameleonEquationHolds(Yp, { ...q, P: q.P.add(G) })).toBe(false)
    expect(chameleonEquationHolds(Yp, { ...q, s: (q.s + 1n) % ℓ })).toBe(false)
    expect(chameleonEquationHolds(Yp, { ...q, e: (q.e + 1n) % ℓ })).toBe(false)
    expect(chameleonEquationHolds(Yp, q)).toBe(true)
  })
})

describe('with the fast path off (CARELEDGER_RISTRETTO_FAST=0)', () => {
  it('noble alone hashes, verifies and refuses the same', () => {
    const script = `
      import { chameleonHash, chameleonVerify, chameleonKeyGen } from ${JSON.stringify(join(import.meta.dirname, '../../shared/crypto/chameleon.ts'))}
      import { ristrettoFastReady, ristrettoFastState } from ${JSON.stringify(join(import.meta.dirname, '../../shared/crypto/ristretto-fast.ts'))}
      const k = chameleonKeyGen(); const m = new TextEncoder().encode('m')
      const h = chameleonHash(k.publicKey, m); const bad = h.opening.slice(); bad[40] ^= 1
      console.log(JSON.stringify([ristrettoFastState(), await ristrettoFastReady(), chameleonVerify(k.publicKey, m, h.hash, h.opening), chameleonVerify(k.publicKey, m, h.hash, bad)]))`
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, CARELEDGER_RISTRETTO_FAST: '0' } })
    expect(run.stderr).toBe('')
    expect(JSON.parse(run.stdout)).toEqual(['off', false, true, false])
  })
})
