/**
 * The scope of gateway-signed routes (docs/api.md §Signed requests): every body is taken as raw
 * bytes (the signature covers the exact bytes), and each request passes, before any body byte is
 * read,
 *
 *   signedStages = [refuseOversized, checkSignature, reserveInflight]
 *
 *   refuseOversized   a declared Content-Length beyond the route's limit → 413 PAYLOAD_TOO_LARGE
 *   checkSignature    request-auth.ts checkGatewayHeaders: version 2, fresh, known gateway,
 *                     unseen nonce, Ed25519 over the headers and the signed Content-Digest → 401
 *   reserveInflight   inflight.ts: the signed length within the gateway's and the total caps of
 *                     bytes in flight → 429 / 503 with Retry-After; released when the exchange ends
 *
 * A request refused here is answered with `Connection: close` (app.ts), so its body is never read.
 * The handler then calls `signedBody`, which checks the bytes against the signed digest and claims
 * the nonce (REPLAYED_REQUEST for the second of two copies read at once).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { checkGatewayBody, checkGatewayHeaders } from '../access/request-auth.ts'
import type { GatewayInfo } from '../access/gateways.ts'
import type { ServiceContext } from './context.ts'
import { ApiError } from './errors.ts'

type SignedStage = (ctx: ServiceContext, req: FastifyRequest, reply: FastifyReply) => void | Promise<void>

const limitOf = (req: FastifyRequest): number => req.routeOptions.bodyLimit ?? 64 * 1024

function refuseOversized(_ctx: ServiceContext, req: FastifyRequest): void {
  const declared = req.headers['content-length']
  const limit = limitOf(req)
  if (typeof declared === 'string' && /^\d{1,20}$/.test(declared) && Number(declared) > limit) {
    throw new ApiError('PAYLOAD_TOO_LARGE', `the declared body of ${declared} bytes exceeds this endpoint's limit of ${limit} bytes`, { limitBytes: limit, declaredBytes: Number(declared) })
  }
}

async function checkSignature(ctx: ServiceContext, req: FastifyRequest): Promise<void> {
  req.gatewayCredentials = await checkGatewayHeaders(ctx, req, ctx.now())
}

function reserveInflight(ctx: ServiceContext, req: FastifyRequest, reply: FastifyReply): void {
  const creds = req.gatewayCredentials!
  const release = ctx.inflight.reserve(creds.gatewayId, creds.contentLength)
  ctx.metrics.inflightBytes.set(ctx.inflight.totalBytes)
  reply.raw.once('close', () => {
    release()
    ctx.metrics.inflightBytes.set(ctx.inflight.totalBytes)
  })
}

const signedStages: readonly SignedStage[] = [refuseOversized, checkSignature, reserveInflight]

/** Make `scope` a scope of signed routes. */
export function useSignedRequests(scope: FastifyInstance, ctx: ServiceContext): void {
  scope.removeAllContentTypeParsers()
  scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
  scope.addHook('onRequest', async (req, reply) => {
    for (const stage of signedStages) await stage(ctx, req, reply)
  })
}

const EMPTY = Buffer.alloc(0)

/** The request's body, checked against its signed length and Content-Digest (401 BAD_DIGEST); the nonce is claimed. */
export async function signedBody(ctx: ServiceContext, req: FastifyRequest): Promise<{ gateway: GatewayInfo; body: Buffer }> {
  const body = (req.body as Buffer | undefined) ?? EMPTY
  return { gateway: await checkGatewayBody(ctx, req.gatewayCredentials!, body, ctx.now()), body }
}
