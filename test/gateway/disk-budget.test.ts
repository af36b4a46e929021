/**
 * Disk budget: when the data directory reaches its budget the gateway refuses new readings —
 * STORAGE_FULL on the device's errors topic, no PUBACK, connection closed — keeps everything it
 * stored, raises the storage_full alert, and takes readings again once space is freed. Real
 * gateway process, real files, real MQTT.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { closed, connectDevice, enrol, GatewayProcess, tempDataDir, type EnrolledDevice } from '../helpers/gateway-process.ts'

const hr = (seq: number) => ({ seq, ts: Date.now(), type: 'heart_rate', unit: '/min', value: 60 + (seq % 40) })
const BUDGET_MB = 16

let gw: GatewayProcess
let data: ReturnType<typeof tempDataDir>
let db: Database.Database
let dev1: EnrolledDevice
let dev2: EnrolledDevice

async function metric(name: string): Promise<number | undefined> {
  const text = await (await fetch(`${gw.httpUrl}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

async function until(pred: () => Promise<boolean> | boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const seqs = (deviceId: string) => (db.prepare('SELECT seq FROM readings WHERE device_id = ? ORDER BY seq').pluck().all(deviceId) as number[])

beforeAll(async () => {
  data = tempDataDir('disk')
  dev1 = await enrol(data.dir, 'bed-d1', 'P-1')
  dev2 = await enrol(data.dir, 'bed-d2', 'P-2')
  gw = await GatewayProcess.start({ dataDir: data.dir, args: ['--disk-budget-mb', String(BUDGET_MB), '--disk-check-ms', '200', '--mqtts-port', '0'] })
  db = new Database(join(data.dir, 'gateway.db'), { readonly: true })
})

afterAll(async () => {
  db?.close()
  await gw?.stop()
  data?.cleanup()
})

describe('disk budget', () => {
  it('refuses with STORAGE_FULL (error first, then no PUBACK and a closed connection), loses nothing, and resumes when space is freed', async () => {
    const dev = await connectDevice(gw.mqttUrl, dev1, { reconnectPeriod: 250, clean: false })
    await dev.publish(hr(1))
    expect(await metric('careledger_gateway_storage_full')).toBe(0)

    // Something else in the data directory (say, files an operator copied there) grows past the budget.
    mkdirSync(join(data.dir, 'misc'), { recursive: true })
    writeFileSync(join(data.dir, 'misc', 'filler'), Buffer.alloc((BUDGET_MB + 1) * 1024 * 1024))
    await until(async () => (await metric('careledger_gateway_storage_full')) === 1, 5000, 'the storage_full alert')
    const health = await fetch(`${gw.httpUrl}/healthz`)
    expect(health.status).toBe(200) // a full disk must not get the gateway restarted
    expect(await health.json()).toMatchObject({ status: 'storage_full', disk: { full: true } })

    const wasClosed = closed(dev.client)
    let acked = false
    const pending = dev.publish(hr(2)).then(() => (acked = true))
    const err = await dev.nextError((e) => e.code === 'STORAGE_FULL')
    expect(err.seq).toBe(2)
    expect(err.message).toMatch(/NOT stored and NOT acknowledged/)
    await wasClosed
    expect(acked).toBe(false)
    expect(seqs('bed-d1')).toEqual([1]) // seq 1 kept, seq 2 not stored
    expect(await metric('careledger_gateway_publish_refused_total{reason="STORAGE_FULL"}')).toBeGreaterThanOrEqual(1)

    // While full the device keeps reconnecting and resending; still refused.
    await new Promise((r) => setTimeout(r, 700))
    expect(acked).toBe(false)
    expect(seqs('bed-d1')).toEqual([1])

    // Space is freed: the resent reading is taken and acknowledged, once.
    rmSync(join(data.dir, 'misc', 'filler'))
    await until(() => acked, 8000, 'the resent reading to be acknowledged')
    await pending
    expect(seqs('bed-d1')).toEqual([1, 2])
    expect(await metric('careledger_gateway_storage_full')).toBe(0)
    await dev.publish(hr(3))
    expect(seqs('bed-d1')).toEqual([1, 2, 3])
    await dev.end()
  })

  it('counts the readings themselves, and pages freed by deleting synced rows give the room back', async () => {
    const dev = await connectDevice(gw.mqttUrl, dev2, { reconnectPeriod: 250, clean: false })
    let seq = 0
    const ackedSeqs: number[] = []
    // ECG chunks, 100 per message (~1.6 KB stored each), until the gateway says STORAGE_FULL.
    const samples = Array.from({ length: 400 }, (_, i) => ((i % 20) - 10) / 10)
    const ecg = (s: number) => ({ seq: s, ts: Date.now(), type: 'ecg', unit: 'mV', samples, hz: 500 })
    for (let i = 0; i < 400 && !dev.errors.some((e) => e.code === 'STORAGE_FULL'); i++) {
      const batch = Array.from({ length: 100 }, () => ecg(++seq))
      const ok = await Promise.race([dev.publish(batch).then(() => true), dev.nextError((e) => e.code === 'STORAGE_FULL', 60_000).then(() => false)])
      if (ok) ackedSeqs.push(...batch.map((r) => r.seq))
    }
    const full = dev.errors.find((e) => e.code === 'STORAGE_FULL')
    expect(full, 'the readings filled the budget').toBeDefined()
    const refusedFirst = full!.seq!
    const stored = seqs('bed-d2')
    expect(stored).toEqual(ackedSeqs) // every acknowledged reading, nothing of the refused message
    expect(stored).not.toContain(refusedFirst)
    expect(await metric('careledger_gateway_storage_full')).toBe(1)

    // Retention (the lead's code) deletes synced readings; the freed pages count as free again.
    const writer = new Database(join(data.dir, 'gateway.db'))
    writer.pragma('busy_timeout = 5000')
    writer.prepare('DELETE FROM readings WHERE device_id = ? AND seq <= ?').run('bed-d2', Math.floor(ackedSeqs.length * 0.8))
    writer.pragma('wal_checkpoint(TRUNCATE)') // what retention does after a large delete
    writer.close()
    await until(async () => (await metric('careledger_gateway_storage_full')) === 0, 5000, 'storage available again')
    // The refused message is resent by mqtt.js after its reconnect and now stored.
    await until(() => seqs('bed-d2').includes(refusedFirst), 8000, 'the refused readings to be stored after the resend')
    await dev.end()
  })
})
