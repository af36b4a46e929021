/**
 * Gateway enrolment and the gateway list (docs/api.md §POST /v1/gateways/register, §GET /v1/gateways).
 *
 *   registerStages = [parseRegistration, redeemInvite, answerWithCloudKeys]
 */
import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import { hexToBytes } from '@noble/hashes/utils.js'
import type { ServiceContext } from './context.ts'
import { ApiError } from './errors.ts'
import { guard } from './guard.ts'
import { gatewayJson } from '../access/gateways.ts'
import { publicKeysHex } from '../keys.ts'

const Registration = z.strictObject({
  token: z.string().min(1, 'must be the cle_… enrolment token'),
  publicKey: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits (an Ed25519 public key)'),
  name: z.string().min(1, 'must be the name the gateway was invited under'),
})

function parseRegistration(body: unknown): z.infer<typeof Registration> {
  const r = Registration.safeParse(body)
  if (!r.success) {
    const issue = r.error.issues[0]!
    const field = issue.path.join('.') || 'body'
    throw new ApiError('INVALID_REQUEST', `${field}: ${issue.code === 'invalid_type' && issue.path.length === 0 ? 'expected a JSON object {token, publicKey, name}' : issue.message}`, { field })
  }
  return r.data
}

export function registerAccessRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  app.post('/v1/gateways/register', { bodyLimit: 16 * 1024 }, async (req, reply) => {
    const reg = parseRegistration(req.body)
    const result = await ctx.enrolment.redeem({ token: reg.token, publicKey: hexToBytes(reg.publicKey), name: reg.name }, ctx.now())
    if (!result.ok) {
      switch (result.reason) {
        case 'BAD_TOKEN':
          throw new ApiError('UNAUTHENTICATED', result.message, { field: 'token' })
        case 'BAD_REQUEST':
          throw new ApiError('INVALID_REQUEST', result.message, { field: result.field })
        case 'ALREADY_REGISTERED':
          throw new ApiError('CONFLICT', result.message, {})
      }
    }
    const g = result.gateway
    ctx.logger.info({ event: 'gateway_registered', gatewayId: g.gatewayId, name: g.name }, `gateway ${g.name} (${g.gatewayId}) registered`)
    return reply.code(201).send({ gatewayId: g.gatewayId, name: g.name, cloud: publicKeysHex(ctx.keys) })
  })

  app.get('/v1/gateways', { onRequest: guard(ctx, 'gateways') }, async () => {
    const batches = new Map<string, number>()
    for (const s of await ctx.backend.listStreams()) batches.set(s.gateway, (batches.get(s.gateway) ?? 0) + s.batches)
    return { gateways: (await ctx.gateways.list()).map((g) => ({ ...gatewayJson(g), batches: batches.get(g.gatewayId) ?? 0 })) }
  })
}
