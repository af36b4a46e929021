/**
 * Differential tests: the noble and mcl backends (shared/crypto/abe/backend-*.ts) must give the
 * same bytes for the same inputs, and the same verdict — with the same typed error — on hostile
 * encodings. Generated cases (fast-check, fixed seed); CARELEDGER_DIFF_SCALE multiplies the counts
 * for a long soak (the default run takes about a minute in CI).
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { bls12_381 } from '@noble/curves/bls12-381.js'
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js'
import { withBackend, type PairingBackend } from '../../shared/crypto/abe/backend.ts'
import { nobleBackend } from '../../shared/crypto/abe/backend-noble.ts'
import { mclBackend, selfTestProblem, selfTestTranscript, SELF_TEST_DIGEST } from '../../shared/crypto/abe/select.ts'
import { sha256 } from '@noble/hashes/sha2.js'
import { concatBytes } from '@noble/hashes/utils.js'
import { ATTRIBUTE_DST, ORDER } from '../../shared/crypto/abe/groups.ts'
import { decaps, encaps, keyGen, setup, type Ciphertext, type MasterPublicKey } from '../../shared/crypto/abe/fabeo.ts'
import { finish, makeTransformKey, transform } from '../../shared/crypto/abe/outsource.ts'
import * as codec from '../../shared/crypto/abe/codec.ts'
import { openEnvelope, sealEnvelope, transformEnvelope, finishEnvelope } from '../../shared/crypto/envelope.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { policyAndAttributesArb } from '../helpers/policies.ts'

const SCALE = Number(process.env.CARELEDGER_DIFF_SCALE ?? 1)
const runs = (n: number): { numRuns: number; seed: number } => ({ numRuns: Math.max(1, Math.round(n * SCALE)), seed: 0x13 })
const F12 = bls12_381.fields.Fp12
const Fp = bls12_381.fields.Fp
const P = Fp.ORDER
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const utf8 = new TextEncoder()

let mcl: PairingBackend
beforeAll(async () => {
  mcl = await mclBackend()
})
const both = (): [PairingBackend, PairingBackend] => [nobleBackend, mcl]
/** Run `f` under each backend; the results must be equal. */
function agree<T>(f: (b: PairingBackend) => T): T {
  const [a, b] = both().map((be) => withBackend(be, () => f(be)))
  expect(b).toEqual(a)
  return a!
}

/** The outcome of a decoder: its bytes re-encoded, or the whole typed error (code, message, info). */
function outcome(f: () => Uint8Array): { ok: string } | { code: string; message: string; info: unknown } {
  try {
    return { ok: hex(f()) }
  } catch (e) {
    if (!isCareLedgerError(e)) throw e
    return { code: e.code, message: e.message, info: e.info }
  }
}

const scalarArb = fc.oneof(
  fc.bigInt({ min: 0n, max: ORDER - 1n }),
  fc.constantFrom(0n, 1n, 2n, ORDER - 1n, ORDER, ORDER + 1n, 2n ** 255n - 1n, 0xd201000000010000n),
)

describe('backends: pinned vectors', () => {
  it('RFC 9380 Appendix J.9.1 (BLS12381G1_XMD:SHA-256_SSWU_RO_): every vector, on both backends', () => {
    const rfc = JSON.parse(readFileSync(new URL('../vectors/rfc9380-bls12381g1-ro.json', import.meta.url), 'utf8')) as {
      dst: string
      vectors: { msg: string; x: string; y: string }[]
    }
    expect(rfc.vectors).toHaveLength(5)
    for (const v of rfc.vectors) {
      for (const b of both()) {
        const bytes = b.hashToG1(utf8.encode(v.msg), rfc.dst).toBytes()
        const { x, y } = bls12_381.G1.Point.fromBytes(bytes).toAffine()
        expect({ backend: b.name, x: `0x${x.toString(16).padStart(96, '0')}`, y: `0x${y.toString(16).padStart(96, '0')}` }).toEqual({ backend: b.name, x: v.x, y: v.y })
      }
    }
  })

  it('the committed FABEO known-answer vectors are reproduced byte for byte by both backends', async () => {
    const { computeAbeVectors } = await import('../vectors/abe.ts')
    const committed = JSON.parse(readFileSync(new URL('../vectors/abe.json', import.meta.url), 'utf8')) as Record<string, string>
    for (const b of both()) expect(withBackend(b, computeAbeVectors)).toEqual(committed)
  })

  it('the self-test transcript (select.ts) hashes to the pinned digest under both backends', () => {
    for (const b of both()) expect(hex(sha256(concatBytes(...selfTestTranscript(b))))).toBe(SELF_TEST_DIGEST)
    expect(selfTestProblem(mcl)).toBeNull()
  })

  it('the generators and e(g, h) agree', () => {
    agree((b) => [hex(b.g1Base().toBytes()), hex(b.g2Base().toBytes()), hex(b.pairing(b.g1Base(), b.g2Base()).toBytes())])
  })
})

