/**
 * Ingest: aedes' `authorizePublish` hook as a short list of named stages, in the manner of aedes
 * lib/handlers/publish.js. aedes runs [authorizePublish, enqueuePublish] in series and writes the
 * QoS 1 PUBACK in enqueuePublish, i.e. only after this hook calls back without error. So the
 * final callback — `acknowledge` — is reached only after `commitDurably`'s transaction committed:
 * every PUBACK follows a durable commit.
 *
 *   const ingestStages = [refuseWill, authorizeTopic, refuseWhenFull, validate, commitDurably, reportRejections]
 *
 * A stage that refuses calls back with an error: aedes then sends no PUBACK and closes the
 * connection — the only way MQTT 3.1.1 has to refuse a PUBLISH [MQTT-3.3.5-2]. Before that the
 * device is told why on its errors topic (it keeps the reading and resends it after reconnecting).
 * A reading that fails validation is NOT refused: it is acknowledged (so the device does not resend
 * it forever), quarantined, and reported on the errors topic.
 *
 * Nothing a device sends may throw out of this pipeline (issue 8): a stage that throws costs that
 * message, never the process. Before the commit the payload is quarantined whole as UNPROCESSABLE
 * and acknowledged (a deterministic failure would otherwise make the device resend it forever);
 * after the commit the exception is logged and the PUBACK still goes out.
 */
import type { Client, PublishPacket } from 'aedes'
import type { Logger } from 'pino'
import { readingsTopic, type DeviceErrorMessage } from '../../shared/schema/device.ts'
import { validatePayload, type PayloadVerdict } from '../../shared/schema/reading.ts'
import type { GatewayConfig } from '../config.ts'
import type { GatewayMetrics } from '../metrics.ts'
import { clipForLog } from '../log.ts'
import { DeviceNotEnrolledError, type GatewayRejection, type GroupCommitter, type WriteOutcome } from '../store/readings.ts'
import type { DiskBudget } from './disk-budget.ts'

/** Publish a DeviceErrorMessage on the device's errors topic (QoS 1); `done` once it is handed to the subscriber's socket. */
export type ReportError = (deviceId: string, msg: DeviceErrorMessage, done?: (err?: Error | null) => void) => void

export interface IngestDeps {
  readonly committer: GroupCommitter
  readonly disk: DiskBudget
  readonly validation: GatewayConfig['validation']
  readonly metrics: GatewayMetrics
  readonly logger: Logger
  readonly reportError: ReportError
  readonly now?: () => number
  /** How long a refused connection stays open after its error message was written (ms). */
  readonly refusalLingerMs?: number
}

/** Why a PUBLISH was refused (no PUBACK, connection closed). */
export class IngestRefusal extends Error {
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = 'IngestRefusal'
    this.code = code
  }
}

interface IngestContext {
  readonly client: Client
  readonly packet: PublishPacket
  readonly receivedAt: number
  stage: number
  verdict: { readonly accepted: PayloadVerdict['accepted']; readonly rejected: readonly GatewayRejection[] } | null
  outcome: WriteOutcome | null
}

type Next = (err?: Error | null) => void
type Stage = (ctx: IngestContext, next: Next) => void

