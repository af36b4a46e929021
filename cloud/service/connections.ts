/**
 * Connection caps of the cloud's listener (docs/api.md §Limits): at most `max` open connections
 * (Node's `server.maxConnections` closes the ones beyond), and at most `perAddress` from one
 * remote address, so one host opening sockets (a flood, slowloris) cannot take every slot from
 * the gateways. `perAddress` 0 turns the per-address cap off — behind a reverse proxy every
 * connection comes from the proxy's address, and the proxy must do that job.
 */
import type { Server, Socket } from 'node:net'
import type { CloudMetrics } from './metrics.ts'
import { ApiError } from './errors.ts'

export interface ConnectionLimits {
  readonly max: number
  readonly perAddress: number
}

export function limitConnections(server: Server, limits: ConnectionLimits, metrics: CloudMetrics): void {
  server.maxConnections = limits.max
  server.on('drop', () => metrics.connectionsRefused.inc({ reason: 'total' }))
  if (limits.perAddress <= 0) return
  const open = new Map<string, number>()
  server.on('connection', (socket) => {
    const addr = socket.remoteAddress ?? '?'
    const n = (open.get(addr) ?? 0) + 1
    if (n > limits.perAddress) {
      metrics.connectionsRefused.inc({ reason: 'per-address' })
      socket.destroy()
      return
    }
    open.set(addr, n)
    socket.once('close', () => {
      const left = (open.get(addr) ?? 1) - 1
      if (left <= 0) open.delete(addr)
      else open.set(addr, left)
    })
  })
}

/**
 * What Node's HTTP parser refuses before fastify sees a request (malformed request line or
 * headers, headers too large, a request that took too long) is answered in the API's error model
 * too, then the connection is closed: every input gets a clear answer.
 */
export function answerClientError(err: NodeJS.ErrnoException & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const e =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new ApiError('REQUEST_TIMEOUT', 'the request did not arrive in time (headers within 10 s, the whole request within 120 s)')
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? new ApiError('HEADERS_TOO_LARGE', 'the request headers exceed 16 KiB')
        : new ApiError('INVALID_REQUEST', `malformed HTTP/1.1 request (${String(err.code ?? 'parse error').slice(0, 40)})`, { reason: err.code ?? null })
  const body = JSON.stringify({ error: e.toJSON() })
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${e.status} ${e.code}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy()
}
