/**
 * The canonical-CBOR decoder that checks canonical form while it decodes, in one pass over the
 * bytes, instead of decoding and then re-encoding to compare (which cost about half of a record's
 * decode). It accepts exactly what the reference — cborg's strict decode followed by a byte-for-
 * byte re-encode check (decodeCanonicalByReencode in canonical.ts) — accepts, and refuses the rest
 * with the same INVALID_ENCODING reason; test/encoding/canonical-decode.test.ts checks both against
 * each other on random values and random mutations of their encodings.
 *
 * The rules, as the reference applies them (RFC 8949 §4.2.1 "core deterministic encoding"):
 *   - heads (integers, lengths) in their shortest form, definite lengths only       → MALFORMED
 *   - major types 0–5 and 7 only (no tags); of the simple values only false, true,
 *     null; integers within ±(2^53 − 1); floats neither NaN nor ±Infinity            → MALFORMED
 *   - text map keys only, no duplicate key, no bytes after the item                   → MALFORMED
 *   - text strings valid UTF-8 (RFC 8949 §3.1) not starting with a byte-order mark    → BAD_UTF8, BOM
 *   - map keys in the bytewise order of their encodings (§4.2.1: for text keys,
 *     shorter first, then bytewise — what encodeCanonical writes)                    → NON_CANONICAL
 *   - a float only where the value is not a safe integer, in the shortest of
 *     binary16/32/64 that keeps it (§4.2.2); -0.0 is written as the integer 0        → NON_CANONICAL
 * The reference finds the first four kinds in stream order while decoding, and the last two only
 * afterwards, by re-encoding: so here too the first malformed item wins wherever it is, and a key
 * order or float problem is remembered and reported only once the whole item has decoded. Nesting
 * deeper than MAX_CANONICAL_DEPTH — which no record comes near — is handed to the reference whole
 * (its verdict there depends on cborg's recursion).
 */
import { encode as cborEncode } from 'cborg'
import { CareLedgerError } from '../errors.ts'

export type CanonicalValue = null | boolean | number | string | Uint8Array | readonly CanonicalValue[] | { readonly [key: string]: CanonicalValue }

/** Deeper nesting than this is refused (records are shallow; it keeps the recursive codec off the stack limit). */
export const MAX_CANONICAL_DEPTH = 64

