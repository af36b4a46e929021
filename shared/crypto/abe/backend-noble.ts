/**
 * The noble backend: @noble/curves' BLS12-381 (pure TypeScript, audited), the reference the mcl
 * backend is tested against. Synchronous, always available, the default until `useBackend` runs.
 */
import { bls12_381 } from '@noble/curves/bls12-381.js'
import { mulAddUnsafe } from '@noble/curves/abstract/curve.js'
import type { WeierstrassPoint } from '@noble/curves/abstract/weierstrass.js'
import type { Fp2 } from '@noble/curves/abstract/tower.js'
import { POINT_FAULTS, foreignElementError, isPointFault, registerDefaultBackend, type G1, type G2, type GT, type PairingBackend, type PointFault } from './backend.ts'
import { fp12FromBytes, fp12InGT, fp12Pow, type Fp12 } from './gt.ts'

type NP1 = WeierstrassPoint<bigint>
type NP2 = WeierstrassPoint<Fp2>
const F12 = bls12_381.fields.Fp12
const ORDER = bls12_381.fields.Fr.ORDER

// ---- elements -------------------------------------------------------------------------------

/**
 * Every element this backend made: valid by construction (its decoders check, hashing and
 * arithmetic on valid elements stay in the group). Anything else — a foreign backend's element, an
 * object dressed up as one of ours — goes through adopt*, which re-decodes it with every check.
 */
const made = new WeakSet<object>()

class NoblePoint<N extends NP1 | NP2, Group extends 'G1' | 'G2'> {
  readonly group: Group
  readonly p: N
  constructor(group: Group, p: N) {
    this.group = group
    this.p = p
    made.add(this)
  }
  get backend(): PairingBackend {
    return nobleBackend
  }
  private wrap(p: N): this {
    return new NoblePoint(this.group, p) as this
  }
  private own(o: NoblePoint<N, Group>): N {
    if (made.has(o)) return o.p
    return (this.group === 'G1' ? nobleBackend.adoptG1(o as never) : nobleBackend.adoptG2(o as never)) as unknown as N
  }
  add(o: this): this {
    return this.wrap(this.p.add(this.own(o) as never) as N)
  }
  subtract(o: this): this {
    return this.wrap(this.p.subtract(this.own(o) as never) as N)
  }
  negate(): this {
    return this.wrap(this.p.negate() as N)
  }
  multiply(k: bigint): this {
    k %= ORDER
    if (k < 0n) k += ORDER
    // noble refuses 0; LSSS shares and blinded keys can legitimately be 0.
    return this.wrap((k === 0n ? this.zero() : this.p.multiply(k)) as N)
  }
  private zero(): N {
    return (this.group === 'G1' ? bls12_381.G1.Point.ZERO : bls12_381.G2.Point.ZERO) as unknown as N
  }
  is0(): boolean {
    return this.p.is0()
  }
  equals(o: this): boolean {
    return this.p.equals(this.own(o) as never)
  }
  /** ZCash compressed; the identity as the infinity encoding (noble refuses to encode it). */
  toBytes(): Uint8Array {
    if (this.p.is0()) {
      const b = new Uint8Array(this.group === 'G1' ? 48 : 96)
      b[0] = 0xc0
      return b
    }
    return this.p.toBytes()
  }
}

type NobleG1 = NoblePoint<NP1, 'G1'> & G1
type NobleG2 = NoblePoint<NP2, 'G2'> & G2
const g1 = (p: NP1): NobleG1 => new NoblePoint('G1', p) as NobleG1
const g2 = (p: NP2): NobleG2 => new NoblePoint('G2', p) as NobleG2

