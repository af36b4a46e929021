/**
 * Issue 8, item 1: a stage of the ingest pipeline that throws costs that message, never the process.
 * The real pipeline (createAuthorizePublish), the real group commit and SQLite store; the fault is
 * injected into a dependency (the disk budget, the error reporter), the way a bug there would throw.
 */
import { pino } from 'pino'
import { afterAll, expect, it } from 'vitest'
import type { Client, PublishPacket } from 'aedes'
import type { DiskBudget } from '../../gateway/broker/disk-budget.ts'
import { createAuthorizePublish, type ReportError } from '../../gateway/broker/ingest.ts'
import { createGatewayMetrics } from '../../gateway/metrics.ts'
import { openGatewayDb } from '../../gateway/store/db.ts'
import { DeviceDirectory, DeviceStore } from '../../gateway/store/devices.ts'
import { GroupCommitter, ReadingStore } from '../../gateway/store/readings.ts'
import { tempDataDir } from '../helpers/gateway-process.ts'

const data = tempDataDir('containment')
const { db } = openGatewayDb(data.dir)
new DeviceStore(db).add('bed-1', 'P-1')
const committer = new GroupCommitter(db, { directory: new DeviceDirectory(db), quarantineMaxRows: 100 })
const store = new ReadingStore(db)
const reported: Array<{ code: string; message: string }> = []
let reportThrows = false
const reportError: ReportError = (_id, msg, done) => {
  if (reportThrows) throw new Error('reporter bug')
  reported.push(msg)
  done?.(null)
}
let diskThrows = false
const disk = {
  get full() {
    if (diskThrows) throw new Error('disk budget bug')
    return false
  },
  status: { reason: null },
} as unknown as DiskBudget
const authorizePublish = createAuthorizePublish({ committer, disk, validation: { maxBytes: 4096, maxReadings: 10, maxFutureMs: 300_000 }, metrics: createGatewayMetrics(), logger: pino({ level: 'silent' }), reportError })
const client = { id: 'bed-1', conn: { writableLength: 0, once() {} } } as unknown as Client
const publish = (seq: number) =>
  new Promise<Error | null>((ok) => {
    const packet = { cmd: 'publish', topic: 'careledger/v1/devices/bed-1/readings', payload: Buffer.from(JSON.stringify({ seq, ts: Date.now(), type: 'heart_rate', unit: '/min', value: 70 })), qos: 1, retain: false, dup: false } as PublishPacket
    authorizePublish(client, packet, (err) => ok(err ?? null))
  })

afterAll(() => {
  db.close()
  data.cleanup()
})

it('a stage that throws before the commit: the payload is quarantined whole as UNPROCESSABLE and acknowledged', async () => {
  diskThrows = true
  expect(await publish(1)).toBeNull() // acknowledged: no error to aedes
  diskThrows = false
  expect(store.get('bed-1', 1)).toBeUndefined()
  const q = store.quarantined(10, 'bed-1')
  expect(q[0]).toMatchObject({ code: 'UNPROCESSABLE', seq: null })
  expect(q[0]!.raw).toContain('"seq":1')
  expect(reported.at(-1)).toMatchObject({ code: 'UNPROCESSABLE' })
  expect(reported.at(-1)!.message).toContain('disk budget bug')
})

it('a stage that throws after the commit: the reading stays stored and the PUBACK still goes out', async () => {
  reportThrows = true
  const payload = { seq: 2, ts: Date.now(), type: 'spo2', unit: '%', value: 140 } // rejected → reported → throws
  const err = await new Promise<Error | null>((ok) =>
    authorizePublish(client, { cmd: 'publish', topic: 'careledger/v1/devices/bed-1/readings', payload: Buffer.from(JSON.stringify(payload)), qos: 1, retain: false, dup: false } as PublishPacket, (e) => ok(e ?? null)),
  )
  reportThrows = false
  expect(err).toBeNull()
  expect(store.quarantined(10, 'bed-1').some((q) => q.seq === 2 && q.code === 'IMPLAUSIBLE_VALUE')).toBe(true)
  expect(await publish(3)).toBeNull()
  expect(store.get('bed-1', 3)).toBeDefined()
})
