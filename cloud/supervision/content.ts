/**
 * What a record becomes when a redaction is applied, and how `chain verify` checks a redacted row.
 * Pure rules, no I/O. docs/security.md §Supervision is normative.
 *
 *   correction  record content v2 (cloud/chain/record.ts) with the requester's re-sealed manifest:
 *               same stream, seq, prev, gateway, device, patient and policy; new cid, size,
 *               Merkle root. `signature` stays the gateway's signature of the ORIGINAL manifest (it
 *               no longer verifies: the k approvals of the redaction log entry stand in for it).
 *   deletion    a tombstone, canonical CBOR
 *                 { v: 2, kind: "tombstone", id, stream, seq, gateway, commitment, prev, receivedAt, request }
 *               `commitment` and `prev` keep the stream link (the next batch's prev still names
 *               `commitment`), so completeness checks see no gap.
 *
 * In both cases the row's manifest_commitment and prev_commitment columns keep the ORIGINAL link,
 * and the record's chameleon hash C is unchanged: the new opening (from k regulators' FROST shares
 * or the single regulator's trapdoor) opens C to the new content.
 */
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../../shared/errors.ts'
import { decodeCanonical, encodeCanonical } from '../../shared/encoding/canonical.ts'
import { chameleonEquation, chameleonPublicPoint, type ChameleonEquation } from '../../shared/crypto/chameleon.ts'
import { failingChameleonEquations } from '../../shared/crypto/chameleon-batch.ts'
import { systemRng, type Rng } from '../../shared/crypto/random.ts'
import { parseManifest, type BatchManifest } from '../../shared/protocol/manifest.ts'
import { contentDigest } from '../../shared/protocol/approval.ts'
import type { RedactionLogEntry } from '../../shared/protocol/redaction-log.ts'
import { checkRecordRows, commitmentOfManifestBytes, decodeRecordContent, encodeRecordContent, type DecodedRecord, type RecordRow } from '../chain/record.ts'

export const TOMBSTONE_KIND = 'tombstone'
const TOMBSTONE_KEYS = ['commitment', 'gateway', 'id', 'kind', 'prev', 'receivedAt', 'request', 'seq', 'stream', 'v'] as const

export interface Tombstone {
  readonly id: number
  readonly stream: string
  readonly seq: number
  readonly gateway: string
  /** The deleted batch's manifest commitment (hex): what seq + 1's prev names. */
  readonly commitment: string
  readonly prev: string | null
  readonly receivedAt: number
  /** The request id that deleted it. */
  readonly request: string
}

function refuse(reason: string, message: string, info: Record<string, unknown> = {}): never {
  throw new CareLedgerError('INVALID_ARGUMENT', message, { reason, ...info })
}

export const encodeTombstone = (t: Tombstone): Uint8Array =>
  encodeCanonical({ v: 2, kind: TOMBSTONE_KIND, id: t.id, stream: t.stream, seq: t.seq, gateway: t.gateway, commitment: t.commitment, prev: t.prev, receivedAt: t.receivedAt, request: t.request })

