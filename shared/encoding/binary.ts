/**
 * A small length-prefixed binary layout for keys and ciphertexts: a 4-byte preamble
 * ("CL", version, kind), then fixed-size group elements and LEB128-prefixed strings.
 * The Reader never throws anything but CareLedgerError('INVALID_ENCODING' | 'UNSUPPORTED_VERSION').
 */
import { CareLedgerError } from '../errors.ts'

export const MAGIC = [0x43, 0x4c] as const // "CL"
export const FORMAT_VERSION = 1

/** What an encoding holds; the byte after the version. Never reuse a retired number. */
export const Kind = {
  MasterPublicKey: 1,
  MasterSecretKey: 2,
  SecretKey: 3,
  TransformKey: 4,
  RetrievalKey: 5,
  Ciphertext: 6,
  TransformedCiphertext: 7,
  Envelope: 8,
  ChameleonPublicKey: 9,
  ChameleonSecretKey: 10,
  /** A secret sealed under a passphrase (shared/crypto/sealed-secret.ts). */
  SealedSecret: 11,
  // 16–18: FROST (shared/crypto/frost-codec.ts); 12–15 left for other key files in flight.
  FrostSigningShare: 16,
  FrostNonces: 17,
  FrostDkgState: 18,
} as const
export type Kind = (typeof Kind)[keyof typeof Kind]

const KIND_NAMES = new Map<number, string>(Object.entries(Kind).map(([name, n]) => [n, name]))
export const kindName = (k: number): string => KIND_NAMES.get(k) ?? `unknown(${k})`

const MAX_VARINT = 0xffff_ffff
/** fatal: invalid UTF-8 throws; ignoreBOM: a leading EF BB BF stays in the output (the Reader refuses it before). */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

export class Writer {
  private chunks: Uint8Array[] = []
  private length = 0

  static withPreamble(kind: Kind, version: number = FORMAT_VERSION): Writer {
    return new Writer().bytes(Uint8Array.of(MAGIC[0], MAGIC[1], version, kind))
  }

  bytes(b: Uint8Array): this {
    this.chunks.push(b)
    this.length += b.length
    return this
  }

  u8(n: number): this {
    return this.bytes(Uint8Array.of(n))
  }

  /** Unsigned LEB128. */
  uvarint(n: number): this {
    if (!Number.isInteger(n) || n < 0 || n > MAX_VARINT) throw new RangeError(`uvarint out of range: ${n}`)
    const out: number[] = []
    do {
      let byte = n & 0x7f
      n = Math.floor(n / 128)
      if (n > 0) byte |= 0x80
      out.push(byte)
    } while (n > 0)
    return this.bytes(Uint8Array.from(out))
  }

  /** Length-prefixed byte string. */
  blob(b: Uint8Array): this {
    return this.uvarint(b.length).bytes(b)
  }

  /** UTF-8, length-prefixed. A leading U+FEFF is refused: decoders would take it for a byte-order mark. */
  string(s: string): this {
    if (s.charCodeAt(0) === 0xfeff) throw new CareLedgerError('INVALID_ARGUMENT', 'a string may not start with U+FEFF (a byte-order mark)', { value: s.slice(0, 64) })
    return this.blob(new TextEncoder().encode(s))
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length)
    let off = 0
    for (const c of this.chunks) {
      out.set(c, off)
      off += c.length
    }
    return out
  }
}

export class Reader {
  private offset = 0
  private readonly data: Uint8Array
  /** Name of the thing being decoded, for error messages ("secret key", "ciphertext"...). */
  readonly what: string

  constructor(data: Uint8Array, what: string) {
    if (!(data instanceof Uint8Array)) {
      throw new CareLedgerError('INVALID_ENCODING', `${what}: expected bytes, got ${typeof data}`, { what })
    }
    this.data = data
    this.what = what
  }

  /** Read and check the 4-byte preamble; returns nothing, throws typed errors. */
  static open(data: Uint8Array, kind: Kind, what: string): Reader {
    return Reader.openVersion(data, kind, what, [FORMAT_VERSION]).reader
  }

  /** As `open`, for a kind whose layout has more than one version (the envelope: 1 and 2); returns the version read. */
  static openVersion(data: Uint8Array, kind: Kind, what: string, versions: readonly number[]): { reader: Reader; version: number } {
    const r = new Reader(data, what)
    const pre = r.take(4)
    if (pre[0] !== MAGIC[0] || pre[1] !== MAGIC[1]) r.fail('BAD_MAGIC', 'does not start with the CareLedger magic "CL"')
    if (!versions.includes(pre[2]!)) {
      throw new CareLedgerError('UNSUPPORTED_VERSION', `${what}: format version ${pre[2]} is not supported (this build reads ${versions.join(', ')})`, {
        what,
        version: pre[2],
      })
    }
    if (pre[3] !== kind) {
      r.fail('WRONG_KIND', `holds a ${kindName(pre[3]!)}, not a ${kindName(kind)}`, { kind: pre[3] })
    }
    return { reader: r, version: pre[2]! }
  }

  fail(reason: string, problem: string, extra: Record<string, unknown> = {}): never {
    throw new CareLedgerError('INVALID_ENCODING', `${this.what}: ${problem} (at byte ${this.offset})`, {
      what: this.what,
      reason,
      offset: this.offset,
      ...extra,
    })
  }

  get remaining(): number {
    return this.data.length - this.offset
  }

  take(n: number): Uint8Array {
    if (n > this.remaining) this.fail('TRUNCATED', `needs ${n} more bytes but only ${this.remaining} remain`)
    const out = this.data.subarray(this.offset, this.offset + n)
    this.offset += n
    return out
  }

  u8(): number {
    return this.take(1)[0]!
  }

  uvarint(max = MAX_VARINT): number {
    let result = 0
    let scale = 1
    for (let i = 0; i < 5; i++) {
      const byte = this.u8()
      result += (byte & 0x7f) * scale
      if ((byte & 0x80) === 0) {
        if (i > 0 && byte === 0) this.fail('NON_CANONICAL', 'varint has a redundant trailing zero byte')
        if (result > max) this.fail('TOO_LARGE', `length ${result} exceeds the limit ${max}`, { value: result, max })
        return result
      }
      scale *= 128
    }
    return this.fail('BAD_VARINT', 'varint longer than 5 bytes')
  }

  blob(max: number): Uint8Array {
    return this.take(this.uvarint(max))
  }

  /**
   * Strict UTF-8 (RFC 3629). A leading byte-order mark is refused, not dropped: the WHATWG decoder
   * strips it by default, which gave one value two encodings (with and without EF BB BF).
   */
  string(max: number): string {
    const bytes = this.blob(max)
    if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return this.fail('BOM', 'string starts with a UTF-8 byte-order mark (EF BB BF)')
    try {
      return STRICT_UTF8.decode(bytes)
    } catch {
      return this.fail('BAD_UTF8', 'string is not valid UTF-8')
    }
  }

  /** Every decoder ends with this: trailing bytes are an error, not something to ignore. */
  end(): void {
    if (this.remaining !== 0) this.fail('TRAILING_BYTES', `${this.remaining} unexpected trailing bytes`)
  }
}
