/**
 * Issue 8, item 8: ECG samples are stored exactly as the device sent them (binary64), and rows
 * stored by older gateways (binary32) stay readable and still recognise a resend. Real SQLite.
 */
import { afterAll, expect, it } from 'vitest'
import { openGatewayDb } from '../../gateway/store/db.ts'
import { DeviceDirectory, DeviceStore } from '../../gateway/store/devices.ts'
import { decodeSamples, encodeSamples, GroupCommitter, ReadingStore, type WriteOutcome } from '../../gateway/store/readings.ts'
import { validatePayload } from '../../shared/schema/reading.ts'
import { tempDataDir } from '../helpers/gateway-process.ts'

const data = tempDataDir('samples')
const { db } = openGatewayDb(data.dir)
new DeviceStore(db).add('bed-1', 'P-1')
const committer = new GroupCommitter(db, { directory: new DeviceDirectory(db), quarantineMaxRows: 100 })
const store = new ReadingStore(db)
afterAll(() => {
  db.close()
  data.cleanup()
})

const TS = Date.UTC(2026, 10, 25, 10)
const ecgJson = (seq: number, samples: string) => `{"seq":${seq},"ts":${TS},"type":"ecg","unit":"mV","hz":250,"samples":[${samples}]}`
function write(json: string): Promise<WriteOutcome> {
  const v = validatePayload(Buffer.from(json), { now: TS })
  return new Promise((ok, fail) => {
    committer.enqueue({ deviceId: 'bed-1', receivedAt: TS, readings: v.accepted, rejections: v.rejected, done: (e, o) => (e ? fail(e) : ok(o!)) })
    committer.flush()
  })
}

it('stores -0.58918 as -0.58918 (not -0.5891799926757812): binary64, exactly what JSON.parse read', async () => {
  await write(ecgJson(1, '-0.58918,0.1,1e-7,19.999999999999996,-0'))
  const r = store.get('bed-1', 1)!
  expect([...r.samples!]).toEqual([-0.58918, 0.1, 1e-7, 19.999999999999996, 0])
  expect(Object.is(r.samples![4], -0)).toBe(false) // -0 is read as 0
  expect((await write(ecgJson(1, '-0.58918,0.1,1e-7,19.999999999999996,0'))).duplicates).toBe(1)
  expect((await write(ecgJson(1, '-0.58917,0.1,1e-7,19.999999999999996,0'))).conflicts).toHaveLength(1)
})

it('reads a row stored as binary32 by an older gateway, and treats a resend of it as a duplicate', async () => {
  const legacy = Buffer.alloc(8)
  legacy.writeFloatLE(-0.58918, 0)
  legacy.writeFloatLE(0.25, 4)
  db.prepare("INSERT INTO readings (device_id, seq, patient_id, ts, received_at, type, unit, value, samples, hz) VALUES ('bed-1', 2, 'P-1', ?, ?, 'ecg', 'mV', NULL, ?, 250)").run(TS, TS, legacy)
  expect([...store.get('bed-1', 2)!.samples!]).toEqual([Math.fround(-0.58918), 0.25])
  expect((await write(ecgJson(2, '-0.58918,0.25'))).duplicates).toBe(1)
  expect((await write(ecgJson(2, '-0.5,0.25'))).conflicts).toHaveLength(1)
})

it('tells the two formats apart by length (4n legacy, 1 + 8n current) and refuses anything else', () => {
  expect(encodeSamples([1, 2]).length).toBe(17)
  expect([...decodeSamples(encodeSamples([1.1, -2.2]))]).toEqual([1.1, -2.2])
  expect(() => decodeSamples(Buffer.from([0x03, 0, 0, 0, 0, 0, 0, 0, 0]))).toThrow(/unknown format/)
})