describe('backends: same inputs, same bytes', () => {
  it('hash to G1 under our DST', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (msg) => void agree((b) => hex(b.hashToG1(msg, ATTRIBUTE_DST).toBytes()))), runs(600))
  })

  it('G1 and G2 arithmetic: multiplication (0, r, beyond r too), addition, subtraction, negation, MSM', () => {
    const base1 = (b: PairingBackend, k: bigint) => b.hashToG1(numberToBytesBE(k, 32), ATTRIBUTE_DST)
    fc.assert(
      fc.property(scalarArb, scalarArb, (k, m) =>
        void agree((b) => {
          const p = base1(b, m)
          const q = b.g2Base().multiply(m)
          const pk = p.multiply(k)
          return [pk, p.add(pk), p.subtract(pk), pk.negate(), q.multiply(k), q.add(q.multiply(k)).negate(), b.mulG2Base(k)].map((x) => hex(x.toBytes()))
        }),
      ),
      runs(120),
    )
    fc.assert(
      fc.property(fc.array(scalarArb, { minLength: 1, maxLength: 8 }), (ks) =>
        void agree((b) => hex(b.g1Msm(ks.map((k) => base1(b, k + 1n)), ks).toBytes())),
      ),
      runs(60),
    )
  })

  it('pairings, pairing products and GT arithmetic (as GT encodings)', () => {
    fc.assert(
      fc.property(scalarArb, scalarArb, scalarArb, (a, c, e) =>
        void agree((b) => {
          const p = b.g1Base().multiply(a)
          const q = b.g2Base().multiply(c)
          const x = b.pairing(p, q)
          const prod = b.pairingProduct([
            { g1: p, g2: q },
            { g1: b.g1Base(), g2: q.negate() },
            { g1: b.g1Zero(), g2: q },
          ])
          return [x, prod, x.pow(e), x.mul(prod), x.inv()].map((y) => hex(y.toBytes()))
        }),
      ),
      runs(40),
    )
  })
})

