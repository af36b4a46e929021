/**
 * Gateway → cloud synchronisation under faults, seen from the whole system (real processes; a TCP
 * relay between gateway and cloud records the traffic and picks the moment of each kill):
 *
 *   1. steady state: 30 monitors, the gateway sealing every second and shipping bulk uploads;
 *   2. the cloud is SIGKILLed while it stores the envelopes of a bulk upload (the relay watches
 *      its blockstore for them), before it commits the records — or, should it be quicker, after
 *      committing and before the answer leaves the relay — and restarted;
 *   3. the cloud is stopped for a while: the gateway keeps acknowledging readings and sealing them,
 *      its outbox grows to a backlog of 100+ batches;
 *   4. the cloud comes back; the gateway's first (large) bulk upload is committed by the cloud, but
 *      the cloud is SIGKILLed before its answer reaches the gateway (the relay withholds it) — the
 *      gateway must retry, and the cloud must answer "duplicate" for every batch of it;
 *   5. the cloud comes back again, the monitors stop, everything drains.
 *
 * Then: every sealed batch is on the chain exactly once (the gateway's batches and the cloud's
 * records match one to one, by CID and record id); each stream's record ids increase with its seq;
 * GET /v1/streams reports no gap; every acknowledged reading is counted in exactly the batches of
 * its device; no equivocation; `careledger chain verify` passes.
 *
 * The gateway's outbox retries with jittered exponential backoff (gateway/outbox/sync.ts, up to
 * 5 min). The system helper passes CARELEDGER_SYNC_BACKOFF_MAX_S=1 for a gateway that supports it;
 * without it the phases are kept short enough that the retry after each outage comes within the
 * deadlines below (the outage of phase 3 is ~6 s: a retry is due within ~30 s even at p99.9).
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { storedEnvelopes } from '../helpers/envelopes.ts'
import { bulkItems, bulkStatuses, sleep, startMonitors, TestSystem, waitFor, ward, type AckedMonitor, type HttpExchange } from '../helpers/system.ts'

const MONITORS = 30

let sys: TestSystem
let monitors: AckedMonitor[] = []

beforeAll(async () => {
  // Sealing every second even while the cloud is down (the default offline interval is 60 s), so
  // that a backlog of many small batches builds up within seconds.
  sys = await TestSystem.start({ label: 'sync-faults', devices: ward(MONITORS), sealIntervalS: 1, blockIntervalS: 0.5, relay: true, gatewayArgs: ['--seal-offline-interval-s', '1'] })
}, 60_000)

afterAll(async () => {
  await Promise.all(monitors.map((m) => m.stop().catch(() => {})))
  await sys?.destroy()
})

/** `p`, or a failure naming `what` after `ms`. */
function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([p, new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)))]).finally(() => clearTimeout(timer))
}

const ackedTotal = (): number => monitors.reduce((n, m) => n + m.acked.size, 0)

/** The first answered bulk upload after `x` that carries the first batch of `x`, and its verdict on that batch. */
function retryOf(x: HttpExchange): { exchange: HttpExchange; status: number } | undefined {
  const relay = sys.relay!
  const cid = bulkItems(x)[0]!.manifest.cid
  for (const y of relay.bulks().slice(relay.bulks().indexOf(x) + 1)) {
    const statuses = bulkStatuses(y)
    if (!statuses) continue
    const i = bulkItems(y).findIndex((b) => b.manifest.cid === cid)
    if (i >= 0) return { exchange: y, status: statuses[i]! }
  }
  return undefined
}

