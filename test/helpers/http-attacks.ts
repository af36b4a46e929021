/**
 * What a stranger (or a misbehaving gateway) can do to the cloud's HTTP listener, over raw TCP so
 * that nothing in an HTTP client smooths it over: requests whose body is held back, slowloris
 * headers, connection floods, oversized declared lengths. For the regression tests of issue 8 and
 * the resource-exhaustion test and benchmark (test/system/cloud-exhaustion.test.ts,
 * bench/cloud-attack.ts). Only loopback addresses are ever targeted.
 */
import { connect, type Socket } from 'node:net'
import { readFileSync } from 'node:fs'
import { signRequest } from '../../shared/protocol/request-signing.ts'

export interface RawAnswer {
  /** null when the server closed without answering. */
  readonly status: number | null
  readonly headers: Record<string, string>
  readonly body: string
  /** The server ended the connection (after answering or not). */
  readonly closed: boolean
  readonly ms: number
}

export interface RawRequestOptions {
  readonly host?: string
  /** Local address to connect from (127.0.0.x: a stranger other than the gateway on 127.0.0.1). */
  readonly localAddress?: string
  /** Body bytes to send right after the headers (maybe fewer than Content-Length: the rest is held back). */
  readonly body?: Uint8Array
  /** Give up waiting for an answer after this long (the socket is then destroyed). */
  readonly timeoutMs?: number
  /** Wait for the server to close the connection after its answer (up to timeoutMs). */
  readonly awaitClose?: boolean
}

function parseAnswer(buf: Buffer): { status: number | null; headers: Record<string, string>; body: string } {
  const end = buf.indexOf('\r\n\r\n')
  if (end < 0) return { status: null, headers: {}, body: '' }
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!)?.[1] ?? NaN)
  const headers: Record<string, string> = {}
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':')
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
  }
  return { status: Number.isNaN(status) ? null : status, headers, body: buf.subarray(end + 4).toString('utf8') }
}

/**
 * Send `head` (request line and header lines, without the blank line) and maybe part of a body,
 * then wait for the answer (or the close, or the timeout). The socket is destroyed afterwards.
 */
export function rawRequest(port: number, head: readonly string[], opts: RawRequestOptions = {}): Promise<RawAnswer> {
  const t0 = performance.now()
  return new Promise((resolve) => {
    const socket = connect({ port, host: opts.host ?? '127.0.0.1', ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) })
    const chunks: Buffer[] = []
    let done = false
    const finish = (closed: boolean): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ ...parseAnswer(Buffer.concat(chunks)), closed, ms: performance.now() - t0 })
    }
    const timer = setTimeout(() => finish(false), opts.timeoutMs ?? 10_000)
    socket.on('connect', () => {
      socket.write(`${head.join('\r\n')}\r\n\r\n`)
      if (opts.body && opts.body.length > 0) socket.write(opts.body)
    })
    socket.on('data', (d) => {
      chunks.push(d)
      // An answer whose body is complete (the cloud always sends Content-Length) is enough unless the close is awaited.
      const a = parseAnswer(Buffer.concat(chunks))
      const length = Number(a.headers['content-length'] ?? -1)
      if (a.status !== null && length >= 0 && Buffer.byteLength(a.body) >= length && a.headers.connection !== 'close' && !opts.awaitClose) finish(false)
    })
    socket.on('end', () => finish(true))
    socket.on('close', () => finish(true))
    socket.on('error', () => finish(true))
  })
}

/** Request line and headers of a POST as a signed gateway request (version 2) over `body`, optionally with a forged signature. */
export function signedHead(opts: { method?: string; path: string; secretKey: Uint8Array; body: Uint8Array; forge?: boolean; contentType?: string; gatewayId?: string; extra?: readonly string[] }): string[] {
  const method = opts.method ?? 'POST'
  const h: Record<string, string> = { ...signRequest(opts.secretKey, { method, path: opts.path, body: opts.body }) }
  if (opts.gatewayId) h['CareLedger-Gateway'] = opts.gatewayId
  if (opts.forge) h['CareLedger-Signature'] = Buffer.alloc(64, 7).toString('base64')
  return [
    `${method} ${opts.path} HTTP/1.1`,
    'Host: 127.0.0.1',
    `Content-Type: ${opts.contentType ?? 'application/cbor'}`,
    `Content-Length: ${opts.body.length}`,
    ...Object.entries(h).map(([k, v]) => `${k}: ${v}`),
    ...(opts.extra ?? []),
  ]
}

/** A socket that opened and then sends one header byte every `everyMs` (slowloris), until closed by either side. */
export function slowloris(port: number, opts: { localAddress?: string; everyMs?: number } = {}): { socket: Socket; closed: Promise<number> } {
  const t0 = performance.now()
  const socket = connect({ port, host: '127.0.0.1', ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) })
  const text = 'POST /v1/batches/bulk HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + 'a'.repeat(10_000)
  let i = 0
  const timer = setInterval(() => {
    if (socket.writable && i < text.length) socket.write(text[i++]!)
  }, opts.everyMs ?? 500)
  const closed = new Promise<number>((r) =>
    socket.on('close', () => {
      clearInterval(timer)
      r(performance.now() - t0)
    }),
  )
  socket.on('error', () => {})
  return { socket, closed }
}

/** `n` plain TCP connections that never send a byte; resolves once all are open (or refused). */
export async function connectionFlood(port: number, n: number, localAddress?: string): Promise<Socket[]> {
  const sockets = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Socket>((resolve) => {
          const s = connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) })
          s.on('error', () => {})
          s.once('connect', () => resolve(s))
          s.once('close', () => resolve(s))
        }),
    ),
  )
  return sockets
}

/** Resident set size of a process, bytes (/proc/<pid>/status VmRSS). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : NaN
}

/** Peak resident set size of a process so far, bytes (VmHWM). */
export function peakRssBytes(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : NaN
}

/** User + system CPU seconds of a process so far (/proc/<pid>/stat, clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

/** p50 / p95 / p99 / max of a list of milliseconds. */
export function percentiles(ms: readonly number[]): { n: number; p50: number; p95: number; p99: number; max: number } {
  const s = [...ms].sort((a, b) => a - b)
  const at = (q: number): number => (s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!)
  return { n: s.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: s.at(-1) ?? NaN }
}