describe('backends: FABEO across backends', () => {
  it('Encaps with fixed randomness gives the same ciphertext and key; each decapsulates what the other made (property)', () => {
    fc.assert(
      fc.property(policyAndAttributesArb(6), fc.integer(), ({ policy, attributes }, seed) => {
        const all = [...attributes, ...Array.from({ length: policy.leaves }, (_, i) => `a:${i}`)]
        const made = agree(() => {
          const rng = deterministicRng(`diff ${seed}`)
          const msk = setup(rng)
          const key = keyGen(msk, all, rng)
          const { ciphertext, key: k } = encaps(msk.mpk, policy.text, rng)
          const { transformKey, retrievalKey } = makeTransformKey(key, rng)
          return {
            key: hex(codec.encodeUserKey(key)),
            ct: hex(codec.encodeCiphertext(ciphertext)),
            k: hex(k.toBytes()),
            tk: hex(codec.encodeTransformKey(transformKey)),
            rk: hex(codec.encodeRetrievalKey(retrievalKey)),
          }
        })
        const bytes = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'))
        // Decaps, Transform and Finish on decoded objects: same results, equal to the encapsulated key.
        const opened = agree(() => {
          const ct = codec.decodeCiphertext(bytes(made.ct))
          const t = transform(codec.decodeTransformKey(bytes(made.tk)), ct)
          return {
            decaps: hex(decaps(codec.decodeUserKey(bytes(made.key)), ct).toBytes()),
            t: hex(t.toBytes()),
            finish: hex(finish(codec.decodeRetrievalKey(bytes(made.rk)), t).toBytes()),
          }
        })
        expect(opened.decaps).toBe(made.k)
        expect(opened.finish).toBe(made.k)
      }),
      runs(20),
    )
  })

  it('an envelope sealed under one backend opens under the other, directly and outsourced', () => {
    const rng = deterministicRng('envelopes across backends')
    const msk = setup(rng)
    const doctor = keyGen(msk, ['role:doctor', 'hospital:h1'], rng)
    const { transformKey, retrievalKey } = makeTransformKey(doctor, rng)
    const aad = utf8.encode('manifest')
    const policy = '(role:doctor AND hospital:h1) OR patient:p-1'
    for (const [maker, opener] of [both(), both().reverse()] as [PairingBackend, PairingBackend][]) {
      const env = withBackend(maker, () => sealEnvelope(msk.mpk, policy, utf8.encode(`from ${maker.name}`), aad, rng))
      const text = withBackend(opener, () => new TextDecoder().decode(openEnvelope(doctor, env, aad)))
      expect(text).toBe(`from ${maker.name}`)
      const transformed = withBackend(maker, () => transformEnvelope(transformKey, env))
      expect(withBackend(opener, () => new TextDecoder().decode(finishEnvelope(retrievalKey, env, transformed, aad)))).toBe(`from ${maker.name}`)
    }
  })

  it('the same refusals: wrong attributes, another authority', () => {
    const rng = deterministicRng('refusals across backends')
    const msk = setup(rng)
    const other = setup(rng)
    const { ciphertext } = encaps(msk.mpk, 'role:doctor AND hospital:h1', rng)
    const ct = codec.encodeCiphertext(ciphertext)
    const nurse = codec.encodeUserKey(keyGen(msk, ['role:nurse', 'hospital:h1'], rng))
    const foreign = codec.encodeUserKey(keyGen(other, ['role:doctor', 'hospital:h1'], rng))
    for (const key of [nurse, foreign]) {
      agree(() => outcome(() => decaps(codec.decodeUserKey(key), codec.decodeCiphertext(ct)).toBytes()))
    }
  })
})

// ---- hostile encodings ----------------------------------------------------------------------

const isSquare = (v: bigint): boolean => v === 0n || Fp.pow(v, (P - 1n) / 2n) === 1n
/** 48 bytes of x with the three flag bits set as given. */
const withFlags = (x: bigint, flags: number): Uint8Array => {
  const b = numberToBytesBE(x, 48)
  b[0] = (b[0]! & 0x1f) | flags
  return b
}
/** x values of points on E(Fp) (x³ + 4 a square): almost never in the order-r subgroup. */
const onCurveX = fc.bigInt({ min: 0n, max: P - 1n }).filter((x) => isSquare(Fp.add(Fp.pow(x, 3n), 4n)))

const g1Hostile: fc.Arbitrary<Uint8Array> = fc.oneof(
  // any flags over any x below 2^381
  fc.tuple(fc.bigInt({ min: 0n, max: (1n << 381n) - 1n }), fc.integer({ min: 0, max: 7 })).map(([x, f]) => withFlags(x, f << 5)),
  // x ≥ p with valid-looking flags
  fc.tuple(fc.bigInt({ min: P, max: (1n << 381n) - 1n }), fc.constantFrom(0x80, 0xa0)).map(([x, f]) => withFlags(x, f)),
  // infinity with junk, or with the sort flag
  fc.tuple(fc.bigInt({ min: 0n, max: (1n << 381n) - 1n }), fc.constantFrom(0xc0, 0xe0)).map(([x, f]) => withFlags(x, f)),
  // on the curve, (almost surely) outside the subgroup
  fc.tuple(onCurveX, fc.constantFrom(0x80, 0xa0)).map(([x, f]) => withFlags(x, f)),
  // off the curve
  fc.tuple(fc.bigInt({ min: 0n, max: P - 1n }).filter((x) => !isSquare(Fp.add(Fp.pow(x, 3n), 4n))), fc.constantFrom(0x80, 0xa0)).map(([x, f]) => withFlags(x, f)),
  // valid points with one flag bit flipped
  fc.tuple(fc.bigInt({ min: 1n, max: ORDER - 1n }), fc.integer({ min: 5, max: 7 })).map(([k, bit]) => {
    const b = bls12_381.G1.Point.BASE.multiply(k).toBytes()
    b[0]! ^= 1 << bit
    return b
  }),
  fc.uint8Array({ minLength: 48, maxLength: 48 }),
  fc.constant(withFlags(0n, 0xc0)), // the identity
)

