/**
 * Ed25519 batch verification (shared/crypto/ed25519-batch.ts, the addon's ed25519BatchHolds):
 * its verdicts are verify()'s — strict, cofactored noble — for every signature of a batch of
 * thousands with one or several bad ones anywhere (property), for signatures with a torsion
 * component that the cofactored check accepts and libsodium's cofactorless one refuses, and for
 * non-canonical R and S; and the native equation itself refuses each kind of bad input.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { createHash } from 'node:crypto'
import { ed25519 } from '@noble/curves/ed25519.js'
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js'
import { generateSigningKey, sign, verify, type SigningKeyPair } from '../../shared/crypto/sign.ts'
import { verifyEd25519Batch, ed25519BatchLibrary, type SignedMessage } from '../../shared/crypto/ed25519-batch.ts'
import { ristrettoNative } from '../../shared/crypto/ristretto-native.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { domainSeparated } from '../../shared/encoding/canonical.ts'

const DOMAIN = 'batch-manifest'
const L = ed25519.Point.Fn.ORDER
const native = ed25519BatchLibrary() !== null
const keys: SigningKeyPair[] = Array.from({ length: 5 }, (_, i) => generateSigningKey(deterministicRng(`ed25519 batch key ${i}`)))

function signed(i: number): SignedMessage {
  const key = keys[i % keys.length]!
  const payload = createHash('sha256').update(`manifest ${i}`).digest()
  return { publicKey: key.publicKey, domain: DOMAIN, payload, signature: sign(key.secretKey, DOMAIN, payload) }
}

const POOL = Array.from({ length: 2000 }, (_, i) => signed(i))

/** Ways a signature goes bad, each a new (message, signature) that verify() refuses. */
const BREAKS: ((x: SignedMessage, other: SignedMessage) => SignedMessage)[] = [
  (x) => ({ ...x, signature: x.signature.map((b, j) => (j === 3 ? b ^ 0x40 : b)) }), // R altered
  (x) => ({ ...x, signature: x.signature.map((b, j) => (j === 40 ? b ^ 1 : b)) }), // S altered
  (x) => ({ ...x, signature: Uint8Array.from([...x.signature.subarray(0, 32), ...numberToBytesLE(bytesToNumberLE(x.signature.subarray(32)) + L, 32)]) }), // S + ℓ
  (x, other) => ({ ...x, signature: other.signature }), // another manifest's signature
  (x) => ({ ...x, payload: x.payload.map((b, j) => (j === 0 ? b ^ 1 : b)) }), // the message changed
  (x) => ({ ...x, signature: new Uint8Array(64) }), // zeros
  (x) => ({ ...x, signature: Uint8Array.from([...new Uint8Array(32).fill(0xff).fill(0x7f, 31), ...x.signature.subarray(32)]) }), // R with y ≥ p
]

/** A valid signature whose R carries a small-order component T: R = r·B + T, S = r + k·a. */
function torsionSigned(i: number): SignedMessage {
  const seed = keys[0]!.secretKey
  const { scalar: a, pointBytes: A } = ed25519.utils.getExtendedPublicKey(seed)
  const payload = createHash('sha256').update(`torsion ${i}`).digest()
  const message = domainSeparated(DOMAIN, payload)
  const T = ed25519.Point.fromBytes(Uint8Array.from([0xec, ...new Uint8Array(30).fill(0xff), 0x7f])) // y = −1: the point of order 2
  const r = BigInt(1000 + i)
  const R = ed25519.Point.BASE.multiply(r).add(T).toBytes()
  const k = bytesToNumberLE(createHash('sha512').update(R).update(A).update(message).digest()) % L
  const S = (r + k * a) % L
  return { publicKey: A, domain: DOMAIN, payload, signature: Uint8Array.from([...R, ...numberToBytesLE(S, 32)]) }
}

describe('Ed25519 batch verification', () => {
  it.skipIf(!native)('a batch of 2,000 valid signatures under 5 keys holds', () => {
    expect(verifyEd25519Batch(POOL).every(Boolean)).toBe(true)
  })

  it('names every bad signature in a batch of thousands, with the verdict of verify() for each (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1000, max: 2000 }),
        fc.uniqueArray(fc.record({ at: fc.nat(), how: fc.nat({ max: BREAKS.length - 1 }) }), { minLength: 1, maxLength: 5, selector: (b) => b.at }),
        (n, breaks) => {
          const items = POOL.slice(0, n)
          const bad = new Set<number>()
          for (const b of breaks) {
            const at = b.at % n
            items[at] = BREAKS[b.how]!(items[at]!, POOL[(at + 1) % n]!)
            bad.add(at)
          }
          const verdicts = verifyEd25519Batch(items)
          expect(verdicts.flatMap((ok, i) => (ok ? [] : [i]))).toEqual([...bad].sort((x, y) => x - y))
          for (const i of bad) expect(verify(items[i]!.publicKey, DOMAIN, items[i]!.payload, items[i]!.signature)).toBe(false)
        },
      ),
      { numRuns: 12 },
    )
  })

  it('accepts what strict noble accepts: a torsion component in R (cofactored), which libsodium refuses and noble re-judges', () => {
    const twisted = Array.from({ length: 3 }, (_, i) => torsionSigned(i))
    for (const t of twisted) {
      expect(ed25519.verify(t.signature, domainSeparated(DOMAIN, t.payload), t.publicKey, { zip215: false })).toBe(true)
      expect(verify(t.publicKey, DOMAIN, t.payload, t.signature)).toBe(true)
    }
    const items = [...POOL.slice(0, 50), ...twisted, ...POOL.slice(50, 100)]
    expect(verifyEd25519Batch(items).every(Boolean)).toBe(true)
  })

  it.skipIf(!native)('the native equation refuses a non-canonical R (y ≥ p, or x = 0 with the sign bit), S ≥ ℓ, and a wrong weightless sum', () => {
    const holds = ristrettoNative!.ed25519BatchHolds!
    const items = POOL.slice(0, 8)
    const cat = (parts: Uint8Array[]): Uint8Array => Buffer.concat(parts)
    const A = cat(items.map((x) => x.publicKey))
    const H = cat(items.map((x) => createHash('sha512').update(x.signature.subarray(0, 32)).update(x.publicKey).update(domainSeparated(DOMAIN, x.payload)).digest()))
    const R = (with0?: Uint8Array): Uint8Array => cat(items.map((x, i) => (i === 0 && with0 ? with0 : x.signature.subarray(0, 32))))
    const S = (with0?: Uint8Array): Uint8Array => cat(items.map((x, i) => (i === 0 && with0 ? with0 : x.signature.subarray(32))))
    const w = new Uint8Array(16 * items.length).fill(7)
    expect(holds(A, R(), S(), H, w)).toBe(true)
    const yOne = Uint8Array.from([1, ...new Uint8Array(31)])
    expect(holds(A, R(Uint8Array.from([...yOne.subarray(0, 31), 0x80])), S(), H, w)).toBe(false) // x = 0, sign bit set
    expect(holds(A, R(new Uint8Array(32).fill(0xff).fill(0x7f, 31)), S(), H, w)).toBe(false) // y ≥ p
    expect(holds(A, R(), S(numberToBytesLE(bytesToNumberLE(items[0]!.signature.subarray(32)) + L, 32)), H, w)).toBe(false) // S + ℓ
    expect(() => holds(A, R(), S(), H.subarray(64), w)).toThrow(/ed25519BatchHolds takes/)
  })
})
