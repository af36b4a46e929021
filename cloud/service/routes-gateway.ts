/**
 * The instruction channel and block repair (docs/api.md §Instructions to gateways):
 *
 *   GET  /v1/gateways/self/instructions           gateway-signed: the gateway's pending instructions, signed by the cloud
 *   POST /v1/gateways/self/instructions/{id}/ack  gateway-signed, JSON {status, detail}: done, failed or unsupported
 *   PUT  /v1/envelopes/{cid}                      gateway-signed, the block's bytes: a good copy of a damaged envelope
 *   GET  /v1/envelopes/damaged                    admin, regulator: what the blockstore scrub found, and the repairs
 *
 * The signed routes run in a scope of their own (signed-scope.ts: the signature is checked before
 * any body byte is read).
 */
import type { FastifyInstance } from 'fastify'
import { CID } from 'multiformats/cid'
import { AckSchema } from '../../shared/protocol/instructions.ts'
import type { ServiceContext } from './context.ts'
import { ApiError } from './errors.ts'
import { guard } from './guard.ts'
import { isBlockOf } from './blockstore.ts'
import { signedBody, useSignedRequests } from './signed-scope.ts'

const ACK_BYTES = 4096

function parseAck(body: Buffer, contentType: string | undefined) {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  if (type !== 'application/json') throw new ApiError('INVALID_REQUEST', `content-type: ${type ? `"${type}"` : 'missing'}; an acknowledgement is application/json`, { field: 'content-type' })
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body))
  } catch (e) {
    throw new ApiError('INVALID_REQUEST', `body: not JSON (${(e as Error).message})`, { field: 'body' })
  }
  const ack = AckSchema.safeParse(value)
  if (!ack.success) {
    const i = ack.error.issues[0]!
    throw new ApiError('INVALID_REQUEST', `body.${i.path.join('.') || ''}: ${i.message} (an acknowledgement is {"status": "done"|"failed"|"unsupported", "detail"?: "…"})`, { field: `body.${i.path.join('.')}` })
  }
  return ack.data
}

function parseCid(raw: string): CID {
  try {
    return CID.parse(raw)
  } catch (e) {
    throw new ApiError('INVALID_REQUEST', `cid: ${JSON.stringify(raw.slice(0, 80))} is not a CID (${(e as Error).message})`, { field: 'cid' })
  }
}

/** The signed routes: register inside their own scope. */
export function registerGatewayChannelRoutes(scope: FastifyInstance, ctx: ServiceContext): void {
  useSignedRequests(scope, ctx)

  scope.get('/v1/gateways/self/instructions', { bodyLimit: 1024 }, async (req) => {
    const { gateway } = await signedBody(ctx, req)
    return { instructions: await ctx.instructions.deliver(gateway.gatewayId, ctx.now()) }
  })

  scope.post('/v1/gateways/self/instructions/:id/ack', { bodyLimit: ACK_BYTES }, async (req) => {
    const { gateway, body } = await signedBody(ctx, req)
    const raw = (req.params as { id: string }).id
    if (!/^[1-9][0-9]{0,15}$/.test(raw)) throw new ApiError('INVALID_REQUEST', `id: must be an instruction id (a positive integer), got ${JSON.stringify(raw.slice(0, 40))}`, { field: 'id' })
    const ack = parseAck(body, req.headers['content-type'])
    const result = await ctx.instructions.acknowledge(gateway.gatewayId, Number(raw), ack, ctx.now())
    if (!result) throw new ApiError('NOT_FOUND', `gateway ${gateway.gatewayId} has no instruction ${raw}`, { id: Number(raw) })
    const { row, repeated } = result
    if (!repeated) {
      const level = row.state === 'done' ? 'info' : 'warn'
      ctx.logger[level]({ event: 'instruction_acknowledged', gateway: gateway.gatewayId, id: row.id, kind: row.kind, state: row.state, detail: row.detail }, `gateway ${gateway.gatewayId}: instruction ${row.id} (${row.kind}) ${row.state}`)
    }
    return { instruction: { id: row.id, kind: row.kind, state: row.state, ackedAt: row.ackedAt, detail: row.detail }, repeated }
  })

  scope.put('/v1/envelopes/:cid', { bodyLimit: ctx.config.limits.bulkBytes }, async (req) => {
    const { gateway, body } = await signedBody(ctx, req)
    const cid = parseCid((req.params as { cid: string }).cid)
    const id = cid.toString()
    const records = await ctx.backend.recordsWithEnvelope(id, gateway.gatewayId)
    if (records.length === 0) throw new ApiError('NOT_FOUND', `no record of gateway ${gateway.gatewayId} has envelope ${id}`, { cid: id })
    if (!isBlockOf(cid, body)) throw new ApiError('INVALID_REQUEST', `body: its ${body.length} bytes do not hash to ${id} (sha2-256)`, { field: 'body', cid: id })
    const before = await ctx.blocks.check(cid)
    if (before.state === 'ok') return { cid: id, records, repaired: false, state: 'intact' }
    await ctx.blocks.replace(cid, body)
    const after = await ctx.blocks.check(cid)
    if (after.state !== 'ok') throw new ApiError('INTERNAL', `the repaired block ${id} does not read back intact (${after.detail})`, { cid: id })
    const now = ctx.now()
    await ctx.damage.repaired(id, `resent by gateway ${gateway.gatewayId}`, now)
    ctx.metrics.envelopesRepaired.inc()
    ctx.metrics.envelopesDamaged.set(await ctx.damage.openCount())
    ctx.logger.warn({ event: 'envelope_repaired', gateway: gateway.gatewayId, cid: id, records, was: before.state }, `envelope ${id} (records ${records.join(', ')}) repaired from gateway ${gateway.gatewayId}`)
    ctx.onDamageChange?.()
    return { cid: id, records, repaired: true, state: 'intact' }
  })
}

/** The people's view of the damage (admin, regulator). */
export function registerDamageRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  app.get('/v1/envelopes/damaged', { onRequest: guard(ctx, 'verification') }, async () => {
    const damaged = await Promise.all(
      (await ctx.damage.recent()).map(async (d) => {
        const ins = await ctx.instructions.latest('resend-block', d.cid)
        return { ...d, resend: ins ? { id: ins.id, gateway: ins.gatewayId, state: ins.state, deliveries: ins.deliveries, detail: ins.detail } : null }
      }),
    )
    return { open: await ctx.damage.openCount(), lastScrub: await ctx.damage.lastRun(), scrubIntervalS: ctx.config.chain.scrubIntervalMs / 1000, damaged }
  })
}
