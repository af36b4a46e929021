/**
 * Plugs the back office (sealer, outbox sync, retention) into the gateway runtime: starts the
 * worker thread (which creates the gateway identity on first start) and turns its status messages
 * into /metrics and /healthz.
 *
 * Besides the settings of gateway/config.ts, the back office reads (an empty variable counts as unset):
 *
 * | variable | flag | default | meaning |
 * |---|---|---|---|
 * | `CARELEDGER_SYNC_BACKOFF_MAX_S` | (none) | `300` | outbox: cap, in seconds (fractions allowed, 0.1 … 86400), of the jittered exponential backoff between upload attempts while the cloud is unreachable; a clinic keeps the default, tests lower it |
 * | `CARELEDGER_BACKOFFICE_THREAD` | (none) | `auto` | where sealing and shipping run: `auto` — on the ingest thread while a pass has at most INLINE_MAX_READINGS (5,000) readings to seal (a ward: one V8 isolate, ~60 MB, less), on a worker thread from the first pass that has more (a burst, a backlog) until passes stayed small for `CARELEDGER_BACKOFFICE_WORKER_QUIET_S` (default 600 s); `worker` — always on a worker thread; `inline` — always on the ingest thread (passes capped, the rest sealed at the next ones) |
 */
import { Worker } from 'node:worker_threads'
import { EventEmitter } from 'node:events'
import { setFlagsFromString } from 'node:v8'
import cron from 'node-cron'
import { Gauge, Counter } from 'prom-client'
import { CareLedgerError, reviveCareLedgerError } from '../../shared/errors.ts'
import { assertEachAttributeOnce, parsePolicy } from '../../shared/crypto/policy/parse.ts'
import { epochOf, withEpoch } from '../../shared/protocol/epoch.ts'
import { METRIC_PREFIX } from '../metrics.ts'
import type { GatewayContext, GatewayPlugin, PluginHandle } from '../runtime.ts'
// Only light imports here: this module runs on the ingest thread. The curves (~33 MB of RSS per
// thread), the identity, the blockstore and the outbox (blocks.ts, outbox/sync.ts, seal/*,
// identity.ts …) belong to worker.ts — see also DEFAULT_SYNC_BACKOFF_MAX_MS.
import { DEFAULT_SYNC_BACKOFF_MAX_MS, INLINE_MAX_READINGS, type BackofficeMessage, type BackofficeOptions, type BackofficeStatus } from './protocol.ts'
import { cryptoBackendChoice } from '../../shared/cli/crypto-backend.ts'

/**
 * The back office's own heap: its live set is ~30 MB (curves, window tables, one batch of at most
 * ~5,000 readings). Sized by bench:ingest: committed heap 60 → ~43 MB, sealing still ahead of ingest.
 */
const BACKOFFICE_HEAP = { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 8 } as const

/**
 * V8's heap-size flags are process-wide and override a worker's resourceLimits, so the ingest
 * thread's tuning (`--max-semi-space-size=16`, gateway/cli.ts memoryTuning) would give the back
 * office a 32 MB young generation too. V8 reads them only when it creates an isolate: the ingest
 * thread's heap is already configured, so clearing them here affects new workers alone (measured:
 * the worker's limit then follows BACKOFFICE_HEAP, the ingest thread keeps its young generation).
 */
function releaseHeapFlagsForWorkers(): void {
  setFlagsFromString('--max-semi-space-size=0')
  setFlagsFromString('--max-old-space-size=0')
}

export function backofficePlugin(): GatewayPlugin {
  return { name: 'backoffice', start: (ctx) => startBackoffice(ctx) }
}

export const SYNC_BACKOFF_MAX_ENV = 'CARELEDGER_SYNC_BACKOFF_MAX_S'
export const BACKOFFICE_THREAD_ENV = 'CARELEDGER_BACKOFFICE_THREAD'
export type BackofficeThread = 'auto' | 'worker' | 'inline'

/** CARELEDGER_BACKOFFICE_THREAD; INVALID_ARGUMENT naming the variable for anything but auto, worker, inline. */
export function backofficeThread(env: Readonly<Record<string, string | undefined>> = process.env): BackofficeThread {
  const raw = env[BACKOFFICE_THREAD_ENV]?.trim()
  if (raw === undefined || raw === '') return 'auto'
  if (raw === 'auto' || raw === 'worker' || raw === 'inline') return raw
  throw new CareLedgerError('INVALID_ARGUMENT', `${BACKOFFICE_THREAD_ENV}=${JSON.stringify(raw)}: must be auto, worker or inline`, { variable: BACKOFFICE_THREAD_ENV, value: raw })
}

