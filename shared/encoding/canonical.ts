/**
 * Canonical bytes for anything CareLedger hashes or signs: deterministically encoded CBOR,
 * RFC 8949 §4.2.1 ("core deterministic encoding requirements"), produced and parsed by cborg:
 *
 *   - integers, lengths and tags in their shortest form; no indefinite-length items;
 *   - floats in the shortest of binary16/32/64 that keeps the value (§4.2.1, §4.2.2); a float with
 *     an integral value is written as the integer (JavaScript cannot tell 1.0 from 1);
 *   - map keys sorted by the bytewise order of their encodings (§4.2.1), no duplicates.
 *
 * The value model is deliberately small — the JSON data model plus byte strings: plain objects
 * (or Maps) with string keys, arrays, strings, booleans, null, safe integers, finite floats,
 * Uint8Array. Anything else (undefined, NaN, ±Infinity, unsafe bigints, Dates, class instances,
 * functions, symbols, cycles) is refused up front with INVALID_ARGUMENT naming its path, because
 * a value that does not survive a round trip cannot be hashed twice to the same digest.
 *
 * decodeCanonical accepts exactly the bytes encodeCanonical produces. It checks canonical form in
 * one pass while decoding (canonical-decode.ts); decodeCanonicalByReencode — a strict decode
 * followed by a re-encode that must reproduce the input byte for byte — is the reference it is
 * tested against, and what it defers to for nesting beyond MAX_CANONICAL_DEPTH.
 */
import { decode as cborDecode, encode as cborEncode, Tokenizer, Type, type Token } from 'cborg'
import { sha256 } from '@noble/hashes/sha2.js'
import { CareLedgerError, isCareLedgerError } from '../errors.ts'
import { decodeCanonicalOnePass, invalidEncoding as invalid, MAX_CANONICAL_DEPTH, type CanonicalValue } from './canonical-decode.ts'

export { MAX_CANONICAL_DEPTH, type CanonicalValue }

const DECODE_OPTIONS = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowNaN: false,
  allowInfinity: false,
  allowBigInt: false,
  rejectDuplicateMapKeys: true,
  useMaps: false,
} as const

/** $.a.b[2]["odd key"] — where in the value the problem is. */
/** Where the walk is, as a linked list: rendered to `$.a.b[2]["odd key"]` only when something is refused. */
type Path = { readonly parent: Path; readonly key: string | number; readonly isKey?: boolean } | null

function render(path: Path): string {
  if (path === null) return '$'
  const base = render(path.parent)
  const step =
    typeof path.key === 'number' ? `${base}[${path.key}]` : /^[A-Za-z_$][\w$]*$/.test(path.key) ? `${base}.${path.key}` : `${base}[${JSON.stringify(path.key)}]`
  return path.isKey ? `${step} (key)` : step
}

function reject(at: Path, problem: string): never {
  const path = render(at)
  throw new CareLedgerError('INVALID_ARGUMENT', `canonical encoding: ${path} ${problem}`, { path, problem })
}

function describe(value: object): string {
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name
  return typeof name === 'string' && name !== '' ? `a ${name}` : 'an exotic object'
}