export function invalidEncoding(reason: string, problem: string, cause?: unknown): never {
  throw new CareLedgerError('INVALID_ENCODING', `canonical CBOR: ${problem}`, { what: 'canonical CBOR', reason }, cause === undefined ? undefined : { cause })
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const NON_CANONICAL_MESSAGE = 'not in deterministic encoding (RFC 8949 §4.2.1): key order, integer, length or float width'
/** Thrown inside the walk when nesting passes the limit: the caller asks the reference instead. */
const TOO_DEEP = Symbol('too deep')

const malformed = (problem: string): never => invalidEncoding('MALFORMED', problem)

/** One decode: the input, where the walk is, and the first canonical-form problem seen (reported at the end). */
class Walk {
  pos = 0
  nonCanonical: string | null = null
  readonly b: Uint8Array
  constructor(b: Uint8Array) {
    this.b = b
  }

  need(n: number): void {
    if (this.pos + n > this.b.length) malformed(`truncated: ${n} more byte(s) needed at offset ${this.pos}, the input has ${this.b.length}`)
  }

  /** The argument of a head whose additional information is `ai` (RFC 8949 §3), checked shortest (§4.2.1). */
  argument(ai: number, at: number): number {
    const b = this.b
    if (ai < 24) return ai
    let n: number
    switch (ai) {
      case 24:
        this.need(1)
        n = b[this.pos++]!
        if (n < 24) malformed(`integer encoded in more bytes than necessary at offset ${at}`)
        return n
      case 25:
        this.need(2)
        n = (b[this.pos]! << 8) | b[this.pos + 1]!
        this.pos += 2
        if (n < 0x100) malformed(`integer encoded in more bytes than necessary at offset ${at}`)
        return n
      case 26:
        this.need(4)
        n = b[this.pos]! * 0x1000000 + ((b[this.pos + 1]! << 16) | (b[this.pos + 2]! << 8) | b[this.pos + 3]!)
        this.pos += 4
        if (n < 0x10000) malformed(`integer encoded in more bytes than necessary at offset ${at}`)
        return n
      case 27: {
        this.need(8)
        const hi = b[this.pos]! * 0x1000000 + ((b[this.pos + 1]! << 16) | (b[this.pos + 2]! << 8) | b[this.pos + 3]!)
        const lo = b[this.pos + 4]! * 0x1000000 + ((b[this.pos + 5]! << 16) | (b[this.pos + 6]! << 8) | b[this.pos + 7]!)
        this.pos += 8
        if (hi === 0) malformed(`integer encoded in more bytes than necessary at offset ${at}`)
        // Beyond 2^53 − 1 a number is no longer exact (the reference has allowBigInt off).
        if (hi > 0x1fffff) malformed(`an integer or length at offset ${at} is outside the safe integer range`)
        return hi * 0x1_0000_0000 + lo
      }
      case 31:
        return malformed(`indefinite-length item at offset ${at} (RFC 8949 §4.2.1 forbids them)`)
      default:
        return malformed(`reserved additional information ${ai} at offset ${at}`)
    }
  }

  text(len: number): string {
    this.need(len)
    const b = this.b
    const start = this.pos
    const end = start + len
    this.pos = end
    let ascii = true
    for (let i = start; i < end; i++) {
      if (b[i]! >= 0x80) {
        ascii = false
        break
      }
    }
    if (ascii) return len <= 64 ? String.fromCharCode.apply(null, b.subarray(start, end) as unknown as number[]) : STRICT_UTF8.decode(b.subarray(start, end))
    if (b[start] === 0xef && b[start + 1] === 0xbb && b[start + 2] === 0xbf) invalidEncoding('BOM', 'a text string starts with a UTF-8 byte-order mark (EF BB BF)')
    try {
      return STRICT_UTF8.decode(b.subarray(start, end))
    } catch {
      return invalidEncoding('BAD_UTF8', 'a text string is not valid UTF-8')
    }
  }

  float(ai: number, at: number): number {
    const size = ai === 25 ? 2 : ai === 26 ? 4 : 8
    this.need(size)
    const view = new DataView(this.b.buffer, this.b.byteOffset + this.pos, size)
    this.pos += size
    const x = ai === 25 ? half(view.getUint16(0)) : ai === 26 ? view.getFloat32(0) : view.getFloat64(0)
    if (Number.isNaN(x)) malformed(`NaN at offset ${at}`)
    if (!Number.isFinite(x)) malformed(`${x} at offset ${at}`)
    // Canonical only as encodeCanonical writes it: floats are rare in this model, so ask the encoder.
    if (this.nonCanonical === null && !sameAt(cborEncode(x), this.b, at, this.pos)) this.nonCanonical = `float at offset ${at} is not in its shortest form (or is integral)`
    return x
  }

  item(depth: number): CanonicalValue {
    const b = this.b
    const at = this.pos
    this.need(1)
    const initial = b[this.pos++]!
    const major = initial >> 5
    const ai = initial & 0x1f
    switch (major) {
      case 0:
        return this.argument(ai, at)
      case 1: {
        const n = this.argument(ai, at)
        if (n > Number.MAX_SAFE_INTEGER - 1) malformed(`the negative integer at offset ${at} is outside the safe integer range`)
        return -1 - n
      }
      case 2: {
        const len = this.argument(ai, at)
        this.need(len)
        this.pos += len
        return b.subarray(this.pos - len, this.pos)
      }
      case 3:
        return this.text(this.argument(ai, at))
      case 4: {
        const len = this.argument(ai, at)
        if (depth >= MAX_CANONICAL_DEPTH) throw TOO_DEEP
        // Grown, not preallocated: a claimed length is not trusted before its elements are there.
        const out: CanonicalValue[] = []
        for (let i = 0; i < len; i++) out.push(this.item(depth + 1))
        return out
      }
      case 5:
        return this.map(this.argument(ai, at), depth)
      case 6:
        return malformed(`tag at offset ${at} (tags are not part of the model)`)
      default:
        switch (ai) {
          case 20:
            return false
          case 21:
            return true
          case 22:
            return null
          case 23:
            return malformed(`undefined at offset ${at}`)
          case 25:
          case 26:
          case 27:
            return this.float(ai, at)
          case 31:
            return malformed(`unexpected break at offset ${at}`)
          default:
            return malformed(`simple value at offset ${at} (only false, true and null are in the model)`)
        }
    }
  }

  map(len: number, depth: number): { [key: string]: CanonicalValue } {
    if (depth >= MAX_CANONICAL_DEPTH) throw TOO_DEEP
    const b = this.b
    const out: { [key: string]: CanonicalValue } = {}
    let prevStart = -1
    let prevEnd = -1
    let sorted = true
    for (let i = 0; i < len; i++) {
      const keyStart = this.pos
      this.need(1)
      const initial = b[this.pos++]!
      if (initial >> 5 !== 3) {
        // Decoded whole first, as the reference does: a fault inside the key is the one reported.
        this.pos = keyStart
        this.item(depth + 1)
        malformed(`a map key at offset ${keyStart} is not a text string`)
      }
      const key = this.text(this.argument(initial & 0x1f, keyStart))
      const keyEnd = this.pos
      if (prevStart >= 0) {
        const cmp = compareRanges(b, prevStart, prevEnd, keyStart, keyEnd)
        if (cmp > 0) {
          sorted = false
          if (this.nonCanonical === null) this.nonCanonical = `map key ${JSON.stringify(key)} at offset ${keyStart} is out of order`
        }
        // In increasing order so far, a key can only repeat the one before it.
        if (cmp === 0 || (!sorted && Object.hasOwn(out, key))) malformed(`repeated map key ${JSON.stringify(key)} at offset ${keyStart}`)
      }
      prevStart = keyStart
      prevEnd = keyEnd
      const value = this.item(depth + 1)
      if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true })
      else out[key] = value
    }
    return out
  }
}

