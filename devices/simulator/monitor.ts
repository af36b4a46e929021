/**
 * One simulated bedside monitor: its patient, its sequence numbers, its outbox and its own MQTT
 * connection (devices/sdk/client.ts). This is the I/O shell around the pure parts
 * (physiology.ts, faults.ts, sequence.ts, queue.ts).
 *
 * Each tick measures the patient, gives every reading a fresh seq, and queues the tick's readings
 * as one JSON array message. Messages go out oldest first, a few in flight at once; they keep
 * queueing while the gateway is unreachable and drain in order once it is back.
 */
import type { Logger } from 'pino'
import type { DeviceErrorMessage } from '../../shared/schema/device.ts'
import { connectDevice, DeviceClientError, type DeviceClient, type DeviceReading } from '../sdk/client.ts'
import { PatientModel, type PhysiologyOptions } from './physiology.ts'
import { tickReadings } from './readings.ts'
import { seededRandom } from './prng.ts'
import { OutboundQueue } from './queue.ts'
import { openSequenceFile } from './seq-store.ts'

export interface DeviceCredentials {
  readonly deviceId: string
  readonly secret: string
}

export interface MonitorOptions {
  readonly device: DeviceCredentials
  readonly url: string
  readonly ca?: string | Buffer
  /** Vital-sign ticks per second. */
  readonly rate: number
  readonly physiology?: PhysiologyOptions
  /** Probability that a reading is replaced by a deliberate fault. */
  readonly faultRate?: number
  /** Seed of the whole simulation; the device id is mixed in. */
  readonly seed: string
  readonly stateDir: string
  /** Most messages waiting to be sent before the oldest is dropped. */
  readonly queueLimit?: number
  /** Most messages awaiting PUBACK at once. */
  readonly maxInflight?: number
  readonly ackTimeoutMs?: number
  readonly keepalive?: number
  readonly backoff?: { initialMs?: number; maxMs?: number }
  readonly logger: Logger
  /** Device clock, epoch ms (tests shift it to exercise clock skew). */
  readonly now?: () => number
  /** Called once if the monitor gives up (credentials refused). */
  readonly onFailed?: (reason: string) => void
}

export interface MonitorStats {
  readonly deviceId: string
  readonly online: boolean
  /** Readings generated (each with a fresh seq). */
  readonly generated: number
  /** Readings put on the wire at least once. */
  readonly sent: number
  /** Readings acknowledged by the gateway (PUBACK). */
  readonly acked: number
  readonly inFlight: number
  readonly queued: number
  readonly dropped: number
  readonly faults: number
  /** Messages received on the errors topic. */
  readonly deviceErrors: number
  readonly errorsByCode: Readonly<Record<string, number>>
  readonly reconnects: number
  readonly failed: string | null
  readonly nextSeq: number
}

export interface Monitor {
  readonly deviceId: string
  stats(): MonitorStats
  /** Stop measuring, give the outbox up to `drainMs` to empty, then disconnect. */
  stop(drainMs?: number): Promise<MonitorStats>
}

/** Errors-topic codes that come with a closed connection and no PUBACK (docs/protocol.md §Errors topic). */
const REFUSALS = new Set(['STORAGE_FULL', 'STORE_FAILED', 'FORBIDDEN_TOPIC'])

interface Message {
  readonly readings: DeviceReading[]
  readonly firstSeq: number
  sent: boolean
}

