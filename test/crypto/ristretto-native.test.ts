/**
 * The native ristretto255 addon (native/ristretto, shared/crypto/ristretto-native.ts) against
 * @noble/curves: the same decoding verdict on every byte string (RFC 9496 §4.3.1), the same batch
 * verdict on random valid batches and on batches with one or several bad records, and the batch
 * check of chameleon-batch.ts naming exactly the bad records either way.
 *
 * Passes with and without the addon built: what compares the two runs only where it loaded
 * (`npm run build:native`); the rest runs on whichever this process has. A child process with
 * CARELEDGER_NO_RISTRETTO_NATIVE=1 shows the switch turns it off.
 */
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ristretto255 } from '@noble/curves/ed25519.js'
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { chameleonEquation, chameleonEquationEncoding, chameleonHash, chameleonKeyGen, chameleonPublicPoint, type ChameleonEquation } from '../../shared/crypto/chameleon.ts'
import { chameleonBatchHolds, failingChameleonEquations, msmShort } from '../../shared/crypto/chameleon-batch.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { p, plusP, RFC_BAD } from './ristretto-bad-encodings.ts'
import { ristrettoBatchLibrary, ristrettoNative } from '../../shared/crypto/ristretto-native.ts'

const Point = ristretto255.Point
const ℓ = Point.Fn.ORDER
const G = Point.BASE
const rng = deterministicRng('ristretto native tests')
const keys = chameleonKeyGen(rng)
const Y = chameleonPublicPoint(keys.publicKey)
const native = ristrettoNative
const withAddon = native !== null


const nobleDecodes = (bytes: Uint8Array): boolean => {
  try {
    Point.fromBytes(bytes)
    return true
  } catch {
    return false
  }
}
const nativeDecodes = (bytes: Uint8Array): boolean => native!.decodeCheck(bytes) === -1

/** A record: message, hash and 64-byte opening (format 2: encode(P) ‖ s). */
function record(i: number): { m: Uint8Array; hash: Uint8Array; opening: Uint8Array } {
  const m = new TextEncoder().encode(`record ${i}: heart rate ${60 + (i % 40)}`)
  const { hash, opening } = chameleonHash(keys.publicKey, m, rng)
  return { m, hash, opening }
}
const RECORDS = Array.from({ length: 300 }, (_, i) => record(i))

/** Ways to spoil record i's stored opening bytes that still decode (so the record reaches the batch). */
function spoiledOpening(i: number, how: number): Uint8Array {
  const o = RECORDS[i]!.opening.slice()
  switch (how % 3) {
    case 0: // wrong s (a byte of it changed; kept below ℓ)
      o[40]! ^= 0x01
      return o
    case 1: // another record's P
      o.set(RECORDS[(i + 1) % RECORDS.length]!.opening.subarray(0, 32), 0)
      return o
    default: // the identity as P (RFC 9496 encodes it as 32 zero bytes: valid, and false here)
      o.fill(0, 0, 32)
      return o
  }
}

/** The equations of records [0, n) with `bad` ones spoiled (by `how`), built from bytes as `chain verify` does. */
function batch(n: number, bad: ReadonlyMap<number, number>): ChameleonEquation[] {
  return Array.from({ length: n }, (_, i) => {
    const r = RECORDS[i]!
    return chameleonEquation(keys.publicKey, r.m, r.hash, bad.has(i) ? spoiledOpening(i, bad.get(i)!) : r.opening)
  })
}

/** noble's verdict on Σ z_i·P_i = a·Y + b·G. */
function nobleBatch(eqs: readonly ChameleonEquation[], z: readonly bigint[]): boolean {
  const a = eqs.reduce((acc, q, i) => acc + z[i]! * q.e, 0n) % ℓ
  const b = eqs.reduce((acc, q, i) => acc + z[i]! * q.s, 0n) % ℓ
  return msmShort(eqs.map((q) => q.P), z, 128).equals(Y.multiplyUnsafe(a).add(G.multiplyUnsafe(b)))
}

