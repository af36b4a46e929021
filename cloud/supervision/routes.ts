/**
 * The supervision endpoints (docs/api.md §Supervision). JSON in and out; binary fields hex or
 * base64 as named. Every refusal of the workflow (cloud/supervision/store.ts) answers 400/409 with
 * the reason in `details.reason`, and is logged there.
 *
 *   GET  /v1/supervision/policy                       any token
 *   PUT  /v1/supervision/policy                       admin      (the policy `regulator setup` wrote)
 *   POST /v1/supervision/requests                     doctor, admin (signed by the requester's wallet)
 *   GET  /v1/supervision/requests[?status=]           regulator, admin, doctor
 *   GET  /v1/supervision/requests/:id                 regulator, admin, doctor
 *   POST /v1/supervision/requests/:id/withdraw        doctor, admin (the requester)
 *   POST /v1/supervision/requests/:id/decisions       regulator  (EIP-712 signed approval or rejection)
 *   POST /v1/supervision/requests/:id/commitments     regulator  (FROST round one)
 *   POST /v1/supervision/requests/:id/shares          regulator  (FROST round two; the k-th applies)
 *   POST /v1/supervision/requests/:id/restart         regulator  (abandon the FROST session: fresh nonces)
 *   POST /v1/supervision/requests/:id/opening         regulator  (1 of 1: the adapted opening)
 *   GET  /v1/supervision/log                          admin, regulator, researcher
 *   GET  /v1/supervision/refusals                     admin, regulator
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { CID } from 'multiformats/cid'
import { hexToBytes } from '@noble/hashes/utils.js'
import { isCareLedgerError } from '../../shared/errors.ts'
import type { ServiceContext } from '../service/context.ts'
import { ApiError } from '../service/errors.ts'
import { guard } from '../service/guard.ts'
import type { Applied, RequestStatus } from './store.ts'

const hexN = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `must be ${bytes * 2} lower-case hex digits`)
const base64 = z.string().max(12 * 1024 * 1024).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64')

const NewRequestBody = z.strictObject({
  /** The record; or `logEntry` (a redaction log entry's seq), which is always refused. */
  record: z.number().int().min(1).optional(),
  logEntry: z.number().int().min(1).optional(),
  action: z.enum(['correct', 'delete']),
  reason: z.string().min(1).max(2000),
  manifest: z.record(z.string(), z.unknown()).optional(),
  envelope: base64.optional(),
  evidence: base64.optional(),
  /** The requester's EIP-712 signature over the request (shared/protocol/supervision-request.ts): required. */
  requesterSignature: z.record(z.string(), z.unknown(), { error: 'required: the requester signs the request (EIP-712, docs/api.md §Supervision)' }),
})
const CommitmentBody = z.strictObject({ index: z.number().int().min(1).max(255), hiding: hexN(32), binding: hexN(32) })
const ShareBody = z.strictObject({ index: z.number().int().min(1).max(255), share: hexN(32) })
const OpeningBody = z.strictObject({ opening: hexN(64) })

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body)
  if (!r.success) {
    const issue = r.error.issues[0]!
    const field = issue.path.join('.') || 'body'
    throw new ApiError('INVALID_REQUEST', `${field}: ${issue.message}`, { field })
  }
  return r.data
}

const who = (req: FastifyRequest): string => `${req.principal!.name} (${req.principal!.role})`

/** The workflow's typed refusals as API errors (400; a stale state 409). */
async function run<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f()
  } catch (e) {
    if (!isCareLedgerError(e)) throw e
    const reason = String((e.info as { reason?: unknown }).reason ?? e.code)
    const conflict = ['PENDING_REQUEST', 'NOT_PENDING', 'SIGNERS_FIXED', 'RECORD_CHANGED', 'ALREADY_DELETED'].includes(reason)
    if (reason === 'UNKNOWN_REQUEST') throw new ApiError('NOT_FOUND', e.message, { reason })
    throw new ApiError(conflict ? 'CONFLICT' : 'INVALID_REQUEST', e.message, { reason, ...e.info })
  }
}

/** After applying: the new envelope in, the old ciphertext out of the blockstore, the gateway told. */
export async function afterApplied(ctx: ServiceContext, a: Applied): Promise<void> {
  // replace, not put: the record committing to it is already committed, so the block must be durable now.
  if (a.newCid && a.newEnvelope) await ctx.blocks.replace(CID.parse(a.newCid), a.newEnvelope)
  if (a.oldCid) {
    await ctx.blocks.delete(CID.parse(a.oldCid))
    await ctx.instructions.issue(a.gateway, 'delete-batch', a.oldCid, { cid: a.oldCid, record: a.request.record, stream: a.stream, seq: a.seq, expiresAt: ctx.now() + DELETE_INSTRUCTION_TTL_MS }, ctx.now())
  }
  ctx.logger.info({ event: 'redaction_applied', request: a.request.id, record: a.request.record, action: a.request.action, logSeq: a.logSeq }, `redaction of record ${a.request.record} applied`)
}

