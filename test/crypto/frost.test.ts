import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ristretto255 } from '@noble/curves/ed25519.js'
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js'
import { sha256, sha512 } from '@noble/hashes/sha2.js'
import {
  checkFrostGroup,
  checkFrostShare,
  checkThresholdParams,
  FROST_ORDER,
  FROST_RISTRETTO255 as F,
  frostCombineShares,
  frostDeal,
  type FrostGroup,
  type FrostShare,
} from '../../shared/crypto/frost.ts'
import { deterministicRng, type Rng } from '../../shared/crypto/random.ts'
import { errorOf, hex, roundOne, roundTwo, unhex } from '../helpers/frost.ts'

const Point = ristretto255.Point
const G = Point.BASE
const Fn = Point.Fn
const utf8 = new TextEncoder()
const le = (k: bigint): Uint8Array => numberToBytesLE(k, 32)
const cat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]))

// ---- RFC 9591 re-derived from its text, independently of frost.ts and noble's FROST --------------

/** §6.2 FROST(ristretto255, SHA-512): contextString, H1..H5. */
const CTX = 'FROST-RISTRETTO255-SHA512-v1'
const Hs = (tag: string, m: Uint8Array): bigint => Fn.create(bytesToNumberLE(sha512(cat(utf8.encode(CTX + tag), m))))
const H4 = (m: Uint8Array) => sha512(cat(utf8.encode(CTX + 'msg'), m))
const H5 = (m: Uint8Array) => sha512(cat(utf8.encode(CTX + 'com'), m))
/** §4.4 binding factors, from the group key, the message and the sorted commitment list. */
function bindingFactorInput(groupKey: Uint8Array, msg: Uint8Array, list: { id: bigint; D: Uint8Array; E: Uint8Array }[], id: bigint): Uint8Array {
  const encoded = cat(...list.flatMap((c) => [le(c.id), c.D, c.E]))
  return cat(groupKey, H4(msg), H5(encoded), le(id))
}

const vectorText = readFileSync(new URL('../vectors/rfc9591/frost-ristretto255-sha512.json', import.meta.url))
const V = JSON.parse(vectorText.toString('utf8')) as {
  config: Record<string, string>
  inputs: { participant_list: number[]; group_secret_key: string; group_public_key: string; message: string; share_polynomial_coefficients: string[]; participant_shares: { identifier: number; participant_share: string }[] }
  round_one_outputs: { outputs: Record<string, string | number>[] }
  round_two_outputs: { outputs: { identifier: number; sig_share: string }[] }
  final_output: { sig: string }
}

/** An rng that replays fixed byte strings in order (each call must ask for exactly that many bytes). */
function replay(...chunks: Uint8Array[]): Rng {
  return (n) => {
    const next = chunks.shift()
    if (!next || next.length !== n) throw new Error(`replay rng: asked for ${n} bytes, next chunk has ${next?.length}`)
    return next
  }
}

