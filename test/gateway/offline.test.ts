/**
 * The gateway rides out a cloud outage: a real cloud process, a real gateway registered to it
 * (`careledger cloud gateway invite --json`, `careledger gateway register`), readings flowing from
 * several devices over MQTT. The cloud goes away — first a graceful stop (SIGTERM), then a crash
 * (SIGKILL) — while readings keep flowing and sealed batches pile up in the outbox (/metrics
 * outbox depth > 0, no alert: nothing rejected, /healthz ok). The cloud comes back on the same data
 * directory and port; a third time the cloud hangs (SIGSTOP: connections accepted, nothing answered)
 * and sealing must go on regardless. The outbox drains (backoff capped with CARELEDGER_SYNC_BACKOFF_MAX_S so the
 * test does not wait minutes). Afterwards every batch is on the cloud exactly once and in order:
 *
 *   cloud    GET /v1/streams: no gaps, seqs 0..n; GET /v1/records?stream= in id order: seq 0, 1, …, n
 *            exactly once, each the gateway's batch (same CID, record id the gateway noted)
 *   gateway  outbox empty (metric and table), every batch row has synced_at and record_id, every
 *            acknowledged reading sealed into a shipped batch
 *
 * Also: a crash between upload and settle (the batch goes again; the cloud answers "duplicate" with
 * the same record, stores nothing twice), and a pending batch whose envelope block was lost (set
 * aside as rejected with the reason and alerted on; the batches behind it still ship, and the cloud
 * shows exactly that seq as a gap).
 */
import type Database from 'better-sqlite3'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { currentKey } from '../helpers/authority.ts'
import { openEnvelope } from '../../shared/crypto/envelope.ts'
import { decodeBatchBody } from '../../shared/protocol/batch.ts'
import { manifestAad } from '../../shared/protocol/manifest.ts'
import { openGatewayDb } from '../../gateway/store/db.ts'
import { CloudProcess, careledger, getAs, json } from '../helpers/cloud-process.ts'
import { connectDevice, enrolInStore, GatewayProcess, tempDataDir, type TestDevice } from '../helpers/gateway-process.ts'
import { batchesOf, healthOf, metric, metricsOf, openReadonly, sleep, testAuthorityFile, waitFor, withBlocks } from '../helpers/backoffice.ts'

const DEVICES = 4
/** How long each outage lasts while readings keep flowing. */
const OUTAGE_MS = 3000

const dirs = { gateway: tempDataDir('offline-gw'), cloud: tempDataDir('offline-cloud'), authority: tempDataDir('offline-authority') }
let cloud: CloudProcess | undefined
let gw: GatewayProcess | undefined
let db: Database.Database | undefined
const devices: Array<{ id: string; cred: { deviceId: string; secret: string }; dev: TestDevice; acked: number[]; next: number }> = []
let flowing = true
const flows: Promise<void>[] = []

afterAll(async () => {
  flowing = false
  await Promise.allSettled(flows)
  await Promise.allSettled(devices.map((d) => d.dev.end()))
  db?.close()
  await gw?.kill('SIGKILL')
  await cloud?.kill('SIGKILL')
  for (const d of Object.values(dirs)) d.cleanup()
})

/** A monitor sending one reading every ~25 ms (QoS 1, waiting for each PUBACK) until told to stop. */
async function flow(d: (typeof devices)[number]): Promise<void> {
  const kinds = [['heart_rate', '/min', 72], ['spo2', '%', 97], ['resp_rate', '/min', 15]] as const
  while (flowing) {
    const seq = d.next++
    const [type, unit, base] = kinds[seq % kinds.length]!
    await d.dev.publish({ seq, ts: Date.now(), type, unit, value: base + (seq % 3) })
    d.acked.push(seq)
    await sleep(25)
  }
}

const pending = (m: string) => metric(m, 'careledger_gateway_outbox_depth') ?? NaN

const { msk, mpkFile } = testAuthorityFile(dirs.authority.dir)