/** A destructive instruction a gateway carries out only until this long after it was issued. */
export const DELETE_INSTRUCTION_TTL_MS = 30 * 24 * 3600_000

export function registerSupervisionRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  const sup = ctx.supervision
  const id = (req: FastifyRequest): string => (req.params as { id: string }).id

  app.get('/v1/supervision/policy', { onRequest: guard(ctx, 'openapi') }, async () => ({ policy: await sup.policy() }))
  app.put('/v1/supervision/policy', { onRequest: guard(ctx, 'supervisionAdmin') }, async (req) => ({ policy: await run(() => sup.setPolicy((req.body as { policy?: unknown })?.policy, who(req))) }))

  app.post('/v1/supervision/requests', { onRequest: guard(ctx, 'supervisionRequest'), bodyLimit: 16 * 1024 * 1024 }, async (req, reply) => {
    const b = parse(NewRequestBody, req.body)
    const r = await run(() =>
      sup.createRequest({
        record: b.record ?? 0,
        logEntry: b.logEntry,
        action: b.action,
        reason: b.reason,
        requester: who(req),
        manifest: b.manifest,
        envelope: b.envelope === undefined ? undefined : new Uint8Array(Buffer.from(b.envelope, 'base64')),
        evidence: b.evidence === undefined ? undefined : new Uint8Array(Buffer.from(b.evidence, 'base64')),
        signed: b.requesterSignature,
      }),
    )
    if (r.newCid && b.envelope) {
      const cid = CID.parse(r.newCid)
      const { isBlockOf } = await import('../service/blockstore.ts')
      if (!isBlockOf(cid, Buffer.from(b.envelope, 'base64'))) {
        await run(() => sup.withdraw(r.id, who(req)))
        throw new ApiError('INVALID_REQUEST', `envelope: its bytes do not hash to the manifest's CID ${r.newCid}`, { field: 'envelope' })
      }
    }
    return reply.code(201).send({ request: r })
  })
  app.get('/v1/supervision/requests', { onRequest: guard(ctx, 'supervisionRead') }, async (req) => {
    const status = (req.query as { status?: string }).status
    if (status !== undefined && !['pending', 'applied', 'rejected', 'withdrawn'].includes(status)) throw new ApiError('INVALID_REQUEST', 'status: expected pending, applied, rejected or withdrawn', { field: 'status' })
    return { requests: await sup.listRequests({ status: status as RequestStatus | undefined }) }
  })
  app.get('/v1/supervision/requests/:id', { onRequest: guard(ctx, 'supervisionRead') }, async (req) => {
    const r = await sup.getRequest(id(req))
    if (!r) throw new ApiError('NOT_FOUND', `no supervision request ${id(req)}`)
    return { request: r }
  })
  app.post('/v1/supervision/requests/:id/withdraw', { onRequest: guard(ctx, 'supervisionRequest') }, async (req) => ({
    request: await run(() => sup.withdraw(id(req), who(req), { admin: req.principal!.role === 'admin' })),
  }))
  app.post('/v1/supervision/requests/:id/decisions', { onRequest: guard(ctx, 'supervisionDecide') }, async (req) => ({ request: await run(() => sup.decide(id(req), req.body, who(req))) }))
  app.post('/v1/supervision/requests/:id/commitments', { onRequest: guard(ctx, 'supervisionDecide') }, async (req) => {
    const b = parse(CommitmentBody, req.body)
    return { request: await run(() => sup.commit(id(req), { index: b.index, hiding: hexToBytes(b.hiding), binding: hexToBytes(b.binding) }, who(req))) }
  })
  app.post('/v1/supervision/requests/:id/shares', { onRequest: guard(ctx, 'supervisionDecide') }, async (req) => {
    const b = parse(ShareBody, req.body)
    const out = await run(() => sup.share(id(req), { index: b.index, share: hexToBytes(b.share) }, who(req)))
    if (out.applied) await afterApplied(ctx, out.applied)
    return { request: out.request, entry: out.applied?.entry ?? null }
  })
  app.post('/v1/supervision/requests/:id/restart', { onRequest: guard(ctx, 'supervisionDecide') }, async (req) => ({ request: await run(() => sup.restart(id(req), who(req))) }))
  app.post('/v1/supervision/requests/:id/opening', { onRequest: guard(ctx, 'supervisionDecide') }, async (req) => {
    const b = parse(OpeningBody, req.body)
    const applied = await run(() => sup.submitOpening(id(req), hexToBytes(b.opening), who(req)))
    await afterApplied(ctx, applied)
    return { request: applied.request, entry: applied.entry }
  })
  app.get('/v1/supervision/log', { onRequest: guard(ctx, 'supervisionLog') }, async () => ({ entries: await sup.redactionLog() }))
  app.get('/v1/supervision/refusals', { onRequest: guard(ctx, 'verification') }, async () => ({ refusals: await sup.refusals() }))
}