describe('FROST(ristretto255, SHA-512) — RFC 9591 Appendix E.3, byte for byte', () => {
  const msg = unhex(V.inputs.message)
  const k = Number(V.config.MIN_PARTICIPANTS)
  const n = Number(V.config.MAX_PARTICIPANTS)

  it('the pinned vector file is the one published by the RFC authors (test/vectors/rfc9591/README.md)', () => {
    expect(hex(sha256(vectorText))).toBe('e0683b603b430d99226fb91ebca3ae3fa57b306033b64e2927aad926a12565d3')
    expect(V.config.name).toBe('FROST(ristretto255, SHA-512)')
    expect(V.inputs.group_secret_key).toBe('1b25a55e463cfd15cf14a5d3acc3d15053f08da49c8afcf3ab265f2ebc4f970b')
  })

  // App. C: the dealer's polynomial is f(X) = s + a1·X. noble draws a1 with mapHashToField (48 bytes,
  // little-endian, mod (ℓ − 1), + 1), so feeding it le48(a1 − 1) makes the REAL dealer code pick the RFC's a1.
  const a1 = bytesToNumberLE(unhex(V.inputs.share_polynomial_coefficients[0]!))
  const deal = frostDeal(k, n, replay(numberToBytesLE(a1 - 1n, 48)), unhex(V.inputs.group_secret_key))

  it('trusted dealer (App. C): group key and every participant share', () => {
    expect(hex(deal.group.groupKey)).toBe(V.inputs.group_public_key)
    for (const p of V.inputs.participant_shares) expect(hex(deal.shares[p.identifier - 1]!.signingShare)).toBe(p.participant_share)
    for (const s of deal.shares) checkFrostShare(deal.group, s)
    // and the RFC's own definition of the shares: f(i) = s + a1·i
    const s = bytesToNumberLE(unhex(V.inputs.group_secret_key))
    for (const p of V.inputs.participant_shares) expect(hex(le(Fn.add(s, Fn.mul(a1, BigInt(p.identifier)))))).toBe(p.participant_share)
  })

  const signers = V.inputs.participant_list.map((i) => deal.shares[i - 1]!)
  const out1 = V.round_one_outputs.outputs
  const round1 = signers.map((share, j) => F.commit(share, replay(unhex(out1[j]!.hiding_nonce_randomness as string), unhex(out1[j]!.binding_nonce_randomness as string))))
  const commitments = round1.map((r) => r.commitment)

  it('round one (§5.1): nonces and commitments', () => {
    round1.forEach((r, j) => {
      const o = out1[j]!
      expect(r.commitment.index).toBe(o.identifier)
      expect(hex(r.nonces.hiding)).toBe(o.hiding_nonce)
      expect(hex(r.nonces.binding)).toBe(o.binding_nonce)
      expect(hex(r.commitment.hiding)).toBe(o.hiding_nonce_commitment)
      expect(hex(r.commitment.binding)).toBe(o.binding_nonce_commitment)
      // §4.1 nonce_generate(secret) = H3(random_bytes ‖ SerializeScalar(secret)), re-derived
      expect(hex(le(Hs('nonce', cat(unhex(o.hiding_nonce_randomness as string), signers[j]!.signingShare))))).toBe(o.hiding_nonce)
    })
  })

  it('binding factors (§4.4), re-derived from the RFC text, match the vector', () => {
    const list = commitments.map((c) => ({ id: BigInt(c.index), D: c.hiding, E: c.binding }))
    for (const o of out1) {
      const input = bindingFactorInput(deal.group.groupKey, msg, list, BigInt(o.identifier as number))
      expect(hex(input)).toBe(o.binding_factor_input)
      expect(hex(le(Hs('rho', input)))).toBe(o.binding_factor)
    }
  })

  it('round two (§5.2): signature shares; aggregate (§5.3): the signature; verify', () => {
    const shares = signers.map((s, j) => F.sign(s, deal.group, round1[j]!.nonces, commitments, msg))
    V.round_two_outputs.outputs.forEach((o, j) => {
      expect(shares[j]!.index).toBe(o.identifier)
      expect(hex(shares[j]!.share)).toBe(o.sig_share)
      expect(F.verifyShare(deal.group, commitments, msg, shares[j]!)).toBe(true)
    })
    const sig = F.aggregate(deal.group, commitments, msg, shares)
    expect(hex(sig)).toBe(V.final_output.sig)
    expect(F.verify(deal.group.groupKey, msg, sig)).toBe(true)
    // §5.3 / App. B: z·G = R + c·Y with c = H2(R ‖ Y ‖ msg), re-derived
    const R = Point.fromBytes(sig.subarray(0, 32))
    const z = bytesToNumberLE(sig.subarray(32))
    const c = Hs('chal', cat(sig.subarray(0, 32), deal.group.groupKey, msg))
    expect(G.multiply(z).equals(R.add(Point.fromBytes(deal.group.groupKey).multiply(c)))).toBe(true)
  })

  it('App. C.1: any k shares reconstruct the group secret (tests only — nobody does this in production)', () => {
    expect(hex(frostCombineShares(k, [deal.shares[0]!, deal.shares[2]!]))).toBe(V.inputs.group_secret_key)
    expect(hex(frostCombineShares(k, [deal.shares[1]!, deal.shares[2]!]))).toBe(V.inputs.group_secret_key)
  })
})

