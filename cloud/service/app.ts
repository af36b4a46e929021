/**
 * The cloud's HTTP service (docs/api.md): one fastify instance, the routes of each module
 * registered on it, one error model (errors.ts) for all of them.
 *
 *   routes-access.ts    POST /v1/gateways/register, GET /v1/gateways
 *   routes-ingest.ts    POST /v1/batches, POST /v1/batches/bulk          (gateway-signed)
 *   routes-read.ts      records, proofs, envelopes, blocks, streams, stats, verification, healthz
 *   routes-console.ts   GET / and /console/* (static), GET /v1/openapi.json, GET /metrics
 *   anchor/routes.ts    GET /v1/anchors
 *   ../retrieval/       evidence for verified reads and exports, outsourced decryption, /ipfs/{cid}
 *   routes-gateway.ts   instructions to gateways, PUT /v1/envelopes/:cid (gateway-signed); GET /v1/envelopes/damaged
 *
 * Logging: one line per request (method, route template, status, duration, who) — never a
 * header value, query value or body: bodies carry manifests and ciphertext, and although the cloud
 * sees no plaintext or raw patient id, nothing about a batch belongs in a log.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { ServiceContext } from './context.ts'
import { ApiError, isApiError } from './errors.ts'
import type { GatewayCredentials } from '../access/request-auth.ts'
import type { Principal } from '../access/tokens.ts'
import { registerAccessRoutes } from './routes-access.ts'
import { registerIngestRoutes } from './routes-ingest.ts'
import { registerReadRoutes } from './routes-read.ts'
import { registerConsoleRoutes } from './routes-console.ts'
import { registerAnchorRoutes } from '../anchor/routes.ts'
import { registerRetrievalRoutes } from '../retrieval/routes.ts'
import { registerConsoleViews } from '../console/view-routes.ts'
import { answerClientError, destroySocketsOnClose, limitConnections } from './connections.ts'
import { registerDamageRoutes, registerGatewayChannelRoutes } from './routes-gateway.ts'
import { registerSupervisionRoutes } from '../supervision/routes.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** The person behind a bearer token (role-guarded routes). */
    principal: Principal | null
    /** The gateway's parsed credentials (signed routes), set before the body is read. */
    gatewayCredentials: GatewayCredentials | null
    startedAt: number
  }
}

export interface BuildOptions {
  readonly https?: { readonly cert: Buffer; readonly key: Buffer } | null
}

/**
 * Slow clients cannot hold sockets for long: the headers must arrive within 10 s (slowloris), a
 * whole request within 2 min (an 8 MiB upload over a slow clinic uplink), a socket may idle 30 s;
 * Node checks these every second. Connection caps: connections.ts.
 */
const SOCKET_TIMEOUTS = { headersTimeout: 10_000, requestTimeout: 120_000, connectionTimeout: 30_000, connectionsCheckingInterval: 1_000 } as const

