/**
 * The read API (docs/api.md §Endpoints): chain records (metadata only), a record with its
 * inclusion proof (RFC 9162 §2.1.3), envelopes for those who may decrypt them, blocks, streams
 * with their gaps, live counters, the latest chain verification, and /healthz.
 *
 * Lists are paged by cursor: `after` is the last id (height) of the previous page, `next` the
 * cursor of the following one (null on the last page); `limit` is 1–1000, default 100.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { CID } from 'multiformats/cid'
import type { RecordSummary } from '../chain/record.ts'
import type { ServiceContext } from './context.ts'
import { ApiError } from './errors.ts'
import { guard } from './guard.ts'
import { anchorHealth } from '../anchor/routes.ts'
import { isBlockOf } from './blockstore.ts'

const MAX_LIMIT = 1000
const DEFAULT_LIMIT = 100

type Query = Readonly<Record<string, string | string[] | undefined>>

function intParam(q: Query, name: string, opts: { min: number; max?: number }): number | undefined {
  const v = q[name]
  if (v === undefined || v === '') return undefined
  if (typeof v !== 'string' || !/^-?\d{1,16}$/.test(v)) throw new ApiError('INVALID_REQUEST', `${name}: must be an integer`, { field: name })
  const n = Number(v)
  if (n < opts.min || (opts.max !== undefined && n > opts.max)) {
    throw new ApiError('INVALID_REQUEST', `${name}: must be ${opts.max === undefined ? `at least ${opts.min}` : `between ${opts.min} and ${opts.max}`}`, { field: name })
  }
  return n
}

function idParam(raw: string, name: string): number {
  if (!/^\d{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new ApiError('INVALID_REQUEST', `${name}: must be a non-negative integer, got ${JSON.stringify(raw.slice(0, 40))}`, { field: name })
  return Number(raw)
}

export function registerReadRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  const chain = ctx.backend // SQLite or the shared PostgreSQL chain (cloud/store/chain-backend.ts)
  /** docs/api.md lists `redacted` with every record: true once an approved redaction changed it (the redaction log names it). */
  const recordJson = async <T extends RecordSummary>(r: T): Promise<T & { redacted: boolean }> => ({ ...r, redacted: await ctx.supervision.isRedacted(r.id) })
  /** A page of records, their `redacted` flags in one query. */
  const recordsJson = async <T extends RecordSummary>(rs: readonly T[]): Promise<(T & { redacted: boolean })[]> => {
    const redacted = await ctx.supervision.redactedAmong(rs.map((r) => r.id))
    return rs.map((r) => ({ ...r, redacted: redacted.has(r.id) }))
  }

  app.get('/healthz', async (_req, reply) => {
    const uptimeS = Math.round((ctx.now() - ctx.startedAt) / 1000)
    try {
      const s = await chain.stats()
      // Damaged envelope blocks are an alert, not an outage: the service still answers (200), "degraded".
      const damaged = await ctx.damage.open()
      const envelopes = { damaged: damaged.length, records: damaged.slice(0, 20).map((d) => d.recordId), lastScrubAt: (await ctx.damage.lastRun())?.finishedAt ?? null }
      return { status: damaged.length > 0 ? 'degraded' : 'ok', db: true, height: s.height, records: s.records, pendingRecords: s.pendingRecords, envelopes, uptimeS, anchor: await anchorHealth(ctx) }
    } catch (e) {
      ctx.logger.error({ event: 'health_db_failed', err: e }, 'health check: the database does not answer')
      return reply.code(503).send({ status: 'failing', db: false, height: null, records: null, uptimeS })
    }
  })

  // ── records ─────────────────────────────────────────────────────────────────────────────────
  app.get('/v1/records', { onRequest: guard(ctx, 'records') }, async (req) => {
    const q = req.query as Query
    const stream = q.stream
    if (stream !== undefined && (typeof stream !== 'string' || !/^[0-9a-f]{32}$/.test(stream))) {
      throw new ApiError('INVALID_REQUEST', 'stream: must be a stream id (32 lower-case hex digits)', { field: 'stream' })
    }
    const after = intParam(q, 'after', { min: 0 }) ?? 0
    const limit = intParam(q, 'limit', { min: 1, max: MAX_LIMIT }) ?? DEFAULT_LIMIT
    const records = await chain.listRecords({ ...(stream ? { stream } : {}), after, limit })
    return { records: await recordsJson(records), next: records.length === limit ? records.at(-1)!.id : null }
  })

  const recordOr404 = async (req: FastifyRequest) => {
    const id = idParam((req.params as { id: string }).id, 'id')
    const record = await chain.getRecord(id)
    if (!record) throw new ApiError('NOT_FOUND', `record ${id} does not exist`, { id })
    return record
  }

  app.get('/v1/records/:id', { onRequest: guard(ctx, 'records') }, async (req) => recordJson(await recordOr404(req)))

  app.get('/v1/records/:id/proof', { onRequest: guard(ctx, 'records') }, async (req) => {
    const record = await recordOr404(req)
    const proof = await chain.recordProof(record.id)
    if (!proof) {
      throw new ApiError('NOT_FOUND', `record ${record.id} is not sealed into a block yet (blocks are sealed every ${ctx.config.chain.blockIntervalMs / 1000} s); try again shortly`, {
        id: record.id,
        pending: true,
      })
    }
    return { ...proof, record: await recordJson(proof.record) }
  })

  app.get('/v1/records/:id/envelope', { onRequest: guard(ctx, 'envelope') }, async (req, reply: FastifyReply) => {
    const record = await recordOr404(req)
    const cid = CID.parse(record.cid)
    const bytes = await ctx.blocks.get(cid)
    if (!bytes) throw new ApiError('NOT_FOUND', `the envelope ${record.cid} of record ${record.id} is not in this cloud's blockstore`, { id: record.id, cid: record.cid })
    // Never hand out a damaged block as if it were the envelope (the scrub reports it; a gateway can resend it).
    if (!isBlockOf(cid, bytes)) throw new ApiError('DAMAGED', `the stored envelope ${record.cid} of record ${record.id} is damaged (it does not hash to its CID); the operators are alerted and a repair is underway`, { id: record.id, cid: record.cid })
    return reply
      .type('application/octet-stream')
      .header('x-careledger-cid', record.cid)
      .header('content-disposition', `attachment; filename="${record.cid}.envelope"`)
      .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  })

  // ── blocks ──────────────────────────────────────────────────────────────────────────────────
  app.get('/v1/blocks', { onRequest: guard(ctx, 'blocks') }, async (req) => {
    const q = req.query as Query
    const after = intParam(q, 'after', { min: -1 }) ?? -1
    const limit = intParam(q, 'limit', { min: 1, max: MAX_LIMIT }) ?? DEFAULT_LIMIT
    const blocks = await chain.listBlocks({ after, limit })
    return { blocks, next: blocks.length === limit ? blocks.at(-1)!.height : null }
  })

  app.get('/v1/blocks/:height', { onRequest: guard(ctx, 'blocks') }, async (req) => {
    const height = idParam((req.params as { height: string }).height, 'height')
    const block = await chain.getBlock(height)
    if (!block) throw new ApiError('NOT_FOUND', `block ${height} does not exist (height is ${(await chain.stats()).height})`, { height })
    return block
  })

  // ── streams, stats, verification ────────────────────────────────────────────────────────────
  app.get('/v1/streams', { onRequest: guard(ctx, 'streams') }, async () => ({ streams: await chain.listStreams() }))

  app.get('/v1/stats', { onRequest: guard(ctx, 'stats') }, async () => {
    const s = await chain.stats()
    const g = await ctx.gateways.counts()
    const v = await ctx.verification.latest()
    return {
      records: s.records,
      pendingRecords: s.pendingRecords,
      blocks: s.blocks,
      height: s.height,
      gateways: g.live,
      streams: s.streams,
      gaps: s.gaps,
      missingBatches: s.missingBatches,
      equivocations: s.equivocations,
      damagedEnvelopes: await ctx.damage.openCount(),
      batchesPerSecond: Math.round(ctx.ingestRate.perSecond(ctx.now()) * 100) / 100,
      lastBlockTime: s.lastBlockTime,
      verification: v ? { ok: v.ok, checkedAt: v.checkedAt } : null,
      uptimeS: Math.round((ctx.now() - ctx.startedAt) / 1000),
    }
  })

  app.get('/v1/chain/verification', { onRequest: guard(ctx, 'verification') }, async () => {
    const v = await ctx.verification.latest()
    if (!v) {
      throw new ApiError('NOT_FOUND', ctx.config.chain.verifyIntervalMs > 0 ? 'no chain verification has finished yet (the first one starts with the service)' : 'periodic chain verification is disabled (CARELEDGER_CLOUD_VERIFY_INTERVAL_S=0)', {})
    }
    return v
  })
}