it('outages and SIGKILLs mid-upload: every batch lands exactly once, in order, without gaps, and the chain verifies', async () => {
  const relay = sys.relay!
  const { cloud } = sys
  const t0 = Date.now()
  const phases: string[] = []
  const phase = (name: string): void => void phases.push(`${name} ${((Date.now() - t0) / 1000).toFixed(1)}s`)
  monitors = await startMonitors(sys.gateway.mqttUrl, sys.monitors, 2) // 6 readings/s each

  // 1. steady state
  await waitFor('records on the chain', async () => (await sys.stats()).records >= 2 * MONITORS, { timeoutMs: 30_000 })

  // 2. SIGKILL while the cloud stores the envelopes of a bulk upload
  const killed1 = await within('a bulk upload to kill the cloud under', 30_000, relay.armKill('envelope-stored', MONITORS / 2, async () => void (await cloud.kill('SIGKILL')), { cloudDir: sys.dirs.cloud }))
  expect(killed1.killed).toBe(true)
  const stored = storedEnvelopes(sys.dirs.cloud)
  const stored1 = bulkItems(killed1).filter((b) => stored.has(b.manifest.cid)).length
  await cloud.restart()
  const retry1 = await waitFor('the batches of the killed upload to be uploaded again', () => retryOf(killed1), { timeoutMs: 60_000 })
  expect([200, 201]).toContain(retry1.status) // 200: the dead cloud had committed them; 201: it had not
  phase(`kill 1 (${bulkItems(killed1).length} batches in flight, ${stored1} envelopes on disk; on retry: ${retry1.status === 200 ? 'had been committed' : 'had not been committed'}), retried by`)

  // 3. the cloud stopped for a while: the gateway keeps acknowledging and sealing
  await cloud.stop()
  const ackedAtStop = ackedTotal()
  const downSince = Date.now()
  await waitFor('a backlog of 100+ batches in the gateway outbox', () => sys.outbox().pending >= 100 && Date.now() - downSince >= 5000, { timeoutMs: 30_000, intervalMs: 250 })
  expect(ackedTotal()).toBeGreaterThan(ackedAtStop + MONITORS * 6) // readings kept being acknowledged
  expect(await sys.gatewayMetric('outbox_depth')).toBeGreaterThan(0)

  // 4. back, and SIGKILLed after committing the first (large) bulk upload, before the gateway hears the answer
  phase(`cloud down with ${sys.outbox().pending} batches waiting at`)
  const killing2 = relay.armKill('answer-ready', 100, async () => void (await cloud.kill('SIGKILL')))
  const restarting = cloud.restart().catch(() => {}) // (the kill may come before the test has read the "ready" line)
  const killed2 = await within('the backlog upload to kill the cloud after', 60_000, killing2)
  await restarting
  phase(`kill 2 (${bulkItems(killed2).length} batches committed, answer withheld) at`)
  expect(bulkItems(killed2).length).toBeGreaterThanOrEqual(100)
  await cloud.restart()
  // The gateway never learnt of that commit: it sends the batches again, and the cloud knows them.
  const retry2 = await waitFor('the batches of the unanswered upload to be uploaded again', () => retryOf(killed2), { timeoutMs: 60_000 })
  expect(retry2.status).toBe(200)
  const again = bulkItems(retry2.exchange).map((b) => b.manifest.cid)
  const statuses = bulkStatuses(retry2.exchange)!
  for (const b of bulkItems(killed2)) {
    const i = again.indexOf(b.manifest.cid)
    if (i >= 0) expect(statuses[i], `${b.manifest.stream}#${b.manifest.seq} was committed before the kill`).toBe(200)
  }

  // 5. drain
  await sleep(2000)
  await Promise.all(monitors.map((m) => m.stop()))
  await sys.settled(60_000)
  phase('retried, drained and sealed by')
  const syncFailures = sys.gateway.logs.filter((l) => l.event === 'sync_failed').length
  expect(syncFailures).toBeGreaterThanOrEqual(2)

  // ── the gateway's batches and the cloud's records, one to one ──────────────────────────────────
  const db = sys.gatewayDb()
  let batches: Array<{ stream_id: string; seq: number; cid: string; count: number; record_id: number | null; synced_at: number | null; device_id: string }>
  let readingsStored: number
  let unsealed: number
  try {
    batches = db.prepare('SELECT b.stream_id, b.seq, b.cid, b.count, b.record_id, b.synced_at, s.device_id FROM batches b JOIN streams s USING (stream_id) ORDER BY b.batch_id').all() as typeof batches
    readingsStored = db.prepare('SELECT count(*) FROM readings').pluck().get() as number
    unsealed = db.prepare('SELECT count(*) FROM readings WHERE batch_id IS NULL').pluck().get() as number
    // Every acknowledged reading is stored once, in a batch that reached the cloud.
    const inSyncedBatch = db.prepare('SELECT b.synced_at FROM readings r JOIN batches b USING (batch_id) WHERE r.device_id = ? AND r.seq = ?').pluck()
    const notShipped: string[] = []
    for (const m of monitors) for (const seq of m.acked.keys()) if (!inSyncedBatch.get(m.deviceId, seq)) notShipped.push(`${m.deviceId}/${seq}`)
    expect(notShipped.slice(0, 10)).toEqual([])
  } finally {
    db.close()
  }
  expect(unsealed).toBe(0)
  expect(readingsStored).toBe(ackedTotal())
  expect(batches.filter((b) => b.synced_at === null || b.record_id === null)).toEqual([])
  expect(sys.outbox()).toMatchObject({ pending: 0, rejected: 0 })

  const records = await sys.records()
  expect(records.length).toBe(batches.length)
  const byCid = new Map(records.map((r) => [r.cid, r]))
  expect(byCid.size).toBe(records.length) // no batch twice
  for (const b of batches) {
    const r = byCid.get(b.cid)
    expect(r && { stream: r.stream, seq: r.seq, id: r.id }, `batch ${b.stream_id}#${b.seq}`).toEqual({ stream: b.stream_id, seq: b.seq, id: b.record_id })
  }

  // ── per-stream order, no gaps ─────────────────────────────────────────────────────────────────
  const byStream = new Map<string, typeof records>()
  for (const r of records) byStream.set(r.stream, [...(byStream.get(r.stream) ?? []), r])
  expect(byStream.size).toBe(MONITORS)
  for (const [stream, rs] of byStream) {
    rs.sort((a, b) => a.seq - b.seq)
    expect(rs.map((r) => r.seq), stream).toEqual(rs.map((_, i) => i))
    for (let i = 1; i < rs.length; i++) expect(rs[i]!.id, `${stream}: record ids increase with seq`).toBeGreaterThan(rs[i - 1]!.id)
  }
  const streams = await sys.streams()
  expect(streams.length).toBe(MONITORS)
  for (const s of streams) expect({ stream: s.stream, gaps: s.gaps, ranges: s.ranges, batches: s.batches }).toEqual({ stream: s.stream, gaps: [], ranges: [[0, s.lastSeq]], batches: s.lastSeq + 1 })

  // ── every acknowledged reading counted in its device's batches ────────────────────────────────
  const perDevice = new Map<string, number>()
  for (const r of records) perDevice.set(r.device, (perDevice.get(r.device) ?? 0) + r.count)
  for (const m of monitors) expect(perDevice.get(m.deviceId), m.deviceId).toBe(m.acked.size)

  const stats = await sys.stats()
  expect({ equivocations: stats.equivocations, gaps: stats.gaps, pending: stats.pendingRecords }).toEqual({ equivocations: 0, gaps: 0, pending: 0 })
  const v = await sys.chainVerify()
  expect(v.code, v.stderr + v.stdout).toBe(0)
  expect(v.report).toMatchObject({ ok: true, records: records.length })
  console.info(`sync-faults: ${phases.join('; ')}; ${records.length} batches, ${ackedTotal()} readings, ${relay.bulks().length} bulk uploads, ${syncFailures} failed sync rounds`)
}, 150_000)
