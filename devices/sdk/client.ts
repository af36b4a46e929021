/**
 * CareLedger device reference client (docs/protocol.md §Connection … §Errors topic). Meant to be
 * read in one sitting and ported to C; every rule a bedside monitor must follow is stated here.
 *
 *  - MQTT 3.1.1, QoS 1 = at-least-once. A reading is safe only when its PUBACK arrives: the gateway
 *    acknowledges after storing it durably. Until then the device keeps it and sends it again.
 *  - Resending is harmless because the gateway stores each (deviceId, seq) once. The flip side:
 *    a seq must NEVER be reused for a different reading, not even after a reboot.
 *  - Clean session = 0 and client id = device id, so the broker keeps our errors subscription and
 *    queues QoS 1 error messages while we are away [MQTT-3.1.2-4]; on reconnect the client resends
 *    unacknowledged PUBLISHes with their original packet ids [MQTT-4.4.0-1]. If the broker lost the
 *    session anyway (CONNACK session present = 0 [MQTT-3.2.2-2]) we subscribe again.
 */
import { connect, type IConnackPacket, type ISubscriptionGrant } from 'mqtt'
import { assertDeviceId, errorsTopic, readingsTopic, type DeviceErrorMessage } from '../../shared/schema/device.ts'
import { VALIDATION_DEFAULTS } from '../../shared/schema/reading.ts'
import { CareLedgerError } from '../../shared/errors.ts'

/** One reading as sent (docs/protocol.md §Payload). Loosely typed so faults can be sent on purpose. */
export interface DeviceReading {
  seq: number
  ts: string | number
  type: string
  unit: string
  value?: number
  samples?: number[]
  hz?: number
}

export interface DeviceClientOptions {
  /** mqtt://gateway:1883 or mqtts://gateway:8883 */
  url: string
  deviceId: string
  secret: string
  /** PEM of the gateway CA; with mqtts the gateway certificate must chain to it and name the host. */
  ca?: string | Buffer
  /** Seconds; the broker drops us after 1.5× this without a packet [MQTT-3.1.2-24]. Default 30. */
  keepalive?: number
  /** A PUBLISH not acknowledged this long on a live connection is withdrawn and rejected. Default 10 s. */
  ackTimeoutMs?: number
  backoff?: { initialMs?: number; maxMs?: number }
  onError?: (error: DeviceErrorMessage) => void
  onEvent?: (event: DeviceClientEvent) => void
  /** Aborts the first connection attempt (connectDevice keeps retrying until the gateway answers). */
  signal?: AbortSignal
}

export type DeviceClientEvent =
  | { type: 'connected'; sessionPresent: boolean }
  | { type: 'disconnected'; reason: string }
  | { type: 'reconnecting'; attempt: number; delayMs: number }
  | { type: 'refused'; reason: string }
  | { type: 'connection-error'; reason: string }
  | { type: 'bad-error-message'; payload: string }

export interface DeviceClient {
  readonly deviceId: string
  /** Connected and subscribed: publishes go out now rather than waiting for the connection. */
  readonly ready: boolean
  /** Resolves on PUBACK. Waits (without timing out) while disconnected; rejects ACK_TIMEOUT or CLOSED. */
  publish(readings: DeviceReading | readonly DeviceReading[]): Promise<void>
  close(): Promise<void>
}

export type DeviceClientErrorCode = 'REFUSED' | 'ACK_TIMEOUT' | 'CLOSED' | 'ABORTED'
/** Same shape as CareLedgerError; shared/errors.ts has no codes for connection failures yet. */
export class DeviceClientError extends Error {
  readonly code: DeviceClientErrorCode
  readonly info: Readonly<Record<string, unknown>>
  constructor(code: DeviceClientErrorCode, message: string, info: Record<string, unknown> = {}) {
    super(message)
    this.name = 'DeviceClientError'
    this.code = code
    this.info = info
  }
}

/** Exponential backoff with jitter: between half and all of min(max, initial·2^attempt), so a ward of monitors does not reconnect in lockstep after a gateway restart. */
export function backoffDelay(attempt: number, initialMs = 500, maxMs = 30_000, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30))
  return Math.round(cap / 2 + (random() * cap) / 2)
}

