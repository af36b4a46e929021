import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { sha256 } from '@noble/hashes/sha2.js'
import { encode as cborEncode, rfc8949EncodeOptions } from 'cborg'
import { canonicalDigest, decodeCanonical, domainSeparated, encodeCanonical, MAX_CANONICAL_DEPTH } from '../../shared/encoding/canonical.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { canonicalValue } from './canonical-values.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))

function errorOf(f: () => unknown): { code: string; reason: unknown; path: unknown } | null {
  try {
    f()
    return null
  } catch (e) {
    if (!isCareLedgerError(e)) throw e
    return { code: e.code, reason: e.info.reason, path: e.info.path }
  }
}


/** -0 is written as the integer 0 (numeric reduction), so it decodes as 0. */
const withoutNegativeZero = (v: unknown): unknown =>
  Object.is(v, -0)
    ? 0
    : Array.isArray(v)
      ? v.map(withoutNegativeZero)
      : v !== null && typeof v === 'object' && !(v instanceof Uint8Array)
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withoutNegativeZero(x)]))
        : v

describe('canonical encoding (deterministic CBOR, RFC 8949 §4.2.1)', () => {
  // RFC 8949 Appendix A, every example this value model can express (JavaScript has no 0.0 / -4.0
  // distinct from 0 / -4, no bigints beyond 2^53, no undefined, NaN, Infinity, tags or simple values).
  const appendixA: [unknown, string][] = [
    [0, '00'],
    [1, '01'],
    [10, '0a'],
    [23, '17'],
    [24, '1818'],
    [25, '1819'],
    [100, '1864'],
    [1000, '1903e8'],
    [1000000, '1a000f4240'],
    [1000000000000, '1b000000e8d4a51000'],
    [-1, '20'],
    [-10, '29'],
    [-100, '3863'],
    [-1000, '3903e7'],
    [1.1, 'fb3ff199999999999a'],
    [1.5, 'f93e00'],
    [65504.5, 'fa477fe080'], // not in Appendix A: shortest float for a value binary16 cannot hold
    [3.4028234663852886e38, 'fa7f7fffff'],
    [1.0e300, 'fb7e37e43c8800759c'],
    [5.960464477539063e-8, 'f90001'],
    [0.00006103515625, 'f90400'],
    [-4.1, 'fbc010666666666666'],
    [false, 'f4'],
    [true, 'f5'],
    [null, 'f6'],
    [new Uint8Array(0), '40'],
    [unhex('01020304'), '4401020304'],
    ['', '60'],
    ['a', '6161'],
    ['IETF', '6449455446'],
    ['"\\', '62225c'],
    ['\u00fc', '62c3bc'],
    ['\u6c34', '63e6b0b4'],
    ['\ud800\udd51', '64f0908591'],
    [[], '80'],
    [[1, 2, 3], '83010203'],
    [[1, [2, 3], [4, 5]], '8301820203820405'],
    [Array.from({ length: 25 }, (_, i) => i + 1), '98190102030405060708090a0b0c0d0e0f101112131415161718181819'],
    [{}, 'a0'],
    [{ a: 1, b: [2, 3] }, 'a26161016162820203'],
    [['a', { b: 'c' }], '826161a161626163'],
    [{ a: 'A', b: 'B', c: 'C', d: 'D', e: 'E' }, 'a56161614161626142616361436164614461656145'],
  ]

  it.each(appendixA.map(([v, h]) => [h, v] as const))('encodes to %s as in RFC 8949 Appendix A', (h, v) => {
    expect(hex(encodeCanonical(v))).toBe(h)
    expect(hex(encodeCanonical(decodeCanonical(unhex(h))))).toBe(h)
  })

  it('writes integral numbers as integers, -0 as 0, safe bigints like numbers', () => {
    expect(hex(encodeCanonical(-0))).toBe('00')
    expect(hex(encodeCanonical(100000))).toBe('1a000186a0')
    expect(hex(encodeCanonical(Number.MAX_SAFE_INTEGER))).toBe('1b001fffffffffffff')
    expect(hex(encodeCanonical(Number.MIN_SAFE_INTEGER))).toBe('3b001ffffffffffffe')
    expect(hex(encodeCanonical(42n))).toBe(hex(encodeCanonical(42)))
    expect(decodeCanonical(encodeCanonical(-7n))).toBe(-7)
  })

  it('sorts map keys by their encoded bytes (shorter keys first), whatever the insertion order', () => {
    const a = { vitals: [1, 2], id: 'r-1', b: true, aa: null, '10': 0, '9': 1 }
    const b = { '9': 1, aa: null, b: true, id: 'r-1', '10': 0, vitals: [1, 2] }
    expect(hex(encodeCanonical(a))).toBe(hex(encodeCanonical(b)))
    expect(hex(encodeCanonical(new Map(Object.entries(b).reverse())))).toBe(hex(encodeCanonical(a)))
    // (JavaScript itself lists integer-like keys first; the bytes are what is canonical)
    expect(hex(encodeCanonical(a))).toBe('a6' + '613901' + '6162f5' + '62313000' + '626161f6' + '62696463722d31' + '66766974616c73820102')
  })

  it('is independent of key order (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), canonicalValue, { maxKeys: 8 }), fc.integer(), (obj, seed) => {
        const entries = Object.entries(obj)
        const shuffled = entries.map((e, i) => [((i + 1) * (seed | 1)) >>> 0, e] as const).sort((x, y) => x[0] - y[0]).map(([, e]) => e)
        expect(hex(encodeCanonical(Object.fromEntries(shuffled)))).toBe(hex(encodeCanonical(obj)))
      }),
      { numRuns: 200 },
    )
  })

  it("equals cborg's explicit RFC 8949 §4.2.1 encoding (property)", () => {
    // encodeCanonical uses cborg's faster default key order; for text keys it is the same order.
    fc.assert(
      fc.property(canonicalValue, (v) => {
        expect(hex(encodeCanonical(v))).toBe(hex(cborEncode(withoutNegativeZero(v), rfc8949EncodeOptions)))
      }),
      { numRuns: 1000 },
    )
  })

  it('round-trips every value of the model (property)', () => {
    fc.assert(
      fc.property(canonicalValue, (v) => {
        const bytes = encodeCanonical(v)
        const back = decodeCanonical(bytes)
        expect(hex(encodeCanonical(back))).toBe(hex(bytes))
        expect(back).toEqual(withoutNegativeZero(v))
      }),
      { numRuns: 500 },
    )
  })

  describe('rejects values outside the model with INVALID_ARGUMENT naming the path', () => {
    class Reading {
      value = 72
    }
    const cyclic: { self?: unknown } = {}
    cyclic.self = cyclic
    let deep: unknown = 1
    for (let i = 0; i <= MAX_CANONICAL_DEPTH; i++) deep = [deep]
    const cases: [string, unknown, string][] = [
      ['undefined', undefined, '$'],
      ['undefined in an object', { vitals: [{ value: undefined }] }, '$.vitals[0].value'],
      ['NaN', { v: Number.NaN }, '$.v'],
      ['Infinity', [Number.POSITIVE_INFINITY], '$[0]'],
      ['-Infinity', { 'odd key': Number.NEGATIVE_INFINITY }, '$["odd key"]'],
      ['a bigint beyond 2^53', { big: 2n ** 53n }, '$.big'],
      ['a function', { f: () => 1 }, '$.f'],
      ['a symbol', [Symbol('s')], '$[0]'],
      ['a Date', { at: new Date(0) }, '$.at'],
      ['a class instance', { r: new Reading() }, '$.r'],
      ['a Set', new Set([1]), '$'],
      ['a Uint16Array', new Uint16Array(2), '$'],
      ['an ArrayBuffer', new ArrayBuffer(2), '$'],
      ['a Map with a number key', new Map<unknown, unknown>([[1, 'x']]), '$'],
      ['a lone surrogate', { s: 'a\ud800' }, '$.s'],
      ['a lone surrogate in a key', { 'k\udc00': 1 }, '$["k\\udc00"] (key)'],
      ['a sparse array', [1, , 3], '$[1]'], // eslint-disable-line no-sparse-arrays
      ['symbol keys', { [Symbol('k')]: 1 }, '$'],
      ['a cycle', cyclic, '$.self'],
      ['a string starting with U+FEFF (decoders would drop it as a byte-order mark)', { note: '\ufeffa' }, '$.note'],
    ]
    it.each(cases)('%s', (_, value, path) => {
      expect(errorOf(() => encodeCanonical(value))).toMatchObject({ code: 'INVALID_ARGUMENT', path })
    })
    it('nesting deeper than the limit', () => {
      expect(errorOf(() => encodeCanonical(deep))?.code).toBe('INVALID_ARGUMENT')
    })
    it('a getter that throws', () => {
      const o = Object.defineProperty({}, 'x', { enumerable: true, get: () => { throw new Error('boom') } })
      expect(errorOf(() => encodeCanonical(o))?.code).toBe('INVALID_ARGUMENT')
    })
    it('accepts null-prototype objects and shared (acyclic) references', () => {
      const shared = { x: 1 }
      const bare = Object.assign(Object.create(null) as object, { a: 1 })
      expect(hex(encodeCanonical({ p: shared, q: shared, bare }))).toBe(hex(encodeCanonical({ bare: { a: 1 }, p: { x: 1 }, q: { x: 1 } })))
    })
  })

  describe('decodeCanonical accepts only canonical bytes', () => {
    const cases: [string, string, string][] = [
      ['unsorted map keys', 'a2616201616102', 'NON_CANONICAL'],
      ['longer key before shorter', 'a262616101616202', 'NON_CANONICAL'],
      ['a non-shortest integer', '1817', 'MALFORMED'],
      ['a non-shortest length', '780161', 'MALFORMED'],
      ['a float64 that fits binary16', 'fb3ff8000000000000', 'NON_CANONICAL'],
      ['an integral float', 'f93c00', 'NON_CANONICAL'],
      ['-0.0', 'f98000', 'NON_CANONICAL'],
      ['an indefinite-length array', '9f0102ff', 'MALFORMED'],
      ['an indefinite-length map', 'bf616101ff', 'MALFORMED'],
      ['an indefinite-length string', '7f616161ff', 'MALFORMED'],
      ['a duplicate key', 'a2616101616102', 'MALFORMED'],
      ['undefined', 'f7', 'MALFORMED'],
      ['NaN', 'f97e00', 'MALFORMED'],
      ['Infinity', 'f97c00', 'MALFORMED'],
      ['a tag', 'c11a514b67b0', 'MALFORMED'],
      ['a simple value', 'f0', 'MALFORMED'],
      ['an integer beyond 2^53', '1b0020000000000000', 'MALFORMED'],
      ['a non-string map key', 'a10102', 'MALFORMED'],
      ['trailing bytes', '0000', 'MALFORMED'],
      ['truncation', '830102', 'MALFORMED'],
      ['nothing', '', 'MALFORMED'],
      ['invalid UTF-8', '62c328', 'BAD_UTF8'],
      // Issue 8 item 14: cborg's decoder drops a leading byte-order mark, so "\uFEFFa" and "a" were one value.
      ['a text string starting with a byte-order mark', '64efbbbf61', 'BOM'],
      ['a map key starting with a byte-order mark', 'a164efbbbf6101', 'BOM'],
    ]
    it.each(cases)('%s', (_, h, reason) => {
      expect(errorOf(() => decodeCanonical(unhex(h)))).toMatchObject({ code: 'INVALID_ENCODING', reason })
    })
    it('nesting far beyond the limit fails with a typed error, not a stack overflow', () => {
      expect(errorOf(() => decodeCanonical(new Uint8Array(MAX_CANONICAL_DEPTH + 2).fill(0x81).fill(0x01, -1)))?.code).toBe('INVALID_ENCODING')
      expect(errorOf(() => decodeCanonical(new Uint8Array(500_000).fill(0x81)))?.code).toBe('INVALID_ENCODING')
    })
    it('keeps "__proto__" as an ordinary key', () => {
      const v = decodeCanonical(unhex('a1695f5f70726f746f5f5f01')) as Record<string, unknown>
      expect(Object.getPrototypeOf(v)).toBe(Object.prototype)
      expect(Object.keys(v)).toEqual(['__proto__'])
      expect(hex(encodeCanonical(v))).toBe('a1695f5f70726f746f5f5f01')
    })
    it('returns byte strings that do not alias the input', () => {
      const input = encodeCanonical({ b: unhex('0102') })
      const v = decodeCanonical(input) as { b: Uint8Array }
      input.fill(0)
      expect(hex(v.b)).toBe('0102')
    })
  })

  it('garbage never throws anything but CareLedgerError (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const err = errorOf(() => decodeCanonical(bytes))
        if (err) expect(err.code).toBe('INVALID_ENCODING')
      }),
      { numRuns: 2000 },
    )
    fc.assert(
      fc.property(canonicalValue, fc.nat(), fc.nat(255), (v, at, x) => {
        const bytes = encodeCanonical(v)
        const mutated = bytes.slice()
        mutated[at % mutated.length]! ^= x
        const err = errorOf(() => decodeCanonical(mutated))
        if (err) expect(err.code).toBe('INVALID_ENCODING')
      }),
      { numRuns: 1000 },
    )
    fc.assert(
      fc.property(fc.anything({ withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true, withNullPrototype: true, withObjectString: true }), (v) => {
        const err = errorOf(() => encodeCanonical(v))
        if (err) expect(err.code).toBe('INVALID_ARGUMENT')
      }),
      { numRuns: 1000 },
    )
    for (const junk of [undefined, null, 'a0', [0xa0], {}]) expect(errorOf(() => decodeCanonical(junk as never))?.code).toBe('INVALID_ENCODING')
  })

  describe('canonicalDigest and domain separation', () => {
    it('is SHA-256("careledger/v1/" ‖ domain ‖ 0x00 ‖ encodeCanonical(value))', () => {
      const value = { seq: 41, type: 'heart_rate', value: 72 }
      const expected = sha256(Uint8Array.from([...new TextEncoder().encode('careledger/v1/batch-manifest'), 0, ...encodeCanonical(value)]))
      expect(hex(canonicalDigest('batch-manifest', value))).toBe(hex(expected))
      expect(hex(canonicalDigest('batch-manifest', { value: 72, type: 'heart_rate', seq: 41 }))).toBe(hex(expected))
      expect(hex(canonicalDigest('api-request', value))).not.toBe(hex(expected))
    })

    it('refuses domains that are empty, too long, or could run into the payload', () => {
      for (const bad of ['', 'a\0b', 'x'.repeat(65), 'spaces here', 'é', '-leading', 42, undefined]) {
        expect(errorOf(() => domainSeparated(bad as never, new Uint8Array(0)))?.code).toBe('INVALID_ARGUMENT')
      }
      expect(errorOf(() => domainSeparated('ok', 'payload' as never))?.code).toBe('INVALID_ARGUMENT')
      expect(hex(domainSeparated('a/b:c.d_e-f', Uint8Array.of(9)))).toBe(hex(Uint8Array.from([...new TextEncoder().encode('careledger/v1/a/b:c.d_e-f'), 0, 9])))
    })
  })
})
