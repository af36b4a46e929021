/**
 * Judging one uploaded batch (docs/api.md §POST /v1/batches), after the request is authenticated:
 *
 *   batchStages = [readItem, checkManifest, checkCar, checkPolicy, storeEnvelope, appendToChain]
 *
 *   readItem       the {manifest, signature, car} map, fields typed            → INVALID_REQUEST
 *   checkManifest  manifest.gateway is the authenticated gateway, then the chain's own admission
 *                  (cloud/chain/record.ts admitBatch): schema (parseManifest), the registered key's
 *                  id, the stream id derived from (gateway, device, patient), and the Ed25519
 *                  signature over the canonical manifest (domain batch-manifest)  → INVALID_MANIFEST
 *   checkCar       car.ts: one root = manifest.cid, every block re-hashed, DAG complete → INVALID_CAR;
 *                  manifest.size = the envelope's length                        → INVALID_MANIFEST
 *   checkPolicy    policy-check.ts: manifest.policy is a valid canonical policy, and it and
 *                  manifest.authority are the ones inside the envelope's CP-ABE header → INVALID_MANIFEST
 *   storeEnvelope  the envelope block into the blockstore, fsynced, before the chain append, so a
 *                  record never points at a missing envelope; a crash in between leaves a harmless orphan
 *   appendToChain  the chain's AppendQueue (group commit over ChainStore.appendBatches): created
 *                  (201), duplicate (200), conflict or a broken stream link (409, logged by the
 *                  chain as an equivocation)
 *
 * Every check that can refuse runs before anything is stored. The one deliberate exception: the
 * envelope of a batch refused as an equivocation (409) stays in the blockstore, beside the
 * equivocation the chain logs, as the evidence of what the gateway signed.
 */
import { CID } from 'multiformats/cid'
import { isCareLedgerError } from '../../shared/errors.ts'
import { admitBatch, type AdmittedBatch, type AppendInput, type RecordSummary } from '../chain/record.ts'
import type { AppendResult } from '../chain/store.ts'
import type { GatewayInfo } from '../access/gateways.ts'
import type { ServiceContext } from './context.ts'
import { checkCar as verifyCar, type EnvelopeBlock } from './car.ts'
import { ApiError } from './errors.ts'
import { readUpload, type Upload } from './upload.ts'
import { checkPolicyOf } from './policy-check.ts'

/** The record as a batch upload answers it (docs/api.md): id, stream, seq, commitment, block. */
export interface UploadRecord {
  readonly id: number
  readonly stream: string
  readonly seq: number
  readonly commitment: string
  readonly block: number | null
}

export interface Accepted {
  readonly status: 201 | 200
  readonly duplicate: boolean
  readonly record: UploadRecord
}

export interface BatchState {
  readonly ctx: ServiceContext
  readonly gateway: GatewayInfo
  readonly receivedAt: number
  /** The raw item, and where it sits in the body ("" for a single upload, "batches[3]" in bulk). */
  readonly item: unknown
  readonly at: string
  upload?: Upload
  admitted?: AdmittedBatch
  envelope?: EnvelopeBlock
  accepted?: Accepted
}

export type BatchStage = (s: BatchState) => void | Promise<void>

export const uploadRecord = (r: RecordSummary): UploadRecord => ({ id: r.id, stream: r.stream, seq: r.seq, commitment: r.commitment, block: r.block })

const field = (s: BatchState, f: string): string => (s.at ? `${s.at}.${f}` : f)

export function readItem(s: BatchState): void {
  s.upload = readUpload(s.item, s.at)
}

/** Which manifest field an admission refusal concerns. */
const ADMISSION_FIELDS: Record<string, string> = {
  GATEWAY_KEY: 'manifest.gateway',
  GATEWAY_KEY_MISMATCH: 'manifest.gateway',
  STREAM_ID: 'manifest.stream',
  SIGNATURE_ENCODING: 'signature',
  MANIFEST_SIGNATURE: 'signature',
}

/** manifest.gateway must be the gateway that signed the request. */
export function checkGatewayClaim(s: BatchState): void {
  const claimed = (s.upload!.manifest as { gateway?: unknown }).gateway
  if (typeof claimed === 'string' && claimed !== s.gateway.gatewayId) {
    throw new ApiError('INVALID_MANIFEST', `${field(s, 'manifest.gateway')}: ${claimed} is not the gateway that signed this request (${s.gateway.gatewayId})`, {
      field: field(s, 'manifest.gateway'),
      manifestGateway: claimed,
      gateway: s.gateway.gatewayId,
    })
  }
}

/** What the chain's admission (record.ts admitBatch) judges for this item. */
export const admissionInput = (s: BatchState): AppendInput => ({ manifest: s.upload!.manifest as never, signature: s.upload!.signature, gatewayKey: s.gateway.publicKey, receivedAt: s.receivedAt })

/** An admission refusal (CareLedgerError with info.reason) as the API answers it. */
export function admissionRefusal(s: BatchState, e: unknown): unknown {
  if (!isCareLedgerError(e)) return e
  const reason = String(e.info.reason ?? '')
  const problems = Array.isArray(e.info.problems) ? (e.info.problems as string[]) : undefined
  const f = field(s, ADMISSION_FIELDS[reason] ?? 'manifest')
  const message = reason === 'MANIFEST_SIGNATURE' ? `${f}: the gateway's Ed25519 signature over the manifest does not verify under its registered key` : `${f}: ${e.message.replace(/^append: /, '')}`
  return new ApiError('INVALID_MANIFEST', message, { field: f, reason: reason || 'SCHEMA', ...(problems ? { problems } : {}) })
}

