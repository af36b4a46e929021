/**
 * Crash test: 10 devices publish at full speed (a window of un-acknowledged QoS 1 messages each)
 * while the gateway process is SIGKILLed at random moments and restarted, several times. Each
 * publisher records exactly which seqs got a PUBACK. Afterwards every acknowledged reading is in
 * SQLite exactly once — nothing acknowledged is missing, nothing is stored twice.
 */
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, expect, it } from 'vitest'
import { Publisher } from '../../bench/lib/ingest-publisher.ts'
import { enrolInStore, GatewayProcess, tempDataDir } from '../helpers/gateway-process.ts'

const DEVICES = 10
const WINDOW = 64
const KILLS = 6

const data = tempDataDir('crash')
let gw: GatewayProcess | undefined
const publishers: Publisher[] = []

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.end().catch(() => {})))
  await gw?.kill('SIGKILL')
  data.cleanup()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

it(`loses no acknowledged reading and stores none twice across ${KILLS} SIGKILLs under load`, async () => {
  const creds = enrolInStore(data.dir, DEVICES, 'crash')

  gw = await GatewayProcess.start({ dataDir: data.dir, args: ['--mqtts-port', '0', '--http-port', '0'] })
  const g = gw
  for (const c of creds) publishers.push(new Publisher({ url: g.mqttUrl, ...c, window: WINDOW, reconnectPeriod: 50, trackAcked: true }))
  await Promise.all(publishers.map((p) => p.connect()))
  const running = publishers.map((p) => p.run())

  const acked = () => publishers.reduce((n, p) => n + p.ackedCount, 0)
  const ackedAtKill: number[] = []
  let rnd = 0x2545f491
  const random = () => ((rnd = (rnd * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff) // reproducible "random" moments
  for (let k = 0; k < KILLS; k++) {
    // Wait until ingest is running again (devices reconnected, backlog flowing), then kill at a random moment.
    const since = acked()
    const deadline = Date.now() + 20_000
    while (acked() < since + 2000 && Date.now() < deadline) await sleep(20)
    await sleep(random() * 800)
    ackedAtKill.push(acked())
    const exit = await g.kill('SIGKILL')
    expect(exit.signal).toBe('SIGKILL')
    await sleep(random() * 300)
    await g.restart()
  }
  await sleep(1000)
  await Promise.all(publishers.map((p) => p.stop(20_000)))
  await Promise.all(running)
  const ackedTotal = acked()
  // Load was really on at every kill, and ingest progressed between kills.
  for (let k = 1; k < ackedAtKill.length; k++) expect(ackedAtKill[k]! - ackedAtKill[k - 1]!).toBeGreaterThanOrEqual(2000)
  expect(ackedAtKill[0]!).toBeGreaterThanOrEqual(2000)
  expect(publishers.reduce((n, p) => n + p.reconnects, 0)).toBeGreaterThanOrEqual(KILLS * DEVICES)
  // Let the final in-flight messages settle, then kill once more so the check reads a crashed database.
  await g.kill('SIGKILL')

  const db = new Database(join(data.dir, 'gateway.db'))
  try {
    const total = db.prepare('SELECT count(*) FROM readings').pluck().get() as number
    const distinct = db.prepare('SELECT count(*) FROM (SELECT DISTINCT device_id, seq FROM readings)').pluck().get() as number
    expect(distinct).toBe(total) // stored once
    const missing: string[] = []
    for (const p of publishers) {
      const stored = new Set(db.prepare('SELECT seq FROM readings WHERE device_id = ?').pluck().all(p.o.deviceId) as number[])
      for (const seq of p.acked!) if (!stored.has(seq)) missing.push(`${p.o.deviceId}#${seq}`)
      // Only readings that were really sent are stored.
      for (const seq of stored) expect(seq).toBeLessThan(p.nextSeq)
    }
    expect(missing, `acknowledged but not stored: ${missing.slice(0, 10).join(', ')}`).toEqual([])
    expect(ackedTotal).toBeGreaterThan(5000)
    console.log(
      `crash test: ${KILLS} SIGKILLs, ${ackedTotal} readings acknowledged, ${total} stored, ` +
        `${publishers.reduce((n, p) => n + p.sent, 0)} sent, ${publishers.reduce((n, p) => n + p.reconnects, 0)} reconnects, ` +
        `${publishers.reduce((n, p) => n + p.failed, 0)} unacknowledged at the end`,
    )
  } finally {
    db.close()
  }
}, 180_000) // about 60 s on a quiet machine; twice that when the 2 cores are shared