/** A tombstone's content, strictly; null when the bytes are not a tombstone at all. */
export function decodeTombstone(bytes: Uint8Array): Tombstone | null {
  let v: unknown
  try {
    v = decodeCanonical(bytes)
  } catch {
    return null
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return null
  const o = v as Record<string, unknown>
  const keys = Object.keys(o).sort()
  if (o.kind !== TOMBSTONE_KIND || o.v !== 2 || keys.length !== TOMBSTONE_KEYS.length || keys.some((k, i) => k !== TOMBSTONE_KEYS[i])) return null
  const str = (x: unknown): x is string => typeof x === 'string'
  const int = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
  if (!int(o.id) || !str(o.stream) || !int(o.seq) || !str(o.gateway) || !str(o.commitment) || !(o.prev === null || str(o.prev)) || !int(o.receivedAt) || !str(o.request)) return null
  return { id: o.id, stream: o.stream, seq: o.seq, gateway: o.gateway, commitment: o.commitment, prev: o.prev as string | null, receivedAt: o.receivedAt, request: o.request }
}

/** The fields a re-sealed batch must keep (the requester re-seals with the same stream, seq, prev, pseudonym and policy). */
const KEPT = ['v', 'gateway', 'stream', 'device', 'patient', 'seq', 'prev', 'policy', 'authority'] as const

/** The corrected record's content: the old record with the requester's re-sealed manifest. */
export function correctedContent(old: DecodedRecord, manifest: unknown): { content: Uint8Array; manifest: BatchManifest } {
  const m = parseManifest(manifest)
  const changed = KEPT.filter((k) => JSON.stringify(m[k]) !== JSON.stringify(old.manifest[k]))
  if (changed.length > 0) {
    refuse('CHANGED_IDENTITY', `the corrected manifest must keep ${changed.join(', ')} of record ${old.id} (a correction changes readings, not where they belong or who may read them)`, { fields: changed })
  }
  if (m.cid === old.manifest.cid) refuse('SAME_CONTENT', `the corrected manifest names the same envelope ${m.cid}: nothing to correct`, { cid: m.cid })
  return { content: encodeRecordContent({ ...old, manifest: m }, 2), manifest: m }
}

/** The tombstone of a record (its row's link columns). */
export function tombstoneFor(row: Pick<RecordRow, 'id' | 'stream' | 'seq' | 'gatewayId' | 'manifestCommitment' | 'prevCommitment' | 'receivedAt'>, request: string): Uint8Array {
  return encodeTombstone({ id: row.id, stream: row.stream, seq: row.seq, gateway: row.gatewayId, commitment: row.manifestCommitment, prev: row.prevCommitment, receivedAt: row.receivedAt, request })
}

/**
 * `chain verify`'s check of rows that redaction log entries changed (each entry itself is checked
 * against the policy by the caller): each row is what its entry says it became, its opening opens
 * the unchanged C, and its content agrees with the row's columns, which keep the original stream
 * link. Returns each item's problems (empty: a correctly applied redaction). The chameleon openings of all
 * the rows are checked as two batches (chameleon-batch.ts; a failing batch is bisected, so each
 * row at fault is named): the corrected rows through checkRecordRows, the tombstones here.
 */
export function checkRedactedRows(items: readonly { row: RecordRow; entry: RedactionLogEntry }[], chameleonPublicKey: Uint8Array, rng: Rng = systemRng): string[][] {
  const problems: string[][] = items.map(({ row, entry }) => {
    const p: string[] = []
    if (contentDigest(row.content) !== entry.newContent) p.push(`its content (digest ${contentDigest(row.content)}) is not what redaction ${entry.requestId} made it (${entry.newContent})`)
    if (bytesToHex(row.opening) !== entry.opening) p.push(`its opening is not the one redaction ${entry.requestId} recorded`)
    return p
  })
  // Corrections: checked as any record, but for the gateway's signature (the approvals stand in
  // for it) and for the link column, which keeps the original manifest's commitment.
  const corrected: { i: number; row: RecordRow }[] = []
  const tombstones: { i: number; equation: ChameleonEquation }[] = []
  items.forEach(({ row, entry }, i) => {
    if (entry.action === 'correct') {
      try {
        corrected.push({ i, row: { ...row, manifestCommitment: commitmentOfManifestBytes(decodeRecordContent(row.content).manifestBytes) } })
      } catch (e) {
        problems[i]!.push((e as Error).message)
      }
      return
    }
    let equation: ChameleonEquation | null = null
    try {
      equation = chameleonEquation(chameleonPublicKey, row.content, row.hash, row.opening)
    } catch {
      equation = null
    }
    if (equation) tombstones.push({ i, equation })
    else problems[i]!.push(openingProblem(row))
    problems[i]!.push(...tombstoneProblems(row, entry))
  })
  const byId = new Map(corrected.map(({ i, row }) => [row.id, i]))
  for (const f of checkRecordRows(corrected.map((c) => c.row), chameleonPublicKey, rng, { gatewaySignature: false }).failures) {
    problems[byId.get(f.recordId)!]!.push(f.message.replace(/^record \d+: /, ''))
  }
  for (const k of failingChameleonEquations(chameleonPublicPoint(chameleonPublicKey), tombstones.map((t) => t.equation), rng)) {
    const i = tombstones[k]!.i
    problems[i]!.unshift(openingProblem(items[i]!.row))
  }
  return problems
}

const openingProblem = (row: RecordRow): string => `the chameleon opening does not open hash ${bytesToHex(row.hash)} to the stored content`

/** A deleted row's content must be the tombstone of exactly this row and request. */
function tombstoneProblems(row: RecordRow, entry: RedactionLogEntry): string[] {
  const t = decodeTombstone(row.content)
  if (!t) return ['redaction deleted it, but the content is not a tombstone']
  const fields: [string, unknown, unknown][] = [
    ['id', t.id, row.id],
    ['stream', t.stream, row.stream],
    ['seq', t.seq, row.seq],
    ['gateway', t.gateway, row.gatewayId],
    ['manifest commitment', t.commitment, row.manifestCommitment],
    ['prev', t.prev, row.prevCommitment],
    ['receivedAt', t.receivedAt, row.receivedAt],
    ['request', t.request, entry.requestId],
  ]
  const mismatched = fields.filter(([, a, b]) => a !== b).map(([f, a, b]) => `${f} (content ${JSON.stringify(a)}, row ${JSON.stringify(b)})`)
  return mismatched.length > 0 ? [`the tombstone disagrees with the row: ${mismatched.join('; ')}`] : []
}