describe('FROST signing, any k of n (property)', () => {
  const rng = deterministicRng('careledger frost tests')

  /** A random signer set of size k..n, sorted or not. */
  const arbSession = fc
    .tuple(fc.integer({ min: 2, max: 5 }), fc.integer({ min: 0, max: 3 }), fc.uint8Array({ maxLength: 48 }), fc.infiniteStream(fc.nat()))
    .map(([k, extra, message, picks]) => {
      const n = k + extra
      const pool = Array.from({ length: n }, (_, i) => i + 1)
      const it = picks[Symbol.iterator]()
      for (let i = pool.length - 1; i > 0; i--) {
        const j = it.next().value! % (i + 1)
        ;[pool[i], pool[j]] = [pool[j]!, pool[i]!]
      }
      const size = k + (it.next().value! % (n - k + 1))
      return { k, n, message, signers: pool.slice(0, size) }
    })

  it('k..n honest signers produce a signature that verifies under the group key, and nowhere else', () => {
    fc.assert(
      fc.property(arbSession, ({ k, n, message, signers }) => {
        const deal = frostDeal(k, n, rng)
        const session = roundOne(F, signers.map((i) => deal.shares[i - 1]!), rng)
        const shares = roundTwo(F, deal.group, session, message)
        for (const s of shares) expect(F.verifyShare(deal.group, session.commitments, message, s)).toBe(true)
        const sig = F.aggregate(deal.group, session.commitments, message, [...shares].reverse())
        expect(F.verify(deal.group.groupKey, message, sig)).toBe(true)
        expect(F.verify(deal.group.groupKey, Uint8Array.from([...message, 0]), sig)).toBe(false)
        expect(F.verify(frostDeal(k, n, rng).group.groupKey, message, sig)).toBe(false)
      }),
      { numRuns: 12 },
    )
  })

  it('the coordinator names exactly the participants whose shares are wrong', () => {
    fc.assert(
      fc.property(arbSession, fc.infiniteStream(fc.boolean()), ({ k, n, message, signers }, flips) => {
        const deal = frostDeal(k, n, rng)
        const session = roundOne(F, signers.map((i) => deal.shares[i - 1]!), rng)
        const it = flips[Symbol.iterator]()
        const flipped: number[] = []
        const shares = roundTwo(F, deal.group, session, message).map((s) => {
          if (!it.next().value) return s
          flipped.push(s.index)
          return { index: s.index, share: le(Fn.add(bytesToNumberLE(s.share), 1n)) }
        })
        const err = errorOf(() => F.aggregate(deal.group, session.commitments, message, shares))
        if (flipped.length === 0) expect(err).toBeNull()
        else expect(err).toMatchObject({ code: 'VERIFICATION_FAILED', reason: 'BAD_SIGNATURE_SHARE', info: { participants: flipped.sort((a, b) => a - b) } })
      }),
      { numRuns: 8 },
    )
  })
})