/** In auto mode the worker hands back to the ingest thread once no pass was a burst for this long (CARELEDGER_BACKOFFICE_WORKER_QUIET_S). */
export const WORKER_QUIET_ENV = 'CARELEDGER_BACKOFFICE_WORKER_QUIET_S'
export function workerQuietMs(env: Readonly<Record<string, string | undefined>> = process.env): number {
  const raw = env[WORKER_QUIET_ENV]
  if (raw === undefined || raw.trim() === '') return 10 * 60_000
  const s = Number(raw)
  if (!Number.isFinite(s) || s < 1 || s > 86_400) {
    throw new CareLedgerError('INVALID_ARGUMENT', `${WORKER_QUIET_ENV}=${JSON.stringify(raw)}: must be a number of seconds between 1 and 86400`, { variable: WORKER_QUIET_ENV, value: raw })
  }
  return Math.round(s * 1000)
}

/**
 * The back office on the ingest thread, with a worker's face (messages, 'exit', terminate) so the
 * plugin treats both alike. office.ts is imported on first use: a gateway that only ever uses the
 * worker keeps the curves out of the ingest thread.
 */
class InlineOffice extends EventEmitter {
  readonly #inbox = new EventEmitter()
  readonly #done: Promise<void>
  constructor(options: BackofficeOptions, db: GatewayContext['db']) {
    super()
    this.#done = import('./office.ts')
      .then(({ runBackoffice }) =>
        runBackoffice(options, {
          inline: true,
          db,
          postMessage: (msg) => setImmediate(() => this.emit('message', msg)),
          onMessage: (fn) => this.#inbox.on('message', fn),
        }),
      )
      .then(
        () => void setImmediate(() => this.emit('exit', 0)),
        (e: unknown) =>
          void setImmediate(() => {
            if (this.listenerCount('error')) this.emit('error', e)
            this.emit('exit', 1)
          }),
      )
  }
  postMessage(msg: BackofficeMessage): void {
    setImmediate(() => this.#inbox.emit('message', msg))
  }
  /** Nothing to kill in-process: the office ends after `stop` (the plugin sends it first). */
  async terminate(): Promise<void> {
    await this.#done
  }
}
type Office = Worker | InlineOffice

/** CARELEDGER_SYNC_BACKOFF_MAX_S in ms; INVALID_ARGUMENT naming the variable for a bad value. */
export function syncBackoffMaxMs(env: Readonly<Record<string, string | undefined>> = process.env): number {
  const raw = env[SYNC_BACKOFF_MAX_ENV]
  if (raw === undefined || raw.trim() === '') return DEFAULT_SYNC_BACKOFF_MAX_MS
  const s = Number(raw)
  if (!Number.isFinite(s) || s < 0.1 || s > 86_400) {
    throw new CareLedgerError('INVALID_ARGUMENT', `${SYNC_BACKOFF_MAX_ENV}=${JSON.stringify(raw)}: must be a number of seconds between 0.1 and 86400`, { variable: SYNC_BACKOFF_MAX_ENV, value: raw })
  }
  return Math.round(s * 1000)
}

/** Retention runs hourly (and once at every start): node-cron here, the work in the worker. */
export const RETENTION_SCHEDULE = '7 * * * *'

async function startBackoffice(ctx: GatewayContext): Promise<PluginHandle> {
  const backoffMaxMs = syncBackoffMaxMs()
  // Fail at start, not at the first seal, if the default policy does not parse.
  try {
    const text = withEpoch(ctx.config.seal.defaultPolicy.replaceAll('{patient}', 'p-000000000000000000000000'), epochOf(Date.now()))
    assertEachAttributeOnce(parsePolicy(text), text)
  } catch (e) {
    throw new CareLedgerError('INVALID_ARGUMENT', `CARELEDGER_DEFAULT_POLICY is not a usable policy: ${(e as Error).message}`, { policy: ctx.config.seal.defaultPolicy })
  }
  const registers = [ctx.metrics.registry]
  const p = METRIC_PREFIX
  const m = {
    batches: new Counter({ name: `${p}batches_sealed_total`, help: 'Batches sealed (CP-ABE envelope, signed manifest).', registers }),
    readings: new Counter({ name: `${p}readings_sealed_total`, help: 'Readings sealed into batches.', registers }),
    sealSeconds: new Counter({ name: `${p}seal_seconds_total`, help: 'Time spent sealing.', registers }),
    sealFailures: new Counter({ name: `${p}seal_failures_total`, help: 'ALERT when rising: streams whose readings could not be sealed in a pass (retried each pass; see the seal_failed log).', registers }),
    outboxDepth: new Gauge({ name: `${p}outbox_depth`, help: 'Sealed batches waiting for the cloud.', registers }),
    outboxAge: new Gauge({ name: `${p}outbox_oldest_age_seconds`, help: 'Age of the oldest batch waiting for the cloud (0 when empty).', registers }),
    outboxRejected: new Gauge({ name: `${p}outbox_rejected`, help: 'ALERT: batches the cloud refused for good (kept on the gateway).', registers }),
    lastSync: new Gauge({ name: `${p}last_successful_sync_timestamp_seconds`, help: 'When the cloud last accepted an upload.', registers }),
    syncFailures: new Counter({ name: `${p}sync_failures_total`, help: 'Upload rounds that failed (cloud unreachable or 5xx).', registers }),
    cpuSeconds: new Counter({ name: `${p}backoffice_cpu_seconds_total`, help: 'CPU time of the back-office thread (sealing, shipping, retention).', registers }),
    sealInterval: new Gauge({ name: `${p}seal_interval_seconds`, help: 'Sealing interval in force (CARELEDGER_SEAL_OFFLINE_INTERVAL_S while the cloud is unreachable).', registers }),
    heap: new Gauge({ name: `${p}backoffice_heap_bytes`, help: 'V8 heap committed by the back-office thread (nodejs_heap_* are the ingest thread\'s).', registers }),
    wasm: new Gauge({ name: `${p}backoffice_wasm_bytes`, help: 'WebAssembly memory of the back office\'s pairing backend (mcl-wasm; 0 with noble): outside the V8 heap, inside the process RSS budget.', registers }),
    restarts: new Counter({ name: `${p}backoffice_restarts_total`, help: 'ALERT if rising: the back-office worker died and was restarted.', registers }),
    onWorker: new Gauge({ name: `${p}backoffice_on_worker`, help: '1 while sealing and shipping run on their own worker thread (bursts; CARELEDGER_BACKOFFICE_THREAD), 0 on the ingest thread.', registers }),
  }
  let last: BackofficeStatus | null = null
  const options: BackofficeOptions = {
    dataDir: ctx.dataDir,
    logLevel: ctx.config.log.level,
    sealIntervalMs: ctx.config.seal.intervalSeconds * 1000,
    offlineSealIntervalMs: ctx.config.seal.offlineIntervalSeconds * 1000,
    defaultPolicy: ctx.config.seal.defaultPolicy,
    cloudUrl: ctx.config.sync.cloudUrl,
    retentionHours: ctx.config.sync.retentionHours,
    syncBackoffMaxMs: backoffMaxMs,
    keyring: ctx.keyring.transfer(),
    cryptoBackend: cryptoBackendChoice(undefined),
  }
  const mode = backofficeThread()
  const quietMs = workerQuietMs()
  let stopping = false
  /** Set while the back office moves between the ingest thread and a worker: its exit is expected. */
  let moving = false
  let exited: { code: number; at: number } | null = null
  let restarts = 0
  let office: Office
  let onWorker = mode === 'worker'
  /** auto: when the worker last sealed a pass the ingest thread would have capped. */
  let lastBurstAt = 0

  /** Start the back office where `onWorker` says; resolves once it reported ready. Its totals restart at zero, so `last` does too. */
  const spawn = (): Promise<void> => {
    last = null
    let started: Office
    if (onWorker) {
      releaseHeapFlagsForWorkers()
      started = new Worker(new URL('./worker.ts', import.meta.url), { workerData: options, resourceLimits: BACKOFFICE_HEAP })
      lastBurstAt = Date.now()
    } else {
      started = new InlineOffice(options, ctx.db)
    }
    office = started
    const ready = new Promise<void>((resolve, reject) => {
      started.once('error', reject)
      started.on('message', (msg: BackofficeStatus | { type: 'stopped' }) => {
        if (msg.type !== 'status') return
        if (last) {
          m.batches.inc(msg.sealedBatches - last.sealedBatches)
          m.readings.inc(msg.sealedReadings - last.sealedReadings)
          m.sealSeconds.inc((msg.sealMs - last.sealMs) / 1000)
          m.cpuSeconds.inc(Math.max(0, msg.cpuMicros - last.cpuMicros) / 1e6)
          m.sealFailures.inc(msg.sealFailures - last.sealFailures)
          m.syncFailures.inc(msg.syncFailures - last.syncFailures)
        }
        m.outboxDepth.set(msg.outboxPending)
        m.outboxAge.set(msg.outboxOldestSealedAt ? (Date.now() - msg.outboxOldestSealedAt) / 1000 : 0)
        m.outboxRejected.set(msg.outboxRejected)
        m.heap.set(msg.heapBytes)
        m.wasm.set(msg.wasmBytes)
        m.sealInterval.set(msg.sealIntervalMs / 1000)
        m.onWorker.set(onWorker ? 1 : 0)
        if (msg.blockBytes !== null) ctx.disk.reportDirectory('blocks', msg.blockBytes)
        if (msg.lastSyncAt) m.lastSync.set(msg.lastSyncAt / 1000)
        last = msg
        if (msg.ready) resolve()
        if (msg.lastPass && mode === 'auto' && started === office) decideThread(msg.lastPass)
      })
    })
    started.on('error', (e) => ctx.logger.fatal({ event: 'backoffice_crashed', err: e }, 'back-office worker crashed'))
    // A back office that is gone seals nothing: readings are still acknowledged and would pile up.
    // Restart it (backing off up to a minute) and say so in /healthz and /metrics meanwhile.
    started.on('exit', (code) => {
      if (stopping || moving) return
      exited = { code, at: Date.now() }
      const delay = Math.min(60_000, 1000 * 2 ** Math.min(restarts, 6))
      ctx.logger.fatal({ event: 'backoffice_exited', code, restartInMs: delay }, 'back-office worker exited; restarting it')
      setTimeout(() => {
        if (stopping) return
        restarts++
        m.restarts.inc()
        spawn().then(
          () => (exited = null),
          (err: unknown) => ctx.logger.fatal({ event: 'backoffice_restart_failed', err }, 'back-office worker failed to restart'),
        )
      }, delay).unref()
    })
    return ready
  }

  /** Ask the back office to stop and wait for it (at most 15 s), then end it. */
  const halt = async (o: Office): Promise<void> => {
    const stopped = new Promise<void>((resolve) => {
      o.on('message', (msg: { type: string }) => msg.type === 'stopped' && resolve())
      o.once('exit', () => resolve())
    })
    o.postMessage({ type: 'stop' })
    await Promise.race([stopped, new Promise((r) => setTimeout(r, 15_000))])
    await o.terminate()
  }

  /**
   * auto: a pass the ingest thread capped (a burst, a backlog) moves the back office to a worker at
   * once; the worker hands back after `quietMs` without such a pass. One pass never overlaps
   * another: the old one has stopped (its pass and upload settled) before the new one starts.
   */
  const decideThread = (pass: NonNullable<BackofficeStatus['lastPass']>): void => {
    if (moving || stopping) return
    const burst = pass.more || pass.readings > INLINE_MAX_READINGS
    if (onWorker && burst) lastBurstAt = Date.now()
    const toWorker = !onWorker && pass.more
    const toInline = onWorker && Date.now() - lastBurstAt >= quietMs
    if (!toWorker && !toInline) return
    moving = true
    const from = office
    ctx.logger.info({ event: 'backoffice_moved', to: toWorker ? 'worker' : 'ingest thread', passReadings: pass.readings }, toWorker ? 'a burst: sealing moves to a worker thread' : 'quiet again: sealing moves back to the ingest thread')
    void halt(from)
      .then(() => {
        onWorker = toWorker
        return stopping ? undefined : spawn()
      })
      .catch((err: unknown) => ctx.logger.fatal({ event: 'backoffice_restart_failed', err }, 'back-office failed to move'))
      .finally(() => (moving = false))
  }

  // A refusal in the back office's start (a swapped authority key, a wrong passphrase) stops the
  // gateway with its own typed error.
  await spawn().catch((e: unknown) => Promise.reject(reviveCareLedgerError(e)))
  const retention = cron.schedule(RETENTION_SCHEDULE, () => office.postMessage({ type: 'prune' }), { name: 'retention' })
  const gatewayId = (last as BackofficeStatus | null)?.gatewayId ?? null
  ctx.logger.info({ event: 'backoffice_started', gatewayId, cloud: (last as BackofficeStatus | null)?.cloudUrl ?? null, thread: onWorker ? 'worker' : 'ingest', mode }, `gateway ${gatewayId} sealing every ${ctx.config.seal.intervalSeconds}s`)
  return {
    async stop() {
      stopping = true
      await retention.destroy()
      while (moving) await new Promise((r) => setTimeout(r, 50))
      await halt(office)
    },
    health: () => ({
      // ok | alert (batches the cloud refused, kept here: an operator must look) | failing (the worker is gone).
      // A cloud that is merely unreachable is not an alert: the outbox waits and retries.
      status: exited ? 'failing' : (last?.outboxRejected ?? 0) > 0 ? 'alert' : 'ok',
      ...(exited ? { workerExited: { code: exited.code, at: new Date(exited.at).toISOString() } } : {}),
      restarts,
      gatewayId,
      cloud: last?.cloudUrl ?? null,
      sealedBatches: last?.sealedBatches ?? 0,
      outboxPending: last?.outboxPending ?? 0,
      outboxRejected: last?.outboxRejected ?? 0,
      lastSyncAt: last?.lastSyncAt ? new Date(last.lastSyncAt).toISOString() : null,
    }),
  }
}
