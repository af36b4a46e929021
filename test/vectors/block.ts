/**
 * Known-answer vectors for block headers (cloud/chain/block.ts): fixed inputs whose header bytes,
 * block hash and Ed25519 signature are committed in block.json and checked byte for byte by
 * test/cloud/block-kat.test.ts. Version 1 (the ten fields, before the redaction log was committed)
 * is frozen history; version 2 adds `redactions: { count, head }` and may hold no records.
 * Regenerate only on a deliberate format change (npm run kat:regenerate rewrites the current
 * version's vectors and keeps the older ones as they are).
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, concatBytes } from '@noble/hashes/utils.js'
import { makeBlock, type BlockInput } from '../../cloud/chain/block.ts'
import { signingKeyId, signingPublicKey } from '../../shared/crypto/sign.ts'

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

/** The block signer: a fixed Ed25519 seed (a test key, never a real one). */
export const BLOCK_KAT_SECRET_KEY = sha256(utf8('careledger block header kat signing seed'))
export const BLOCK_KAT_PUBLIC_KEY = signingPublicKey(BLOCK_KAT_SECRET_KEY)

const records = (first: number, count: number) => Array.from({ length: count }, (_, i) => ({ id: first + i, hash: sha256(utf8(`record ${first + i}`)) }))
/** A log of `n` entries with stand-in entry hashes: log_hash = SHA-256(previous ‖ entry hash). */
const logHead = (n: number): string => {
  let head = new Uint8Array(32)
  for (let i = 1; i <= n; i++) head = sha256(concatBytes(head, sha256(utf8(`entry ${i}`))))
  return bytesToHex(head)
}

const base = {
  time: 1_767_300_000_000,
  chameleonKeyId: '0011223344556677',
  signerKeyId: signingKeyId(BLOCK_KAT_PUBLIC_KEY),
  signingSecretKey: BLOCK_KAT_SECRET_KEY,
}

export const BLOCK_KAT_CASES: Record<'v1' | 'v2', readonly { name: string; input: Omit<BlockInput, 'signingSecretKey' | 'chameleonKeyId' | 'signerKeyId' | 'time'> }[]> = {
  v1: [
    { name: 'genesis, three records', input: { height: 0, prevHash: null, records: records(1, 3), version: 1 } },
    { name: 'height 1, one record', input: { height: 1, prevHash: sha256(utf8('block 0')), records: records(4, 1), version: 1 } },
  ],
  v2: [
    { name: 'genesis, three records, empty log', input: { height: 0, prevHash: null, records: records(1, 3), version: 2 } },
    { name: 'height 1, one record, log of 2 entries', input: { height: 1, prevHash: sha256(utf8('block 0')), records: records(4, 1), redactions: { count: 2, head: logHead(2) }, version: 2 } },
    { name: 'height 2, no records (only the log moved), log of 3 entries', input: { height: 2, prevHash: sha256(utf8('block 1')), records: [], nextRecord: 5, redactions: { count: 3, head: logHead(3) }, version: 2 } },
  ],
}

export function computeBlockVectors(version: 'v1' | 'v2'): Array<Record<string, unknown>> {
  return BLOCK_KAT_CASES[version].map(({ name, input }) => {
    const b = makeBlock({ ...base, ...input })
    return { name, publicKey: bytesToHex(BLOCK_KAT_PUBLIC_KEY), header: b.header, headerBytes: bytesToHex(b.bytes), hash: bytesToHex(b.hash), signature: bytesToHex(b.signature) }
  })
}
