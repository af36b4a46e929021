/**
 * Connection caps of the cloud's listener (docs/api.md §Limits): at most `max` open connections
 * (Node's `server.maxConnections` closes the ones beyond), and at most `perAddress` from one
 * remote address, so one host opening sockets (a flood, slowloris) cannot take every slot from
 * the gateways. `perAddress` 0 turns the per-address cap off — behind a reverse proxy every
 * connection comes from the proxy's address, and the proxy must do that job.
 */
import type { Server } from 'node:net'
import type { CloudMetrics } from './metrics.ts'

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
