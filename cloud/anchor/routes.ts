/**
 * GET /v1/anchors (docs/api.md): the anchoring status — state, the newest confirmed anchor, the
 * one in flight, the last RPC error — and the anchors this cloud made, newest first, each with
 * its block-explorer link. Paged by `before` (an anchor id; `next` is the cursor of the next page).
 */
import type { FastifyInstance } from 'fastify'
import type { ServiceContext } from '../service/context.ts'
import { ApiError } from '../service/errors.ts'
import { guard } from '../service/guard.ts'
import { AnchorStore } from './store.ts'
import { ANCHORING_OFF, anchorView } from './view.ts'

type Query = Readonly<Record<string, string | string[] | undefined>>

function int(q: Query, name: string, min: number, max: number): number | undefined {
  const v = q[name]
  if (v === undefined || v === '') return undefined
  if (typeof v !== 'string' || !/^\d{1,16}$/.test(v) || Number(v) < min || Number(v) > max) throw new ApiError('INVALID_REQUEST', `${name}: must be an integer between ${min} and ${max}`, { field: name })
  return Number(v)
}

export function registerAnchorRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  const store = ctx.anchor?.store ?? ctx.anchors ?? new AnchorStore(ctx.db)
  app.get('/v1/anchors', { onRequest: guard(ctx, 'anchors') }, async (req) => {
    const q = req.query as Query
    const before = int(q, 'before', 1, Number.MAX_SAFE_INTEGER)
    const limit = int(q, 'limit', 1, 1000) ?? 100
    const rows = await store.list({ ...(before === undefined ? {} : { before }), limit })
    const config = ctx.anchor?.config ?? ctx.config.anchor
    return {
      status: ctx.anchor ? await ctx.anchor.status() : ANCHORING_OFF,
      anchors: rows.map((r) => anchorView(r, config)),
      next: rows.length === limit ? rows.at(-1)!.id : null,
    }
  })
}

/** The short anchoring summary of GET /healthz (anchoring never makes the cloud unhealthy). */
export async function anchorHealth(ctx: ServiceContext): Promise<object> {
  if (!ctx.anchor) return ANCHORING_OFF
  const s = await ctx.anchor.status()
  const a = s.latest
  return {
    state: s.state,
    height: a?.height ?? null,
    tx: a?.tx ?? null,
    confirmations: s.pending?.confirmations ?? a?.confirmations ?? null,
    pending: s.pending ? { height: s.pending.height, tx: s.pending.tx, confirmations: s.pending.confirmations } : null,
    lagBlocks: s.lagBlocks,
    lastError: s.lastError,
    consecutiveFailures: s.consecutiveFailures,
  }
}