const g2Hostile: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.tuple(g1Hostile, fc.bigInt({ min: 0n, max: (1n << 384n) - 1n })).map(([hi, lo]) => new Uint8Array([...hi, ...numberToBytesBE(lo, 48)])),
  fc.tuple(g1Hostile, fc.bigInt({ min: 0n, max: P - 1n })).map(([hi, lo]) => new Uint8Array([...hi, ...numberToBytesBE(lo, 48)])),
  fc.tuple(fc.bigInt({ min: 1n, max: ORDER - 1n }), fc.integer({ min: 0, max: 95 * 8 + 4 })).map(([k, bit]) => {
    const b = bls12_381.G2.Point.BASE.multiply(k).toBytes()
    const at = bit < 5 ? 0 : 1 + Math.floor((bit - 5) / 8)
    b[at]! ^= 1 << (bit < 5 ? bit + 3 : (bit - 5) % 8)
    return b
  }),
  fc.uint8Array({ minLength: 96, maxLength: 96 }),
  fc.constant(new Uint8Array([...withFlags(0n, 0xc0), ...new Uint8Array(48)])), // the identity
  fc.bigInt({ min: 1n, max: ORDER - 1n }).map((k) => bls12_381.G2.Point.BASE.multiply(k).toBytes()), // valid
)

/** Random elements of the cyclotomic subgroup (the easy part of the final exponentiation): almost never in GT. */
const cyclotomicArb = fc.array(fc.bigInt({ min: 1n, max: P - 1n }), { minLength: 12, maxLength: 12 }).map((c) => {
  const x = F12.fromBigTwelve(c as Parameters<typeof F12.fromBigTwelve>[0])
  const t = F12.mul(F12.conjugate(x), F12.inv(x))
  return F12.toBytes(F12.mul(F12.frobeniusMap(t, 2), t))
})

const gtHostile: fc.Arbitrary<Uint8Array> = fc.oneof(
  cyclotomicArb,
  // arbitrary Fp12 elements with canonical coordinates
  fc.array(fc.bigInt({ min: 0n, max: P - 1n }), { minLength: 12, maxLength: 12 }).map((c) => F12.toBytes(F12.fromBigTwelve(c as Parameters<typeof F12.fromBigTwelve>[0]))),
  // an element of GT with one coordinate written as itself + p (non-canonical)
  fc.tuple(fc.bigInt({ min: 1n, max: ORDER - 1n }), fc.integer({ min: 0, max: 11 })).map(([k, i]) => {
    const b = F12.toBytes(F12.pow(bls12_381.pairing(bls12_381.G1.Point.BASE, bls12_381.G2.Point.BASE), k))
    const v = bytesToNumberBE(b.subarray(48 * i, 48 * i + 48)) + P
    if (v < 1n << 384n) b.set(numberToBytesBE(v, 48), 48 * i)
    return b
  }),
  fc.constant(new Uint8Array(576)),
  fc.uint8Array({ minLength: 576, maxLength: 576 }),
)