/** Walk the value and refuse whatever falls outside the model, before cborg sees it. */
function check(value: unknown, path: Path, depth: number, ancestors: Set<object>): void {
  switch (typeof value) {
    case 'string':
      if (!value.isWellFormed()) reject(path, 'is a string with a lone UTF-16 surrogate (not valid UTF-8)')
      if (value.charCodeAt(0) === 0xfeff) reject(path, 'is a string starting with U+FEFF, which decoders take for a byte-order mark and drop')
      return
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value)) reject(path, `is ${value}, which has no canonical encoding here`)
      return
    case 'bigint':
      if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) reject(path, `is a bigint outside the safe integer range (${value})`)
      return
    case 'undefined':
      return reject(path, 'is undefined')
    case 'function':
      return reject(path, 'is a function')
    case 'symbol':
      return reject(path, 'is a symbol')
  }
  if (value === null || value instanceof Uint8Array) return
  const obj = value as object
  if (depth >= MAX_CANONICAL_DEPTH) reject(path, `is nested deeper than ${MAX_CANONICAL_DEPTH} levels`)
  if (ancestors.has(obj)) reject(path, 'is a circular reference')
  ancestors.add(obj)
  if (Array.isArray(obj)) {
    for (let i = 0; i < obj.length; i++) {
      if (!(i in obj)) reject({ parent: path, key: i }, 'is a hole in a sparse array')
      check(obj[i], { parent: path, key: i }, depth + 1, ancestors)
    }
  } else if (obj instanceof Map) {
    for (const [k, v] of obj) {
      if (typeof k !== 'string') reject(path, `is a Map with a non-string key (${typeof k})`)
      check(k, { parent: path, key: k, isKey: true }, depth + 1, ancestors)
      check(v, { parent: path, key: k }, depth + 1, ancestors)
    }
  } else {
    const proto = Object.getPrototypeOf(obj)
    if (proto !== Object.prototype && proto !== null) reject(path, `is ${describe(obj)}, not a plain object`)
    if (Object.getOwnPropertySymbols(obj).length > 0) reject(path, 'has symbol keys')
    for (const k of Object.keys(obj)) {
      check(k, { parent: path, key: k, isKey: true }, depth + 1, ancestors)
      check((obj as Record<string, unknown>)[k], { parent: path, key: k }, depth + 1, ancestors)
    }
  }
  ancestors.delete(obj)
}

/** Deterministic CBOR (RFC 8949 §4.2.1) of `value`; INVALID_ARGUMENT naming the path of anything outside the model. */
export function encodeCanonical(value: unknown): Uint8Array {
  try {
    check(value, null, 0, new Set())
    // cborg's default map order — shorter key first, then bytewise — IS the RFC 8949 §4.2.1 order
    // for text keys (the only keys in this model: a text key's header grows with its length), and
    // ~2× faster than rfc8949EncodeOptions; test/encoding/canonical.test.ts checks they agree.
    return cborEncode(value)
  } catch (e) {
    if (isCareLedgerError(e)) throw e
    // A getter that throws, a Proxy, a stack overflow: not encodable, whatever the cause.
    throw new CareLedgerError('INVALID_ARGUMENT', `canonical encoding: the value cannot be encoded (${e instanceof Error ? e.message : String(e)})`, { path: '$' }, { cause: e })
  }
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * cborg decodes text with a lenient TextDecoder: invalid UTF-8 becomes U+FFFD and a leading
 * byte-order mark is dropped. The re-encode check below would refuse both (the bytes differ), but
 * under a misleading reason; this tokenizer names them (RFC 8949 §3.1: a text string is UTF-8).
 */
function strictTextTokenizer(input: Uint8Array): { done(): boolean; next(): Token; pos(): number } {
  const inner = new Tokenizer(input, { ...DECODE_OPTIONS, retainStringBytes: true })
  return {
    done: () => inner.done(),
    pos: () => inner.pos(),
    next: () => {
      const token = inner.next()
      // byteValue is absent for the empty string (cborg's quick table): nothing to check there.
      const b = token.type === Type.string ? token.byteValue : undefined
      if (b !== undefined) {
        if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) invalid('BOM', 'a text string starts with a UTF-8 byte-order mark (EF BB BF)')
        if (b.some((x) => x >= 0x80)) {
          try {
            STRICT_UTF8.decode(b)
          } catch {
            invalid('BAD_UTF8', 'a text string is not valid UTF-8')
          }
        }
      }
      return token
    },
  }
}

/** A plain loop: a bulk upload's body is hundreds of KB, and Array#every makes a call a byte (this file also runs in browsers: no Buffer). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * Parse bytes that encodeCanonical produced, and nothing else, checking canonical form while
 * decoding (canonical-decode.ts). INVALID_ENCODING with
 * `info.reason` MALFORMED (not CBOR, indefinite lengths, duplicate keys, undefined, NaN, tags,
 * integers beyond 2^53…), BOM or BAD_UTF8 (a text string with a byte-order mark or invalid UTF-8),
 * UNSUPPORTED_VALUE (valid CBOR outside the model) or NON_CANONICAL.
 */
