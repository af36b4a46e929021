/**
 * The MQTT side of the gateway: aedes (MQTT 3.1.1) with the CareLedger hooks, a TCP listener and a
 * TLS listener (node:tls, certificate from gateway/tls.ts, hot-swappable on renewal).
 *
 * Readings are consumed by the store, and no one may subscribe to a readings topic (auth.ts), so
 * after the PUBACK aedes' relay work for them — retained store, offline-queue lookup, mqemitter
 * fan-out, `published` — has nobody to serve. `broker.publish` is wrapped to skip it for a device's
 * own readings topic; everything else ($SYS heartbeats, error messages) goes through aedes as usual.
 *
 * In front of aedes (issue 8, items 2–4): every accepted socket first takes a slot from the
 * admission caps (admission.ts), and reaches aedes through a packet gate (packet-gate.ts) that
 * refuses packets by their fixed header before buffering them; logins wait in a bounded, per-source
 * fair queue (login-queue.ts). A TLS connection that fails or does not finish its handshake within
 * the connect timeout is destroyed.
 */
import { Aedes, type Client, type PublishPacket } from 'aedes'
import mqttPacket from 'mqtt-packet'
import { once } from 'node:events'
import { createServer as createTcpServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls'
import type { Logger } from 'pino'
import { CareLedgerError } from '../../shared/errors.ts'
import { errorsTopic, readingsTopic } from '../../shared/schema/device.ts'
import type { GatewayConfig } from '../config.ts'
import { clipForLog } from '../log.ts'
import type { GatewayMetrics } from '../metrics.ts'
import type { DeviceDirectory } from '../store/devices.ts'
import { VerifiedSecrets } from '../store/devices.ts'
import type { GroupCommitter } from '../store/readings.ts'
import type { ServerCredentials } from '../tls.ts'
import { authorizeForward, createAuthenticate, createAuthorizeSubscribe, watchEnrolment, type DeviceSession } from './auth.ts'
import { Admission } from './admission.ts'
import type { DiskBudget } from './disk-budget.ts'
import { IngestRefusal, afterFlushed, createAuthorizePublish, type ReportError } from './ingest.ts'
import { LoginQueue } from './login-queue.ts'
import { PacketGate, type GateRefusalInfo } from './packet-gate.ts'

// mqtt-packet (aedes' encoder) otherwise builds, at the first packet it writes, a cache of 65,536
// two-byte Buffers for packet ids: ~7 MB of the ingest thread's heap (a heap snapshot at ward load,
// issue 11) to save one 2-byte allocation per PUBACK.
;(mqttPacket.writeToStream as unknown as { cacheNumbers: boolean }).cacheNumbers = false

/**
 * Largest CONNECT accepted (Remaining Length): protocol name and flags (10 bytes), client id and
 * user name (≤ 64 characters each), the 43-character secret, with room to spare. A Will would be
 * refused anyway.
 */
export const CONNECT_MAX_BYTES = 1024
const PUBLISH = 3

/**
 * TLS 1.2 only with AEAD suites and forward secrecy (ECDHE + AES-GCM or ChaCha20-Poly1305; RFC 7525
 * §4.2, BSI TR-02102-2); TLS 1.3 suites are all AEAD. CBC suites are not offered.
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
].join(':')
const tlsContext = (c: ServerCredentials) => ({ key: c.key, cert: c.cert, minVersion: 'TLSv1.2' as const, ciphers: TLS_CIPHERS, honorCipherOrder: true })

export interface BrokerOptions {
  readonly config: GatewayConfig
  readonly committer: GroupCommitter
  readonly disk: DiskBudget
  readonly directory: DeviceDirectory
  readonly metrics: GatewayMetrics
  readonly logger: Logger
  /** MQTTS credentials; null keeps the TLS listener off. */
  readonly tls: ServerCredentials | null
}

export interface ListenerInfo {
  readonly host: string
  readonly port: number
}

export interface GatewayBroker {
  readonly aedes: Aedes
  readonly listeners: { readonly mqtt: ListenerInfo | null; readonly mqtts: ListenerInfo | null }
  readonly sessions: WeakMap<Client, DeviceSession>
  /** Publish a message on a device's errors topic. */
  readonly reportError: ReportError
  /** Swap the MQTTS certificate without dropping connections (after a renewal). */
  setTlsCredentials(c: ServerCredentials): void
  /** Stop accepting new connections; existing ones keep working. */
  stopAccepting(): Promise<void>
  /** Close every client connection and the broker. */
  close(): Promise<void>
}

type RelayPublish = (packet: PublishPacket, client: Client | null, done: (err?: Error | null) => void) => void
const noop = (): void => {}