describe('backends: hostile encodings get the same verdict and the same error', () => {
  const rng = deterministicRng('hostile encodings')
  const msk = setup(rng)
  const key = keyGen(msk, ['role:doctor', 'hospital:h1'], rng)
  const ct = codec.encodeCiphertext(encaps(msk.mpk, 'role:doctor AND hospital:h1', rng).ciphertext)
  const keyBytes = codec.encodeUserKey(key)
  const rowAt = ct.length - 48
  const c0At = ct.length - 2 * 48 - 1 - 2 * 96
  const k0At = 4 + 1 + 16
  const mpkBytes = codec.encodeMasterPublicKey(msk.mpk)

  /** A backend's verdict on one encoding: the re-encoded point, or the fault (reason and wording). */
  const verdict = (r: ReturnType<PairingBackend['g1FromBytes' | 'g2FromBytes']>): unknown => ('reason' in r ? r : { ok: hex(r.toBytes()), identity: r.is0() })
  const kinds = (seen: Set<string>) => [...seen].sort()
  const ALL_KINDS = ['BAD_POINT', 'NOT_IN_SUBGROUP', 'NOT_ON_CURVE', 'accepted', 'identity']

  it('G1 encodings (flag bits, x ≥ p, infinity with junk, off the curve, outside the subgroup)', () => {
    const seen = new Set<string>()
    fc.assert(
      fc.property(g1Hostile, (bytes) => {
        const v = agree((b) => verdict(b.g1FromBytes(bytes))) as { reason?: string; identity?: boolean }
        seen.add(v.reason ?? (v.identity ? 'identity' : 'accepted'))
      }),
      runs(2000),
    )
    expect(kinds(seen)).toEqual(ALL_KINDS)
  })

  it('G2 encodings', () => {
    const seen = new Set<string>()
    fc.assert(
      fc.property(g2Hostile, (bytes) => {
        const v = agree((b) => verdict(b.g2FromBytes(bytes))) as { reason?: string; identity?: boolean }
        seen.add(v.reason ?? (v.identity ? 'identity' : 'accepted'))
      }),
      runs(800),
    )
    expect(kinds(seen)).toEqual(ALL_KINDS)
  })

  it('the same typed errors from the decoders: ciphertext rows and C0, key K0', () => {
    fc.assert(
      fc.property(fc.oneof(g1Hostile.map((p) => ({ p, at: rowAt, key: false })), g2Hostile.map((p) => ({ p, at: c0At, key: false })), g2Hostile.map((p) => ({ p, at: k0At, key: true }))), ({ p, at, key: inKey }) => {
        const b = (inKey ? keyBytes : ct).slice()
        b.set(p, at)
        agree(() => outcome(() => (inKey ? codec.encodeUserKey(codec.decodeUserKey(b)) : codec.encodeCiphertext(codec.decodeCiphertext(b)))))
      }),
      runs(200),
    )
  })

  it('GT elements (outside the cyclotomic subgroup, cyclotomic but not in GT, non-canonical, zero) in a master public key', () => {
    fc.assert(
      fc.property(gtHostile, (gt) => {
        const b = mpkBytes.slice()
        b.set(gt, b.length - 576)
        const o = agree(() => outcome(() => codec.encodeMasterPublicKey(codec.decodeMasterPublicKey(b))))
        expect(o).toMatchObject({ code: 'INVALID_ENCODING' })
      }),
      runs(100),
    )
  })

  it('GT membership: Scott\'s test in both backends agrees with mcl\'s own test, the definition x^r = 1', () => {
    const byOrder = (mcl as PairingBackend & { checkInGTByOrder(b: Uint8Array): boolean }).checkInGTByOrder
    fc.assert(
      fc.property(fc.oneof(gtHostile, fc.bigInt({ min: 0n, max: ORDER - 1n }).map((k) => F12.toBytes(F12.pow(bls12_381.pairing(bls12_381.G1.Point.BASE, bls12_381.G2.Point.BASE), k)))), (gt) => {
        const definition = byOrder(gt)
        expect(mcl.gtFromBytes(gt) !== null).toBe(definition)
        expect(nobleBackend.gtFromBytes(gt) !== null).toBe(definition)
      }),
      runs(60),
    )
  })

  it('a degenerate master public key (the identity of GT) is refused by both, and Encaps refuses it too', () => {
    const one = mpkBytes.slice()
    one.set(F12.toBytes(F12.ONE), one.length - 576)
    const o = agree(() => outcome(() => codec.encodeMasterPublicKey(codec.decodeMasterPublicKey(one))))
    expect(o).toMatchObject({ code: 'INVALID_ENCODING', info: { reason: 'DEGENERATE_KEY' } })
    for (const b of both()) {
      const degenerate = { eghAlpha: b.gtOne(), id: msk.mpk.id } as MasterPublicKey
      expect(withBackend(b, () => outcome(() => encaps(degenerate, 'role:doctor', rng).key.toBytes()))).toMatchObject({ code: 'INVALID_ARGUMENT', info: { reason: 'DEGENERATE_KEY' } })
    }
  })

  it('Decaps itself refuses group elements that were not validated, and identities', () => {
    const valid = codec.decodeCiphertext(ct)
    let x = 1n
    while (isSquare(Fp.add(Fp.pow(x, 3n), 4n))) x++
    const offCurve = withFlags(x, 0x80)
    const forgedRow = { group: 'G1', toBytes: () => offCurve } as unknown as Ciphertext['rows'][number]
    const cases: [string, Ciphertext][] = [
      ['forged row', { ...valid, rows: [forgedRow, ...valid.rows.slice(1)] }],
      ['identity C0', { ...valid, c0: nobleBackend.g2Zero() }],
    ]
    for (const [what, c] of cases) {
      const o = agree(() => outcome(() => decaps(key, c).toBytes()))
      expect({ what, o }).toMatchObject({ what, o: { code: 'INVALID_ARGUMENT' } })
    }
    expect(agree(() => outcome(() => decaps(key, cases[0]![1]).toBytes()))).toMatchObject({ info: { reason: 'UNVALIDATED_ELEMENT' } })
  })
})

