/**
 * The gateway's back office, on its own thread so that sealing (CP-ABE, hashing, encoding) and
 * shipping never stall the MQTT event loop that acknowledges readings:
 *
 *   every seal interval:  seal due streams → drain the outbox (unless backing off)
 *   every hour:           prune synced data past retention
 *
 * It has its own SQLite connection (WAL lets it read while ingest writes) and the Helia light node.
 * It reports to the main thread with `status` messages, which feed /metrics and /healthz.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { pino } from 'pino'
import { openGatewayDb } from '../store/db.ts'
import { loadIdentity } from '../identity.ts'
import { openBlockNode } from '../blocks.ts'
import { Sealer } from '../seal/sealer.ts'
import { OutboxSync } from '../outbox/sync.ts'
import { HttpUploader } from '../outbox/client.ts'
import { pruneSynced } from '../outbox/retention.ts'
import type { BackofficeOptions, BackofficeStatus } from './protocol.ts'

const opts = workerData as BackofficeOptions
const logger = pino({ level: opts.logLevel, base: { service: 'careledger-gateway', thread: 'backoffice' } })
const { db } = openGatewayDb(opts.dataDir, { logger })
const identity = loadIdentity(opts.dataDir, { create: false })
const node = await openBlockNode(opts.dataDir)
const sealer = new Sealer(db, node.blockstore, identity, opts.defaultPolicy, logger)
const cloudUrl = opts.cloudUrl ?? identity.cloud?.url ?? null
const sync = cloudUrl ? new OutboxSync(db, node.blockstore, new HttpUploader(cloudUrl, identity), logger) : null
if (!cloudUrl) logger.warn({ event: 'no_cloud' }, 'no cloud registered: batches are sealed and kept in the outbox until `careledger gateway register`')

let stopping = false
let lastPrune = 0
const totals = { batches: 0, readings: 0, sealMs: 0, syncFailures: 0, syncRounds: 0 }

function report(extra: Partial<BackofficeStatus> = {}): void {
  const depth = sync?.depth() ?? pendingWithoutCloud()
  const status: BackofficeStatus = {
    type: 'status',
    sealedBatches: totals.batches,
    sealedReadings: totals.readings,
    sealMs: totals.sealMs,
    outboxPending: depth.pending,
    outboxOldestSealedAt: depth.oldestSealedAt,
    outboxRejected: depth.rejected,
    lastSyncAt: sync?.lastSuccessAt ?? null,
    syncFailures: totals.syncFailures,
    cloudUrl,
    ...extra,
  }
  parentPort!.postMessage(status)
}

function pendingWithoutCloud() {
  const d = db
    .prepare<[], { n: number; oldest: number | null }>("SELECT count(*) AS n, min(b.sealed_at) AS oldest FROM outbox o JOIN batches b USING (batch_id) WHERE o.state = 'pending'")
    .get()!
  return { pending: d.n, oldestSealedAt: d.oldest, rejected: 0 }
}

let running: Promise<void> | null = null

/** One pass; concurrent callers share the pass in flight (a pass must never overlap another). */
function tick(): Promise<void> {
  running ??= pass().finally(() => (running = null))
  return running
}

async function pass(): Promise<void> {
  try {
    const sealed = await sealer.sealDue()
    totals.batches += sealed.batches
    totals.readings += sealed.readings
    totals.sealMs += sealed.ms
    if (sync) {
      const r = await sync.drain()
      totals.syncRounds++
      if (r.failure && r.failure !== 'backing off') totals.syncFailures++
    }
    if (Date.now() - lastPrune > opts.pruneIntervalMs) {
      lastPrune = Date.now()
      await pruneSynced(db, node.blockstore, opts.retentionHours * 3_600_000, logger)
    }
  } catch (e) {
    logger.error({ event: 'backoffice_error', err: e }, 'back-office pass failed; retrying next interval')
  }
  report()
}

parentPort!.on('message', (m: { type: string }) => {
  if (m.type === 'stop') stopping = true
  else if (m.type === 'tick') void tick() // tests and `seal now`
})

report({ ready: true })
while (!stopping) {
  await tick()
  const until = Date.now() + opts.sealIntervalMs
  while (!stopping && Date.now() < until) await new Promise((r) => setTimeout(r, Math.min(200, until - Date.now())))
}
await node.stop()
db.close()
parentPort!.postMessage({ type: 'stopped' })