class NobleGT implements GT {
  readonly group = 'GT' as const
  readonly x: Fp12
  constructor(x: Fp12) {
    this.x = x
    made.add(this)
  }
  get backend(): PairingBackend {
    return nobleBackend
  }
  private own(o: GT): Fp12 {
    return made.has(o) ? (o as NobleGT).x : (nobleBackend.adoptGT(o) as NobleGT).x
  }
  mul(o: GT): GT {
    return new NobleGT(F12.mul(this.x, this.own(o)))
  }
  inv(): GT {
    return new NobleGT(F12.conjugate(this.x))
  }
  pow(e: bigint): GT {
    return new NobleGT(fp12Pow(this.x, e))
  }
  equals(o: GT): boolean {
    return F12.eql(this.x, this.own(o))
  }
  isOne(): boolean {
    return F12.eql(this.x, F12.ONE)
  }
  toBytes(): Uint8Array {
    return F12.toBytes(this.x)
  }
}

// ---- decoding -------------------------------------------------------------------------------

/**
 * noble explains a refusal only in its message; name it the way every backend does. Checked in
 * the differential suite against the mcl backend, which inspects the bytes itself.
 */
function faultOf(e: unknown): PointFault {
  const msg = e instanceof Error ? e.message : String(e)
  if (/subgroup/i.test(msg)) return POINT_FAULTS.subgroup
  if (/square root|sqrt/i.test(msg)) return POINT_FAULTS.curve
  if (/non-canonical zero/i.test(msg)) return POINT_FAULTS.infinity
  if (/outside of range|range/i.test(msg)) return POINT_FAULTS.range
  return POINT_FAULTS.flags
}

function decode<P>(bytes: Uint8Array, parse: (b: Uint8Array) => P): P | PointFault {
  try {
    return parse(bytes)
  } catch (e) {
    return faultOf(e)
  }
}

/**
 * Foreign elements already adopted (a master public key loaded before the process switched
 * backends is used at every seal): re-decoding and re-checking it each time would cost ~1 ms.
 */
const adoptions = new WeakMap<object, unknown>()
function memo<T>(foreign: object, make: () => T): T {
  let own = adoptions.get(foreign) as T | undefined
  if (own === undefined) {
    own = make()
    adoptions.set(foreign, own)
  }
  return own
}

function adopted<T>(x: { toBytes(): Uint8Array }, group: 'G1' | 'G2' | 'GT', parse: (b: Uint8Array) => T | null): T {
  const fault = (detail: string): never => {
    throw foreignElementError(group, detail)
  }
  let bytes: Uint8Array
  try {
    bytes = x.toBytes()
  } catch (e) {
    return fault(`it has no encoding (${e instanceof Error ? e.message : String(e)})`)
  }
  const r = decode(bytes, parse)
  if (r === null) return fault('not a canonical element of GT')
  if (isPointFault(r)) return fault(r.detail)
  return r
}

// ---- fixed-base tables and pairing lines ----------------------------------------------------

const CACHE_LIMIT = 4096
/** Attributes promoted to an 8-bit table (0.8 MB and ~0.1 s each): the gateway's stream policies. */
const HOT_LIMIT = 32
const HOT_AFTER_USES = 3
const attributeCache = new Map<string, { point: NobleG1; uses: number }>()
let hot = 0

/** k·h for the G2 generator h with an 8-bit window table (2.7 MB, built on first use, ~0.5 s). */
let g2Table: NP2 | undefined

type Precompute = ReturnType<typeof bls12_381.utils.calcPairingPrecomputes>
const lineCache = new WeakMap<NP2, Precompute>()

/** Miller-loop line coefficients of a G2 point, memoised per point object (a key's K0 is reused). */
function linesOf(q: NP2): Precompute {
  let pre = lineCache.get(q)
  if (!pre) {
    pre = bls12_381.utils.calcPairingPrecomputes(q)
    lineCache.set(q, pre)
  }
  return pre
}

const toNoble1 = (p: G1): NP1 => (nobleBackend.adoptG1(p) as NobleG1).p
const toNoble2 = (q: G2): NP2 => (nobleBackend.adoptG2(q) as NobleG2).p