/** The addon's verdict on the same equation, from the equations' bytes. */
function nativeBatch(eqs: readonly ChameleonEquation[], z: readonly bigint[], points?: Uint8Array): boolean {
  const a = eqs.reduce((acc, q, i) => acc + z[i]! * q.e, 0n) % ℓ
  const b = eqs.reduce((acc, q, i) => acc + z[i]! * q.s, 0n) % ℓ
  const flat = points ?? new Uint8Array(eqs.flatMap((q) => [...q.P.toBytes()]))
  const weights = new Uint8Array(z.flatMap((w) => [...numberToBytesLE(w, 16)]))
  return native!.batchHolds(keys.publicKey, flat, weights, numberToBytesLE(a, 32), numberToBytesLE(b, 32))
}

describe(`the native addon (${ristrettoBatchLibrary()} here)`, () => {
  it.skipIf(!withAddon)('decodes exactly what noble decodes: valid points, identity, RFC 9496 A.2, +p, ≥ p, high bit, random and flipped bytes', () => {
    const cases: Uint8Array[] = [new Uint8Array(32), G.toBytes(), ...RFC_BAD]
    for (const k of [1n, 2n, 3n, ℓ - 1n, 12345678901234567890n]) {
      const enc = G.multiply(k).toBytes()
      const high = enc.slice()
      high[31]! |= 0x80
      cases.push(enc, plusP(enc), high)
    }
    for (let k = 0n; k < 20n; k++) cases.push(numberToBytesLE(p + k, 32), numberToBytesLE(2n ** 255n - 1n - k, 32), numberToBytesLE(p - 1n - k, 32))
    for (const c of cases) expect(nativeDecodes(c), bytesToHex(c)).toBe(nobleDecodes(c))
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(255), fc.nat(31), (bytes, flip, at) => {
        expect(nativeDecodes(bytes)).toBe(nobleDecodes(bytes))
        const valid = G.multiply(bytesToNumberLE(bytes) % (ℓ - 1n) + 1n).toBytes()
        const flipped = valid.slice()
        flipped[at]! ^= flip
        expect(nativeDecodes(valid)).toBe(true)
        expect(nativeDecodes(flipped), bytesToHex(flipped)).toBe(nobleDecodes(flipped))
      }),
      { numRuns: 500 },
    )
    // the first refused encoding of many is named by index
    expect(native!.decodeCheck(new Uint8Array([...G.toBytes(), ...new Uint8Array(32), ...RFC_BAD[2]!, ...RFC_BAD[0]!]))).toBe(2)
    expect(native!.decodeCheck(new Uint8Array(0))).toBe(-1)
  })

  it.skipIf(!withAddon)('refuses malformed arguments with a TypeError or RangeError, never a crash', () => {
    const z = new Uint8Array(32)
    expect(() => native!.decodeCheck(new Uint8Array(31))).toThrow(RangeError)
    expect(() => native!.decodeCheck('x' as unknown as Uint8Array)).toThrow(TypeError)
    expect(() => native!.decodeCheck(new Uint16Array(16) as unknown as Uint8Array)).toThrow(TypeError)
    expect(() => (native!.batchHolds as (...a: unknown[]) => boolean)(z, z, new Uint8Array(16), z)).toThrow(TypeError)
    expect(() => native!.batchHolds(z, z, new Uint8Array(15), z, z)).toThrow(RangeError)
    expect(() => native!.batchHolds(new Uint8Array(33), z, new Uint8Array(16), z, z)).toThrow(RangeError)
    // a scalar ≥ ℓ, an undecodable Y or P: false (not shown), not an error
    const one = numberToBytesLE(1n, 16)
    const g = G.toBytes()
    expect(native!.batchHolds(g, g, one, numberToBytesLE(0n, 32), numberToBytesLE(1n, 32))).toBe(true)
    expect(native!.batchHolds(g, g, one, numberToBytesLE(ℓ, 32), numberToBytesLE(1n, 32))).toBe(false)
    expect(native!.batchHolds(g, g, one, numberToBytesLE(0n, 32), numberToBytesLE(1n + ℓ, 32))).toBe(false)
    expect(native!.batchHolds(RFC_BAD[0]!, g, one, numberToBytesLE(0n, 32), numberToBytesLE(1n, 32))).toBe(false)
    expect(native!.batchHolds(g, plusP(g), one, numberToBytesLE(0n, 32), numberToBytesLE(1n, 32))).toBe(false)
    // the empty batch: 0 = a·Y + b·G holds for a = b = 0 only
    expect(native!.batchHolds(g, new Uint8Array(0), new Uint8Array(0), numberToBytesLE(0n, 32), numberToBytesLE(0n, 32))).toBe(true)
    expect(native!.batchHolds(g, new Uint8Array(0), new Uint8Array(0), numberToBytesLE(0n, 32), numberToBytesLE(1n, 32))).toBe(false)
  })

  it.skipIf(!withAddon)('agrees with noble on random batches: valid, and with one or several records spoiled (wrong s, wrong P, identity P, non-canonical P)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 120 }),
        fc.uniqueArray(fc.nat(119), { maxLength: 4 }),
        fc.nat(),
        // Non-zero weights, as the CSPRNG's are but for a 2^-128 chance: a zero weight on a spoiled
        // record would hide it from noble and the addon alike (fast-check tries small values first).
        fc.array(fc.bigInt({ min: 1n, max: 2n ** 128n - 1n }), { minLength: 120, maxLength: 120 }),
        (n, badAt, how, z) => {
          const bad = new Map(badAt.filter((i) => i < n).map((i, k) => [i, how + k] as const))
          const eqs = batch(n, bad)
          const weights = z.slice(0, n)
          const verdict = nobleBatch(eqs, weights)
          expect(verdict).toBe(bad.size === 0)
          expect(nativeBatch(eqs, weights)).toBe(verdict)
          // the bytes chameleonEquation vouched for are the ones the batch sends
          eqs.forEach((q) => expect(bytesToHex(chameleonEquationEncoding(q)!)).toBe(bytesToHex(q.P.toBytes())))
          // a non-canonical P (P + p) in place of a valid one: the addon says no, as noble refuses to decode it
          const flat = new Uint8Array(eqs.flatMap((q) => [...q.P.toBytes()]))
          const at = n >> 1
          const enc = flat.slice(32 * at, 32 * at + 32)
          if (bytesToNumberLE(enc) + p < 2n ** 256n) {
            flat.set(plusP(enc), 32 * at)
            expect(nobleDecodes(flat.subarray(32 * at, 32 * at + 32))).toBe(false)
            expect(nativeBatch(eqs, weights, flat)).toBe(false)
          }
        },
      ),
      { numRuns: 60 },
    )
  })
})

