/**
 * A minimal gateway broker for the device tests (not the real gateway: that is gateway/). It
 * implements the device contract of docs/protocol.md with aedes and nothing more:
 *
 *  - CONNECT: username = device id, password = its secret, client id = device id, else CONNACK 4/2.
 *  - ACL: publish only to careledger/v1/devices/{id}/readings (anything else closes the connection:
 *    MQTT 3.1.1 cannot refuse a PUBLISH), subscribe only to …/{id}/errors (else SUBACK 0x80).
 *  - Readings are validated and stored in authorizePublish, i.e. BEFORE aedes writes the PUBACK
 *    (aedes 1.2 acknowledges QoS 1 before its `published` hook runs), so "acknowledged = stored".
 *    (deviceId, seq) is stored once; every rejection is published on the device's errors topic.
 */
import { createServer as createTcpServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import { timingSafeEqual } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Aedes, type AuthenticateError, type Client } from 'aedes'
import { errorsTopic, parseDeviceTopic, type DeviceErrorMessage } from '../../shared/schema/device.ts'
import { validatePayload, type Reading, type Rejection } from '../../shared/schema/reading.ts'

export interface MiniBrokerOptions {
  /** deviceId → secret */
  readonly devices: Readonly<Record<string, string>>
  /** 0 (default) picks a free port; restart() keeps it. */
  readonly port?: number
  /** Serve MQTT over TLS with this key and certificate (PEM). */
  readonly tls?: { key: string; cert: string }
  /** Gateway clock for validation (default Date.now). */
  readonly now?: () => number
}

export interface ReceivedMessage {
  readonly deviceId: string
  readonly payload: string
  readonly dup: boolean
}

export interface MiniBroker {
  readonly url: string
  readonly port: number
  /** Accepted readings per device, first copy only, in arrival order. */
  readonly stored: Map<string, Reading[]>
  /** Every PUBLISH on a readings topic, duplicates included, in arrival order. */
  readonly received: ReceivedMessage[]
  readonly rejected: (Rejection & { deviceId: string })[]
  /** CONNECT attempts refused, with the CONNACK return code. */
  readonly refused: { username: string | undefined; returnCode: number }[]
  /** Publish on a device's errors topic (QoS 1), as the gateway does for a rejected reading. */
  publishError(deviceId: string, msg: DeviceErrorMessage): Promise<void>
  /** Stop acknowledging: PUBLISHes are held (not stored, no PUBACK) until releaseAcks(). */
  holdAcks(): void
  releaseAcks(): void
  /** Close the listener and every connection; a new broker (in-memory sessions lost) listens on the same port. */
  restart(downMs?: number): Promise<void>
  close(): Promise<void>
}

type Done = (error?: Error | null) => void

