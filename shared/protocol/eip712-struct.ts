/**
 * EIP-712 hashStruct for a flat struct of atomic fields (bytes32, uint64, string): the two fixed
 * structs of supervision, Approval (approval.ts) and Request (supervision-request.ts). The type
 * hash is computed once per struct; each message then costs one Keccak-256 per string field (short
 * ones remembered) and one over the encoded fields (@noble/hashes), where ethers' TypedDataEncoder.hash re-derives the
 * type encoding and goes through hex strings on every call (~0.2 ms here, bench:supervision).
 *
 *   encodeType   Name(type1 name1,type2 name2,…)                      EIP-712 §"Definition of encodeType"
 *   typeHash     keccak256(encodeType)
 *   hashStruct   keccak256(typeHash ‖ encodeData(field 1) ‖ …)       EIP-712 §"Definition of hashStruct"
 *     bytes32    the 32 bytes as they are
 *     uint64     the value as a 32-byte big-endian word
 *     string     keccak256(UTF-8 of the string)
 *   digest       keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct)  EIP-712 §"Specification of the eth_signTypedData"
 *
 * Byte-identical to ethers' TypedDataEncoder for every value (test/supervision/eip712-struct.test.ts,
 * a property test). A string that is not well-formed UTF-16 (a lone surrogate, which UTF-8 cannot
 * carry) is left to ethers, which decides what it does with it, as before.
 */
import { keccak_256 } from '@noble/hashes/sha3.js'
import { hexToBytes } from '@noble/hashes/utils.js'
import { TypedDataEncoder, type TypedDataField } from 'ethers'

type AtomicType = 'bytes32' | 'uint64' | 'string'
/** A field's value: bytes32 as 64 hex digits (no 0x), uint64 as a safe integer or bigint, string as is. */
export type StructValue = string | number | bigint

export interface StructHasher {
  readonly name: string
  readonly typeHash: Uint8Array
  /** hashStruct of `values`, given in the struct's field order, or null when ethers must decide (a malformed string). */
  hash(values: readonly StructValue[]): Uint8Array | null
}

const ATOMIC = new Set<string>(['bytes32', 'uint64', 'string'])
const UTF8 = new TextEncoder()
const U64_MAX = (1n << 64n) - 1n

/** The hasher of struct `name` (its fields all atomic: bytes32, uint64 or string). */
export function structHasher(name: string, fields: readonly TypedDataField[]): StructHasher {
  for (const f of fields) if (!ATOMIC.has(f.type)) throw new Error(`eip712-struct: ${name}.${f.name} is of type ${f.type}, not bytes32, uint64 or string`)
  const types = fields.map((f) => f.type as AtomicType)
  const encodeType = `${name}(${fields.map((f) => `${f.type} ${f.name}`).join(',')})`
  // ethers' encoder must agree on the type encoding (it is the reference for the rest).
  if (TypedDataEncoder.from({ [name]: [...fields] }).encodeType(name) !== encodeType) throw new Error(`eip712-struct: ${name}'s type encoding differs from ethers'`)
  const typeHash = keccak_256(UTF8.encode(encodeType))
  return {
    name,
    typeHash,
    hash(values: readonly StructValue[]): Uint8Array | null {
      if (values.length !== types.length) throw new Error(`eip712-struct: ${name} has ${types.length} fields, got ${values.length}`)
      const data = new Uint8Array(32 * (1 + types.length))
      data.set(typeHash, 0)
      for (let i = 0; i < types.length; i++) {
        const v = values[i]!
        const at = 32 * (i + 1)
        switch (types[i]) {
          case 'bytes32': {
            if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v)) throw new Error(`eip712-struct: ${name}.${fields[i]!.name} must be 64 lower-case hex digits`)
            data.set(hexToBytes(v), at)
            break
          }
          case 'uint64': {
            const n = typeof v === 'bigint' ? v : typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : -1n
            if (n < 0n || n > U64_MAX) throw new Error(`eip712-struct: ${name}.${fields[i]!.name} must be a uint64`)
            let x = n
            for (let j = 31; x > 0n; j--, x >>= 8n) data[at + j] = Number(x & 0xffn)
            break
          }
          case 'string': {
            if (typeof v !== 'string') throw new Error(`eip712-struct: ${name}.${fields[i]!.name} must be a string`)
            if (!v.isWellFormed()) return null
            data.set(stringHash(v), at)
            break
          }
        }
      }
      return keccak_256(data)
    },
  }
}

/**
 * keccak256(UTF-8 of s), remembered for short strings: most string fields take a handful of values
 * (an action, a decision, an empty comment), and each Keccak costs ~8 µs of JavaScript.
 */
const shortStrings = new Map<string, Uint8Array>()
function stringHash(s: string): Uint8Array {
  if (s.length > 32) return keccak_256(UTF8.encode(s))
  let h = shortStrings.get(s)
  if (h === undefined) {
    h = keccak_256(UTF8.encode(s))
    if (shortStrings.size >= 256) shortStrings.clear()
    shortStrings.set(s, h)
  }
  return h
}

const PREFIX = new Uint8Array([0x19, 0x01])

/** The digest a wallet signs: keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ structHash). */
export function typedDataDigest(domainSeparator: Uint8Array, structHash: Uint8Array): Uint8Array {
  const buf = new Uint8Array(66)
  buf.set(PREFIX, 0)
  buf.set(domainSeparator, 2)
  buf.set(structHash, 34)
  return keccak_256(buf)
}