/** Bytewise order of two ranges of `b` (RFC 8949 §4.2.1: a shorter encoding sorts first only through its head). */
function compareRanges(b: Uint8Array, s1: number, e1: number, s2: number, e2: number): number {
  const n = Math.min(e1 - s1, e2 - s2)
  for (let i = 0; i < n; i++) {
    const d = b[s1 + i]! - b[s2 + i]!
    if (d !== 0) return d
  }
  return e1 - s1 - (e2 - s2)
}

function sameAt(expected: Uint8Array, b: Uint8Array, start: number, end: number): boolean {
  if (expected.length !== end - start) return false
  for (let i = 0; i < expected.length; i++) if (expected[i] !== b[start + i]) return false
  return true
}

/** IEEE 754 binary16 (RFC 8949 Appendix D). */
function half(h: number): number {
  const exp = (h >> 10) & 0x1f
  const mant = h & 0x3ff
  const val = exp === 0 ? mant * 2 ** -24 : exp !== 31 ? (mant + 1024) * 2 ** (exp - 25) : mant === 0 ? Infinity : NaN
  return h & 0x8000 ? -val : val
}

/**
 * Decode `input` (a private copy: byte strings are returned as views into it) if it is canonical
 * CBOR of the model; INVALID_ENCODING with the reference's reason otherwise. Nesting beyond
 * MAX_CANONICAL_DEPTH goes to `deep` (the reference decoder).
 */
export function decodeCanonicalOnePass(input: Uint8Array, deep: () => CanonicalValue): CanonicalValue {
  const walk = new Walk(input)
  let value: CanonicalValue
  try {
    if (input.length === 0) malformed('no content to decode')
    value = walk.item(0)
  } catch (e) {
    if (e === TOO_DEEP) return deep()
    throw e
  }
  if (walk.pos !== input.length) malformed(`${input.length - walk.pos} byte(s) after the item`)
  if (walk.nonCanonical !== null) invalidEncoding('NON_CANONICAL', `${NON_CANONICAL_MESSAGE}: ${walk.nonCanonical}`)
  return value
}