export const nobleBackend: PairingBackend = {
  name: 'noble',
  description: '@noble/curves BLS12-381 (TypeScript)',

  g1Base: () => g1(bls12_381.G1.Point.BASE),
  g1Zero: () => g1(bls12_381.G1.Point.ZERO),
  g1FromBytes: (bytes) => {
    const p = decode(bytes, (b) => bls12_381.G1.Point.fromBytes(b))
    return 'reason' in p ? p : g1(p)
  },
  hashToG1: (msg, dst) => g1(bls12_381.G1.hashToCurve(msg, { DST: dst }) as NP1),

  /**
   * Memoised: the gateway encrypts under the same few attributes all day. A cached point carries a
   * 4-bit window table (its multiplications are ~4× cheaper than a bare point's); one used again
   * and again — a stream's policy, sealed every few seconds — is promoted to an 8-bit table.
   */
  attributePoint(msg, dst) {
    const key = `${dst}\0${msg}`
    let entry = attributeCache.get(key)
    if (!entry) {
      if (attributeCache.size >= CACHE_LIMIT) nobleBackend.clearCaches()
      const point = bls12_381.G1.hashToCurve(new TextEncoder().encode(msg), { DST: dst }) as NP1
      point.precompute(4, true)
      entry = { point: g1(point), uses: 0 }
      attributeCache.set(key, entry)
    }
    if (++entry.uses === HOT_AFTER_USES && hot < HOT_LIMIT) {
      hot++
      entry.point.p.precompute(8, true)
    }
    return entry.point
  },

  fixedBaseG1: (p) => {
    const q = bls12_381.G1.Point.fromAffine(toNoble1(p).toAffine())
    q.precompute(8, false)
    return g1(q)
  },

  g1Msm: (points, scalars) => {
    if (points.length === 0) return g1(bls12_381.G1.Point.ZERO)
    return g1(mulAddUnsafe(bls12_381.G1.Point, points.map(toNoble1), scalars.map((k) => ((k % ORDER) + ORDER) % ORDER)))
  },

  g2Base: () => g2(bls12_381.G2.Point.BASE),
  g2Zero: () => g2(bls12_381.G2.Point.ZERO),
  g2FromBytes: (bytes) => {
    const q = decode(bytes, (b) => bls12_381.G2.Point.fromBytes(b))
    return 'reason' in q ? q : g2(q)
  },
  mulG2Base(k) {
    if (!g2Table) {
      g2Table = bls12_381.G2.Point.fromAffine(bls12_381.G2.Point.BASE.toAffine())
      g2Table.precompute(8, false)
    }
    return g2(g2Table).multiply(k)
  },

  gtOne: () => new NobleGT(F12.ONE),
  gtFromBytes: (bytes) => {
    const x = fp12FromBytes(bytes)
    return x ? new NobleGT(x) : null
  },
  isInGT: (x) => fp12InGT(made.has(x) ? (x as NobleGT).x : F12.fromBytes(x.toBytes())),

  pairing: (p, q) => nobleBackend.pairingProduct([{ g1: p, g2: q }]),
  /** Unlike noble's pairingBatch it does not re-run the subgroup checks: callers pass validated points. */
  pairingProduct(pairs) {
    const terms: [Precompute, bigint, bigint][] = []
    for (const pair of pairs) {
      const p = toNoble1(pair.g1)
      const q = toNoble2(pair.g2)
      if (p.is0() || q.is0()) continue
      const { x, y } = p.toAffine()
      terms.push([linesOf(q), x, y])
    }
    return new NobleGT(terms.length ? F12.finalExponentiate(bls12_381.millerLoopBatch(terms)) : F12.ONE)
  },

  adoptG1: (p) => (made.has(p) ? p : memo(p, () => g1(adopted(p, 'G1', (b) => bls12_381.G1.Point.fromBytes(b))))),
  adoptG2: (q) => (made.has(q) ? q : memo(q, () => g2(adopted(q, 'G2', (b) => bls12_381.G2.Point.fromBytes(b))))),
  adoptGT: (x) => (made.has(x) ? x : memo(x, () => new NobleGT(adopted(x, 'GT', fp12FromBytes)))),

  clearCaches() {
    attributeCache.clear()
    hot = 0
  },
  externalMemoryBytes: () => 0,
}

registerDefaultBackend(() => nobleBackend)