/** Parse what the gateway publishes on our errors topic; null if it is not {seq, code, message}. */
export function parseDeviceError(payload: Uint8Array): DeviceErrorMessage | null {
  try {
    const m = JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>
    const seqOk = m.seq === null || (typeof m.seq === 'number' && Number.isSafeInteger(m.seq))
    if (!seqOk || typeof m.code !== 'string' || typeof m.message !== 'string') return null
    return { seq: m.seq as number | null, code: m.code, message: m.message }
  } catch {
    return null
  }
}

interface Pending { payload: Buffer; resolve: () => void; reject: (e: Error) => void; done: boolean; id?: number; timer?: NodeJS.Timeout }

export function connectDevice(opts: DeviceClientOptions): Promise<DeviceClient> {
  const deviceId = assertDeviceId(opts.deviceId)
  const topic = readingsTopic(deviceId)
  const errTopic = errorsTopic(deviceId)
  const ackTimeoutMs = opts.ackTimeoutMs ?? 10_000
  const emit = (e: DeviceClientEvent): void => opts.onEvent?.(e)

  const mqtt = connect(opts.url, {
    protocolVersion: 4, // MQTT 3.1.1
    clientId: deviceId, // the session is keyed by client id: one per device
    username: deviceId,
    password: opts.secret,
    clean: false,
    keepalive: opts.keepalive ?? 30,
    ca: opts.ca,
    rejectUnauthorized: true,
    reconnectPeriod: 0, // we reconnect ourselves, with backoff
    resubscribe: false, // we subscribe ourselves whenever the session is gone
    connectTimeout: 10_000,
  })

  const waiting: Pending[] = [] // not yet handed to MQTT: we are offline
  const inflight = new Map<number, Pending>() // sent, awaiting PUBACK, by packet id
  let ready = false
  let closed = false
  let attempt = 0
  let reconnectTimer: NodeJS.Timeout | undefined
  let first: { resolve: (c: DeviceClient) => void; reject: (e: Error) => void } | null = null

  const settle = (p: Pending, err?: Error): void => {
    if (p.done) return
    p.done = true
    clearTimeout(p.timer)
    if (p.id !== undefined) inflight.delete(p.id)
    if (err) p.reject(err)
    else p.resolve()
  }
  const armAckTimer = (p: Pending): void => {
    clearTimeout(p.timer)
    p.timer = setTimeout(() => {
      // Withdraw it from the session so it is never sent behind the caller's back; the caller owns it again.
      if (p.id !== undefined) mqtt.removeOutgoingMessage(p.id)
      settle(p, new DeviceClientError('ACK_TIMEOUT', `no PUBACK within ${ackTimeoutMs} ms`, { deviceId, packetId: p.id }))
    }, ackTimeoutMs)
  }
  const send = (p: Pending): void => {
    mqtt.publish(topic, p.payload, { qos: 1 }, (err) => {
      if (!err) settle(p)
    })
    p.id = mqtt.getLastMessageId() // assigned synchronously while connected
    inflight.set(p.id, p)
    armAckTimer(p)
  }
  const fail = (err: DeviceClientError): void => {
    closed = true
    emit({ type: 'refused', reason: err.message })
    for (const p of [...waiting.splice(0), ...inflight.values()]) settle(p, err)
    first?.reject(err)
    first = null
    mqtt.end(true)
  }

  const api: DeviceClient = {
    deviceId,
    get ready() {
      return ready
    },
    publish(readings) {
      if (closed) return Promise.reject(new DeviceClientError('CLOSED', 'client is closed', { deviceId }))
      const payload = Buffer.from(JSON.stringify(readings), 'utf8')
      if (payload.length > VALIDATION_DEFAULTS.maxBytes) {
        return Promise.reject(new CareLedgerError('INVALID_ARGUMENT', `payload of ${payload.length} bytes exceeds ${VALIDATION_DEFAULTS.maxBytes}`, { deviceId }))
      }
      return new Promise<void>((resolve, reject) => {
        const p: Pending = { payload, resolve, reject, done: false }
        if (ready) send(p)
        else waiting.push(p)
      })
    },
    async close() {
      if (closed) return
      closed = true
      clearTimeout(reconnectTimer)
      const err = new DeviceClientError('CLOSED', 'client closed before PUBACK', { deviceId })
      for (const p of [...waiting.splice(0), ...inflight.values()]) {
        if (p.id !== undefined) mqtt.removeOutgoingMessage(p.id)
        settle(p, err)
      }
      first?.reject(new DeviceClientError('ABORTED', 'closed before the first connection', { deviceId }))
      first = null
      const graceful = mqtt.connected && Object.keys(mqtt.outgoing).length === 0 // DISCONNECT only if nothing is pending
      await new Promise<void>((resolve) => mqtt.end(!graceful, {}, () => resolve()))
    },
  }

  const onReady = (): void => {
    ready = true
    attempt = 0
    for (const p of waiting.splice(0)) send(p) // in order, after the resent ones
    first?.resolve(api)
    first = null
  }

  mqtt.on('connect', (connack: IConnackPacket) => {
    emit({ type: 'connected', sessionPresent: connack.sessionPresent })
    if (connack.sessionPresent) return onReady()
    mqtt.subscribe(errTopic, { qos: 1 }, (err, granted?: ISubscriptionGrant[]) => {
      if (closed) return
      // SUBACK 0x80 (MQTT 3.1.1 §3.9.3): the gateway refuses us our own errors topic — a config error.
      const suback = (err as { packet?: { granted?: number[] } } | null)?.packet?.granted ?? granted?.map((g) => g.qos)
      if (suback?.[0] === 128) return fail(new DeviceClientError('REFUSED', `subscription to ${errTopic} refused`, { deviceId }))
      if (!err) onReady() // any other error: the connection dropped; 'close' reconnects and we subscribe again
    })
  })

  mqtt.on('packetreceive', (packet) => {
    // Accepted: the session's unacknowledged PUBLISHes are resent now, so their ack timers run again.
    if (packet.cmd === 'connack' && packet.returnCode === 0) for (const p of inflight.values()) armAckTimer(p)
  })

  mqtt.on('message', (t, payload) => {
    if (t !== errTopic) return
    const msg = parseDeviceError(payload)
    if (msg) opts.onError?.(msg)
    else emit({ type: 'bad-error-message', payload: payload.toString('utf8').slice(0, 200) })
  })

  mqtt.on('error', (err: Error & { code?: number | string }) => {
    if (closed) return
    // CONNACK 1, 2, 4, 5 will not change by retrying (MQTT 3.1.1 §3.2.2.3); 3 (server unavailable) might.
    if (err.code === 1 || err.code === 2 || err.code === 4 || err.code === 5) {
      return fail(new DeviceClientError('REFUSED', `${opts.url}: ${err.message}`, { deviceId, returnCode: err.code }))
    }
    // Socket and TLS errors (e.g. a gateway certificate not from our CA) are followed by 'close',
    // which schedules the reconnect: a device keeps trying, someone may fix the gateway.
    emit({ type: 'connection-error', reason: err.message })
  })

  mqtt.on('close', () => {
    const wasReady = ready
    ready = false
    for (const p of inflight.values()) {
      clearTimeout(p.timer) // no ack timeouts while offline
      // They will be resent on reconnect: mark them DUP = 1 [MQTT-3.3.1-1] (mqtt.js resends as stored).
      mqtt.outgoingStore.get({ messageId: p.id }, (_, pk) => {
        if (pk?.cmd === 'publish' && !pk.dup) mqtt.outgoingStore.put({ ...pk, dup: true }, () => {})
      })
    }
    if (closed || reconnectTimer) return
    if (wasReady) emit({ type: 'disconnected', reason: 'connection closed' })
    const delayMs = backoffDelay(attempt++, opts.backoff?.initialMs, opts.backoff?.maxMs)
    emit({ type: 'reconnecting', attempt, delayMs })
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined
      // Keep the stores: they hold the session's unacknowledged PUBLISHes [MQTT-4.4.0-1].
      if (!closed) mqtt.reconnect({ incomingStore: mqtt.incomingStore, outgoingStore: mqtt.outgoingStore })
    }, delayMs)
  })

  opts.signal?.addEventListener('abort', () => {
    if (first) void api.close()
  }, { once: true })

  return new Promise<DeviceClient>((resolve, reject) => {
    first = { resolve, reject }
    if (opts.signal?.aborted) void api.close()
  })
}
