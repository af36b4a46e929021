/**
 * The gateway's back office: `runBackoffice(options, port)`. It runs either on the ingest thread
 * (at a ward's load: one V8 isolate less, docs/operations.md §Capacity) or on its own worker
 * thread (worker.ts; during bursts, so that sealing never stalls the event loop that acknowledges
 * readings) — plugin.ts chooses and moves it:
 *
 *   every seal interval:  seal due streams → start draining the outbox (unless backing off or a
 *                         drain is still in flight — the drain never holds up the next seal) →
 *                         fetch the cloud's instructions when it says some wait, or every 5 min
 *                         (outbox/instructions.ts)
 *   every hour:           prune synced data past retention
 *   at start:             delete envelope blocks no batch names (left by a crash mid-seal)
 *
 * On a worker it has its own SQLite connection (WAL lets it read while ingest writes); on the ingest
 * thread it shares the gateway's (BackofficePort.db). And the blockstore.
 * It reports to the plugin with `status` messages, which feed /metrics and /healthz.
 */
import { getHeapStatistics } from 'node:v8'
import type Database from 'better-sqlite3'
import { pino } from 'pino'
import { openGatewayDb } from '../store/db.ts'
import { existsSync } from 'node:fs'
import { cloudFile, loadIdentity } from '../identity.ts'
import { Keyring, warnTo } from '../../shared/cli/secret-files.ts'
import { openBlockNode } from '../blocks.ts'
import { Sealer } from '../seal/sealer.ts'
import { DEFAULT_BACKOFF, OutboxSync } from '../outbox/sync.ts'
import { HttpUploader } from '../outbox/client.ts'
import { InstructionRunner, POLL_INTERVAL_MS } from '../outbox/instructions.ts'
import { hexToBytes } from '@noble/hashes/utils.js'
import type { GatewayIdentity } from '../identity.ts'
import { deleteOrphanBlocks, pruneSynced } from '../outbox/retention.ts'
import { INLINE_MAX_READINGS, type BackofficeMessage, type BackofficeOptions, type BackofficeStatus } from './protocol.ts'
import { cryptoLogFields, initCrypto } from '../../shared/cli/crypto-backend.ts'
import { backend } from '../../shared/crypto/abe/backend.ts'

/** What the back office talks through: a worker's parentPort (worker.ts) or an in-process pair (plugin.ts). */
export interface BackofficePort {
  /** True when the back office shares the ingest thread: passes are capped (INLINE_MAX_READINGS). */
  readonly inline: boolean
  /**
   * On the ingest thread: the gateway's own connection, used instead of a second one (one SQLite page
   * cache and statement set fewer; every transaction here is synchronous, so none interleaves with
   * ingest's group commit on the same thread). The office leaves it open when it stops.
   */
  readonly db?: Database.Database
  postMessage(msg: BackofficeStatus | { type: 'stopped' }): void
  onMessage(fn: (m: BackofficeMessage) => void): void
}