describe('hashPoint: encode(e·Y + s·G) for chameleon Hash', () => {
  it.skipIf(!withAddon)('equals noble on random keys and scalars (0, ℓ − 1 included), switching keys between calls', () => {
    const keyPool = [keys.publicKey, chameleonKeyGen(rng).publicKey, G.toBytes()]
    fc.assert(
      fc.property(fc.nat(keyPool.length - 1), fc.bigInt(0n, ℓ - 1n), fc.bigInt(0n, ℓ - 1n), (k, e, s) => {
        const Yk = Point.fromBytes(keyPool[k]!)
        const expected = Yk.multiplyUnsafe(e).add(G.multiplyUnsafe(s)).toBytes()
        expect(bytesToHex(native!.hashPoint!(keyPool[k]!, numberToBytesLE(e, 32), numberToBytesLE(s, 32)))).toBe(bytesToHex(expected))
      }),
      { numRuns: 300 },
    )
  })

  it.skipIf(!withAddon)('answers an empty array for a key that is not a point or a scalar that is not canonical; a RangeError for wrong lengths', () => {
    const one = numberToBytesLE(1n, 32)
    expect(native!.hashPoint!(RFC_BAD[1]!, one, one).length).toBe(0)
    expect(native!.hashPoint!(keys.publicKey, numberToBytesLE(ℓ, 32), one).length).toBe(0)
    expect(native!.hashPoint!(keys.publicKey, one, new Uint8Array(32).fill(0xff)).length).toBe(0)
    expect(() => native!.hashPoint!(keys.publicKey, one, one.subarray(0, 31))).toThrow(RangeError)
    expect(() => (native!.hashPoint as unknown as (a: unknown, b: unknown, c: unknown) => unknown)(keys.publicKey, one, 'x')).toThrow(TypeError)
  })

  it('chameleon Hash gives the same commitment with the addon, libsodium and noble (a child process each)', () => {
    const script = `
      const { chameleonHash } = await import('./shared/crypto/chameleon.ts')
      const { deterministicRng } = await import('./shared/crypto/random.ts')
      const { ristrettoFastReady } = await import('./shared/crypto/ristretto-fast.ts')
      await ristrettoFastReady()
      const pk = Buffer.from('${bytesToHex(keys.publicKey)}', 'hex')
      const r = deterministicRng('hash across libraries')
      const out = []
      for (let i = 0; i < 20; i++) { const h = chameleonHash(pk, new TextEncoder().encode('m' + i), r); out.push(Buffer.from(h.hash).toString('hex') + Buffer.from(h.opening).toString('hex')) }
      console.log(out.join(','))`
    const run = (env: Record<string, string>) =>
      spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: `${import.meta.dirname}/../..`, encoding: 'utf8', env: { ...process.env, ...env } })
    const addon = run({ CARELEDGER_NO_RISTRETTO_NATIVE: '' })
    const sodium = run({ CARELEDGER_NO_RISTRETTO_NATIVE: '1' })
    const noble = run({ CARELEDGER_NO_RISTRETTO_NATIVE: '1', CARELEDGER_RISTRETTO_FAST: '0' })
    expect(addon.stdout.trim().split(',').length, addon.stderr).toBe(20)
    expect(sodium.stdout, sodium.stderr).toBe(addon.stdout)
    expect(noble.stdout, noble.stderr).toBe(addon.stdout)
  })
})