export function startMonitor(opts: MonitorOptions): Monitor {
  const { deviceId } = opts.device
  const log = opts.logger.child({ deviceId })
  const now = opts.now ?? Date.now
  const maxInflight = opts.maxInflight ?? 8
  const seqFile = openSequenceFile(opts.stateDir, deviceId)
  const patient = new PatientModel(`${opts.seed}/${deviceId}/patient`, now(), opts.physiology)
  const faultRand = seededRandom(`${opts.seed}/${deviceId}/faults`)
  const queue = new OutboundQueue<Message>(opts.queueLimit ?? 3600)
  const c = { generated: 0, sent: 0, acked: 0, inFlight: 0, queued: 0, dropped: 0, faults: 0, deviceErrors: 0, reconnects: 0 }
  const errorsByCode: Record<string, number> = {}
  let client: DeviceClient | null = null
  let failed: string | null = null
  let stopping = false
  let drained: (() => void) | null = null
  log.info({ baseline: patient.baseline, firstSeq: seqFile.allocator.next }, 'monitor starting')

  const pump = (): void => {
    while (client && queue.inFlight < maxInflight) {
      const m = queue.takeNext()
      if (!m) break
      const n = m.readings.length
      c.queued -= n
      c.inFlight += n
      if (!m.sent) c.sent += n
      m.sent = true
      client.publish(m.readings).then(
        () => {
          queue.ack(m)
          c.inFlight -= n
          c.acked += n
          if (drained && queue.waiting + queue.inFlight === 0) drained()
          pump()
        },
        (e: unknown) => {
          queue.nack(m)
          c.inFlight -= n
          c.queued += n
          if (e instanceof DeviceClientError && e.code === 'CLOSED') return
          log.warn({ err: (e as Error).message, firstSeq: m.firstSeq }, 'publish not acknowledged; will resend in order')
          pump()
        },
      )
    }
  }

  const tick = (): void => {
    const t = now()
    const observations = patient.step(t)
    if (observations.length === 0) return
    let first: number
    try {
      first = seqFile.allocator.take(observations.length) // durable before use: see sequence.ts
    } catch (e) {
      // No durable mark, no seqs: these readings are lost, but no seq can ever be reused.
      log.error({ err: (e as Error).message, readings: observations.length }, 'cannot persist the sequence mark; readings dropped')
      return
    }
    const { readings, faults } = tickReadings(observations, first, opts.faultRate ?? 0, faultRand, t)
    c.faults += faults.length
    for (const f of faults) log.debug(f, 'fault injected')
    c.generated += readings.length
    c.queued += readings.length
    for (const d of queue.push({ readings, firstSeq: first, sent: false })) {
      c.dropped += d.readings.length
      c.queued -= d.readings.length
      log.warn({ firstSeq: d.firstSeq, readings: d.readings.length, droppedTotal: c.dropped }, 'outbox full: dropped the oldest message')
    }
    pump()
  }

  const timer = setInterval(tick, 1000 / opts.rate)
  const giveUp = (reason: string): void => {
    if (failed !== null || stopping) return
    failed = reason
    clearInterval(timer) // refused credentials do not fix themselves: stop generating
    log.error({ err: reason }, 'the gateway refuses this device; giving up on it')
    opts.onFailed?.(reason)
  }
  const abort = new AbortController()
  connectDevice({
    url: opts.url,
    deviceId,
    secret: opts.device.secret,
    ca: opts.ca,
    keepalive: opts.keepalive,
    ackTimeoutMs: opts.ackTimeoutMs,
    backoff: opts.backoff,
    signal: abort.signal,
    onError: (e: DeviceErrorMessage) => {
      c.deviceErrors++
      errorsByCode[e.code] = (errorsByCode[e.code] ?? 0) + 1
      // Refusals mean "not stored, not acknowledged": the message stays in the session and is resent.
      if (REFUSALS.has(e.code)) log.warn({ seq: e.seq, code: e.code, message: e.message }, 'gateway refused the publish; it will be resent')
      else log.info({ seq: e.seq, code: e.code, message: e.message }, 'gateway quarantined a reading')
    },
    onEvent: (e) => {
      if (e.type === 'reconnecting') c.reconnects++
      if (e.type === 'refused') giveUp(e.reason) // e.g. disabled or removed while running (CONNACK 5 / 4)
      const level = e.type === 'connected' ? 'info' : e.type === 'reconnecting' ? 'debug' : 'warn'
      log[level]({ event: e }, `connection ${e.type}`)
    },
  }).then(
    (cl) => {
      client = cl
      pump()
    },
    (e: Error) => giveUp(e.message),
  )

  const stats = (): MonitorStats => ({
    deviceId,
    online: client?.ready ?? false,
    ...c,
    errorsByCode: { ...errorsByCode },
    failed,
    nextSeq: seqFile.allocator.next,
  })

  let stopped: Promise<MonitorStats> | null = null
  return {
    deviceId,
    stats,
    stop(drainMs = 5000) {
      stopped ??= (async () => {
        stopping = true
        clearInterval(timer)
        if (client?.ready && queue.waiting + queue.inFlight > 0 && drainMs > 0) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, drainMs)
            drained = () => {
              clearTimeout(t)
              resolve()
            }
          })
        }
        // Linger a moment: the gateway publishes rejections right after the PUBACK.
        if (client?.ready && drainMs > 0) await new Promise((r) => setTimeout(r, Math.min(200, drainMs)))
        abort.abort()
        await client?.close()
        seqFile.release()
        const s = stats()
        log.info({ ...s, errorsByCode: undefined }, 'monitor stopped')
        return s
      })()
      return stopped
    },
  }
}
