/**
 * A bedside-monitor-shaped MQTT load source for the ingest bench and the crash test: one device,
 * QoS 1, one reading per message, at most `window` un-acknowledged messages in flight, seq
 * increasing by one. Records exactly which seqs got a PUBACK and the PUBACK latency
 * (publish() call → PUBACK callback). mqtt.js keeps un-acknowledged QoS 1 messages and resends
 * them after a reconnect, so across gateway crashes every sent reading is eventually acknowledged.
 */
import mqtt, { type MqttClient } from 'mqtt'
import { LatencyHistogram } from './latency.ts'

export interface PublisherOptions {
  readonly url: string
  readonly deviceId: string
  readonly secret: string
  /** Most un-acknowledged messages in flight. */
  readonly window: number
  /** First seq sent (default 1). */
  readonly firstSeq?: number
  /** Send this many messages, then resolve run() once all are answered (default: until stop()). */
  readonly count?: number
  /** CA PEM for mqtts:// URLs. */
  readonly ca?: string
  /** Reconnect delay, ms (default 100). */
  readonly reconnectPeriod?: number
  /** Collect the acknowledged seqs (crash test); off for the bench to save memory. */
  readonly trackAcked?: boolean
}

const TYPES = [
  ['heart_rate', '/min', 60, 40],
  ['spo2', '%', 92, 8],
  ['resp_rate', '/min', 12, 10],
  ['body_temp', 'Cel', 36.2, 2],
  ['bp_systolic', 'mm[Hg]', 105, 40],
  ['bp_diastolic', 'mm[Hg]', 65, 25],
] as const

/** A realistic single reading (~85 bytes of JSON), as a monitor sends it. */
export function readingPayload(seq: number, ts = Date.now()): string {
  const [type, unit, base, span] = TYPES[seq % TYPES.length]!
  const value = Math.round((base + ((seq * 7919) % 1000) / 1000 * span) * 10) / 10
  return `{"seq":${seq},"ts":${ts},"type":"${type}","unit":"${unit}","value":${value}}`
}

export class Publisher {
  readonly o: PublisherOptions
  readonly latency = new LatencyHistogram()
  readonly acked: Set<number> | null
  client: MqttClient | null = null
  ackedCount = 0
  failed = 0
  sent = 0
  inFlight = 0
  reconnects = 0
  errors: string[] = []
  #nextSeq: number
  #stopping = false
  #done: (() => void) | null = null
  #drained: (() => void) | null = null
  readonly #topic: string

  constructor(o: PublisherOptions) {
    this.o = o
    this.#nextSeq = o.firstSeq ?? 1
    this.acked = o.trackAcked ? new Set() : null
    this.#topic = `careledger/v1/devices/${o.deviceId}/readings`
  }

  get nextSeq(): number {
    return this.#nextSeq
  }

  /** Connect (first CONNACK). */
  async connect(): Promise<void> {
    const client = mqtt.connect(this.o.url, {
      protocolVersion: 4,
      clientId: this.o.deviceId,
      username: this.o.deviceId,
      password: this.o.secret,
      clean: false, // as docs/protocol.md asks of devices: the gateway keeps the session
      keepalive: 30,
      reconnectPeriod: this.o.reconnectPeriod ?? 100,
      connectTimeout: 5000,
      ...(this.o.ca ? { ca: this.o.ca } : {}),
    })
    this.client = client
    client.on('reconnect', () => this.reconnects++)
    client.on('error', (e) => {
      if (this.errors.length < 20) this.errors.push(e.message)
    })
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve())
      client.once('error', reject)
    })
  }

  /** Publish until `count` acknowledgements or stop(); resolves when the last in-flight message is acknowledged. */
  run(): Promise<void> {
    return new Promise((resolve) => {
      this.#done = resolve
      for (let i = 0; i < this.o.window; i++) this.#publishNext()
    })
  }

  /** Stop sending new messages; resolves once nothing is in flight (or after timeoutMs). */
  async stop(timeoutMs = 15_000): Promise<void> {
    this.#stopping = true
    if (this.inFlight === 0) return
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, timeoutMs)
      this.#drained = () => {
        clearTimeout(t)
        resolve()
      }
    })
  }

  async end(): Promise<void> {
    this.#stopping = true
    await this.client?.endAsync(true)
  }

  #publishNext(): void {
    const { count } = this.o
    if (this.#stopping || this.client!.disconnecting || (count !== undefined && this.sent >= count)) return
    const seq = this.#nextSeq++
    this.sent++
    this.inFlight++
    const started = performance.now()
    this.client!.publish(this.#topic, readingPayload(seq), { qos: 1 }, (err) => {
      this.inFlight--
      if (err) {
        this.failed++
        if (this.errors.length < 20) this.errors.push(`seq ${seq}: ${err.message}`)
      } else {
        this.ackedCount++
        this.acked?.add(seq)
        this.latency.record(performance.now() - started)
      }
      if (this.inFlight === 0 && this.#stopping) this.#drained?.()
      if (this.inFlight === 0 && (this.#stopping || (count !== undefined && this.sent >= count))) return this.#done?.()
      // After a failure (mqtt.js fails messages it had queued but not sent when a reconnect is cut
      // short) never publish from inside its callback: it may be iterating the very queue we add to.
      if (err) setTimeout(() => this.#publishNext(), 10)
      else this.#publishNext()
    })
  }
}