describe('the batch check with whichever library loaded', () => {
  it('names exactly the spoiled records of a batch of 300, one or several, with fresh weights each run', () => {
    expect(chameleonBatchHolds(Y, batch(300, new Map()))).toBe(true)
    expect(failingChameleonEquations(Y, batch(300, new Map()))).toEqual([])
    for (const badAt of [[0], [299], [7, 150], [1, 2, 3, 200, 201, 298]]) {
      const bad = new Map(badAt.map((i, k) => [i, k] as const))
      const eqs = batch(300, bad)
      expect(chameleonBatchHolds(Y, eqs)).toBe(false)
      expect(failingChameleonEquations(Y, eqs)).toEqual(badAt)
    }
  })

  it('an opening whose P does not decode (non-canonical, ≥ p) is refused before the batch, with and without the addon', () => {
    const r = RECORDS[5]!
    for (const P of [plusP(r.opening.subarray(0, 32)), RFC_BAD[1]!, numberToBytesLE(p, 32)]) {
      const o = r.opening.slice()
      o.set(P, 0)
      expect(() => chameleonEquation(keys.publicKey, r.m, r.hash, o)).toThrow(/canonical ristretto255/)
    }
  })

  it('CARELEDGER_NO_RISTRETTO_NATIVE=1 turns the addon off (a child process)', () => {
    const script = `
      const { ristrettoBatchLibrary } = await import('./shared/crypto/ristretto-native.ts')
      console.log(ristrettoBatchLibrary())`
    const run = (env: Record<string, string>) =>
      spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: `${import.meta.dirname}/../..`, encoding: 'utf8', env: { ...process.env, ...env } })
    const off = run({ CARELEDGER_NO_RISTRETTO_NATIVE: '1' })
    expect(off.stdout.trim(), off.stderr).toBe('noble')
    const on = run({ CARELEDGER_NO_RISTRETTO_NATIVE: '' })
    expect(on.stdout.trim(), on.stderr).toBe(ristrettoBatchLibrary())
  })
})