beforeAll(async () => {
  cloud = await CloudProcess.start({ dataDir: dirs.cloud.dir, args: ['--block-interval-s', '0.5', '--verify-interval-s', '0'], env: { CARELEDGER_LOG_LEVEL: 'info' } })
})

it('keeps readings flowing and sealing through a SIGTERM, a SIGKILL and a hang (SIGSTOP) of the cloud, then ships every batch once, in order', async () => {
  const c = cloud!
  const env = {
    CARELEDGER_ABE_PUBLIC_KEY: mpkFile,
    CARELEDGER_DEFAULT_POLICY: '(role:doctor AND hospital:h1) OR patient:{patient}',
    CARELEDGER_SYNC_BACKOFF_MAX_S: '1',
    CARELEDGER_SEAL_OFFLINE_INTERVAL_S: '2',
  }

  // ── enrolment on both sides ──────────────────────────────────────────────────────────────────
  const invite = await careledger(['cloud', 'gateway', 'invite', '--name', 'ward-3', '--json', '--data', dirs.cloud.dir])
  expect(invite.code, invite.stderr).toBe(0)
  const admin = JSON.parse((await careledger(['cloud', 'token', 'create', '--role', 'admin', '--name', 'ops', '--json', '--data', dirs.cloud.dir])).stdout).token as string
  const doctor = JSON.parse((await careledger(['cloud', 'token', 'create', '--role', 'doctor', '--name', 'dr-h1', '--json', '--data', dirs.cloud.dir])).stdout).token as string
  const reg = await careledger(['gateway', 'register', '--cloud', c.url, '--token', JSON.parse(invite.stdout).token, '--name', 'ward-3', '--data', dirs.gateway.dir], env)
  expect(reg.code, reg.stderr).toBe(0)
  expect(reg.stdout).toMatch(/^registered gateway [0-9a-f]{16} \("ward-3"\)/)
  const creds = enrolInStore(dirs.gateway.dir, DEVICES, 'icu')

  gw = await GatewayProcess.start({ dataDir: dirs.gateway.dir, args: ['--mqtts-port', '0', '--seal-interval-s', '1'], env })
  const g = gw
  db = openReadonly(dirs.gateway.dir)
  const gdb = db
  for (const cr of creds) devices.push({ id: cr.deviceId, cred: cr, dev: await connectDevice(g.mqttUrl, cr, { subscribe: false }), acked: [], next: 1 })
  for (const d of devices) flows.push(flow(d))

  const synced = () => gdb.prepare('SELECT count(*) FROM batches WHERE synced_at IS NOT NULL').pluck().get() as number
  const problems = () => g.logs.filter((l) => l.level >= 50 || ['batch_rejected', 'batch_block_missing', 'backoffice_error', 'backoffice_crashed'].includes(l.event ?? ''))
  await waitFor('first batches shipped', () => synced() >= DEVICES, 20_000)
  const health = await healthOf(g.httpUrl)
  expect(health.components.backoffice.cloud).toBe(new URL(c.url).origin)

  for (const outage of ['SIGTERM', 'SIGKILL', 'SIGSTOP'] as const) {
    // ── the cloud goes away (or hangs: SIGSTOP); readings keep flowing, batches pile up ────────
    const ackedBefore = devices.reduce((n, d) => n + d.acked.length, 0)
    const failuresBefore = metric(await metricsOf(g.httpUrl), 'careledger_gateway_sync_failures_total') ?? 0
    if (outage === 'SIGSTOP') process.kill(c.pid, 'SIGSTOP') // accepts connections, answers nothing
    else {
      const exit = await c.kill(outage)
      if (outage === 'SIGTERM') expect(exit.code).toBe(0)
      else expect(exit.signal).toBe('SIGKILL')
    }
    const downSince = Date.now()
    const m = await waitFor(`outbox to fill during the ${outage} outage`, async () => {
      const text = await metricsOf(g.httpUrl)
      const failed = outage === 'SIGSTOP' || (metric(text, 'careledger_gateway_sync_failures_total') ?? 0) > failuresBefore // a hung request has not failed yet
      return pending(text) >= 2 * DEVICES && failed ? text : null
    }, 15_000)
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - downSince)))
    expect(devices.reduce((n, d) => n + d.acked.length, 0)).toBeGreaterThan(ackedBefore + DEVICES * 20) // ingest never stopped
    // Sealing never stopped either, at the offline interval (2 s here) once an upload has failed:
    // whatever the cloud does, readings older than a few such intervals are sealed.
    await waitFor(`readings sealed during the ${outage} outage`, () => gdb.prepare('SELECT count(*) FROM readings WHERE batch_id IS NULL AND received_at < ?').pluck().get(Date.now() - 5000) === 0, 8000)
    if (outage !== 'SIGSTOP') expect(metric(await metricsOf(g.httpUrl), 'careledger_gateway_seal_interval_seconds')).toBe(2) // a hung upload has not failed yet
    // No alert: an unreachable cloud is not a rejected batch, and the gateway stays healthy.
    expect(metric(m, 'careledger_gateway_outbox_rejected')).toBe(0)
    expect(metric(m, 'careledger_gateway_outbox_oldest_age_seconds')).toBeGreaterThan(0)
    const h = await healthOf(g.httpUrl)
    expect(h.status).toBe('ok')
    expect(h.components.backoffice).toMatchObject({ status: 'ok', outboxRejected: 0 })
    expect(h.components.backoffice.outboxPending).toBeGreaterThan(0)
    expect(g.logs.some((l) => l.event === 'sync_failed')).toBe(true)
    expect(problems()).toEqual([])

    // ── the cloud returns (on the same data directory and port); the outbox drains ─────────────
    const back = Date.now()
    if (outage === 'SIGSTOP') process.kill(c.pid, 'SIGCONT')
    else await c.restart()
    await waitFor(`outbox drained after the ${outage} outage`, async () => {
      const text = await metricsOf(g.httpUrl)
      return pending(text) === 0 && gdb.prepare("SELECT count(*) FROM outbox WHERE state = 'pending' AND batch_id IN (SELECT batch_id FROM batches WHERE sealed_at < ?)").pluck().get(back) === 0
    }, 20_000)
    await waitFor('the short sealing interval back once uploads succeed', async () => metric(await metricsOf(g.httpUrl), 'careledger_gateway_seal_interval_seconds') === 1, 10_000)
    console.log(`offline test: ${outage} outage of ${((back - downSince) / 1000).toFixed(1)} s drained ${((Date.now() - back) / 1000).toFixed(1)} s after the cloud came back`)
  }

  // ── quiesce: devices stop, everything left is sealed and shipped ─────────────────────────────
  flowing = false
  await Promise.all(flows)
  await waitFor('every reading sealed and every batch shipped', () =>
    (gdb.prepare('SELECT count(*) FROM readings WHERE batch_id IS NULL').pluck().get() as number) === 0 &&
    (gdb.prepare('SELECT count(*) FROM outbox').pluck().get() as number) === 0, 20_000)
  expect(problems()).toEqual([])

  // Gateway side: every batch synced with its cloud record id; every acknowledged reading in one.
  const batches = batchesOf(gdb)
  expect(batches.every((b) => b.synced_at !== null && b.record_id !== null)).toBe(true)
  for (const d of devices) {
    const stored = gdb.prepare('SELECT seq FROM readings WHERE device_id = ? AND batch_id IS NOT NULL ORDER BY seq').pluck().all(d.id) as number[]
    expect(stored).toEqual(d.acked)
  }
  const m = await waitFor('metrics to show the empty outbox', async () => {
    const text = await metricsOf(g.httpUrl)
    return pending(text) === 0 ? text : null
  })
  expect(metric(m, 'careledger_gateway_outbox_rejected')).toBe(0)
  expect(metric(m, 'careledger_gateway_last_successful_sync_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 60)
  const listed = JSON.parse((await careledger(['gateway', 'batches', '--json', '--limit', '100000', '--data', dirs.gateway.dir], env)).stdout) as Array<{ state: string; recordId: number }>
  expect(listed).toHaveLength(batches.length)
  expect(listed.every((b) => b.state === 'synced' && Number.isInteger(b.recordId))).toBe(true)

  // Cloud side: each stream complete, no gaps, each seq once, in order of arrival.
  const { streams } = await json(getAs(c.url, admin, '/v1/streams'))
  const ours = (streams as Array<{ stream: string; gateway: string; batches: number; lastSeq: number; ranges: number[][]; gaps: number[][] }>).filter((s) => s.gateway === batches[0]!.m.gateway)
  expect(ours).toHaveLength(DEVICES)
  for (const s of ours) {
    const local = batches.filter((b) => b.stream_id === s.stream)
    expect(s.gaps).toEqual([])
    expect(s.batches).toBe(local.length)
    expect(s.lastSeq).toBe(local.length - 1)
    expect(s.ranges).toEqual([[0, local.length - 1]])
    const records: Array<{ id: number; seq: number; cid: string; count: number }> = []
    for (let after = 0; ; ) {
      const page = await json(getAs(c.url, admin, `/v1/records?stream=${s.stream}&after=${after}&limit=1000`))
      records.push(...page.records)
      if (page.next === null) break
      after = page.next
    }
    expect(records.map((r) => r.id)).toEqual([...records.map((r) => r.id)].sort((a, b) => a - b))
    expect(records.map((r) => r.seq)).toEqual(local.map((_, i) => i)) // exactly once, in seq order by id
    records.forEach((r, i) => {
      expect(r.cid).toBe(local[i]!.cid)
      expect(r.id).toBe(local[i]!.record_id)
      expect(r.count).toBe(local[i]!.count)
    })
  }

  // The cloud serves the very envelope the gateway sealed, and a doctor at h1 opens it.
  const drH1 = currentKey(msk, ['role:doctor', 'hospital:h1'])
  await withBlocks(dirs.gateway.dir, async (_n, get) => {
    for (const b of [batches[0]!, batches[Math.floor(batches.length / 2)]!, batches.at(-1)!]) {
      const res = await getAs(c.url, doctor, `/v1/records/${b.record_id}/envelope`)
      expect(res.status).toBe(200)
      const served = new Uint8Array(await res.arrayBuffer())
      expect(Buffer.compare(Buffer.from(served), Buffer.from(await get(b.cid)))).toBe(0)
      expect(decodeBatchBody(openEnvelope(drH1, served, manifestAad(b.m))).readings).toHaveLength(b.count)
    }
  })
  console.log(`offline test: ${batches.length} batches, ${devices.reduce((n, d) => n + d.acked.length, 0)} readings from ${DEVICES} devices, all on the cloud once`)

  // ── a crash between upload and settle: the batch goes again, the cloud keeps one record ──────
  // The gateway's state after such a crash is exactly: batch row without synced_at/record_id, outbox row pending.
  await g.stop()
  const resent = batches.at(-1)!
  {
    const { db: w } = openGatewayDb(dirs.gateway.dir)
    w.prepare('UPDATE batches SET synced_at = NULL, record_id = NULL WHERE batch_id = ?').run(resent.batch_id)
    w.prepare('INSERT INTO outbox (batch_id) VALUES (?)').run(resent.batch_id)
    w.close()
  }
  const recordsBefore = (await json(getAs(c.url, admin, `/v1/records?stream=${resent.stream_id}&limit=1000`))).records.length
  await g.restart()
  await waitFor('the re-sent batch settled', () => (gdb.prepare('SELECT record_id FROM batches WHERE batch_id = ?').pluck().get(resent.batch_id) as number | null) !== null, 15_000)
  expect(gdb.prepare('SELECT record_id FROM batches WHERE batch_id = ?').pluck().get(resent.batch_id)).toBe(resent.record_id)
  expect((await json(getAs(c.url, admin, `/v1/records?stream=${resent.stream_id}&limit=1000`))).records).toHaveLength(recordsBefore)
  expect(gdb.prepare('SELECT count(*) FROM outbox').pluck().get()).toBe(0)
}, 120_000)

