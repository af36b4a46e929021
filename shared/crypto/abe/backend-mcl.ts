/**
 * The mcl backend: herumi's mcl (BSD-3-Clause) compiled to WebAssembly, npm `mcl-wasm`, on
 * BLS12-381 — 4–10× faster than noble here. It is loaded asynchronously (`loadMclBackend`), then
 * used synchronously like the noble backend.
 *
 * We call mcl's C API (include/mcl/bn.h: mclBnG1_mulCT, mclBn_millerLoopVec, …) on the module
 * mcl-wasm exports, with our own scratch memory in the WebAssembly heap: mcl-wasm's object wrappers
 * allocate and copy on every call (~20% of a G1 multiplication here) and do not expose
 * hash-to-curve with a caller's DST, Miller-loop products or GT membership. Elements live in the
 * V8 heap as mcl's internal words (Uint32Array); only scratch slots live in the WebAssembly heap.
 *
 * Settings: ETH (ZCash) serialisation, IRTF map-to (RFC 9380 SSWU), and subgroup checks done by
 * our decoders explicitly (mcl's implicit check on deserialisation is turned off so that a refusal
 * can be named: curve or subgroup). Flag bits and coordinate ranges are checked here on the bytes,
 * independently of noble, and test/crypto/backends.test.ts compares every verdict with noble's.
 */
import { createRequire } from 'node:module'
import { POINT_FAULTS, foreignElementError, isPointFault, type BackendName, type G1, type G2, type GT, type PairingBackend, type PointFault } from './backend.ts'
import { jointPowUniform, type MulOps } from './ladder.ts'
import { buildGtComb, buildPointComb, combMultiply, combPow, freeComb, makeFrobenius, type Comb } from './mcl-precompute.ts'
import { FP, FR, G1_WORDS, G2_WORDS, GT_BYTES, GT_WORDS, Heap, type Module } from './mcl-heap.ts'

/** BLS12-381 field modulus p and group order r (draft-irtf-cfrg-pairing-friendly-curves-11 §4.2.1). */
const P = 0x1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaabn
const R = 0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001n
/** The standard generators in ZCash compressed form (same draft, §4.2.1). */
const G1_GENERATOR = '97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb'
const G2_GENERATOR =
  '93e02b6052719f607dacd3a088274f65596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e024aa2b2f08f0a91260805272dc51051c6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8'
const MCL_BLS12_381 = 5
const MCL_IRTF = 5

const require = createRequire(import.meta.url)

const utf8 = new TextEncoder()

/** Load mcl-wasm and build the backend. Rejects if the module cannot be loaded or initialised. */
export async function loadMclBackend(): Promise<PairingBackend> {
  const mcl = require('mcl-wasm') as {
    init(curve: number): Promise<void>
    setETHserialization(on: boolean): void
    setMapToMode(mode: number): void
    verifyOrderG1(on: boolean): void
    verifyOrderG2(on: boolean): void
    mod: Module
  }
  await mcl.init(MCL_BLS12_381)
  mcl.setETHserialization(true)
  mcl.setMapToMode(MCL_IRTF)
  mcl.verifyOrderG1(false)
  mcl.verifyOrderG2(false)
  const version = (require('mcl-wasm/package.json') as { version: string }).version
  return makeBackend(new Heap(mcl.mod), `mcl-wasm ${version} BLS12-381 (WebAssembly)`)
}

