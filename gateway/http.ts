/**
 * Operator HTTP endpoints (fastify, 127.0.0.1 by default — a balena healthcheck or a local
 * Prometheus reaches it; nothing else should):
 *
 *   GET /healthz  JSON { status, db, uptimeSeconds, listeners, devicesConnected, disk, version }.
 *                 status: "ok" | "degraded" (a corrupt database was set aside, or a component such as the
 *                 back office is failing or alerting) | "storage_full" | "failing" (database unusable: 503).
 *                 HTTP 200 unless the database itself does not answer (503): a full disk must not
 *                 make the orchestrator restart the gateway in a loop.
 *   GET /metrics  Prometheus text format of the gateway registry.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { CareLedgerError } from '../shared/errors.ts'

export interface HealthReport {
  readonly status: 'ok' | 'degraded' | 'storage_full' | 'failing'
  readonly db: { readonly ok: boolean; readonly path: string; readonly error?: string; readonly corruptFilesSetAside: readonly string[] }
  readonly uptimeSeconds: number
  readonly listeners: Readonly<Record<string, { readonly host: string; readonly port: number } | null>>
  readonly devicesConnected: number
  readonly disk: { readonly usedBytes: number; readonly budgetBytes: number; readonly freeBytes: number | null; readonly full: boolean; readonly reason: string | null }
  readonly version: string
  /** Plugins' own health (sealer, outbox), by plugin name. */
  readonly components?: Readonly<Record<string, unknown>>
}

export interface HttpOptions {
  readonly host: string
  readonly port: number
  readonly registry: Registry
  readonly health: () => HealthReport
}

export interface HttpServer {
  readonly host: string
  readonly port: number
  close(): Promise<void>
}

export async function startHttp(o: HttpOptions): Promise<HttpServer> {
  const app: FastifyInstance = Fastify({ logger: false })
  app.get('/healthz', async (_req, reply) => {
    const h = o.health()
    return reply.code(h.db.ok ? 200 : 503).send(h)
  })
  app.get('/metrics', async (_req, reply) => {
    const body = await o.registry.metrics()
    return reply.type(o.registry.contentType).send(body)
  })
  try {
    await app.listen({ host: o.host, port: o.port })
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    throw new CareLedgerError('INVALID_ARGUMENT', `${o.host}:${o.port} (CARELEDGER_HTTP_PORT / --http-port) ${code === 'EADDRINUSE' ? 'is already in use' : `cannot be used (${(e as Error).message})`}`, { code })
  }
  const addr = app.server.address()
  return {
    host: o.host,
    port: typeof addr === 'object' && addr ? addr.port : o.port,
    close: () => app.close(),
  }
}