it('does not let one batch whose envelope block is lost stop the outbox: it is set aside (alerted), the rest ships', async () => {
  const c = cloud!
  const g = gw!
  const gdb = db!
  // Batches pile up while the cloud is away …
  await c.stop()
  const d = devices[0]!
  await d.dev.end().catch(() => {}) // its connection ended with the gateway restart above
  d.dev = await connectDevice(g.mqttUrl, d.cred, { subscribe: false })
  flowing = true
  const lostFrom = gdb.prepare('SELECT coalesce(max(batch_id), 0) FROM batches').pluck().get() as number
  flows.push(flow(d))
  await waitFor('three new batches of one stream', () => (gdb.prepare('SELECT count(*) FROM batches WHERE batch_id > ?').pluck().get(lostFrom) as number) >= 3, 20_000)
  flowing = false
  await Promise.all(flows)
  await waitFor('all sealed', () => (gdb.prepare('SELECT count(*) FROM readings WHERE batch_id IS NULL').pluck().get() as number) === 0)
  // … and the envelope block of the oldest waiting one is lost (as a power cut could, before blocks were fsynced).
  const waiting = batchesOf(gdb, 'batch_id > ?', lostFrom)
  const lost = waiting[0]!
  await g.stop()
  await withBlocks(dirs.gateway.dir, async (node) => {
    const { CID } = await import('multiformats/cid')
    await node.blockstore.delete(CID.parse(lost.cid))
  })
  await g.restart()
  await c.restart()
  await waitFor('the batches behind the lost one shipped', () =>
    (gdb.prepare('SELECT count(*) FROM batches WHERE batch_id > ? AND synced_at IS NOT NULL').pluck().get(lost.batch_id) as number) === waiting.length - 1, 20_000)
  const row = gdb.prepare('SELECT state, last_error FROM outbox WHERE batch_id = ?').get(lost.batch_id) as { state: string; last_error: string }
  expect(row.state).toBe('rejected')
  expect(row.last_error).toMatch(/missing/)
  const m = await waitFor('the alert metric', async () => {
    const text = await metricsOf(g.httpUrl)
    return metric(text, 'careledger_gateway_outbox_rejected') === 1 && pending(text) === 0 ? text : null
  })
  expect(metric(m, 'careledger_gateway_outbox_depth')).toBe(0)
  expect((await healthOf(g.httpUrl)).components.backoffice).toMatchObject({ status: 'alert', outboxRejected: 1 })
  expect(g.logs.some((l) => l.event === 'batch_block_missing' && l.batchId === lost.batch_id)).toBe(true)
  const listed = await careledger(['gateway', 'batches', '--limit', '5', '--data', dirs.gateway.dir], { CARELEDGER_ABE_PUBLIC_KEY: mpkFile })
  expect(listed.stdout).toMatch(new RegExp(`^${lost.batch_id}\\t.*REJECTED, kept on the gateway: envelope block .* is missing`, 'm'))
  // The cloud knows exactly what is missing: a gap at that seq, nothing after it lost.
  const admin = JSON.parse((await careledger(['cloud', 'token', 'create', '--role', 'admin', '--name', 'ops-2', '--json', '--data', dirs.cloud.dir])).stdout).token as string
  const stream = (await json(getAs(c.url, admin, '/v1/streams'))).streams.find((s: { stream: string }) => s.stream === lost.stream_id)
  expect(stream.gaps).toEqual([[lost.seq, lost.seq]])
  expect(stream.lastSeq).toBe(waiting.filter((b) => b.stream_id === lost.stream_id).at(-1)!.seq)
}, 90_000)
