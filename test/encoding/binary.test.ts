/**
 * The binary layout of keys and ciphertexts (shared/encoding/binary.ts): text fields are strict
 * UTF-8 and a leading byte-order mark is refused, not dropped (issue 8 item 14: the decoder used to
 * strip it, so two encodings decoded to one value — e.g. one attribute key with two encodings).
 */
import { describe, expect, it } from 'vitest'
import { Kind, Reader, Writer } from '../../shared/encoding/binary.ts'
import { decodeUserKey, encodeUserKey } from '../../shared/crypto/abe/codec.ts'
import { keyGen } from '../../shared/crypto/abe/fabeo.ts'
import { errorOf } from '../helpers/errors.ts'
import { msk, rng } from '../helpers/authority.ts'

const reasonOf = (f: () => unknown): unknown => {
  const e = errorOf(f)
  return e?.reason ?? e?.code ?? null
}
const readString = (bytes: number[]): string => new Reader(Uint8Array.from([bytes.length, ...bytes]), 'test').string(64)

describe('text fields', () => {
  it('decode strict UTF-8 and keep a U+FEFF that is not at the start', () => {
    expect(readString([0x68, 0xc3, 0xa9])).toBe('hé')
    expect(readString([0x61, 0xef, 0xbb, 0xbf])).toBe('a\ufeff')
    expect(reasonOf(() => readString([0x62, 0xc3, 0x28]))).toBe('BAD_UTF8')
  })

  it('refuse a leading UTF-8 byte-order mark instead of dropping it', () => {
    expect(reasonOf(() => readString([0xef, 0xbb, 0xbf, 0x61]))).toBe('BOM')
    expect(reasonOf(() => new Writer().string('\ufeffa'))).toBe('INVALID_ARGUMENT')
  })

  it('so an attribute key has one encoding: the same key with a BOM before an attribute is refused', () => {
    const key = keyGen(msk, ['role:doctor'], rng)
    const bytes = encodeUserKey(key)
    expect(decodeUserKey(bytes).attributes).toEqual(['role:doctor'])
    const at = Buffer.from(bytes).indexOf('role:doctor')
    expect(at).toBeGreaterThan(0)
    const withBom = Uint8Array.from([...bytes.subarray(0, at - 1), bytes[at - 1]! + 3, 0xef, 0xbb, 0xbf, ...bytes.subarray(at)])
    expect(reasonOf(() => decodeUserKey(withBom))).toBe('BOM')
  })

  it('kind 11 is the sealed secret (shared/crypto/sealed-secret.ts)', () => {
    expect(Kind.SealedSecret).toBe(11)
  })
})