export function createAuthorizePublish(deps: IngestDeps) {
  const { committer, disk, metrics, logger, reportError } = deps
  const now = deps.now ?? Date.now
  const linger = deps.refusalLingerMs ?? 100
  const limits = deps.validation

  /**
   * Refuse: tell the device on its errors topic, wait until that message is on the wire, then
   * close by calling back with an error (no PUBACK) [MQTT-3.3.5-2].
   */
  function refuse(ctx: IngestContext, reason: string, message: string, next: Next, tell = true): void {
    metrics.publishRefused.inc({ reason })
    const client = ctx.client
    const close = (): void => next(new IngestRefusal(reason, message))
    if (!tell || !client) return close()
    // One explanation per connection: the rest of the in-flight window is refused silently.
    if (closing.has(client)) return afterFlushed(client, linger, close)
    closing.add(client)
    logger.warn({ event: 'publish_refused', deviceId: client.id, topic: clipForLog(ctx.packet.topic), reason }, clipForLog(message))
    reportError(client.id, { seq: peekSeq(ctx.packet.payload, limits.maxBytes), code: reason, message }, () => afterFlushed(client, linger, close))
  }
  const closing = new WeakSet<Client>()

  /** Wills are not readings: a will would be published when we cannot store it. */
  const refuseWill: Stage = (ctx, next) => {
    if (ctx.client === null || ctx.packet === (ctx.client as { will?: unknown }).will) {
      return refuse(ctx, 'WILL', 'will messages are not accepted by the gateway', next, false)
    }
    next()
  }

  /** A device publishes only to its own readings topic; `$SYS/…` and everything else are refused. */
  const authorizeTopic: Stage = (ctx, next) => {
    const own = readingsTopic(ctx.client.id)
    if (ctx.packet.topic !== own) {
      return refuse(ctx, 'FORBIDDEN_TOPIC', `device ${ctx.client.id} may publish only to ${own}, not to ${clipForLog(ctx.packet.topic)}; connection closed, nothing stored`, next)
    }
    // Readings are never retained: aedes would otherwise keep the last one in memory and hand it to subscribers.
    ctx.packet.retain = false
    next()
  }

  /** Disk budget reached: do not store, do not acknowledge; the device keeps the reading. */
  const refuseWhenFull: Stage = (ctx, next) => {
    if (!disk.full) return next()
    refuse(ctx, 'STORAGE_FULL', `gateway storage is full (${disk.status.reason}); the reading was NOT stored and NOT acknowledged: keep it and resend later`, next)
  }

  const validate: Stage = (ctx, next) => {
    const payload = ctx.packet.payload
    ctx.verdict = validatePayload(typeof payload === 'string' ? Buffer.from(payload) : payload, { now: ctx.receivedAt, maxBytes: limits.maxBytes, maxReadings: limits.maxReadings, maxFutureMs: limits.maxFutureMs })
    next()
  }

  /** Queue for the group commit; continue only once the transaction holding this write committed. */
  const commitDurably: Stage = (ctx, next) => {
    const verdict = ctx.verdict!
    committer.enqueue({
      deviceId: ctx.client.id,
      receivedAt: ctx.receivedAt,
      readings: verdict.accepted,
      rejections: verdict.rejected,
      done: (err, outcome) => {
        try {
          if (!err) {
            ctx.outcome = outcome
            return next()
          }
          if (err instanceof DeviceNotEnrolledError) return refuse(ctx, 'NOT_ENROLLED', err.message, next, false)
          const full = /SQLITE_FULL|ENOSPC|disk is full/i.test(`${(err as { code?: string }).code ?? ''} ${err.message}`)
          refuse(ctx, full ? 'STORAGE_FULL' : 'STORE_FAILED', `the gateway could not store the reading (${err.message}); NOT acknowledged: resend later`, next)
        } catch (e) {
          stageFailed(ctx, e, next) // called back outside the stage runner's try
        }
      },
    })
  }

  /** Tell the device about every reading it sent that was quarantined. */
  const reportRejections: Stage = (ctx, next) => {
    const rejected = ctx.verdict!.rejected
    const conflicts = ctx.outcome!.conflicts
    if (rejected.length + conflicts.length > 0) {
      for (const r of rejected) tell(ctx.client.id, r)
      for (const r of conflicts) tell(ctx.client.id, r)
    }
    next()
  }

  function tell(deviceId: string, r: GatewayRejection): void {
    logger.debug({ event: 'reading_rejected', deviceId, seq: r.seq, code: r.code }, clipForLog(r.message))
    reportError(deviceId, { seq: r.seq, code: r.code, message: r.message })
  }

  const ingestStages: readonly Stage[] = [refuseWill, authorizeTopic, refuseWhenFull, validate, commitDurably, reportRejections]
  const COMMIT = ingestStages.indexOf(commitDurably)

  /** A stage threw: contain it to this message (see the header). */
  function stageFailed(ctx: IngestContext, e: unknown, next: Next): void {
    const stage = ingestStages[ctx.stage - 1]?.name ?? 'unknown'
    const why = e instanceof Error ? e.message : String(e)
    logger.error({ event: 'ingest_stage_failed', deviceId: ctx.client?.id, stage, err: clipForLog(why) }, `ingest stage ${stage} failed; the message is contained`)
    if (ctx.outcome !== null) return next() // committed: the PUBACK is owed
    if (ctx.stage > COMMIT) return refuse(ctx, 'STORE_FAILED', `the gateway could not store the reading (${clipForLog(why)}); NOT acknowledged: resend later`, next)
    const payload = ctx.packet?.payload ?? ''
    const message = `the gateway could not process this message (${clipForLog(why)}); it is kept in quarantine and acknowledged: do not resend it`
    ctx.verdict = { accepted: [], rejected: [{ seq: null, code: 'UNPROCESSABLE', message, raw: clipForLog(Buffer.from(payload).toString('utf8'), 512) }] }
    ctx.stage = COMMIT
    next()
  }

  return function authorizePublish(client: Client | null, packet: PublishPacket, acknowledge: (err?: Error | null) => void): void {
    const ctx: IngestContext = { client: client as Client, packet, receivedAt: now(), stage: 0, verdict: null, outcome: null }
    let finished = false
    const next: Next = (err) => {
      if (finished) return
      const stage = err ? undefined : ingestStages[ctx.stage++]
      if (stage === undefined) {
        finished = true
        return acknowledge(err ?? null) // no error: aedes now writes the PUBACK
      }
      try {
        stage(ctx, next)
      } catch (e) {
        stageFailed(ctx, e, next)
      }
    }
    next()
  }
}

/** The seq a refused payload was about (the first reading's), for the error message; null if unreadable. */
function peekSeq(payload: Buffer | string, maxBytes: number): number | null {
  if (payload.length > maxBytes) return null
  try {
    const v: unknown = JSON.parse(payload.toString())
    const first = Array.isArray(v) ? v[0] : v
    const seq = (first as { seq?: unknown } | null)?.seq
    return typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0 ? seq : null
  } catch {
    return null
  }
}

/**
 * Run `then` once everything written to the client's socket has left the process, plus `lingerMs`,
 * so closing the connection (aedes destroys the socket) cannot discard the error message.
 */
export function afterFlushed(client: Client, lingerMs: number, then: () => void): void {
  // Through the packet gate (packet-gate.ts), what is still queued sits in the socket behind it.
  const conn = ((client.conn as { socket?: unknown }).socket ?? client.conn) as { writableLength?: number; destroyed?: boolean; once(ev: string, f: () => void): unknown }
  const wait = (): void => void setTimeout(then, lingerMs).unref()
  if (conn.destroyed || !conn.writableLength) return wait()
  let fired = false
  const once = (): void => {
    if (fired) return
    fired = true
    wait()
  }
  conn.once('drain', once)
  conn.once('close', once)
}
