/**
 * Where the back office runs (issue 11): on the ingest thread at a ward's load, on a worker thread
 * from the first pass that cannot seal everything within the ingest thread's cap (a backlog, a
 * burst), and back on the ingest thread once passes stayed small (CARELEDGER_BACKOFFICE_WORKER_QUIET_S).
 * A real gateway process, a real backlog in gateway.db and real MQTT readings.
 */
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { connectDevice, enrol, GatewayProcess, tempDataDir, type EnrolledDevice } from '../helpers/gateway-process.ts'
import { metric, metricsOf, openReadonly, testAuthorityFile, waitFor } from '../helpers/backoffice.ts'
import { INLINE_MAX_READINGS } from '../../gateway/backoffice/protocol.ts'

let data: ReturnType<typeof tempDataDir>
let keysDir: ReturnType<typeof tempDataDir>
let gw: GatewayProcess | null = null
let bed: EnrolledDevice
const BACKLOG = INLINE_MAX_READINGS * 2 + 500

beforeAll(async () => {
  data = tempDataDir('bo-thread')
  keysDir = tempDataDir('bo-thread-authority')
  bed = await enrol(data.dir, 'bed-1', 'P-THREAD-1')
  // A backlog left by a gateway that was down for a while: more than one ingest-thread pass may seal.
  const db = new Database(join(data.dir, 'gateway.db'))
  const insert = db.prepare("INSERT INTO readings (device_id, seq, patient_id, ts, received_at, type, unit, value) VALUES ('bed-1', ?, 'P-THREAD-1', ?, ?, 'heart_rate', '/min', 70)")
  const now = Date.now()
  db.transaction(() => {
    for (let i = 0; i < BACKLOG; i++) insert.run(i, now - BACKLOG + i, now - BACKLOG + i)
  })()
  db.close()
})

afterAll(async () => {
  await gw?.stop()
  data?.cleanup()
  keysDir?.cleanup()
})

it('seals a backlog by moving the back office to a worker thread, then moves back to the ingest thread and keeps sealing there', async () => {
  const env = { CARELEDGER_ABE_PUBLIC_KEY: testAuthorityFile(keysDir.dir).mpkFile, CARELEDGER_BACKOFFICE_WORKER_QUIET_S: '3' }
  gw = await GatewayProcess.start({ dataDir: data.dir, args: ['--seal-interval-s', '1', '--mqtts-port', '0'], env, readyTimeoutMs: 60_000 })
  const db = openReadonly(data.dir)
  try {
    const unsealed = () => db.prepare('SELECT count(*) FROM readings WHERE batch_id IS NULL').pluck().get() as number
    const onWorker = async () => metric(await metricsOf(gw!.httpUrl), 'careledger_gateway_backoffice_on_worker')
    // The first pass (on the ingest thread) stops at its cap; the rest is sealed on a worker.
    await waitFor('the back office on a worker thread', async () => (await onWorker()) === 1, 60_000)
    await waitFor('the backlog sealed', () => unsealed() === 0, 60_000)
    // Quiet for 3 s: back on the ingest thread.
    await waitFor('the back office back on the ingest thread', async () => (await onWorker()) === 0, 60_000)
    // Readings acknowledged now are sealed there, continuing the same stream.
    const dev = await connectDevice(gw.mqttUrl, bed)
    for (let s = BACKLOG; s < BACKLOG + 5; s++) await dev.publish({ seq: s, ts: Date.now(), type: 'spo2', unit: '%', value: 97 })
    await dev.end()
    await waitFor('the new readings sealed', () => unsealed() === 0 && (db.prepare('SELECT count(*) FROM readings').pluck().get() as number) === BACKLOG + 5, 30_000)
    expect(await onWorker()).toBe(0)
    // One stream, its batches numbered 0, 1, 2 … without a gap or a repeat, every reading in exactly one.
    const batches = db.prepare('SELECT seq, count FROM batches ORDER BY seq').all() as Array<{ seq: number; count: number }>
    expect(batches.map((b) => b.seq)).toEqual(batches.map((_, i) => i))
    expect(batches.reduce((n, b) => n + b.count, 0)).toBe(BACKLOG + 5)
    expect(db.prepare('SELECT count(DISTINCT stream_id) FROM batches').pluck().get()).toBe(1)
    const moves = gw.logs.filter((l) => l.event === 'backoffice_moved').map((l) => l.to)
    expect(moves).toEqual(['worker', 'ingest thread'])
  } finally {
    db.close()
  }
})
