/**
 * The MQTT side of the gateway: aedes (MQTT 3.1.1) with the CareLedger hooks, a TCP listener and a
 * TLS listener (node:tls, certificate from gateway/tls.ts, hot-swappable on renewal).
 *
 * Readings are consumed by the store, and no one may subscribe to a readings topic (auth.ts), so
 * after the PUBACK aedes' relay work for them — retained store, offline-queue lookup, mqemitter
 * fan-out, `published` — has nobody to serve. `broker.publish` is wrapped to skip it for a device's
 * own readings topic; everything else ($SYS heartbeats, error messages) goes through aedes as usual.
 */
import { Aedes, type Client, type PublishPacket } from 'aedes'
import { once } from 'node:events'
import { createServer as createTcpServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls'
import type { Logger } from 'pino'
import { CareLedgerError } from '../../shared/errors.ts'
import { errorsTopic, readingsTopic } from '../../shared/schema/device.ts'
import type { GatewayConfig } from '../config.ts'
import type { GatewayMetrics } from '../metrics.ts'
import type { DeviceDirectory } from '../store/devices.ts'
import { VerifiedSecrets } from '../store/devices.ts'
import type { GroupCommitter } from '../store/readings.ts'
import type { ServerCredentials } from '../tls.ts'
import { authorizeForward, createAuthenticate, createAuthorizeSubscribe, watchEnrolment, type DeviceSession } from './auth.ts'
import type { DiskBudget } from './disk-budget.ts'
import { IngestRefusal, createAuthorizePublish, type ReportError } from './ingest.ts'

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

  const aedes = await Aedes.createBroker({
    authenticate: createAuthenticate({ directory: o.directory, verified: new VerifiedSecrets(), sessions, metrics, logger }),
    authorizePublish: createAuthorizePublish({ committer: o.committer, disk: o.disk, validation: config.validation, metrics, logger, reportError }),
    authorizeSubscribe: createAuthorizeSubscribe({ metrics, logger }),
    authorizeForward,
    // Devices connect with their id as client id (≤ 64 characters, see DEVICE_ID).
    maxClientsIdLength: 64,
  })

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
    logger.info({ event: 'device_connected', deviceId: client.id, remote: (client.conn as Socket).remoteAddress }, `device ${client.id} connected`)
  })
  aedes.on('clientDisconnect', (client) => {
    metrics.connectedDevices.set(aedes.connectedClients)
    logger.info({ event: 'device_disconnected', deviceId: client.id }, `device ${client.id} disconnected`)
  })
  aedes.on('clientError', (client, err) => {
    if (err instanceof IngestRefusal) return // logged where it was decided
    logger.debug({ event: 'client_error', deviceId: client.id, err: err.message }, 'client connection error')
  })
  aedes.on('connectionError', (_client, err) => logger.debug({ event: 'connection_error', err: err.message }, 'connection error before CONNECT completed'))

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
      const server = createTcpServer({ noDelay: true }, (socket) => aedes.handle(socket))
      server.on('connection', track)
      mqtt = await listen(server, config.mqtt.port, config.mqtt.host, 'CARELEDGER_MQTT_PORT / --mqtt-port')
      servers.push(server)
    }
    if (config.mqtts.port !== 0 && o.tls) {
      tlsServer = createTlsServer({ key: o.tls.key, cert: o.tls.cert, minVersion: 'TLSv1.2', handshakeTimeout: 10_000 }, (socket) => {
        socket.setNoDelay(true)
        aedes.handle(socket)
      })
      tlsServer.on('connection', track)
      tlsServer.on('tlsClientError', (err) => logger.debug({ event: 'tls_client_error', err: err.message }, 'TLS handshake failed'))
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
      tlsServer?.setSecureContext({ key: c.key, cert: c.cert, minVersion: 'TLSv1.2' })
    },
    async stopAccepting() {
      stopAccepting()
    },
    async close() {
      stopWatching()
      stopAccepting()
      await new Promise<void>((r) => aedes.close(r))
      for (const s of sockets) s.destroy() // connections that never completed CONNECT
      await Promise.all(closed)
    },
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
