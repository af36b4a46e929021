/**
 * Block header known answers, both versions: v2 (with the redaction log's state) is what the cloud
 * seals today; v1 headers, sealed before the log was committed, still decode, hash and verify
 * exactly as they did (their hash and signature rules are unchanged).
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { blockHash, decodeBlockHeader, encodeBlockHeader, verifyBlockSignature } from '../../cloud/chain/block.ts'
import { verify as nobleVerify } from '../../shared/crypto/sign.ts'
import { computeBlockVectors } from '../vectors/block.ts'

type Vector = { name: string; publicKey: string; header: Record<string, unknown>; headerBytes: string; hash: string; signature: string }
const committed = JSON.parse(readFileSync(new URL('../vectors/block.json', import.meta.url), 'utf8')) as Record<'v1' | 'v2', Vector[]>

describe('block header known-answer vectors', () => {
  it('v2: makeBlock gives the committed header bytes, hash and signature byte for byte', () => {
    expect(computeBlockVectors('v2')).toEqual(committed.v2)
    expect(committed.v2.map((v) => v.header.v)).toEqual([2, 2, 2])
    expect(committed.v2[2]!.header).toMatchObject({ count: 0, first: 5, last: 4, recordsRoot: bytesToHex(sha256(new Uint8Array(0))) })
  })

  it('v1 (frozen): today\'s code still makes, decodes, hashes and verifies them byte for byte', () => {
    expect(computeBlockVectors('v1')).toEqual(committed.v1)
    for (const v of committed.v1) {
      const bytes = hexToBytes(v.headerBytes)
      expect(decodeBlockHeader(bytes)).toEqual(v.header)
      expect(Object.keys(v.header)).not.toContain('redactions')
    }
  })

  it.each(['v1', 'v2'] as const)('%s: header bytes are the canonical encoding; hash = SHA-256(bytes); Ed25519 over the bytes, domain block-header', (version) => {
    for (const v of committed[version]) {
      const bytes = hexToBytes(v.headerBytes)
      expect(bytesToHex(encodeBlockHeader(decodeBlockHeader(bytes)))).toBe(v.headerBytes)
      expect(bytesToHex(blockHash(bytes))).toBe(v.hash)
      expect(bytesToHex(sha256(bytes))).toBe(v.hash)
      expect(verifyBlockSignature(hexToBytes(v.publicKey), bytes, hexToBytes(v.signature))).toBe(true)
      expect(nobleVerify(hexToBytes(v.publicKey), 'block-header', bytes, hexToBytes(v.signature))).toBe(true)
    }
  })
})