/** Runs until told to stop; resolves once everything is closed (rejects if the pairing backend cannot be used). */
export async function runBackoffice(opts: BackofficeOptions, port: BackofficePort): Promise<void> {
  const logger = pino({ level: opts.logLevel, base: { service: 'careledger-gateway', thread: 'backoffice' } })
  // The pairing backend loads (mcl-wasm: compile and self-test, ~1 s) while the rest starts; the
  // first sealing pass waits for it, so every seal uses the configured backend. A backend named
  // explicitly that cannot be used ends the worker (the plugin restarts it and the log says why).
  const cryptoReady = initCrypto(opts.cryptoBackend).then(
    (s) => {
      logger.info({ event: 'crypto_backend', ...cryptoLogFields(s) }, `CP-ABE on ${s.backend.description} (${s.reason})`)
      return s
    },
    (e: unknown) => {
      logger.fatal({ event: 'crypto_backend_failed', err: e }, `the pairing backend cannot be used: ${e instanceof Error ? e.message : String(e)}`)
      throw e // ends the back office at its first pass (the plugin restarts it and the log says why)
    },
  )
  const db = port.db ?? openGatewayDb(opts.dataDir, { logger }).db
  // Creates the gateway's keys on first start (and a development authority when none is configured),
  // sealed with the main thread's passphrase and derived key (no second scrypt).
  const keyring = Keyring.fromTransfer(opts.keyring, warnTo(logger))
  const identity = loadIdentity(opts.dataDir, { logger, keyring })
  const node = await openBlockNode(opts.dataDir, db)
  const sealer = new Sealer(db, identity, opts.defaultPolicy, logger)
  const backoff = { baseMs: Math.min(DEFAULT_BACKOFF.baseMs, opts.syncBackoffMaxMs), capMs: opts.syncBackoffMaxMs }
  let cloudUrl = opts.cloudUrl ?? identity.cloud?.url ?? null
  let uploader = cloudUrl ? new HttpUploader(cloudUrl, identity) : null
  let sync = uploader ? new OutboxSync(db, node.blockstore, uploader, logger, backoff) : null
  /** Instructions need the cloud's signing key pinned at registration to be checked. */
  const runnerFor = (id: GatewayIdentity, up: HttpUploader | null): InstructionRunner | null =>
    up && id.cloud ? new InstructionRunner(db, node.blockstore, up, { gatewayId: id.gatewayId, cloudSigningKey: hexToBytes(id.cloud.cloudSigningKey) }, logger) : null
  let instructions = runnerFor(identity, uploader)
  if (!cloudUrl) logger.warn({ event: 'no_cloud' }, 'no cloud registered: batches are sealed and kept in the outbox until `careledger gateway register`')

  /** `careledger gateway register` while the gateway runs: start shipping at the next pass, no restart needed. */
  function pickUpRegistration(): void {
    if (sync || !existsSync(cloudFile(opts.dataDir))) return
    const registered = loadIdentity(opts.dataDir, { create: false, keyring })
    if (!registered.cloud) return
    cloudUrl = registered.cloud.url
    uploader = new HttpUploader(cloudUrl, registered)
    sync = new OutboxSync(db, node.blockstore, uploader, logger, backoff)
    instructions = runnerFor(registered, uploader)
    logger.info({ event: 'cloud_registered', cloud: cloudUrl }, `registered with ${cloudUrl}: shipping the outbox`)
  }

  let stopping = false
  /** Retention is due at start and whenever the main thread's node-cron job says so (plugin.ts). */
  let pruneDue = true
  /** CPU time of this thread (Node ≥ 23.9). On the ingest thread, only what its passes took is counted. */
  const threadCpuMicros = (): number => {
    const u = process.threadCpuUsage()
    return u.user + u.system
  }
  let passCpuMicros = 0
  const cpuMicros = (): number => (port.inline ? passCpuMicros : threadCpuMicros())

  const totals = { batches: 0, readings: 0, sealMs: 0, sealFailures: 0, syncFailures: 0, syncRounds: 0 }

  function report(extra: Partial<BackofficeStatus> = {}): void {
    const depth = sync?.depth() ?? pendingWithoutCloud()
    const status: BackofficeStatus = {
      gatewayId: identity.gatewayId,
      type: 'status',
      sealedBatches: totals.batches,
      sealedReadings: totals.readings,
      sealMs: totals.sealMs,
      cpuMicros: cpuMicros(),
      heapBytes: getHeapStatistics().total_heap_size,
      cryptoBackend: backend().name,
      wasmBytes: backend().externalMemoryBytes(),
      blockBytes: blocksMeasured ? node.usage.bytes : null,
      sealIntervalMs: sync?.failing ? opts.offlineSealIntervalMs : opts.sealIntervalMs,
      sealFailures: totals.sealFailures,
      outboxPending: depth.pending,
      outboxOldestSealedAt: depth.oldestSealedAt,
      outboxRejected: depth.rejected,
      lastSyncAt: sync?.lastSuccessAt ?? null,
      syncFailures: totals.syncFailures,
      cloudUrl,
      ...extra,
    }
    port.postMessage(status)
  }

  function pendingWithoutCloud() {
    const d = db
      .prepare<[], { n: number; oldest: number | null }>("SELECT count(*) AS n, min(b.sealed_at) AS oldest FROM outbox o JOIN batches b USING (batch_id) WHERE o.state = 'pending'")
      .get()!
    return { pending: d.n, oldestSealedAt: d.oldest, rejected: 0 }
  }

  let running: Promise<void> | null = null
  let syncing: Promise<void> | null = null

  /** One pass; concurrent callers share the pass in flight (a pass must never overlap another). */
  function tick(forceSeal = false): Promise<void> {
    running ??= pass(forceSeal).finally(() => (running = null))
    return running
  }

  let lastSealAt = 0
  /**
   * Seal every sealIntervalMs while the cloud takes uploads; while it does not (the outbox's last
   * round failed), every offlineSealIntervalMs: a batch sealed every 5 s buys no latency then, and a
   * day's outage in 60-s batches ships in 12× fewer uploads (bench:cloud §4). The first successful
   * round brings the short interval back, and the readings waiting are sealed at the next pass.
   */
  function sealDue(now: number): boolean {
    const offline = sync?.failing ?? false
    return now - lastSealAt >= (offline ? opts.offlineSealIntervalMs : opts.sealIntervalMs) - 50
  }

  /**
   * Drain the outbox beside the sealer, never in its way: a cloud that accepts connections but does
   * not answer holds an upload for up to its timeout (60 s), and sealing must not wait for that.
   * One drain at a time; the next pass starts another when this one is done. (Both use the one
   * SQLite connection; each transaction is synchronous, so they interleave only between transactions.)
   */
  function startSync(): void {
    if (!sync || syncing || stopping) return
    const s = sync
    syncing = s
      .drain()
      .then(
        (r) => {
          totals.syncRounds++
          if (r.failure && r.failure !== 'backing off') totals.syncFailures++
        },
        (e: unknown) => logger.error({ event: 'backoffice_error', err: e }, 'outbox drain failed; retrying next interval'),
      )
      .finally(() => {
        syncing = null
        if (!stopping) report()
      })
  }

  let polling: Promise<void> | null = null
  let nextPollAt = 0

  /** Fetch and carry out the cloud's instructions when it said some wait, when forced, or every POLL_INTERVAL_MS. */
  function startInstructions(force: boolean): void {
    if (!instructions || !uploader || polling || stopping) return
    const now = Date.now()
    if (!force && uploader.pendingInstructions === 0 && now < nextPollAt) return
    nextPollAt = now + POLL_INTERVAL_MS
    uploader.pendingInstructions = 0
    polling = instructions
      .poll()
      .then(
        (r) => {
          if (r.received > 0) logger.info({ event: 'instructions_polled', ...r }, `carried out ${r.done} of ${r.received} cloud instructions`)
        },
        (e: unknown) => logger.warn({ event: 'instructions_failed', error: (e as Error).message }, 'could not fetch the cloud\'s instructions; trying again later'),
      )
      .finally(() => {
        polling = null
      })
  }

  let swept = false
  let lastPass: BackofficeStatus['lastPass'] = { readings: 0, more: false }
  let blocksMeasured = false

  async function pass(forceSeal: boolean): Promise<void> {
    await cryptoReady
    const cpu0 = port.inline ? threadCpuMicros() : 0
    try {
      if (!swept) {
        swept = true // once per start, before the first seal (see deleteOrphanBlocks)
        await deleteOrphanBlocks(db, node.blockstore, opts.dataDir, logger)
        node.usage.measure() // once per start; delete keeps it current (gateway/blocks.ts)
        blocksMeasured = true
        report()
      }
      if (forceSeal || sealDue(Date.now())) {
        lastSealAt = Date.now()
        const sealed = await sealer.sealDue(Date.now(), port.inline ? INLINE_MAX_READINGS : Infinity)
        lastPass = { readings: sealed.readings, more: sealed.more }
        totals.batches += sealed.batches
        totals.readings += sealed.readings
        totals.sealMs += sealed.ms
        totals.sealFailures += sealed.failed
      }
      pickUpRegistration()
      startSync()
      startInstructions(forceSeal)
      if (pruneDue) {
        pruneDue = false
        await pruneSynced(db, node.blockstore, opts.retentionHours * 3_600_000, logger)
        node.usage.measure() // re-anchor the running total after retention
      }
    } catch (e) {
      logger.error({ event: 'backoffice_error', err: e }, 'back-office pass failed; retrying next interval')
    }
    if (port.inline) passCpuMicros += threadCpuMicros() - cpu0
    report({ lastPass })
  }

  /** The wait between passes: one timer (not a poll), cut short by `stop`. An idle thread wakes once a seal interval. */
  let wake: (() => void) | null = null
  const nap = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => (wake = null, resolve()), ms)
      wake = () => (clearTimeout(timer), (wake = null), resolve())
    })

  port.onMessage((m) => {
    if (m.type === 'stop') {
      stopping = true
      wake?.()
    }
    else if (m.type === 'tick') void tick(true) // tests and `seal now`
    else if (m.type === 'prune') pruneDue = true // the hourly retention job (plugin.ts); done at the next pass
  })

  report({ ready: true })
  while (!stopping) {
    await tick()
    if (!stopping) await nap(opts.sealIntervalMs)
  }
  // Let an upload in flight settle (the cloud may already have stored it; settling now saves a resend),
  // but not for long: whatever is not settled stays pending and goes again after the restart.
  if (syncing || polling) await Promise.race([Promise.all([syncing, polling]), new Promise((r) => setTimeout(r, 5000))])
  await node.stop()
  if (!port.db) db.close()
  port.postMessage({ type: 'stopped' })
}
