/**
 * Chain blocks. Pure rules, no I/O.
 *
 *   header v1   = canonical CBOR { v: 1, height, prev, time, recordsRoot, count, first, last,
 *                 chameleonKey, signer }
 *   header v2   = canonical CBOR { v: 2, …every field of v1…, redactions: { count, head } }
 *                 redactions = the redaction log as it stood when the block was sealed: its number
 *                 of entries and its head, the last entry's log_hash (64 zero hex digits for none;
 *                 log_hash = SHA-256(previous log_hash ‖ entry hash), docs/crypto.md §Redaction log).
 *                 The log entries are committed by plain hash, so a signed (and anchored) block
 *                 makes every entry up to `count` as immutable as the chain. A v2 block may hold no
 *                 records (count 0, first = last + 1, recordsRoot = SHA-256("")): it is sealed when
 *                 only the log moved, so an applied redaction is committed without waiting for data.
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
import { emptyRoot, MerkleTree } from '../../shared/crypto/merkle.ts'
import { sign, verify as verifySignature } from '../../shared/crypto/sign.ts'

/** The version new blocks are sealed in (2: with the redaction log's state); version 1 is still read and verified. */
export const BLOCK_VERSION = 2
export const BLOCK_DOMAIN = 'block-header'

const hexOf = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `must be ${bytes * 2} lower-case hex digits`)
const uint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

/** The redaction log's state a v2 block commits to. */
export const EMPTY_LOG_HEAD = '0'.repeat(64)
const RedactionStateSchema = z
  .strictObject({ count: uint, head: hexOf(32) })
  .refine((r) => (r.count === 0) === (r.head === EMPTY_LOG_HEAD), { message: 'head is 64 zero hex digits exactly when count is 0', path: ['head'] })
export type RedactionState = z.infer<typeof RedactionStateSchema>
export const EMPTY_REDACTION_STATE: RedactionState = Object.freeze({ count: 0, head: EMPTY_LOG_HEAD })

const headerFields = {
  height: uint,
  prev: hexOf(32).nullable(),
  time: uint,
  recordsRoot: hexOf(32),
  chameleonKey: hexOf(8),
  signer: hexOf(8),
}
const HeaderV1 = z.strictObject({ v: z.literal(1), ...headerFields, count: uint.min(1), first: uint.min(1), last: uint.min(1) })
// v2 may hold no records (a block sealed because only the redaction log moved): then last = first − 1.
const HeaderV2 = z.strictObject({ v: z.literal(2), ...headerFields, count: uint, first: uint.min(1), last: uint, redactions: RedactionStateSchema })

export const BlockHeaderSchema = z
  .union([HeaderV1, HeaderV2])
  .refine((h) => (h.height === 0) === (h.prev === null), { message: 'prev is null exactly at height 0', path: ['prev'] })
  .refine((h) => h.last - h.first + 1 === h.count, { message: 'count must be last − first + 1 (blocks hold consecutive records)', path: ['count'] })
  .refine((h) => h.count > 0 || h.recordsRoot === bytesToHex(emptyRoot()), { message: 'a block without records has the empty-tree root SHA-256("")', path: ['recordsRoot'] })

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
  /** The redaction log at sealing (default: empty). */
  readonly redactions?: RedactionState
  /** With no records: the id the next record will have (the previous block's last + 1). */
  readonly nextRecord?: number
  /** 1 only for known-answer vectors and tests of old chains; new blocks are BLOCK_VERSION. */
  readonly version?: 1 | 2
}

/**
 * Build, encode, hash and sign one block. A block without records is a v2 block whose only news
 * is the redaction log (the caller decides it moved); it needs `nextRecord`.
 */
export function makeBlock(input: BlockInput): SealedBlock {
  const { records } = input
  const version = input.version ?? BLOCK_VERSION
  if (records.length === 0 && (version === 1 || input.nextRecord === undefined)) {
    throw new CareLedgerError('INVALID_ARGUMENT', 'a block needs at least one record (only a v2 block committing the redaction log, given nextRecord, may hold none)')
  }
  for (let i = 1; i < records.length; i++) {
    if (records[i]!.id !== records[0]!.id + i) {
      throw new CareLedgerError('INVALID_ARGUMENT', `block records must have consecutive ids: ${records[i - 1]!.id} is followed by ${records[i]!.id}`, { reason: 'RECORD_ASSIGNMENT' })
    }
  }
  const first = records[0]?.id ?? input.nextRecord!
  const header = parseHeader(
    {
      v: version,
      height: input.height,
      prev: input.prevHash === null ? null : bytesToHex(input.prevHash),
      time: input.time,
      recordsRoot: bytesToHex(recordsRoot(records.map((r) => r.hash))),
      count: records.length,
      first,
      last: first + records.length - 1,
      chameleonKey: input.chameleonKeyId,
      signer: input.signerKeyId,
      ...(version === 2 ? { redactions: { ...(input.redactions ?? EMPTY_REDACTION_STATE) } } : {}),
    },
    'block header',
  )
  const bytes = encodeCanonical(header)
  return { header, bytes, hash: blockHash(bytes), signature: signBlockHeader(input.signingSecretKey, bytes) }
}