function makeBackend(heap: Heap, description: string): PairingBackend {
  const mod = heap.mod
  // Slots 0–2 operands and results, 5 scalar bytes; 6–7 belong to mcl-precompute.ts.
  const [S0, S1, S2, , , S5] = heap.slot as [number, number, number, number, number, number]
  const made = new WeakSet<object>()

  const reduce = (k: bigint): bigint => ((k % R) + R) % R
  /** k mod r as an mcl Fr at `ptr` (32 bytes little-endian, reduced by mcl). */
  const putScalar = (ptr: number, k: bigint): number => {
    k %= R
    if (k < 0n) k += R
    const le = new Uint8Array(FR)
    for (let i = 0; i < FR; i++, k >>= 8n) le[i] = Number(k & 0xffn)
    heap.putBytes(S5, le)
    if (mod._mclBnFr_setLittleEndianMod!(ptr, S5, FR) !== 0) throw new Error('mcl: scalar not accepted')
    return ptr
  }

  // ---- points ---------------------------------------------------------------------------

  interface Group {
    readonly name: 'G1' | 'G2'
    readonly words: number
    readonly bytes: number
    readonly fn: 'G1' | 'G2'
  }
  const G1G: Group = { name: 'G1', words: G1_WORDS, bytes: 48, fn: 'G1' }
  const G2G: Group = { name: 'G2', words: G2_WORDS, bytes: 96, fn: 'G2' }
  const call = (g: Group, op: string, ...args: number[]): number => mod[`_mclBn${g.fn}_${op}`]!(...args)

  class MclPoint {
    readonly group: 'G1' | 'G2'
    readonly w: Uint32Array
    readonly g: Group
    /** A fixed-base table, for bases multiplied again and again (mcl-precompute.ts). */
    comb: Comb | undefined
    constructor(g: Group, w: Uint32Array) {
      this.g = g
      this.group = g.name
      this.w = w
      made.add(this)
    }
    get backend(): PairingBackend {
      return backend
    }
    private own(o: MclPoint): Uint32Array {
      return (made.has(o) ? o : ((this.g === G1G ? backend.adoptG1(o as never) : backend.adoptG2(o as never)) as unknown as MclPoint)).w
    }
    private op2(op: string, o: MclPoint): this {
      call(this.g, op, S2, heap.put(S0, this.w), heap.put(S1, this.own(o)))
      return new MclPoint(this.g, heap.get(S2, this.g.words)) as this
    }
    add(o: this): this {
      return this.op2('add', o)
    }
    subtract(o: this): this {
      return this.op2('sub', o)
    }
    negate(): this {
      call(this.g, 'neg', S2, heap.put(S0, this.w))
      return new MclPoint(this.g, heap.get(S2, this.g.words)) as this
    }
    /**
     * Uniform in k: 64 table additions with a fixed-base table, else mcl's constant-time GLV
     * multiplication (mclBnG1_mulCT: fixed 4-bit windows, no skipped digits).
     */
    multiply(k: bigint): this {
      if (this.comb?.ptr) return new MclPoint(this.g, combMultiply(heap, this.g.fn, this.comb, reduce(k))) as this
      call(this.g, 'mulCT', S2, heap.put(S0, this.w), putScalar(S1, k))
      return new MclPoint(this.g, heap.get(S2, this.g.words)) as this
    }
    is0(): boolean {
      return call(this.g, 'isZero', heap.put(S0, this.w)) === 1
    }
    equals(o: this): boolean {
      return call(this.g, 'isEqual', heap.put(S0, this.w), heap.put(S1, this.own(o))) === 1
    }
    toBytes(): Uint8Array {
      const n = call(this.g, 'serialize', S1, GT_BYTES, heap.put(S0, this.w))
      if (n !== this.g.bytes) throw new Error(`mcl: ${this.g.name} serialised to ${n} bytes`)
      return heap.getBytes(S1, n)
    }
  }
  type MclG1 = MclPoint & G1
  type MclG2 = MclPoint & G2

  /**
   * ZCash decoding with the checks named the way every backend names them: flag bits and
   * coordinate ranges on the bytes, then mcl decompresses (on the curve?) and tests the order.
   */
  function decodePoint(g: Group, bytes: Uint8Array): MclPoint | PointFault {
    if (bytes.length !== g.bytes) return POINT_FAULTS.flags
    const flags = bytes[0]! & 0xe0
    const compressed = (flags & 0x80) !== 0
    const infinity = (flags & 0x40) !== 0
    const sign = (flags & 0x20) !== 0
    if (!compressed) return POINT_FAULTS.flags
    if (infinity) {
      if (sign) return POINT_FAULTS.flags
      if ((bytes[0]! & 0x1f) !== 0 || bytes.subarray(1).some((b) => b !== 0)) return POINT_FAULTS.infinity
    } else {
      for (let at = 0; at < g.bytes; at += FP) {
        let x = 0n
        for (let i = at; i < at + FP; i++) x = (x << 8n) | BigInt(i === 0 ? bytes[i]! & 0x1f : bytes[i]!)
        if (x >= P) return POINT_FAULTS.range
      }
    }
    heap.putBytes(S1, bytes)
    if (call(g, 'deserialize', S0, S1, g.bytes) !== g.bytes) return POINT_FAULTS.curve
    if (call(g, 'isValidOrder', S0) !== 1) return POINT_FAULTS.subgroup
    return new MclPoint(g, heap.get(S0, g.words))
  }

  const fromHex = (g: Group, hex: string): MclPoint => {
    const p = decodePoint(g, Uint8Array.from(Buffer.from(hex, 'hex')))
    if (isPointFault(p)) throw new Error(`mcl: the ${g.name} generator does not decode: ${p.detail}`)
    return p
  }
  const zero = (g: Group): MclPoint => {
    call(g, 'clear', S0)
    return new MclPoint(g, heap.get(S0, g.words))
  }
  const G1_BASE = fromHex(G1G, G1_GENERATOR)
  const G2_BASE = fromHex(G2G, G2_GENERATOR)

  // Fixed-base tables: offsets Z (points of unknown discrete log, from hash-to-curve under a DST of
  // their own), the G2 generator's table at once, others on demand.
  const offsetDst = utf8.encode('CARELEDGER-V01-MCL-TABLE-OFFSET_')
  const offsetOf = (g: Group): Uint32Array => {
    const area = heap.vector(64)
    heap.putBytes(area, offsetDst)
    if (call(g, 'hashAndMapToWithDst', S0, area, 0, area, offsetDst.length) !== 0) throw new Error('mcl: hash for a table offset failed')
    return heap.get(S0, g.words)
  }
  const OFFSET = { G1: offsetOf(G1G), G2: offsetOf(G2G) }
  const withComb = <T extends MclPoint>(p: T): T => {
    const q = new MclPoint(p.g, p.w) as T
    q.comb = buildPointComb(heap, p.g.fn, p.g.words, p.w, OFFSET[p.g.fn])
    return q
  }
  const G2_TABLE = withComb(G2_BASE)

  function hashToG1(msg: Uint8Array, dst: string): MclG1 {
    const d = utf8.encode(dst)
    const area = heap.vector(msg.length + d.length)
    heap.putBytes(area, msg)
    heap.putBytes(area + msg.length, d)
    if (mod._mclBnG1_hashAndMapToWithDst!(S0, area, msg.length, area + msg.length, d.length) !== 0) throw new Error('mcl: hash to G1 failed')
    return new MclPoint(G1G, heap.get(S0, G1_WORDS)) as MclG1
  }

  // ---- GT -------------------------------------------------------------------------------

  class MclGT implements GT {
    readonly group = 'GT' as const
    readonly w: Uint32Array
    /** Exponentiations of this element so far; a table is built at the second (the master public key). */
    uses = 0
    comb: Comb | undefined
    constructor(w: Uint32Array) {
      this.w = w
      made.add(this)
    }
    get backend(): PairingBackend {
      return backend
    }
    private own(o: GT): Uint32Array {
      return (made.has(o) ? (o as MclGT) : (backend.adoptGT(o) as MclGT)).w
    }
    mul(o: GT): GT {
      return new MclGT(gtOps.mul(this.w, this.own(o)))
    }
    inv(): GT {
      mod._mclBnGT_inv!(S1, heap.put(S0, this.w))
      return new MclGT(heap.get(S1, GT_WORDS))
    }
    /**
     * Uniform in e: 64 table products for a base with a table (built at its second use, at most
     * GT_TABLES of them), else the 4-way Frobenius split of gt.ts (64 squarings, 64 products).
     */
    pow(e: bigint): GT {
      e = reduce(e)
      if (!this.comb?.ptr && ++this.uses >= 2) this.comb = gtTable(this.w)
      if (this.comb?.ptr) return new MclGT(combPow(heap, this.comb, e, ONE_WORDS))
      return new MclGT(gtPowSplit(this.w, e))
    }
    equals(o: GT): boolean {
      return mod._mclBnGT_isEqual!(heap.put(S0, this.w), heap.put(S1, this.own(o))) === 1
    }
    isOne(): boolean {
      return mod._mclBnGT_isOne!(heap.put(S0, this.w)) === 1
    }
    toBytes(): Uint8Array {
      const n = mod._mclBnGT_serialize!(S1, GT_BYTES, heap.put(S0, this.w))
      if (n !== GT_BYTES) throw new Error(`mcl: GT serialised to ${n} bytes`)
      return swapFp2Halves(heap.getBytes(S1, n))
    }
  }

  const ONE_WORDS = (() => {
    mod._mclBnGT_setInt32!(S0, 1)
    return heap.get(S0, GT_WORDS)
  })()
  const gtOps: MulOps<Uint32Array> = {
    one: () => ONE_WORDS,
    mul: (a, b) => {
      mod._mclBnGT_mul!(S2, heap.put(S0, a), heap.put(S1, b))
      return heap.get(S2, GT_WORDS)
    },
    sqr: (a) => {
      mod._mclBnGT_sqr!(S2, heap.put(S0, a))
      return heap.get(S2, GT_WORDS)
    },
  }

  const frobenius = makeFrobenius(heap, P)
  const conj = (x: Uint32Array): Uint32Array => {
    mod._mclBnGT_inv!(S1, heap.put(S0, x)) // unitary inverse = conjugation
    return heap.get(S1, GT_WORDS)
  }
  const eq = (a: Uint32Array, b: Uint32Array): boolean => mod._mclBnGT_isEqual!(heap.put(S0, a), heap.put(S1, b)) === 1
  /** |u| for BLS12-381; x^p = x^u = (x^U)^-1 on GT (see gt.ts). */
  const U = 0xd201000000010000n
  function gtPowSplit(x: Uint32Array, e: bigint): Uint32Array {
    const f1 = frobenius(x, 1)
    const bases = [x, conj(f1), frobenius(f1, 1), conj(frobenius(f1, 2))]
    const digits: bigint[] = []
    for (let i = 0; i < 4; i++, e /= U) digits.push(e % U)
    return jointPowUniform(gtOps, bases, digits, 64)
  }
  /** Scott, ePrint 2021/1130 §6, as in gt.ts: cyclotomic (x^(p^4)·x = x^(p^2)) and x^p = (x^U)^-1. */
  function inGT(x: Uint32Array): boolean {
    if (mod._mclBnGT_isZero!(heap.put(S0, x)) === 1) return false
    const f2 = frobenius(x, 2)
    if (!eq(gtOps.mul(frobenius(f2, 2), x), f2)) return false
    let acc = x
    for (let bit = 62; bit >= 0; bit--) {
      acc = gtOps.sqr(acc)
      if ((U >> BigInt(bit)) & 1n) acc = gtOps.mul(acc, x)
    }
    return eq(frobenius(x, 1), conj(acc))
  }
  /** mcl's own membership test, x^r = 1 (the definition): the differential suite checks inGT against it. */
  const inGTByOrder = (x: Uint32Array): boolean => mod._mclBnGT_isValid!(heap.put(S0, x)) === 1

  const GT_TABLES = 4
  const gtTables: { owner: Uint32Array; comb: Comb }[] = []
  function gtTable(x: Uint32Array): Comb {
    if (gtTables.length >= GT_TABLES) freeComb(heap, gtTables.shift()!.comb)
    const comb = buildGtComb(heap, x, ONE_WORDS)
    gtTables.push({ owner: x, comb })
    return comb
  }

  /** The internal words of a canonical encoding (every coordinate < p), or null; membership is not checked. */
  function gtDecode(bytes: Uint8Array): Uint32Array | null {
    if (bytes.length !== GT_BYTES) return null
    for (let at = 0; at < GT_BYTES; at += FP) {
      let x = 0n
      for (let i = at; i < at + FP; i++) x = (x << 8n) | BigInt(bytes[i]!)
      if (x >= P) return null
    }
    heap.putBytes(S1, swapFp2Halves(bytes))
    if (mod._mclBnGT_deserialize!(S0, S1, GT_BYTES) !== GT_BYTES) return null
    return heap.get(S0, GT_WORDS)
  }

  /**
   * Elements decoded with the membership check: Finish must not pay for the same check twice
   * (decoding a transformed ciphertext checks it, then finish() asks again). Our elements' words
   * are never written after construction.
   */
  const knownInGT = new WeakSet<MclGT>()

  /** Canonical and in GT. */
  function gtFromBytes(bytes: Uint8Array): MclGT | null {
    const x = gtDecode(bytes)
    if (!x || !inGT(x)) return null
    const y = new MclGT(x)
    knownInGT.add(y)
    return y
  }

  // ---- pairings -------------------------------------------------------------------------

  function pairingProduct(pairs: readonly { g1: G1; g2: G2 }[]): MclGT {
    const live = pairs.map((p) => ({ a: adopt(G1G, p.g1), b: adopt(G2G, p.g2) })).filter(({ a, b }) => !a.is0() && !b.is0())
    if (live.length === 0) return new MclGT(ONE_WORDS)
    const xs = heap.vector(live.length * (4 * G1_WORDS + 4 * G2_WORDS))
    const ys = xs + live.length * 4 * G1_WORDS
    live.forEach(({ a, b }, i) => {
      heap.put(xs + i * 4 * G1_WORDS, a.w)
      heap.put(ys + i * 4 * G2_WORDS, b.w)
    })
    mod._mclBn_millerLoopVec!(S0, xs, ys, live.length)
    mod._mclBn_finalExp!(S1, S0)
    return new MclGT(heap.get(S1, GT_WORDS))
  }

  /** Foreign elements already adopted (see backend-noble.ts: a master public key is used at every seal). */
  const adoptions = new WeakMap<object, MclPoint | MclGT>()

  function adopt(g: Group, p: { toBytes(): Uint8Array }): MclPoint {
    if (made.has(p)) return p as MclPoint
    const known = adoptions.get(p)
    if (known instanceof MclPoint && known.g === g) return known
    const q = adoptFresh(g, p)
    adoptions.set(p, q)
    return q
  }

  function adoptFresh(g: Group, p: { toBytes(): Uint8Array }): MclPoint {
    let bytes: Uint8Array
    try {
      bytes = p.toBytes()
    } catch (e) {
      throw foreignElementError(g.name, `it has no encoding (${e instanceof Error ? e.message : String(e)})`)
    }
    const q = decodePoint(g, bytes)
    if (isPointFault(q)) throw foreignElementError(g.name, q.detail)
    return q
  }

  const attributes = new Map<string, { point: MclG1; uses: number }>()
  const ATTRIBUTE_CACHE_LIMIT = 4096
  /** Attribute points with a table (147 KB each in the WebAssembly heap): a gateway's stream policies, an authority's common attributes. */
  const ATTRIBUTE_TABLES = 32
  let attributeTables = 0
  const dropAttributes = (): void => {
    for (const { point } of attributes.values()) if (point.comb) freeComb(heap, point.comb)
    attributes.clear()
    attributeTables = 0
  }
  // The Frobenius map must be x^p: on GT, x^p = x^(p mod r). Refuse to run otherwise.
  {
    const g = pairingProduct([{ g1: G1_BASE as MclG1, g2: G2_BASE as MclG2 }]).w
    const viaPow = jointPowUniform(gtOps, [g], [P % R], 255)
    if (!eq(frobenius(g, 1), viaPow)) throw new Error('mcl: the Frobenius map does not agree with x^p on GT')
  }

  const backend: PairingBackend = {
    name: 'mcl' satisfies BackendName,
    description,
    g1Base: () => G1_BASE as MclG1,
    g1Zero: () => zero(G1G) as MclG1,
    g1FromBytes: (bytes) => decodePoint(G1G, bytes) as MclG1 | PointFault,
    hashToG1,
    attributePoint(msg, dst) {
      const key = `${dst}\0${msg}`
      let entry = attributes.get(key)
      if (!entry) {
        if (attributes.size >= ATTRIBUTE_CACHE_LIMIT) dropAttributes()
        entry = { point: hashToG1(utf8.encode(msg), dst), uses: 0 }
        attributes.set(key, entry)
      }
      if (++entry.uses === 2 && attributeTables < ATTRIBUTE_TABLES) {
        attributeTables++
        entry.point.comb = buildPointComb(heap, 'G1', G1_WORDS, entry.point.w, OFFSET.G1)
      }
      return entry.point
    },
    fixedBaseG1: (p) => withComb(adopt(G1G, p)) as MclG1,
    /** mclBnG1_mulVec in chunks of 16 (mcl's GLV multi-scalar path covers n ≤ 16 and n ≥ 128). */
    g1Msm(points, scalars) {
      const n = points.length
      if (n === 0) return zero(G1G) as MclG1
      if (n > 16 && n < 128) {
        let sum = zero(G1G) as MclG1
        for (let i = 0; i < n; i += 16) sum = sum.add(backend.g1Msm(points.slice(i, i + 16), scalars.slice(i, i + 16))) as MclG1
        return sum
      }
      const xs = heap.vector(n * (4 * G1_WORDS + FR))
      const ks = xs + n * 4 * G1_WORDS
      points.forEach((p, i) => heap.put(xs + i * 4 * G1_WORDS, adopt(G1G, p).w))
      scalars.forEach((k, i) => putScalar(ks + i * FR, k))
      mod._mclBnG1_mulVec!(S0, xs, ks, n)
      return new MclPoint(G1G, heap.get(S0, G1_WORDS)) as MclG1
    },
    g2Base: () => G2_BASE as MclG2,
    g2Zero: () => zero(G2G) as MclG2,
    g2FromBytes: (bytes) => decodePoint(G2G, bytes) as MclG2 | PointFault,
    mulG2Base: (k) => G2_TABLE.multiply(k) as MclG2,
    gtOne: () => new MclGT(ONE_WORDS),
    gtFromBytes,
    isInGT: (x) => (made.has(x) ? knownInGT.has(x as MclGT) || inGT((x as MclGT).w) : gtFromBytes(x.toBytes()) !== null),
    pairing: (p, q) => pairingProduct([{ g1: p, g2: q }]),
    pairingProduct,
    adoptG1: (p) => adopt(G1G, p) as MclG1,
    adoptG2: (q) => adopt(G2G, q) as MclG2,
    adoptGT: (x) => {
      if (made.has(x)) return x
      const known = adoptions.get(x)
      if (known instanceof MclGT) return known
      const y = gtFromBytes(x.toBytes())
      if (!y) throw foreignElementError('GT', 'not a canonical element of GT')
      adoptions.set(x, y)
      return y
    },
    clearCaches: dropAttributes,
    externalMemoryBytes: () => mod.wasmMemory.buffer.byteLength,
  }
  return Object.assign(backend, {
    /** Decode with mcl's own membership test (x^r = 1) instead of Scott's: for the differential suite. */
    checkInGTByOrder: (bytes: Uint8Array): boolean => {
      const x = gtDecode(bytes)
      return x !== null && inGTByOrder(x)
    },
  })
}

/** mcl orders an Fp2 as (a, b) for a + b·i, noble's encoding as (c1, c0) — swap each pair of coordinates. */
function swapFp2Halves(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length)
  for (let at = 0; at < bytes.length; at += 2 * FP) {
    out.set(bytes.subarray(at + FP, at + 2 * FP), at)
    out.set(bytes.subarray(at, at + FP), at + FP)
  }
  return out
}
