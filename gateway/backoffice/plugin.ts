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
 */
import { Worker } from 'node:worker_threads'
import { setFlagsFromString } from 'node:v8'
import cron from 'node-cron'
import { Gauge, Counter } from 'prom-client'
import { CareLedgerError } from '../../shared/errors.ts'
import { assertEachAttributeOnce, parsePolicy } from '../../shared/crypto/policy/parse.ts'
import { epochOf, withEpoch } from '../../shared/protocol/epoch.ts'
import { METRIC_PREFIX } from '../metrics.ts'
import type { GatewayContext, GatewayPlugin, PluginHandle } from '../runtime.ts'
// Only light imports here: this module runs on the ingest thread. The curves (~33 MB of RSS per
// thread), the identity, the blockstore and the outbox (blocks.ts, outbox/sync.ts, seal/*,
// identity.ts …) belong to worker.ts — see also DEFAULT_SYNC_BACKOFF_MAX_MS.
import { DEFAULT_SYNC_BACKOFF_MAX_MS, type BackofficeOptions, type BackofficeStatus } from './protocol.ts'
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
    cryptoBackend: cryptoBackendChoice(undefined),
  }
  let stopping = false
  let exited: { code: number; at: number } | null = null
  let restarts = 0
  let worker: Worker

  /** Start a worker; resolves once it reported ready. Its totals restart at zero, so `last` does too. */
  const spawn = (): Promise<void> => {
    last = null
    releaseHeapFlagsForWorkers()
    worker = new Worker(new URL('./worker.ts', import.meta.url), { workerData: options, resourceLimits: BACKOFFICE_HEAP })
    const ready = new Promise<void>((resolve, reject) => {
      worker.once('error', reject)
      worker.on('message', (msg: BackofficeStatus | { type: 'stopped' }) => {
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
        if (msg.blockBytes !== null) ctx.disk.reportDirectory('blocks', msg.blockBytes)
        if (msg.lastSyncAt) m.lastSync.set(msg.lastSyncAt / 1000)
        last = msg
        if (msg.ready) resolve()
      })
    })
    worker.on('error', (e) => ctx.logger.fatal({ event: 'backoffice_crashed', err: e }, 'back-office worker crashed'))
    // A worker that is gone seals nothing: readings are still acknowledged and would pile up.
    // Restart it (backing off up to a minute) and say so in /healthz and /metrics meanwhile.
    worker.on('exit', (code) => {
      if (stopping) return
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
  const ready = spawn()
  await ready
  const retention = cron.schedule(RETENTION_SCHEDULE, () => worker.postMessage({ type: 'prune' }), { name: 'retention' })
  const gatewayId = (last as BackofficeStatus | null)?.gatewayId ?? null
  ctx.logger.info({ event: 'backoffice_started', gatewayId, cloud: (last as BackofficeStatus | null)?.cloudUrl ?? null }, `gateway ${gatewayId} sealing every ${ctx.config.seal.intervalSeconds}s`)
  return {
    async stop() {
      stopping = true
      await retention.destroy()
      const stopped = new Promise<void>((resolve) => {
        worker.on('message', (msg: { type: string }) => msg.type === 'stopped' && resolve())
        worker.once('exit', () => resolve())
      })
      worker.postMessage({ type: 'stop' })
      await Promise.race([stopped, new Promise((r) => setTimeout(r, 15_000))])
      await worker.terminate()
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
