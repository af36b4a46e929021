/**
 * The blockstore scrub (docs/operations.md §Blockstore scrub and repair), every
 * CARELEDGER_CLOUD_SCRUB_INTERVAL_S:
 *
 *   scrubStages = [scan, recordDamage, askGateways, alert]
 *
 *   scan          every record's envelope block re-hashed against its CID, on a read snapshot of
 *                 its own (chain/verify-envelopes.ts); ingest continues meanwhile
 *   recordDamage  envelope-damage.ts: new damage opened, damage found intact again closed
 *   askGateways   for each open damage, a `resend-block` instruction to the gateway that uploaded
 *                 the record (idempotent: one pending per gateway and CID; not again once the
 *                 gateway answered that it cannot); withdrawn once intact
 *   alert         metrics, an error log line naming the records, and — when anything changed — a
 *                 verification run now, so GET /v1/chain/verification names the records at once
 *
 * On PostgreSQL the records are paged from the shared chain and the damage log is shared
 * (cloud/store/pg/damage.ts); the runtime runs the scrub on the sealer lease holder only.
 */
import Database from 'better-sqlite3'
import { existsSync } from 'node:fs'
import { envelopeChecker, scanEnvelopes, type EnvelopeScan } from '../chain/verify-envelopes.ts'
import type { ServiceContext } from './context.ts'
import type { Damage } from './envelope-damage.ts'

export interface ScrubResult {
  readonly scan: EnvelopeScan
  readonly found: readonly Damage[]
  readonly healed: readonly Damage[]
  readonly open: number
}

interface ScrubState {
  readonly ctx: ServiceContext
  readonly now: number
  readonly signal?: AbortSignal
  scan?: EnvelopeScan
  found?: Damage[]
  healed?: Damage[]
}

async function scan(s: ScrubState): Promise<void> {
  const opts = s.signal ? { signal: s.signal } : {}
  if (s.ctx.backend.kind === 'postgres') {
    // The shared chain, a page at a time (records only ever gain rows; a redaction's tombstone drops out).
    s.scan = await scanEnvelopes((after, limit) => s.ctx.backend.envelopeRefs(after, limit), (cid) => s.ctx.blocks.check(cid), opts)
    return
  }
  const conn = new Database(s.ctx.config.paths.db, { readonly: true, fileMustExist: true })
  try {
    conn.pragma('busy_timeout = 5000')
    conn.exec('BEGIN')
    // Rows read in the same snapshot as the record list; blocks stored as files before the table too.
    const legacyDir = existsSync(s.ctx.config.paths.blocks) ? s.ctx.config.paths.blocks : null
    s.scan = await scanEnvelopes(conn, envelopeChecker(conn, legacyDir), opts)
    conn.exec('COMMIT')
  } finally {
    conn.close()
  }
}

async function recordDamage(s: ScrubState): Promise<void> {
  const { found, healed } = await s.ctx.damage.record(s.scan!, s.now)
  s.found = found
  s.healed = healed
}

async function askGateways(s: ScrubState): Promise<void> {
  const { ctx } = s
  for (const d of await ctx.damage.open()) {
    if (!(await ctx.gateways.live(d.gatewayId))) continue // revoked: it cannot fetch instructions; restore from a backup
    // A gateway that already answered it cannot (NOT_HELD, unsupported) for this damage is not asked again.
    const last = await ctx.instructions.latest('resend-block', d.cid)
    if (last && last.gatewayId === d.gatewayId && (last.state === 'failed' || last.state === 'unsupported') && last.issuedAt >= d.detectedAt) continue
    await ctx.instructions.issue(d.gatewayId, 'resend-block', d.cid, { cid: d.cid, record: d.recordId }, s.now)
  }
  for (const d of s.healed!) await ctx.instructions.cancel(d.gatewayId, 'resend-block', d.cid, 'the block was found intact by the scrub', s.now)
}

async function alert(s: ScrubState): Promise<void> {
  const { ctx } = s
  const open = await ctx.damage.open()
  ctx.metrics.envelopesDamaged.set(open.length)
  ctx.metrics.scrubTime.set(s.now / 1000)
  ctx.metrics.scrubSeconds.observe(s.scan!.durationMs / 1000)
  if (s.found!.length > 0) {
    ctx.logger.error(
      { event: 'envelope_damaged', records: s.found!.map((d) => d.recordId).slice(0, 100), cids: s.found!.map((d) => d.cid).slice(0, 20), open: open.length },
      `ENVELOPE BLOCKS DAMAGED: records ${s.found!.map((d) => d.recordId).slice(0, 20).join(', ')}${s.found!.length > 20 ? ', …' : ''}; a resend was asked of their gateways (docs/operations.md §Blockstore scrub and repair)`,
    )
  }
  if (s.healed!.length > 0) ctx.logger.info({ event: 'envelope_intact_again', records: s.healed!.map((d) => d.recordId).slice(0, 100) }, 'envelope blocks found intact again')
  ctx.logger.info({ event: 'scrub_done', checked: s.scan!.checked, bytes: s.scan!.bytes, damaged: open.length, ms: s.scan!.durationMs }, 'blockstore scrubbed')
}

const scrubStages: readonly ((s: ScrubState) => void | Promise<void>)[] = [scan, recordDamage, askGateways, alert]

/** One scrub; `onChange` runs when damage was found or healed (the runtime re-verifies then). */
export async function scrubBlockstore(ctx: ServiceContext, opts: { signal?: AbortSignal; onChange?: () => unknown } = {}): Promise<ScrubResult> {
  const s: ScrubState = { ctx, now: ctx.now(), ...(opts.signal ? { signal: opts.signal } : {}) }
  for (const stage of scrubStages) await stage(s)
  if (s.found!.length > 0 || s.healed!.length > 0) await opts.onChange?.()
  return { scan: s.scan!, found: s.found!, healed: s.healed!, open: await ctx.damage.openCount() }
}