export async function startMiniBroker(opts: MiniBrokerOptions): Promise<MiniBroker> {
  const now = opts.now ?? Date.now
  const stored = new Map<string, Reading[]>()
  const seen = new Set<string>()
  const received: ReceivedMessage[] = []
  const rejected: (Rejection & { deviceId: string })[] = []
  const refused: { username: string | undefined; returnCode: number }[] = []
  const identity = new WeakMap<Client, string>()
  let held: (() => void)[] | null = null

  const store = (deviceId: string, payload: Buffer): Rejection[] => {
    const verdict = validatePayload(payload, { now: now() })
    for (const r of verdict.accepted) {
      const key = `${deviceId}\u0000${r.seq}`
      if (seen.has(key)) continue
      seen.add(key)
      const list = stored.get(deviceId) ?? []
      list.push(r)
      stored.set(deviceId, list)
    }
    for (const r of verdict.rejected) rejected.push({ ...r, deviceId })
    return verdict.rejected
  }

  let broker: Aedes
  let server: Server
  const sockets = new Set<Socket>()

  const newBroker = async (): Promise<Aedes> => {
    const b: Aedes = await Aedes.createBroker({
      authenticate(client, username, password, done) {
        const secret = username === undefined ? undefined : opts.devices[username]
        const refuse = (returnCode: 2 | 4, message: string): void => {
          refused.push({ username, returnCode })
          done(Object.assign(new Error(message), { returnCode }) as AuthenticateError, false)
        }
        if (secret === undefined || !password || password.length !== Buffer.byteLength(secret) || !timingSafeEqual(password, Buffer.from(secret))) {
          return refuse(4, 'bad username or password')
        }
        if (client.id !== username) return refuse(2, 'client id must equal the device id')
        identity.set(client, username!)
        done(null, true)
      },
      authorizePublish(client, packet, done: Done) {
        const deviceId = client ? identity.get(client) : undefined
        const t = parseDeviceTopic(packet.topic)
        if (!deviceId || !t || t.deviceId !== deviceId || t.channel !== 'readings') return done(new Error(`publish to ${packet.topic} not allowed`))
        const payload = Buffer.from(packet.payload as Buffer)
        const accept = (): void => {
          received.push({ deviceId, payload: payload.toString('utf8'), dup: !!packet.dup })
          const rejections = store(deviceId, payload)
          done(null) // aedes writes the PUBACK after this returns
          for (const r of rejections) void publishErrorOn(b, deviceId, { seq: r.seq, code: r.code, message: r.message })
        }
        if (held) held.push(accept)
        else accept()
      },
      authorizeSubscribe(client, sub, done) {
        const deviceId = identity.get(client)
        done(null, deviceId && sub.topic === errorsTopic(deviceId) ? sub : null) // null → SUBACK 0x80
      },
      // Device-to-device forwarding never happens: devices cannot subscribe to readings topics.
    })
    return b
  }

  const publishErrorOn = (b: Aedes, deviceId: string, msg: DeviceErrorMessage): Promise<void> =>
    new Promise((resolve, reject) => {
      b.publish({ cmd: 'publish', topic: errorsTopic(deviceId), payload: Buffer.from(JSON.stringify(msg)), qos: 1, retain: false, dup: false }, (err) => (err ? reject(err) : resolve()))
    })

  const listen = async (port: number): Promise<number> => {
    broker = await newBroker()
    const handle = (socket: Socket): void => {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
      broker.handle(socket)
    }
    server = opts.tls ? createTlsServer({ key: opts.tls.key, cert: opts.tls.cert }, handle) : createTcpServer(handle)
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => resolve())
    })
    return (server.address() as { port: number }).port
  }

  const shutdown = async (): Promise<void> => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
    await closed
  }

  const port = await listen(opts.port ?? 0)
  return {
    url: `${opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    port,
    stored,
    received,
    rejected,
    refused,
    publishError: (deviceId, msg) => publishErrorOn(broker, deviceId, msg),
    holdAcks() {
      held ??= []
    },
    releaseAcks() {
      const h = held ?? []
      held = null
      for (const f of h) f()
    },
    async restart(downMs = 0) {
      held = null
      await shutdown()
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs))
      await listen(port)
    },
    close: shutdown,
  }
}

/** Wait until `predicate()` holds, polling; fails with `what` after `timeoutMs`. */
export async function waitUntil(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/**
 * A throwaway gateway CA and a server certificate for 127.0.0.1/localhost signed by it (PEM), made
 * with the openssl CLI (@peculiar/x509 would need the reflect-metadata polyfill, not a dependency).
 */
export function makeTestPki(): { caCert: string; serverKey: string; serverCert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'careledger-pki-'))
  const f = (name: string): string => join(dir, name)
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'pipe' })
  try {
    ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('ca.key'))
    ssl('req', '-x509', '-new', '-key', f('ca.key'), '-sha256', '-days', '2', '-subj', '/CN=CareLedger test gateway CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', f('ca.pem'))
    ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('server.key'))
    ssl('req', '-new', '-key', f('server.key'), '-subj', '/CN=127.0.0.1', '-out', f('server.csr'))
    writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
    ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-sha256', '-extfile', f('ext.cnf'), '-out', f('server.pem'))
    return { caCert: readFileSync(f('ca.pem'), 'utf8'), serverKey: readFileSync(f('server.key'), 'utf8'), serverCert: readFileSync(f('server.pem'), 'utf8') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