export function checkManifest(s: BatchState): void {
  checkGatewayClaim(s)
  try {
    s.admitted = admitBatch(admissionInput(s))
  } catch (e) {
    throw admissionRefusal(s, e)
  }
}

export async function checkCar(s: BatchState): Promise<void> {
  const m = s.admitted!.manifest
  let root: CID
  try {
    root = CID.parse(m.cid)
  } catch (e) {
    throw new ApiError('INVALID_MANIFEST', `${field(s, 'manifest.cid')}: ${m.cid} is not a CID (${(e as Error).message})`, { field: field(s, 'manifest.cid') })
  }
  try {
    s.envelope = await verifyCar(s.upload!.car, root)
  } catch (e) {
    if (e instanceof ApiError && s.at) throw new ApiError(e.code, `${s.at}.${e.message}`, { ...e.details, field: field(s, 'car') })
    throw e
  }
  if (s.envelope.bytes.length !== m.size) {
    throw new ApiError('INVALID_MANIFEST', `${field(s, 'manifest.size')}: ${m.size} bytes, but the envelope ${m.cid} is ${s.envelope.bytes.length} bytes`, {
      field: field(s, 'manifest.size'),
      size: m.size,
      envelopeBytes: s.envelope.bytes.length,
    })
  }
}

export function checkPolicy(s: BatchState): void {
  checkPolicyOf(s.admitted!.manifest, s.envelope!.bytes, (f) => field(s, f))
}

export async function storeEnvelope(s: BatchState): Promise<void> {
  await s.ctx.blocks.put(s.envelope!.cid, s.envelope!.bytes)
}

/** Through the chain's group commit: concurrent uploads share one transaction, each answered on its own. */
export async function appendToChain(s: BatchState): Promise<void> {
  const a = s.admitted!
  let result: AppendResult
  try {
    // Already admitted: the store does not re-check it. Shared PostgreSQL chain: its own transaction per upload.
    result = s.ctx.backend.kind === 'postgres' ? await s.ctx.backend.appendBatch(a) : await s.ctx.appendQueue.append(a)
  } catch (e) {
    throw chainRefusal(s, e)
  }
  s.accepted = settle(s, result)
}

/** created / duplicate / conflict → the HTTP outcome (also used by the bulk path). */
export function settle(s: BatchState, result: AppendResult): Accepted {
  const m = s.admitted!.manifest
  const { ctx } = s
  if (result.status === 'conflict') {
    ctx.metrics.equivocations.inc()
    ctx.logger.warn(
      { event: 'equivocation', kind: 'conflict', gateway: m.gateway, stream: m.stream, seq: m.seq, existingRecord: result.existing.id, offered: s.admitted!.commitment },
      `gateway ${m.gateway} sent a different batch for ${m.stream}#${m.seq}, which record ${result.existing.id} holds`,
    )
    throw new ApiError('CONFLICT', `${field(s, 'manifest')}: stream ${m.stream} seq ${m.seq} is already held by another batch (record ${result.existing.id}); logged as an equivocation`, {
      ...(s.at ? { field: field(s, 'manifest') } : {}),
      stream: m.stream,
      seq: m.seq,
      existing: uploadRecord(result.existing),
    })
  }
  ctx.gateways.noteSync(s.gateway.gatewayId, s.receivedAt)
  if (result.status === 'created') ctx.ingestRate.add(s.receivedAt)
  return { status: result.status === 'created' ? 201 : 200, duplicate: result.status === 'duplicate', record: uploadRecord(result.record) }
}

/** A CareLedgerError from the chain's append as the API answers it. */
export function chainRefusal(s: BatchState, e: unknown): ApiError {
  if (!isCareLedgerError(e)) return e instanceof ApiError ? e : new ApiError('INTERNAL', 'internal error while appending to the chain (logged on the server)', {}, { cause: e })
  const m = s.admitted!.manifest
  const reason = String(e.info.reason ?? '')
  if (reason === 'PREV_MISMATCH' || reason === 'NEXT_MISMATCH') {
    s.ctx.metrics.equivocations.inc()
    s.ctx.logger.warn(
      { event: 'equivocation', kind: reason === 'PREV_MISMATCH' ? 'prev-mismatch' : 'next-mismatch', gateway: m.gateway, stream: m.stream, seq: m.seq, existingRecord: e.info.recordId },
      `gateway ${m.gateway}: ${e.message}`,
    )
    const f = field(s, reason === 'PREV_MISMATCH' ? 'manifest.prev' : 'manifest')
    return new ApiError('CONFLICT', `${f}: ${e.message}; logged as an equivocation`, { field: f, reason, stream: m.stream, seq: m.seq, recordId: e.info.recordId })
  }
  if (reason === 'STREAM_INDEX') return new ApiError('INTERNAL', 'internal error while appending to the chain (logged on the server)', {}, { cause: e })
  return new ApiError('INVALID_MANIFEST', `${field(s, 'manifest')}: ${e.message.replace(/^append: /, '')}`, { field: field(s, 'manifest'), reason })
}

export const batchStages: readonly BatchStage[] = [readItem, checkManifest, checkCar, checkPolicy, storeEnvelope, appendToChain]

/** After admission, before the chain append: the bulk path admits its items together (on the chain's worker threads), then these. */
export const afterAdmissionStages: readonly BatchStage[] = [checkCar, checkPolicy, storeEnvelope]

/** Everything before the chain append: the bulk path appends the survivors in one transaction. */
export const preAppendStages: readonly BatchStage[] = [readItem, checkManifest, ...afterAdmissionStages]

export async function runStages(s: BatchState, stages: readonly BatchStage[]): Promise<void> {
  for (const stage of stages) await stage(s)
}