describe('mcl backend: operations on secrets are uniform', () => {
  /** Count calls of mcl's C functions while `f` runs. */
  function countCalls(names: string[], f: () => void): string {
    const mod = (createRequire(import.meta.url)('mcl-wasm') as { mod: Record<string, (...a: number[]) => number> }).mod
    const counts: Record<string, number> = {}
    const saved = names.map((n) => [n, mod[n]!] as const)
    for (const [n, orig] of saved) mod[n] = (...a: number[]) => ((counts[n] = (counts[n] ?? 0) + 1), orig(...a))
    try {
      f()
    } finally {
      for (const [n, orig] of saved) mod[n] = orig
    }
    return JSON.stringify(counts)
  }
  const exponents = [0n, 1n, 15n, 16n, 1n << 200n, ORDER - 1n, 0xd201000000010000n, 2n ** 254n + 12345n]

  it('GT exponentiation, with and without a table, runs the same calls whatever the exponent', () => {
    const g = mcl.pairing(mcl.g1Base(), mcl.g2Base())
    const gtCalls = ['_mclBnGT_mul', '_mclBnGT_sqr', '_mclBnGT_inv', '_mclBnFp2_mul', '_mclBnFp_neg']
    const fresh = exponents.map((e) => countCalls(gtCalls, () => void mcl.gtFromBytes(g.toBytes())!.pow(e)))
    expect(new Set(fresh).size).toBe(1)
    const tabled = mcl.gtFromBytes(g.toBytes())!
    tabled.pow(3n)
    tabled.pow(5n) // the second use builds the table
    const withTable = exponents.map((e) => countCalls(gtCalls, () => void tabled.pow(e)))
    expect(new Set(withTable).size).toBe(1)
    expect(JSON.parse(withTable[0]!)).toEqual({ _mclBnGT_mul: 64 })
  })

  it('point multiplication, with a table (G2 generator) and without (mcl\'s constant-time GLV), runs the same calls whatever the scalar', () => {
    const calls = ['_mclBnG1_add', '_mclBnG1_dbl', '_mclBnG1_mul', '_mclBnG1_mulCT', '_mclBnG2_add', '_mclBnG2_mulCT']
    const p = mcl.hashToG1(utf8.encode('uniform'), ATTRIBUTE_DST)
    expect(new Set(exponents.map((k) => countCalls(calls, () => void p.multiply(k)))).size).toBe(1)
    const viaTable = exponents.map((k) => countCalls(calls, () => void mcl.mulG2Base(k)))
    expect(new Set(viaTable).size).toBe(1)
    expect(JSON.parse(viaTable[0]!)).toEqual({ _mclBnG2_add: 64 })
  })
})
