/**
 * Batch upload (docs/api.md §POST /v1/batches, §POST /v1/batches/bulk), gateway-signed.
 *
 *   onRequest              signed-scope.ts: declared length within the limit, request signature
 *                          (version 2), bytes in flight — before any body byte is read
 *   POST /v1/batches       ingestStages = [authenticateGateway, parseBody], then the batch through
 *                          batchStages (ingest.ts)
 *   POST /v1/batches/bulk  bulkStages = [authenticateGateway, parseBulkBody], then judgeEach: every
 *                          batch read and admitted (all at once, on the chain's worker threads),
 *                          then through afterAdmissionStages, the survivors appended in one transaction
 *
 * authenticateGateway checks the body against its signed Content-Digest; parseBody insists on
 * `Content-Type: application/cbor` once the request is known to come from a gateway.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { GatewayInfo } from '../access/gateways.ts'
import type { BulkAppendResult } from '../chain/store.ts'
import type { ServiceContext } from './context.ts'
import { ApiError, isApiError } from './errors.ts'
import { admissionInput, admissionRefusal, afterAdmissionStages, batchStages, chainRefusal, checkGatewayClaim, checkManifest, readItem, runStages, settle, type Accepted, type BatchState } from './ingest.ts'
import { outcomeError } from '../chain/sync-pool.ts'
import { decodeBody, readBulk } from './upload.ts'
import { signedBody, useSignedRequests } from './signed-scope.ts'
import type { CanonicalValue } from '../../shared/encoding/canonical.ts'

interface RequestState {
  readonly ctx: ServiceContext
  readonly req: FastifyRequest
  readonly receivedAt: number
  gateway?: GatewayInfo
  body?: CanonicalValue
  items?: readonly unknown[]
}

type RequestStage = (r: RequestState) => void | Promise<void>

const EMPTY = Buffer.alloc(0)
/** Bulk items checked and stored at once before the chain append. */
const PRE_APPEND_CONCURRENCY = 32

async function authenticateGateway(r: RequestState): Promise<void> {
  r.gateway = (await signedBody(r.ctx, r.req)).gateway
}

function parseBody(r: RequestState): void {
  const type = (r.req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
  if (type !== 'application/cbor') {
    throw new ApiError('INVALID_REQUEST', `content-type: ${type ? `"${type}"` : 'missing'}; batch uploads are application/cbor (canonical CBOR, RFC 8949 §4.2.1)`, { field: 'content-type' })
  }
  r.body = decodeBody((r.req.body as Buffer | undefined) ?? EMPTY)
}

function parseBulkBody(r: RequestState): void {
  parseBody(r)
  r.items = readBulk(r.body!, r.ctx.config.limits.bulkBatches)
}

const ingestStages: readonly RequestStage[] = [authenticateGateway, parseBody]
const bulkStages: readonly RequestStage[] = [authenticateGateway, parseBulkBody]

export interface BulkResult {
  readonly status: number
  readonly record: Accepted['record'] | null
  readonly error: ReturnType<ApiError['toJSON']> | null
}

/** A refused item's answer, or rethrow what is not an API refusal. */
function refusal(e: unknown): BulkResult {
  if (!isApiError(e)) throw e
  return { status: e.status, record: null, error: e.toJSON() }
}

/**
 * Each item read and admitted, all admissions at once (the chain's worker threads share the schema
 * and Ed25519 checks with this thread, where the backend offers it), then through the rest of the
 * pre-append stages; the survivors appended in one transaction, in order.
 */
async function judgeEach(r: RequestState): Promise<BulkResult[]> {
  const { ctx } = r
  const states: BatchState[] = r.items!.map((item, i) => ({ ctx, gateway: r.gateway!, receivedAt: r.receivedAt, item, at: `batches[${i}]` }))
  const results: (BulkResult | null)[] = new Array(states.length).fill(null)
  const admitMany = ctx.backend.admitBatches?.bind(ctx.backend)
  const toAdmit: number[] = []
  states.forEach((s, i) => {
    try {
      readItem(s)
      if (!admitMany) return checkManifest(s)
      checkGatewayClaim(s)
      toAdmit.push(i)
    } catch (e) {
      results[i] = refusal(e)
    }
  })
  if (admitMany && toAdmit.length > 0) {
    const outcomes = await admitMany(toAdmit.map((i) => admissionInput(states[i]!)))
    toAdmit.forEach((i, k) => {
      const o = outcomes[k]!
      if ('ok' in o) states[i]!.admitted = o.ok
      else results[i] = refusal(admissionRefusal(states[i]!, outcomeError(o)))
    })
  }
  // The stages after admission touch no chain state, so items overlap their disk waits (the
  // envelope fsyncs); the chain then judges them strictly in order.
  for (let from = 0; from < states.length; from += PRE_APPEND_CONCURRENCY) {
    await Promise.all(
      states.slice(from, from + PRE_APPEND_CONCURRENCY).map(async (s, k) => {
        if (results[from + k] !== null) return
        try {
          await runStages(s, afterAdmissionStages)
        } catch (e) {
          results[from + k] = refusal(e)
        }
      }),
    )
  }
  const survivors = states.filter((_, i) => results[i] === null)
  let appended: BulkAppendResult[] = []
  if (survivors.length > 0) {
    appended = await ctx.backend.appendBatches(survivors.map((s) => s.admitted!))
  }
  let next = 0
  return results.map((done, i) => {
    if (done) return done
    const s = states[i]!
    const result = appended[next++]!
    try {
      if (result.status === 'rejected') throw chainRefusal(s, result.error)
      const ok = settle(s, result)
      return { status: ok.status, record: ok.record, error: null }
    } catch (e) {
      if (!isApiError(e)) throw e
      return { status: e.status, record: null, error: e.toJSON() }
    }
  })
}

function outcome(ctx: ServiceContext, status: number, code?: string): void {
  ctx.metrics.batches.inc({ outcome: status === 201 ? 'created' : status === 200 ? 'duplicate' : (code ?? String(status)) })
}

export function registerIngestRoutes(scope: FastifyInstance, ctx: ServiceContext): void {
  useSignedRequests(scope, ctx)

  scope.post('/v1/batches', { bodyLimit: ctx.config.limits.batchBytes }, async (req, reply) => {
    const r: RequestState = { ctx, req, receivedAt: ctx.now() }
    for (const stage of ingestStages) await stage(r)
    const s: BatchState = { ctx, gateway: r.gateway!, receivedAt: r.receivedAt, item: r.body, at: '' }
    try {
      await runStages(s, batchStages)
    } catch (e) {
      if (isApiError(e)) outcome(ctx, e.status, e.code)
      throw e
    }
    const ok = s.accepted!
    outcome(ctx, ok.status)
    return reply.code(ok.status).send({ record: ok.record, duplicate: ok.duplicate })
  })

  scope.post('/v1/batches/bulk', { bodyLimit: ctx.config.limits.bulkBytes }, async (req, reply) => {
    const r: RequestState = { ctx, req, receivedAt: ctx.now() }
    for (const stage of bulkStages) await stage(r)
    const results = await judgeEach(r)
    for (const x of results) outcome(ctx, x.status, x.error?.code)
    const created = results.filter((x) => x.status === 201).length
    ctx.logger.info({ event: 'bulk_ingest', gateway: r.gateway!.gatewayId, batches: results.length, created, refused: results.filter((x) => x.status >= 400).length }, 'bulk upload judged')
    // A hint for the gateway: instructions wait for it (docs/api.md §Instructions to gateways).
    return reply.code(200).send({ results, instructions: await ctx.instructions.pendingCount(r.gateway!.gatewayId) })
  })
}
