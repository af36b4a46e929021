/**
 * MQTT below the client library, for tests that must send what no well-behaved client sends:
 * hand-made fixed headers, packets announcing huge lengths, silent TCP connections, floods from
 * other loopback source addresses (127.0.0.0/8 is all loopback on Linux). Packets are made and read
 * with mqtt-packet, the codec aedes and mqtt.js use. Also: what a process uses (/proc).
 */
import { readFileSync, readdirSync } from 'node:fs'
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import mqttPacket from 'mqtt-packet'

export type Packet = mqttPacket.Packet

/** MQTT 3.1.1 Remaining Length (§2.2.3): 1–4 bytes, 7 bits each. */
export function remainingLength(n: number): Buffer {
  const out: number[] = []
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return Buffer.from(out)
}

export const connectPacket = (o: { clientId: string; username?: string; password?: string | Buffer; clean?: boolean }): Buffer =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: o.clean ?? true, keepalive: 30, clientId: o.clientId, username: o.username, password: typeof o.password === 'string' ? Buffer.from(o.password) : o.password } as mqttPacket.IConnectPacket)

export const publishPacket = (topic: string, payload: Buffer | string, messageId = 1): Buffer =>
  mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 1, messageId, retain: false, dup: false } as mqttPacket.IPublishPacket)

export const subscribePacket = (topic: string, messageId = 1): Buffer =>
  mqttPacket.generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos: 1 }] } as mqttPacket.ISubscribePacket)

/** A raw connection whose incoming packets are parsed; `next` waits for one matching. */
export interface RawConnection {
  readonly socket: Socket
  readonly packets: Packet[]
  readonly closed: Promise<void>
  readonly isClosed: () => boolean
  next(pred?: (p: Packet) => boolean, timeoutMs?: number): Promise<Packet>
  write(b: Buffer): void
}

export async function rawConnect(port: number, opts: { localAddress?: string; tls?: boolean; host?: string } = {}): Promise<RawConnection> {
  const host = opts.host ?? '127.0.0.1'
  const from = opts.localAddress ? { localAddress: opts.localAddress } : {}
  const socket: Socket = opts.tls ? tlsConnect({ host, port, ...from, rejectUnauthorized: false }) : netConnect({ host, port, ...from })
  socket.on('error', () => {})
  await new Promise<void>((ok, fail) => {
    socket.once(opts.tls ? 'secureConnect' : 'connect', () => ok())
    socket.once('close', () => fail(new Error('closed before connecting')))
  })
  return wrap(socket)
}

/** A TCP connection that completes the TCP handshake and then may say nothing at all. */
export function rawTcp(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((ok, fail) => {
    const s = netConnect({ host: '127.0.0.1', port, localAddress })
    s.on('error', () => {})
    s.once('connect', () => ok(s))
    s.once('close', () => fail(new Error('closed before connecting')))
  })
}

export function wrap(socket: Socket): RawConnection {
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const packets: Packet[] = []
  const waiters = new Set<(p: Packet) => boolean>()
  parser.on('packet', (p: Packet) => {
    packets.push(p)
    for (const w of waiters) if (w(p)) waiters.delete(w)
  })
  parser.on('error', () => {})
  socket.on('data', (b: Buffer) => parser.parse(b))
  let isClosed = false
  const closed = new Promise<void>((ok) => socket.once('close', () => ((isClosed = true), ok())))
  return {
    socket,
    packets,
    closed,
    isClosed: () => isClosed,
    write: (b) => void socket.write(b),
    next(pred = () => true, timeoutMs = 5000) {
      const seen = packets.find(pred)
      if (seen) return Promise.resolve(seen)
      return new Promise((ok, fail) => {
        const t = setTimeout(() => {
          waiters.delete(w)
          fail(new Error(`no matching packet within ${timeoutMs} ms (got ${packets.map((p) => p.cmd).join(', ') || 'none'}; closed: ${isClosed})`))
        }, timeoutMs)
        const w = (p: Packet): boolean => {
          if (!pred(p)) return false
          clearTimeout(t)
          ok(p)
          return true
        }
        waiters.add(w)
      })
    },
  }
}

/** Resolves true once the socket is closed by the other side, false if still open after `ms`. */
export function closedWithin(socket: Socket, ms: number): Promise<boolean> {
  if (socket.destroyed || socket.readyState === 'closed') return Promise.resolve(true)
  return new Promise((ok) => {
    const t = setTimeout(() => ok(false), ms)
    socket.once('close', () => {
      clearTimeout(t)
      ok(true)
    })
  })
}

/** Resident set size of a process, bytes (VmRSS), and its peak (VmHWM). */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}

/** Open file descriptors of a process. */
export const openFiles = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length

/** CPU time (user + system) of a process, seconds, from /proc/<pid>/stat. */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (USER_HZ = 100)
}
