/**
 * The one-pass canonical decoder (shared/encoding/canonical-decode.ts, behind decodeCanonical)
 * against the reference it replaced (decodeCanonicalByReencode: cborg strict decode, then re-encode
 * and compare): on every input, the same verdict, the same value, or the same error code and reason.
 * CANONICAL_FUZZ_RUNS=<n> multiplies the runs for a longer soak.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { decodeCanonical, decodeCanonicalByReencode, encodeCanonical, MAX_CANONICAL_DEPTH } from '../../shared/encoding/canonical.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { canonicalValue } from './canonical-values.ts'

const RUNS = Math.max(1, Number(process.env.CANONICAL_FUZZ_RUNS ?? 1))
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))

/** A value written out exactly: key order, -0, byte strings, prototypes. */
function show(v: unknown): string {
  if (v instanceof Uint8Array) return `h'${hex(v)}'`
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v)
  if (Array.isArray(v)) return `[${v.map(show).join(',')}]`
  if (v !== null && typeof v === 'object') {
    if (Object.getPrototypeOf(v) !== Object.prototype) return 'exotic object'
    return `{${Object.keys(v).map((k) => `${JSON.stringify(k)}:${show((v as Record<string, unknown>)[k])}`).join(',')}}`
  }
  return JSON.stringify(v)
}

/** What a decoder says about `bytes`: the value, or the error's code and reason. */
function verdict(decode: (b: Uint8Array) => unknown, bytes: Uint8Array): string {
  try {
    return `ok ${show(decode(bytes))}`
  } catch (e) {
    if (!isCareLedgerError(e)) return `threw ${String(e)}`
    return `${e.code} ${String((e.info as { reason?: unknown }).reason)}`
  }
}

function agree(bytes: Uint8Array): string {
  const reference = verdict(decodeCanonicalByReencode, bytes)
  expect(verdict(decodeCanonical, bytes), `input ${hex(bytes)}`).toBe(reference)
  return reference
}


// ---- CBOR written by hand, canonical or not: the grammar of RFC 8949 §3 with every way to stray ----

const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** A head of major type `major` with argument n, in width `extra` (0: shortest; 1–4: one more width up each). */
function head(major: number, n: number, extra: number): Uint8Array {
  const widths = [n < 24 ? 0 : -1, n < 0x100 ? 1 : -1, n < 0x10000 ? 2 : -1, n < 0x1_0000_0000 ? 4 : -1, 8].filter((w) => w >= 0)
  const w = widths[Math.min(extra, widths.length - 1)]!
  if (w === 0) return Uint8Array.of((major << 5) | n)
  const ai = { 1: 24, 2: 25, 4: 26, 8: 27 }[w]!
  const out = new Uint8Array(1 + w)
  out[0] = (major << 5) | ai
  let x = BigInt(n)
  for (let i = w; i >= 1; i--) {
    out[i] = Number(x & 0xffn)
    x >>= 8n
  }
  return out
}

const headWidth = fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }) })
const argument = fc.oneof(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 0x1_0000 }), fc.maxSafeInteger().map(Math.abs), fc.constant(2 ** 53), fc.constant(2 ** 53 - 1))
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)
const textBytes = fc.oneof(
  { weight: 5, arbitrary: fc.string({ maxLength: 10 }).map(utf8) },
  fc.string({ unit: 'binary', maxLength: 6 }).map(utf8),
  fc.string({ maxLength: 4 }).map((s) => utf8(`\uFEFF${s}`)),
  fc.uint8Array({ maxLength: 6 }),
)
const text = fc.tuple(textBytes, headWidth).map(([b, w]) => concat(head(3, b.length, w), b))
const float = fc.oneof(
  fc.double().map((x) => {
    const b = new Uint8Array(9)
    b[0] = 0xfb
    new DataView(b.buffer).setFloat64(1, x)
    return b
  }),
  fc.float().map((x) => {
    const b = new Uint8Array(5)
    b[0] = 0xfa
    new DataView(b.buffer).setFloat32(1, x)
    return b
  }),
  fc.integer({ min: 0, max: 0xffff }).map((h) => Uint8Array.of(0xf9, h >> 8, h & 0xff)),
)

const { item: cborItem } = fc.letrec((tie) => {
  const item = tie('item') as fc.Arbitrary<Uint8Array>
  return {
    item: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.tuple(fc.integer({ min: 0, max: 1 }), argument, headWidth).map(([m, n, w]) => head(m, n, w)),
      fc.tuple(fc.uint8Array({ maxLength: 6 }), headWidth).map(([b, w]) => concat(head(2, b.length, w), b)),
      text,
      float,
      fc.integer({ min: 0, max: 31 }).map((ai) => Uint8Array.of(0xe0 | ai)),
      fc.integer({ min: 0, max: 255 }).map((x) => Uint8Array.of(0xf8, x)),
      fc.tuple(fc.integer({ min: 0, max: 30 }), item).map(([t, x]) => concat(head(6, t, 0), x)),
      fc.tuple(fc.array(item, { maxLength: 4 }), headWidth, fc.boolean()).map(([xs, w, indefinite]) => (indefinite ? concat(Uint8Array.of(0x9f), ...xs, Uint8Array.of(0xff)) : concat(head(4, xs.length, w), ...xs))),
      fc
        .tuple(fc.array(fc.tuple(fc.oneof({ weight: 6, arbitrary: text }, item), item), { maxLength: 4 }), headWidth, fc.constantFrom('sorted', 'as is', 'duplicate', 'indefinite'))
        .map(([entries, w, how]) => {
          let es = entries
          if (how === 'sorted' || how === 'duplicate') es = [...entries].sort(([a], [b]) => Buffer.compare(a, b))
          if (how === 'duplicate' && es.length > 0) es = [...es, es[0]!]
          const body = es.flatMap(([k, v]) => [k, v])
          return how === 'indefinite' ? concat(Uint8Array.of(0xbf), ...body, Uint8Array.of(0xff)) : concat(head(5, es.length, w), ...body)
        }),
      fc.tuple(textBytes, fc.boolean()).map(([b, bytes]) => concat(Uint8Array.of(bytes ? 0x5f : 0x7f), head(bytes ? 2 : 3, b.length, 0), b, Uint8Array.of(0xff))),
    ),
  }
})