export async function buildApp(ctx: ServiceContext, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const serverOptions = { headersTimeout: SOCKET_TIMEOUTS.headersTimeout, connectionsCheckingInterval: SOCKET_TIMEOUTS.connectionsCheckingInterval }
  const app = Fastify({
    logger: false,
    // JSON bodies (registration) are small; the CBOR upload routes set their own limits.
    bodyLimit: 64 * 1024,
    forceCloseConnections: true,
    return503OnClosing: true,
    requestTimeout: SOCKET_TIMEOUTS.requestTimeout,
    connectionTimeout: SOCKET_TIMEOUTS.connectionTimeout,
    clientErrorHandler: answerClientError,
    ...(opts.https ? { https: { cert: opts.https.cert, key: opts.https.key, ...serverOptions } } : { http: serverOptions }),
  }) as unknown as FastifyInstance
  limitConnections(app.server, ctx.config.limits.connections, ctx.metrics)
  destroySocketsOnClose(app)

  app.decorateRequest('principal', null)
  app.decorateRequest('gatewayCredentials', null)
  app.decorateRequest('startedAt', 0)

  app.addHook('onRequest', async (req, reply) => {
    req.startedAt = performance.now()
    void reply.header('cache-control', 'no-store').header('x-content-type-options', 'nosniff')
  })

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched'
    const seconds = (performance.now() - req.startedAt) / 1000
    ctx.metrics.httpRequests.inc({ route, status: String(reply.statusCode) })
    ctx.metrics.httpSeconds.observe({ route }, seconds)
    const who = req.principal ? { token: req.principal.name, role: req.principal.role } : req.gatewayCredentials ? { gateway: req.gatewayCredentials.gatewayId } : {}
    const line = { event: 'http', method: req.method, route, status: reply.statusCode, ms: Math.round(seconds * 1000 * 10) / 10, ...who }
    // Reads (the console polls every 2 s) at debug; writes and failures at info.
    if (req.method === 'GET' && reply.statusCode < 400) ctx.logger.debug(line, 'request')
    else ctx.logger.info(line, 'request')
  })

  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const e = toApiError(err)
    if (e.status >= 500) {
      ctx.logger.error({ event: 'internal_error', method: req.method, route: req.routeOptions.url ?? 'unmatched', err }, 'request failed')
    } else if (e.status === 401) {
      ctx.metrics.authFailures.inc({ code: e.code })
    }
    if (!req.raw.complete) refusedBeforeBody(req, reply, e)
    if (typeof e.details.retryAfterS === 'number') void reply.header('retry-after', String(e.details.retryAfterS))
    return reply.code(e.status).type('application/json; charset=utf-8').send({ error: e.toJSON() })
  })

  app.setNotFoundHandler((req, reply) => {
    const e = new ApiError('NOT_FOUND', `no endpoint ${req.method} ${req.url.split('?')[0]} (see GET /v1/openapi.json)`)
    return reply.code(e.status).send({ error: e.toJSON() })
  })

  registerAccessRoutes(app, ctx)
  await app.register(async (scope) => registerIngestRoutes(scope, ctx))
  await app.register(async (scope) => registerGatewayChannelRoutes(scope, ctx))
  registerDamageRoutes(app, ctx)
  registerReadRoutes(app, ctx)
  registerRetrievalRoutes(app, ctx)
  registerConsoleViews(app, ctx)
  registerConsoleRoutes(app, ctx)
  registerAnchorRoutes(app, ctx)
  registerSupervisionRoutes(app, ctx) // on the chain's own store: cloud.db, or the shared PostgreSQL
  return app
}

/** How long a request refused before its body may keep sending (and have it discarded). */
const LINGER_MS = 2_000

/**
 * A request refused before its body was read (signed-scope.ts): the body is never buffered. An
 * oversized one is closed at once. Otherwise Node discards what still comes, for at most
 * LINGER_MS, then the socket is destroyed: a client that is still sending (an older gateway with a
 * large upload) reads the answer instead of a reset connection (the "lingering close" of RFC 9112
 * §9.6), and a stranger holding the last byte holds the socket for 2 s, not 120.
 */
function refusedBeforeBody(req: FastifyRequest, reply: FastifyReply, e: ApiError): void {
  if (e.status === 413) {
    void reply.header('connection', 'close')
    return
  }
  reply.raw.once('finish', () => {
    if (req.raw.complete) return
    const timer = setTimeout(() => req.raw.socket?.destroy(), LINGER_MS)
    timer.unref()
    req.raw.once('end', () => clearTimeout(timer))
    req.raw.once('close', () => clearTimeout(timer))
  })
}

/** Fastify's own errors (body limit, content type, JSON syntax) in the API's error model. */
export function toApiError(err: unknown): ApiError {
  if (isApiError(err)) return err
  const e = err as { code?: string; statusCode?: number; message?: string }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('PAYLOAD_TOO_LARGE', 'the request body exceeds this endpoint\'s limit', {})
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('INVALID_REQUEST', 'content-type: this endpoint does not accept that media type', { field: 'content-type' })
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError('INVALID_REQUEST', 'body: empty; expected JSON', { field: 'body' })
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError('INVALID_REQUEST', `body: ${e.message ?? 'malformed'}`, { field: 'body' })
  }
  if (err instanceof SyntaxError || (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500)) {
    return new ApiError('INVALID_REQUEST', `request: ${e.message ?? 'malformed'}`, {})
  }
  return new ApiError('INTERNAL', 'internal error (logged on the server)', {}, { cause: err })
}
