/**
 * Chain blocks. Pure rules, no I/O.
 *
 *   header      = canonical CBOR { v: 1, height, prev, time, recordsRoot, count, first, last,
 *                 chameleonKey, signer }
 *   block hash  = SHA-256(header bytes); `prev` is the previous block's hash (hex), null at height 0
 *   recordsRoot = RFC 9162 §2.1.1 Merkle tree hash over the records' 32-byte chameleon hashes, each
 *                 one leaf (leaf hash SHA-256(0x00 ‖ C)), in record-id order; records first..last
 *   signature   = Ed25519 of the cloud over the header bytes, domain "block-header"
 *
 * Because a block commits to chameleon hashes, not to record contents, an approved redaction
 * (new content, new opening, same C) leaves every block hash, root and signature valid.
 */
import { z } from 'zod'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../../shared/errors.ts'
import { decodeCanonical, encodeCanonical } from '../../shared/encoding/canonical.ts'
import { MerkleTree } from '../../shared/crypto/merkle.ts'
import { sign, verify as verifySignature } from '../../shared/crypto/sign.ts'

export const BLOCK_VERSION = 1
export const BLOCK_DOMAIN = 'block-header'

const hexOf = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `must be ${bytes * 2} lower-case hex digits`)
const uint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

export const BlockHeaderSchema = z
  .strictObject({
    v: z.literal(BLOCK_VERSION),
    height: uint,
    prev: hexOf(32).nullable(),
    time: uint,
    recordsRoot: hexOf(32),
    count: uint.min(1),
    first: uint.min(1),
    last: uint.min(1),
    chameleonKey: hexOf(8),
    signer: hexOf(8),
  })
  .refine((h) => (h.height === 0) === (h.prev === null), { message: 'prev is null exactly at height 0', path: ['prev'] })
  .refine((h) => h.last - h.first + 1 === h.count, { message: 'count must be last − first + 1 (blocks hold consecutive records)', path: ['count'] })

export type BlockHeader = z.infer<typeof BlockHeaderSchema>

function parseHeader(value: unknown, what: string): BlockHeader {
  const r = BlockHeaderSchema.safeParse(value)
  if (!r.success) {
    const problems = r.error.issues.slice(0, 4).map((i) => `${i.path.join('.') || 'header'}: ${i.message}`)
    throw new CareLedgerError('INVALID_ENCODING', `${what}: ${problems.join('; ')}`, { what, reason: 'SCHEMA', problems })
  }
  return r.data
}

export function encodeBlockHeader(header: BlockHeader): Uint8Array {
  return encodeCanonical(parseHeader(header, 'block header'))
}

/** Strict: canonical CBOR and the schema above; INVALID_ENCODING otherwise. */
export function decodeBlockHeader(bytes: Uint8Array): BlockHeader {
  return parseHeader(decodeCanonical(bytes), 'block header')
}

export const blockHash = (headerBytes: Uint8Array): Uint8Array => sha256(headerBytes)

/** The records root over chameleon hashes (each hash is one leaf's data). */
export const recordsTree = (hashes: readonly Uint8Array[]): MerkleTree => MerkleTree.fromLeaves(hashes)
export const recordsRoot = (hashes: readonly Uint8Array[]): Uint8Array => recordsTree(hashes).root

export const signBlockHeader = (signingSecretKey: Uint8Array, headerBytes: Uint8Array): Uint8Array => sign(signingSecretKey, BLOCK_DOMAIN, headerBytes)

/** False for anything that does not verify (including malformed keys or signatures). */
export function verifyBlockSignature(signingPublicKey: Uint8Array, headerBytes: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verifySignature(signingPublicKey, BLOCK_DOMAIN, headerBytes, signature)
  } catch {
    return false
  }
}

export interface SealedBlock {
  readonly header: BlockHeader
  readonly bytes: Uint8Array
  readonly hash: Uint8Array
  readonly signature: Uint8Array
}

export interface BlockInput {
  readonly height: number
  /** Hash of block height − 1; null for height 0. */
  readonly prevHash: Uint8Array | null
  readonly time: number
  /** The records, in id order, consecutive ids. */
  readonly records: readonly { readonly id: number; readonly hash: Uint8Array }[]
  readonly chameleonKeyId: string
  readonly signerKeyId: string
  readonly signingSecretKey: Uint8Array
}

/** Build, encode, hash and sign one block. No empty blocks. */
export function makeBlock(input: BlockInput): SealedBlock {
  const { records } = input
  if (records.length === 0) throw new CareLedgerError('INVALID_ARGUMENT', 'a block needs at least one record (no empty blocks)')
  for (let i = 1; i < records.length; i++) {
    if (records[i]!.id !== records[0]!.id + i) {
      throw new CareLedgerError('INVALID_ARGUMENT', `block records must have consecutive ids: ${records[i - 1]!.id} is followed by ${records[i]!.id}`, { reason: 'RECORD_ASSIGNMENT' })
    }
  }
  const header = parseHeader(
    {
      v: BLOCK_VERSION,
      height: input.height,
      prev: input.prevHash === null ? null : bytesToHex(input.prevHash),
      time: input.time,
      recordsRoot: bytesToHex(recordsRoot(records.map((r) => r.hash))),
      count: records.length,
      first: records[0]!.id,
      last: records[records.length - 1]!.id,
      chameleonKey: input.chameleonKeyId,
      signer: input.signerKeyId,
    },
    'block header',
  )
  const bytes = encodeCanonical(header)
  return { header, bytes, hash: blockHash(bytes), signature: signBlockHeader(input.signingSecretKey, bytes) }
}