export function decodeCanonical(bytes: Uint8Array): CanonicalValue {
  if (!(bytes instanceof Uint8Array)) invalid('NOT_BYTES', `expected bytes, got ${typeof bytes}`)
  // A private copy (and a plain Uint8Array even for a Buffer): decoded byte strings are views into it.
  const input = new Uint8Array(bytes)
  return decodeCanonicalOnePass(input, () => decodeCanonicalByReencode(input))
}

/**
 * The reference decodeCanonical checks against: cborg's strict decode, then a re-encode that must
 * reproduce the input byte for byte. Same verdicts and reasons, about twice the cost.
 */
export function decodeCanonicalByReencode(bytes: Uint8Array): CanonicalValue {
  if (!(bytes instanceof Uint8Array)) invalid('NOT_BYTES', `expected bytes, got ${typeof bytes}`)
  // A private copy: decoded byte strings may be views into the buffer we decode.
  const input = new Uint8Array(bytes) // a copy, and a plain Uint8Array even for a Buffer (decoded byte strings are views into it)
  let value: unknown
  try {
    value = cborDecode(input, { ...DECODE_OPTIONS, tokenizer: strictTextTokenizer(input) })
  } catch (e) {
    if (isCareLedgerError(e)) throw e
    invalid('MALFORMED', e instanceof Error ? e.message : String(e), e)
  }
  let again: Uint8Array
  try {
    again = encodeCanonical(value)
  } catch (e) {
    invalid('UNSUPPORTED_VALUE', `decodes to a value outside the canonical model (${e instanceof Error ? e.message : String(e)})`, e)
  }
  if (!sameBytes(again, input)) {
    invalid('NON_CANONICAL', 'not in deterministic encoding (RFC 8949 §4.2.1): key order, integer, length or float width')
  }
  return value as CanonicalValue
}

const PREFIX = new TextEncoder().encode('careledger/v1/')
/** Short labels: letters, digits and . _ - / : — in particular never the 0x00 that ends them. */
const DOMAIN = /^[A-Za-z0-9][A-Za-z0-9._\-/:]{0,63}$/

/**
 * "careledger/v1/" ‖ domain ‖ 0x00 ‖ payload: what gets hashed or signed, so bytes meant for one
 * purpose (a batch manifest) can never be taken for another (an API request). The domain cannot
 * contain 0x00, so the split between domain and payload is unambiguous.
 */
export function domainSeparated(domain: string, payload: Uint8Array): Uint8Array {
  const head = domainHead(domain)
  if (!(payload instanceof Uint8Array)) throw new CareLedgerError('INVALID_ARGUMENT', `payload: expected bytes, got ${typeof payload}`, { domain })
  const out = new Uint8Array(head.length + payload.length)
  out.set(head, 0)
  out.set(payload, head.length)
  return out
}

/** "careledger/v1/" ‖ domain ‖ 0x00 of the few domains in use, checked and encoded once (a chain verify separates two per record). */
const heads = new Map<string, Uint8Array>()

/**
 * "careledger/v1/" ‖ domain ‖ 0x00 — domainSeparated's bytes before the payload, for a streaming
 * hash that takes the payload in place instead of a copy. Shared: never write into it.
 */
export function domainHead(domain: string): Uint8Array {
  let head = heads.get(domain)
  if (head !== undefined) return head
  if (typeof domain !== 'string' || !DOMAIN.test(domain)) {
    throw new CareLedgerError('INVALID_ARGUMENT', `domain ${typeof domain === 'string' ? JSON.stringify(domain) : `of type ${typeof domain}`} must be 1–64 characters of [A-Za-z0-9._-/:]`, { domain })
  }
  const tag = new TextEncoder().encode(domain)
  head = new Uint8Array(PREFIX.length + tag.length + 1)
  head.set(PREFIX, 0)
  head.set(tag, PREFIX.length)
  if (heads.size >= 64) heads.clear()
  heads.set(domain, head)
  return head
}

/** SHA-256("careledger/v1/" ‖ domain ‖ 0x00 ‖ encodeCanonical(value)). */
export const canonicalDigest = (domain: string, value: unknown): Uint8Array => sha256(domainSeparated(domain, encodeCanonical(value)))