describe('FROST refusals', () => {
  const rng = deterministicRng('careledger frost refusals')
  const deal = frostDeal(2, 3, rng)
  const message = utf8.encode('redact record 7')
  const fresh = (who: number[]) => roundOne(F, who.map((i) => deal.shares[i - 1]!), rng)

  it('a corrupted share of participant 3 is named, and only it', () => {
    const s = fresh([1, 3])
    const shares = roundTwo(F, deal.group, s, message)
    shares[1] = { index: 3, share: le(Fn.add(bytesToNumberLE(shares[1]!.share), 5n)) }
    expect(errorOf(() => F.aggregate(deal.group, s.commitments, message, shares))).toMatchObject({ code: 'VERIFICATION_FAILED', reason: 'BAD_SIGNATURE_SHARE', info: { participants: [3] } })
  })

  it('a share made for another message is wrong for this one, and named', () => {
    const s = fresh([1, 2])
    const shares = [F.sign(deal.shares[0]!, deal.group, s.nonces[0]!, s.commitments, message), F.sign(deal.shares[1]!, deal.group, s.nonces[1]!, s.commitments, utf8.encode('something else'))]
    expect(errorOf(() => F.aggregate(deal.group, s.commitments, message, shares))?.info.participants).toEqual([2])
  })

  it('a non-canonical share scalar (≥ ℓ) is a wrong share, not a crash', () => {
    const s = fresh([1, 2])
    const shares = roundTwo(F, deal.group, s, message)
    const shifted = { index: 2, share: le(bytesToNumberLE(shares[1]!.share) + FROST_ORDER) }
    expect(F.verifyShare(deal.group, s.commitments, message, shifted)).toBe(false)
    expect(errorOf(() => F.aggregate(deal.group, s.commitments, message, [shares[0]!, shifted]))?.info.participants).toEqual([2])
  })

  it('nonces are single-use: the second use is refused (NONCE_USED) and the nonce bytes are zeroed', () => {
    const s = fresh([1, 2])
    F.sign(deal.shares[0]!, deal.group, s.nonces[0]!, s.commitments, message)
    expect([...s.nonces[0]!.hiding].every((b) => b === 0)).toBe(true)
    expect(errorOf(() => F.sign(deal.shares[0]!, deal.group, s.nonces[0]!, s.commitments, utf8.encode('another message')))).toMatchObject({ reason: 'NONCE_USED' })
  })

  it('a signer refuses a commitment list that misstates its own commitment, or leaves it out', () => {
    const s = fresh([1, 2])
    const other = fresh([1])
    const lying = [other.commitments[0]!, s.commitments[1]!]
    expect(errorOf(() => F.sign(deal.shares[0]!, deal.group, s.nonces[0]!, lying, message))).toMatchObject({ reason: 'COMMITMENT_MISMATCH', info: { participant: 1 } })
    const without = [fresh([2]).commitments[0]!, fresh([3]).commitments[0]!]
    expect(errorOf(() => F.sign(deal.shares[0]!, deal.group, s.nonces[0]!, without, message))).toMatchObject({ reason: 'NOT_A_SIGNER' })
    expect(errorOf(() => F.sign(deal.shares[0]!, deal.group, s.nonces[1]!, s.commitments, message))).toMatchObject({ reason: 'NONCE_MISMATCH' })
    // none of these consumed the nonces: the honest call still works
    expect(F.sign(deal.shares[0]!, deal.group, s.nonces[0]!, s.commitments, message).index).toBe(1)
  })

  it('commitment lists: too few, too many, duplicates, strangers, bad points', () => {
    const s = fresh([1, 2, 3])
    const [c1, c2, c3] = s.commitments as [(typeof s.commitments)[0], (typeof s.commitments)[0], (typeof s.commitments)[0]]
    const v = (list: unknown) => errorOf(() => F.verifyShare(deal.group, list as never, message, { index: 1, share: new Uint8Array(32) }))
    expect(v([c1])).toMatchObject({ reason: 'TOO_FEW_SIGNERS' })
    expect(v([c1, c2, c3, { ...c3, index: 4 }])).toMatchObject({ reason: 'TOO_MANY_SIGNERS' })
    expect(v([c1, c1])).toMatchObject({ reason: 'DUPLICATE_PARTICIPANT', info: { participant: 1 } })
    expect(v([c1, { ...c2, index: 9 }])).toMatchObject({ reason: 'UNKNOWN_PARTICIPANT' })
    expect(v([c1, { ...c2, binding: new Uint8Array(32) }])).toMatchObject({ code: 'INVALID_ENCODING', reason: 'IDENTITY_POINT' })
    expect(v([c1, { ...c2, hiding: new Uint8Array(32).fill(0xff) }])).toMatchObject({ code: 'INVALID_ENCODING', reason: 'BAD_POINT' })
    expect(v('nope')).toMatchObject({ reason: 'BAD_COMMITMENTS' })
  })

  it('aggregation: a missing share, a share from outside the session, a duplicate', () => {
    const s = fresh([1, 2])
    const shares = roundTwo(F, deal.group, s, message)
    expect(errorOf(() => F.aggregate(deal.group, s.commitments, message, [shares[0]!]))).toMatchObject({ reason: 'MISSING_SHARE', info: { participants: [2] } })
    expect(errorOf(() => F.aggregate(deal.group, s.commitments, message, [...shares, { index: 3, share: shares[0]!.share }]))).toMatchObject({ reason: 'NOT_A_SIGNER' })
    expect(errorOf(() => F.aggregate(deal.group, s.commitments, message, [shares[0]!, shares[0]!]))).toMatchObject({ reason: 'DUPLICATE_PARTICIPANT' })
  })

  it('thresholds: 2 ≤ k ≤ n ≤ 255', () => {
    for (const [k, n] of [[1, 1], [1, 3], [3, 2], [0, 2], [2, 256], [2.5, 3], ['2', 3]] as const) {
      expect(errorOf(() => checkThresholdParams(k, n))).toMatchObject({ code: 'INVALID_ARGUMENT', reason: 'BAD_THRESHOLD' })
    }
    expect(checkThresholdParams(2, 2)).toEqual({ threshold: 2, participants: 2 })
    expect(checkThresholdParams(255, 255)).toEqual({ threshold: 255, participants: 255 })
  })

  it('a public key package whose shares do not lie on one polynomial through the group key is refused, naming the share', () => {
    const d = frostDeal(2, 4, rng)
    checkFrostGroup(d.group)
    const swapped: FrostGroup = { ...d.group, verificationShares: [d.group.verificationShares[0]!, d.group.verificationShares[1]!, d.group.verificationShares[3]!, d.group.verificationShares[2]!] }
    expect(errorOf(() => checkFrostGroup(swapped))).toMatchObject({ code: 'VERIFICATION_FAILED', reason: 'INCONSISTENT_GROUP', info: { participant: 3 } })
    const otherKey: FrostGroup = { ...d.group, groupKey: frostDeal(2, 4, rng).group.groupKey }
    expect(errorOf(() => checkFrostGroup(otherKey))?.reason).toBe('INCONSISTENT_GROUP')
    // k = n: every share is needed to fix the polynomial, nothing to cross-check — but still parsed
    checkFrostGroup(frostDeal(3, 3, rng).group)
    expect(errorOf(() => checkFrostGroup({ ...d.group, verificationShares: d.group.verificationShares.slice(1) }))?.reason).toBe('BAD_GROUP')
    expect(errorOf(() => checkFrostGroup({ ...d.group, groupKey: new Uint8Array(32) }))?.reason).toBe('IDENTITY_POINT')
  })

  it('a signing share that does not match its verification share is refused', () => {
    const wrong: FrostShare = { index: 2, signingShare: deal.shares[0]!.signingShare }
    expect(errorOf(() => checkFrostShare(deal.group, wrong))).toMatchObject({ code: 'VERIFICATION_FAILED', reason: 'SHARE_MISMATCH', info: { participant: 2 } })
    expect(errorOf(() => checkFrostShare(deal.group, { index: 1, signingShare: new Uint8Array(32) }))?.reason).toBe('SCALAR_OUT_OF_RANGE')
  })

  it('a dealer can split an EXISTING key (a 1-of-1 trapdoor becomes k of n under the same public key)', () => {
    const x = le(0x1234567890abcdefn)
    const d = frostDeal(3, 5, rng, x)
    expect(hex(d.group.groupKey)).toBe(hex(G.multiply(0x1234567890abcdefn).toBytes()))
    expect(hex(frostCombineShares(3, [d.shares[4]!, d.shares[0]!, d.shares[2]!]))).toBe(hex(x))
    expect(errorOf(() => frostCombineShares(3, [d.shares[1]!, d.shares[2]!]))?.reason).toBe('TOO_FEW_SHARES')
  })

  it('garbage anywhere gives a CareLedgerError or false, never anything else (property)', () => {
    const junk = fc.oneof(fc.constant(undefined), fc.constant(null), fc.string(), fc.integer(), fc.uint8Array({ maxLength: 40 }), fc.constant(new Uint8Array(32).fill(0xff)), fc.constant(new Uint8Array(32)))
    const s = fresh([1, 2])
    const shares = roundTwo(F, deal.group, fresh([1, 2]), message)
    fc.assert(
      fc.property(junk, junk, fc.nat(5), (a, b, which) => {
        const calls = [
          () => F.verifyShare(deal.group, s.commitments, message, { index: a as number, share: b as Uint8Array }),
          () => F.verify(a as Uint8Array, message, b as Uint8Array),
          () => F.aggregate(deal.group, [{ index: 1, hiding: a as Uint8Array, binding: b as Uint8Array }, s.commitments[1]!], message, shares),
          () => checkFrostGroup({ threshold: 2, participants: 3, groupKey: a as Uint8Array, verificationShares: [b as Uint8Array, b as Uint8Array, b as Uint8Array] }),
          () => F.commit({ index: 1, signingShare: a as Uint8Array }, rng),
          () => F.verify(deal.group.groupKey, a as Uint8Array, b as Uint8Array),
        ]
        errorOf(calls[which]!)
      }),
      { numRuns: 300 },
    )
  })
})
