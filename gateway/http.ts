/**
 * Operator HTTP endpoints (node:http — two routes do not need fastify, whose module graph cost the
 * gateway ~5 MB of heap for its whole life: issue 11; 127.0.0.1 by default — a balena healthcheck or a local
 * Prometheus reaches it; nothing else should):
 *
 *   GET /healthz  JSON { status, db, uptimeSeconds, listeners, devicesConnected, disk, version }.
 *                 status: "ok" | "degraded" (a corrupt database was set aside, or a component such as the
 *                 back office is failing or alerting) | "storage_full" | "failing" (database unusable: 503).
 *                 HTTP 200 unless the database itself does not answer (503): a full disk must not
 *                 make the orchestrator restart the gateway in a loop.
 *   GET /metrics  Prometheus text format of the gateway registry.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
// Not `import … from 'node:http'`: an ES import of node:http reads every export, and its lazy
// WebSocket / MessageEvent getters load undici (Node 24) — ~10 MB of RSS the gateway never uses
// (issue 11). process.getBuiltinModule hands over the module object without touching them.
const { createServer } = process.getBuiltinModule('node:http')
import { once } from 'node:events'
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

function send(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
  res.end(req.method === 'HEAD' ? undefined : body)
}

const json = (req: IncomingMessage, res: ServerResponse, status: number, value: unknown): void => send(req, res, status, 'application/json; charset=utf-8', JSON.stringify(value))

export async function startHttp(o: HttpOptions): Promise<HttpServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const get = req.method === 'GET' || req.method === 'HEAD'
    if (get && path === '/healthz') {
      const h = o.health()
      return json(req, res, h.db.ok ? 200 : 503, h)
    }
    if (get && path === '/metrics') {
      o.registry.metrics().then(
        (body) => send(req, res, 200, o.registry.contentType, body),
        (e: unknown) => json(req, res, 500, { statusCode: 500, error: 'Internal Server Error', message: (e as Error).message }),
      )
      return
    }
    json(req, res, 404, { statusCode: 404, error: 'Not Found', message: `Route ${req.method}:${path} not found` })
  })
  try {
    server.listen(o.port, o.host)
    await once(server, 'listening')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    throw new CareLedgerError('INVALID_ARGUMENT', `${o.host}:${o.port} (CARELEDGER_HTTP_PORT / --http-port) ${code === 'EADDRINUSE' ? 'is already in use' : `cannot be used (${(e as Error).message})`}`, { code })
  }
  const addr = server.address()
  return {
    host: o.host,
    port: typeof addr === 'object' && addr ? addr.port : o.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
