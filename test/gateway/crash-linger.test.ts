/**
 * Crash test of the ingest commit linger (issue 11): with a long linger (1 s) every commit waits
 * for the PUBLISHes of the other active monitors, so a SIGKILL lands, most of the time, while
 * writes wait in the linger — received, not yet committed, not acknowledged. Afterwards every
 * reading that got a PUBACK is in SQLite exactly once: the linger loses only what was never
 * acknowledged (the devices resend it after reconnecting).
 */
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, expect, it } from 'vitest'
import { Publisher } from '../../bench/lib/ingest-publisher.ts'
import { enrolInStore, GatewayProcess, tempDataDir } from '../helpers/gateway-process.ts'

const DEVICES = 4
const KILLS = 3

const data = tempDataDir('crash-linger')
let gw: GatewayProcess | undefined
const publishers: Publisher[] = []

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.end().catch(() => {})))
  await gw?.kill('SIGKILL')
  data.cleanup()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function commitStats(g: GatewayProcess): Promise<{ commits: number; publishes: number }> {
  const text = await (await fetch(`${g.httpUrl}/metrics`)).text()
  const num = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN)
  return { commits: num('careledger_gateway_commit_batch_publishes_count'), publishes: num('careledger_gateway_commit_batch_publishes_sum') }
}

it(`loses no acknowledged reading when the gateway is SIGKILLed during commit lingers (${KILLS} kills)`, async () => {
  const creds = enrolInStore(data.dir, DEVICES, 'linger')
  gw = await GatewayProcess.start({ dataDir: data.dir, args: ['--mqtts-port', '0', '--ingest-linger-ms', '1000'] })
  const g = gw
  // Window 1: each device waits for its PUBACK, so a commit lingers until every active device has written.
  for (const c of creds) publishers.push(new Publisher({ url: g.mqttUrl, ...c, window: 1, reconnectPeriod: 50, trackAcked: true }))
  await Promise.all(publishers.map((p) => p.connect()))
  const running = publishers.map((p) => p.run())
  const acked = () => publishers.reduce((n, p) => n + p.ackedCount, 0)

  // The linger is in effect: commits hold the PUBLISHes of several devices.
  while (acked() < 200) await sleep(20)
  const stats = await commitStats(g)
  expect(stats.publishes / stats.commits).toBeGreaterThan(1.5)

  let unackedAtKills = 0
  let rnd = 0x1234567
  const random = () => ((rnd = (rnd * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff)
  for (let k = 0; k < KILLS; k++) {
    const since = acked()
    const deadline = Date.now() + 20_000
    while (acked() < since + 200 && Date.now() < deadline) await sleep(20)
    await sleep(random() * 300)
    unackedAtKills += publishers.reduce((n, p) => n + p.inFlight, 0)
    expect((await g.kill('SIGKILL')).signal).toBe('SIGKILL')
    await g.restart()
  }
  await sleep(500)
  await Promise.all(publishers.map((p) => p.stop(20_000)))
  await Promise.all(running)
  await g.kill('SIGKILL')
  // Writes were waiting, unacknowledged, when the process died.
  expect(unackedAtKills).toBeGreaterThan(0)

  const db = new Database(join(data.dir, 'gateway.db'), { readonly: true })
  try {
    const total = db.prepare('SELECT count(*) FROM readings').pluck().get() as number
    const distinct = db.prepare('SELECT count(*) FROM (SELECT DISTINCT device_id, seq FROM readings)').pluck().get() as number
    expect(distinct).toBe(total)
    const missing: string[] = []
    for (const p of publishers) {
      const stored = new Set(db.prepare('SELECT seq FROM readings WHERE device_id = ?').pluck().all(p.o.deviceId) as number[])
      for (const seq of p.acked!) if (!stored.has(seq)) missing.push(`${p.o.deviceId}#${seq}`)
    }
    expect(missing, `acknowledged but not stored: ${missing.slice(0, 10).join(', ')}`).toEqual([])
    expect(acked()).toBeGreaterThan(600)
  } finally {
    db.close()
  }
}, 120_000)