export async function startBroker(o: BrokerOptions): Promise<GatewayBroker> {
  const { config, metrics, logger } = o
  const sessions = new WeakMap<Client, DeviceSession>()
  let relay: RelayPublish = () => {}
  const reportError: ReportError = (deviceId, msg, done) =>
    relay({ cmd: 'publish', topic: errorsTopic(deviceId), payload: Buffer.from(JSON.stringify(msg)), qos: 1, retain: false, dup: false }, null, done ?? noop)

  const admission = new Admission(config.mqtt)
  // A source's logins are its unauthenticated connections: the same cap (a monitor concentrator or
  // a NAT may put a whole ward behind one address).
  const loginQueue = new LoginQueue({ maxWaiting: config.mqtt.loginQueue, maxPerSource: config.mqtt.maxUnauthenticatedPerSource })
  const warnEvery = throttle(10_000)
  const refused = (reason: string, fields: Record<string, unknown>): void => {
    metrics.connectionsRefused.inc({ reason })
    logger.debug({ event: 'connection_refused', reason, ...fields }, `connection refused: ${reason}`)
    const n = warnEvery(reason)
    if (n > 0) logger.warn({ event: 'connections_refused', reason, count: n }, `${n} connection(s) refused in the last 10 s: ${reason}`)
  }
  /** After login: a PUBLISH of the device's largest payload on its own readings topic, with a packet id. */
  const limitAfterLogin = (deviceId: string): number => config.validation.maxBytes + 2 + Buffer.byteLength(readingsTopic(deviceId)) + 2
  const onAuthenticated = (client: Client): void => {
    const gate = client.conn as unknown
    if (!(gate instanceof PacketGate)) return
    gate.open(limitAfterLogin(client.id))
    admission.authenticated(gate.remoteAddress, gate.remotePort)
  }
  const gateRefused = (gate: PacketGate, info: GateRefusalInfo): void => {
    const client = (gate as unknown as { client?: Client }).client
    refused(info.reason, { packetType: info.packetType, length: info.length, limit: info.limit, deviceId: client?.id ?? null, remote: gate.remoteAddress })
    if (!(info.authenticated && client?.id && info.packetType === PUBLISH)) return void gate.destroy()
    // A device that logged in is told why before the connection closes (as ingest.ts refuses).
    metrics.publishRefused.inc({ reason: 'PAYLOAD_TOO_LARGE' })
    const message = `a PUBLISH announcing ${info.length} bytes is over the limit of ${info.limit} (payload at most ${config.validation.maxBytes} bytes): refused by its header, NOT stored, NOT acknowledged, connection closed. It can never be accepted: drop it, or split its readings into smaller messages`
    logger.warn({ event: 'publish_refused', deviceId: client.id, reason: 'PAYLOAD_TOO_LARGE', length: info.length }, message)
    reportError(client.id, { seq: null, code: 'PAYLOAD_TOO_LARGE', message }, () => afterFlushed(client, 100, () => gate.destroy()))
  }
  /** A new socket on either listener: a slot, or closed at once. */
  const admit = (socket: Socket): boolean => {
    const no = admission.admit(socket)
    if (no) {
      refused(no, { remote: socket.remoteAddress })
      socket.destroy()
      return false
    }
    metrics.unauthenticatedConnections.set(admission.unauthenticated)
    socket.once('close', () => metrics.unauthenticatedConnections.set(admission.unauthenticated))
    return true
  }
  const handle = (socket: Socket): void => {
    aedes.handle(new PacketGate(socket, { connectMaxBytes: CONNECT_MAX_BYTES, onRefused: gateRefused }) as unknown as Socket)
  }

  const aedes = await Aedes.createBroker({
    authenticate: createAuthenticate({
      directory: o.directory,
      verified: new VerifiedSecrets(),
      sessions,
      metrics,
      logger,
      loginQueue,
      onAuthenticated: (client) => {
        onAuthenticated(client)
        metrics.unauthenticatedConnections.set(admission.unauthenticated)
      },
    }),
    authorizePublish: createAuthorizePublish({ committer: o.committer, disk: o.disk, validation: config.validation, metrics, logger, reportError }),
    authorizeSubscribe: createAuthorizeSubscribe({ metrics, logger }),
    authorizeForward,
    // Devices connect with their id as client id (≤ 64 characters, see DEVICE_ID).
    maxClientsIdLength: 64,
    connectTimeout: config.mqtt.connectTimeoutMs,
  })
  const loginGauge = setInterval(() => metrics.loginQueueWaiting.set(loginQueue.waiting), 1000).unref()

  const aedesPublish = aedes.publish.bind(aedes) as unknown as RelayPublish
  relay = aedesPublish
  ;(aedes as unknown as { publish: RelayPublish }).publish = function publish(packet, client, done) {
    if (typeof client === 'function') return aedesPublish(packet, null, client)
    // A stored reading has no audience (see header): skip the relay work.
    if (client !== null && packet.topic === readingsTopic(client.id)) return done(null)
    aedesPublish(packet, client, done)
  }

  aedes.on('client', (client) => {
    metrics.connectedDevices.set(aedes.connectedClients)
    logger.info({ event: 'device_connected', deviceId: client.id, remote: (client.conn as unknown as PacketGate).remoteAddress }, `device ${client.id} connected`)
  })
  aedes.on('clientDisconnect', (client) => {
    metrics.connectedDevices.set(aedes.connectedClients)
    logger.info({ event: 'device_disconnected', deviceId: client.id }, `device ${client.id} disconnected`)
  })
  aedes.on('clientError', (client, err) => {
    if (err instanceof IngestRefusal) return // logged where it was decided
    logger.debug({ event: 'client_error', deviceId: client.id, err: clipForLog(err.message) }, 'client connection error')
  })
  aedes.on('connectionError', (_client, err) => logger.debug({ event: 'connection_error', err: clipForLog(err.message) }, 'connection error before CONNECT completed'))

  const stopWatching = watchEnrolment(aedes, { directory: o.directory, sessions, logger })
  const sockets = new Set<Socket>()
  const track = (s: Socket): void => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  }

  const servers: Server[] = []
  let mqtt: ListenerInfo | null = null
  let mqtts: ListenerInfo | null = null
  let tlsServer: TlsServer | null = null
  try {
    if (config.mqtt.port !== 0) {
      const server = createTcpServer({ noDelay: true }, (socket) => {
        if (!admit(socket)) return
        track(socket)
        handle(socket)
      })
      mqtt = await listen(server, config.mqtt.port, config.mqtt.host, 'CARELEDGER_MQTT_PORT / --mqtt-port')
      servers.push(server)
    }
    if (config.mqtts.port !== 0 && o.tls) {
      tlsServer = createTlsServer({ ...tlsContext(o.tls), handshakeTimeout: config.mqtt.connectTimeoutMs }, (socket) => {
        socket.setNoDelay(true)
        handle(socket)
      })
      // The raw TCP socket: a slot is taken before the handshake starts.
      tlsServer.on('connection', (raw: Socket) => {
        if (admit(raw)) track(raw)
      })
      // With a listener, Node leaves closing the socket to it: without destroy() a handshake that
      // failed or timed out (handshakeTimeout) would stay open for ever (issue 8, item 3).
      tlsServer.on('tlsClientError', (err, socket) => {
        refused('TLS_HANDSHAKE', { err: clipForLog(err.message), remote: socket.remoteAddress })
        socket.destroy()
      })
      mqtts = await listen(tlsServer, config.mqtts.port, config.mqtt.host, 'CARELEDGER_MQTTS_PORT / --mqtts-port')
      servers.push(tlsServer)
    }
  } catch (e) {
    for (const s of servers) s.close()
    await new Promise<void>((r) => aedes.close(r))
    throw e
  }

  const closed = servers.map((s) => once(s, 'close'))
  const stopAccepting = (): void => {
    for (const s of servers) if (s.listening) s.close()
  }
  return {
    aedes,
    listeners: { mqtt, mqtts },
    sessions,
    reportError,
    setTlsCredentials(c) {
      tlsServer?.setSecureContext(tlsContext(c))
    },
    async stopAccepting() {
      stopAccepting()
    },
    async close() {
      clearInterval(loginGauge)
      stopWatching()
      stopAccepting()
      await new Promise<void>((r) => aedes.close(r))
      for (const s of sockets) s.destroy() // connections that never completed CONNECT
      await Promise.all(closed)
    },
  }
}

/** Counts events per key; returns the count to report once per `ms` per key (0 meanwhile). */
function throttle(ms: number): (key: string) => number {
  const state = new Map<string, { since: number; n: number }>()
  return (key) => {
    const now = Date.now()
    const s = state.get(key) ?? { since: 0, n: 0 }
    s.n++
    state.set(key, s)
    if (now - s.since < ms) return 0
    const n = s.n
    s.since = now
    s.n = 0
    return n
  }
}

/** Listen, or fail with an error naming the setting (EADDRINUSE, EACCES, EADDRNOTAVAIL). */
export async function listen(server: Server, port: number, host: string, setting: string): Promise<ListenerInfo> {
  server.listen(port, host)
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e))])
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    const why = code === 'EADDRINUSE' ? 'is already in use' : code === 'EACCES' ? 'needs privileges this process does not have' : `cannot be used (${(e as Error).message})`
    throw new CareLedgerError('INVALID_ARGUMENT', `${host}:${port} (${setting}) ${why}`, { host, port, setting, code })
  }
  const addr = server.address()
  return { host, port: typeof addr === 'object' && addr ? addr.port : port }
}
