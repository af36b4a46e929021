/**
 * One record from GET /v1/records/:id/proof, verified without the cloud's database: pure (no
 * SQLite, no blockstore, no worker threads), so clients/verify.ts and the browser consoles use it
 * as it is. cloud/chain/verify.ts (the whole-chain check) re-exports it.
 */
import { z } from 'zod'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { chameleonKeyId } from '../../shared/crypto/chameleon.ts'
import { leafHash, verifyInclusion } from '../../shared/crypto/merkle.ts'
import { signingKeyId } from '../../shared/crypto/sign.ts'
import { blockHash, decodeBlockHeader, encodeBlockHeader, verifyBlockSignature, type BlockHeader } from './block.ts'
import { checkRecordRow, checkRecordRows, type RecordFailure, type RecordRow } from './record.ts'
import { systemRng, type Rng } from '../../shared/crypto/random.ts'
import type { VerificationFailure } from './verify.ts'

const hex = bytesToHex

const hexField = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`))
const ProofJson = z.object({
  record: z.object({
    id: z.number().int().min(1),
    stream: z.string(),
    seq: z.number().int().min(0),
    gateway: z.string(),
    cid: z.string(),
    receivedAt: z.number().int().min(0),
    block: z.number().int().min(0).nullable(),
    manifestCommitment: z.string(),
    prevCommitment: z.string().nullable(),
    commitment: hexField(32),
    opening: hexField(64),
    content: z.string().regex(/^([0-9a-f]{2})+$/),
  }),
  block: z.object({ header: z.record(z.string(), z.unknown()), hash: hexField(32), signature: hexField(64) }),
  leafIndex: z.number().int().min(0),
  treeSize: z.number().int().min(1),
  proof: z.array(hexField(32)),
})

export interface ProofVerification {
  readonly ok: boolean
  /** False when no signing key was given: the block signature was then not checked. */
  readonly signatureChecked: boolean
  readonly recordId: number | null
  readonly height: number | null
  readonly failures: readonly VerificationFailure[]
}

/**
 * Verify one record from GET /v1/records/:id/proof without the cloud's database: the record's
 * content, chameleon opening and gateway signature; the block header's hash and signature; and
 * the RFC 9162 §2.1.3.2 inclusion of the record's chameleon hash under the header's records root.
 */
export function verifyRecordProof(proof: unknown, opts: { chameleonPublicKey: Uint8Array; signingPublicKey?: Uint8Array }): ProofVerification {
  const parsed = ProofJson.safeParse(proof)
  if (!parsed.success) return notAProof(parsed.error)
  const row = proofRow(parsed.data)
  return checkProof(parsed.data, row, checkRecordRow(row, opts.chameleonPublicKey), opts)
}

/**
 * verifyRecordProof for many proofs, their chameleon openings checked as one batch (checkRecordRows,
 * docs/crypto.md §Batch verification): what a retrieval client does with a stream's records.
 * A record id given twice shares its row failures (both fail if either does).
 */
export function verifyRecordProofs(proofs: readonly unknown[], opts: { chameleonPublicKey: Uint8Array; signingPublicKey?: Uint8Array }, rng: Rng = systemRng): ProofVerification[] {
  const parsed = proofs.map((p) => ProofJson.safeParse(p))
  const rows = parsed.map((p) => (p.success ? proofRow(p.data) : null))
  const byId = new Map<number, RecordFailure[]>()
  for (const f of checkRecordRows(rows.filter((r): r is RecordRow => r !== null), opts.chameleonPublicKey, rng).failures) {
    byId.set(f.recordId!, [...(byId.get(f.recordId!) ?? []), f])
  }
  return parsed.map((p, i) => (p.success ? checkProof(p.data, rows[i]!, byId.get(rows[i]!.id) ?? [], opts) : notAProof(p.error)))
}

/**
 * verifyRecordProof for a record a redaction changed: the block, its signature and the inclusion
 * of the (unchanged) chameleon hash as always, but the row itself judged by `rowProblems` — the
 * redaction's rules (cloud/supervision/verify-redactions.ts redactedRowProblems) instead of the
 * gateway's signature. Also returns the row, whose content the caller decodes.
 */
export function verifyRedactedRecordProof(
  proof: unknown,
  rowProblems: (row: RecordRow) => readonly string[],
  opts: { chameleonPublicKey: Uint8Array; signingPublicKey?: Uint8Array },
): ProofVerification & { readonly row: RecordRow | null } {
  const parsed = ProofJson.safeParse(proof)
  if (!parsed.success) return { ...notAProof(parsed.error), row: null }
  const row = proofRow(parsed.data)
  const at = { recordId: row.id, ...(row.blockHeight === null ? {} : { height: row.blockHeight }) }
  const failures: VerificationFailure[] = rowProblems(row).map((message) => ({ kind: 'REDACTION', ...at, message: `record ${row.id}: ${message}` }))
  return { ...checkProof(parsed.data, row, failures, opts), row }
}

type ParsedProof = z.infer<typeof ProofJson>

function notAProof(error: z.ZodError): ProofVerification {
  const problems = error.issues.slice(0, 4).map((i) => `${i.path.join('.') || 'proof'}: ${i.message}`)
  return { ok: false, signatureChecked: false, recordId: null, height: null, failures: [{ kind: 'RECORD_CONTENT', message: `not a record proof: ${problems.join('; ')}` }] }
}

function proofRow({ record: r }: ParsedProof): RecordRow {
  return {
    id: r.id,
    stream: r.stream,
    seq: r.seq,
    gatewayId: r.gateway,
    content: hexToBytes(r.content),
    hash: hexToBytes(r.commitment),
    opening: hexToBytes(r.opening),
    manifestCommitment: r.manifestCommitment,
    prevCommitment: r.prevCommitment,
    cid: r.cid,
    receivedAt: r.receivedAt,
    blockHeight: r.block,
  }
}

/** The proof's checks beyond its record's own (`rowFailures`): block header, signature, inclusion. */
function checkProof(p: ParsedProof, row: RecordRow, rowFailures: readonly (RecordFailure | VerificationFailure)[], opts: { chameleonPublicKey: Uint8Array; signingPublicKey?: Uint8Array }): ProofVerification {
  const r = p.record
  const failures: VerificationFailure[] = [...rowFailures]
  let header: BlockHeader
  let headerBytes: Uint8Array
  try {
    headerBytes = encodeBlockHeader(p.block.header as BlockHeader)
    header = decodeBlockHeader(headerBytes)
  } catch (e) {
    failures.push({ kind: 'BLOCK_HEADER', recordId: r.id, message: `the block header is not valid: ${(e as Error).message}` })
    return { ok: false, signatureChecked: false, recordId: r.id, height: r.block, failures }
  }
  const at = { recordId: r.id, height: header.height }
  const computed = hex(blockHash(headerBytes))
  if (computed !== p.block.hash) failures.push({ kind: 'BLOCK_HASH', ...at, message: `the header hashes to ${computed}, the proof says ${p.block.hash}` })
  if (r.block !== header.height) failures.push({ kind: 'RECORD_ASSIGNMENT', ...at, message: `the record says block ${r.block}, the header is block ${header.height}` })
  if (header.chameleonKey !== chameleonKeyId(opts.chameleonPublicKey)) {
    failures.push({ kind: 'CHAMELEON_KEY', ...at, message: `the block commits under chameleon key ${header.chameleonKey}, not ${chameleonKeyId(opts.chameleonPublicKey)}` })
  }
  let signatureChecked = false
  if (opts.signingPublicKey) {
    signatureChecked = true
    const id = signingKeyId(opts.signingPublicKey)
    if (header.signer !== id) failures.push({ kind: 'BLOCK_SIGNATURE', ...at, message: `the block is signed by key ${header.signer}, not ${id}` })
    else if (!verifyBlockSignature(opts.signingPublicKey, headerBytes, hexToBytes(p.block.signature))) {
      failures.push({ kind: 'BLOCK_SIGNATURE', ...at, message: 'the block signature does not verify' })
    }
  }
  if (p.treeSize !== header.count || p.leafIndex !== r.id - header.first) {
    failures.push({ kind: 'RECORD_ASSIGNMENT', ...at, message: `leaf ${p.leafIndex} of ${p.treeSize} does not match record ${r.id} in block records ${header.first}..${header.last}` })
  }
  let included = false
  try {
    included = verifyInclusion(leafHash(row.hash), p.leafIndex, p.treeSize, p.proof.map(hexToBytes), hexToBytes(header.recordsRoot))
  } catch {
    included = false
  }
  if (!included) failures.push({ kind: 'RECORDS_ROOT', ...at, message: `the inclusion proof of hash ${r.commitment} does not lead to the records root ${header.recordsRoot}` })
  return { ok: failures.length === 0, signatureChecked, recordId: r.id, height: header.height, failures }
}