/** Mutations of a valid encoding: flips, truncations, insertions, trailing bytes, a head made longer. */
const mutation = fc.oneof(
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([at, x]) => (b: Uint8Array) => {
    const m = b.slice()
    m[at % m.length]! ^= x
    return m
  }),
  fc.nat().map((at) => (b: Uint8Array) => b.slice(0, at % b.length)),
  fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 3 })).map(([at, x]) => (b: Uint8Array) => concat(b.subarray(0, at % (b.length + 1)), x, b.subarray(at % (b.length + 1)))),
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 4 })).map(([at, n]) => (b: Uint8Array) => concat(b.subarray(0, at % b.length), b.subarray((at % b.length) + Math.min(n, b.length - (at % b.length))))),
  fc.uint8Array({ minLength: 1, maxLength: 3 }).map((x) => (b: Uint8Array) => concat(b, x)),
)

describe('one-pass canonical decode = the decode-and-re-encode reference', () => {
  it('round-trips every value of the model the same way (property)', () => {
    fc.assert(
      fc.property(canonicalValue, (v) => {
        const bytes = encodeCanonical(v)
        expect(agree(bytes).startsWith('ok ')).toBe(true)
      }),
      { numRuns: 1500 * RUNS },
    )
  })

  it('gives the same verdict on mutations of valid encodings (property)', () => {
    fc.assert(
      fc.property(canonicalValue, fc.array(mutation, { minLength: 1, maxLength: 3 }), (v, ms) => {
        agree(ms.reduce((b, m) => (b.length === 0 ? b : m(b)), encodeCanonical(v)))
      }),
      { numRuns: 3000 * RUNS },
    )
  })

  it('gives the same verdict on hand-written CBOR: long heads, indefinite lengths, key order, duplicates, floats, tags, simple values (property)', () => {
    const seen = new Set<string>()
    fc.assert(
      fc.property(cborItem, fc.option(fc.uint8Array({ minLength: 1, maxLength: 2 }), { freq: 8 }), (x, trailing) => {
        const v = agree(trailing === null ? x : concat(x, trailing))
        seen.add(v.startsWith('ok ') ? 'ok' : v)
      }),
      { numRuns: 4000 * RUNS },
    )
    // The generator reaches every verdict (otherwise the property proves little).
    for (const v of ['ok', 'INVALID_ENCODING MALFORMED', 'INVALID_ENCODING NON_CANONICAL', 'INVALID_ENCODING BOM', 'INVALID_ENCODING BAD_UTF8']) expect(seen).toContain(v)
  })

  it('gives the same verdict on random bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 48 }), (b) => void agree(b)),
      { numRuns: 3000 * RUNS },
    )
  })

  it.each([
    ['unsorted keys, then a malformed item (malformed wins, as in the reference)', 'a2616201616118'],
    ['a long float, then invalid UTF-8', '82fb3ff800000000000062c328'],
    ['unsorted keys that repeat a key further back', 'a3616201616101616202'],
    ['"__proto__" as a key', 'a1695f5f70726f746f5f5f01'],
    ['a float beyond 2^53 written as float32', 'fa5d800000'],
    ['an integral float beyond 2^53 written as float64', 'fb43d0000000000000'],
    ['-(2^53 - 1)', '3b001ffffffffffffe'],
    ['-(2^53)', '3b001fffffffffffff'],
    ['a length beyond the input', '9b001fffffffffffff'],
    ['a huge map length', 'bb001fffffffffffff'],
    ['break outside an indefinite item', 'ff'],
    ['a long ASCII string', `7850${'61'.repeat(80)}`],
    ['keys that differ only in length', 'a2616101626161f6'],
    ['a non-shortest key head', 'a1780161f6'],
  ])('%s', (_, h) => void agree(unhex(h)))

  it('defers nesting beyond the limit to the reference', () => {
    for (const n of [MAX_CANONICAL_DEPTH - 1, MAX_CANONICAL_DEPTH, MAX_CANONICAL_DEPTH + 1, MAX_CANONICAL_DEPTH + 5, 5000]) {
      agree(new Uint8Array(n + 1).fill(0x81).fill(0x01, -1))
      agree(new Uint8Array(n + 1).fill(0x81).fill(0x18, -1)) // and a malformed leaf
      agree(concat(new Uint8Array(n).fill(0xa1).map((_, i) => (i % 2 === 0 ? 0xa1 : 0x61)), Uint8Array.of(0x01)))
    }
  })
})
