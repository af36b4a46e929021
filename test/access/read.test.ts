/**
 * `careledger access read`, end to end with real processes: monitors on the reference client →
 * `careledger gateway start` → `careledger cloud start`; then the CLI as a doctor, a nurse, a
 * patient and an expired key, each a process of its own, reading through the cloud's evidence API
 * and its IPFS trustless gateway (Helia). A doctor whose key satisfies the policy reads exactly
 * what the monitors sent; a key that does not reads nothing and sees each batch as "not authorised
 * by policy …"; outsourced decryption gives the same readings as local; an expired key is refused.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeUserKey } from '../../shared/crypto/abe/codec.ts'
import { keyGen } from '../../shared/crypto/abe/fabeo.ts'
import { keyAttributes, parseEpoch } from '../../shared/protocol/epoch.ts'
import { patientPseudonym } from '../../shared/protocol/pseudonym.ts'
import { currentKey } from '../helpers/authority.ts'
import { careledger } from '../helpers/gateway-process.ts'
import { sleep, startMonitors, TestSystem, ward, type AckedMonitor } from '../helpers/system.ts'
import { readTestSecret } from '../helpers/test-keys.ts'

let sys: TestSystem
let monitors: AckedMonitor[]
let dir: string
let t0: number
let t1: number
let pseudonym: (patientId: string) => string

beforeAll(async () => {
  sys = await TestSystem.start({ label: 'access-read', devices: ward(2), sealIntervalS: 1, blockIntervalS: 0.5 })
  dir = join(sys.root.dir, 'people')
  mkdirSync(dir, { recursive: true })
  // The gateway's pseudonym key is sealed under the tests' passphrase: the people's copy stays sealed
  // (access read opens it under CARELEDGER_PASSPHRASE); the test computes pseudonyms from the opened key.
  writeFileSync(join(dir, 'pseudonym.key'), readFileSync(join(sys.dirs.gateway, 'keys', 'pseudonym.key')))
  const pk = readTestSecret(join(sys.dirs.gateway, 'keys', 'pseudonym.key'))
  pseudonym = (p) => patientPseudonym(pk, p)
  const write = (name: string, attrs: readonly string[]) => writeFileSync(join(dir, name), encodeUserKey(currentKey(sys.authority.msk, attrs)), { mode: 0o600 })
  write('doctor.key', ['role:doctor', 'hospital:h1'])
  write('nurse.key', ['role:nurse', 'hospital:h1'])
  write('patient-01.key', [`patient:${pseudonym('patient-01')}`])
  writeFileSync(join(dir, 'expired.key'), encodeUserKey(keyGen(sys.authority.msk, keyAttributes(['role:doctor', 'hospital:h1'], { from: parseEpoch('2020-01'), until: parseEpoch('2020-12') }))), { mode: 0o600 })
  t0 = Date.now() - 1000
  monitors = await startMonitors(sys.gateway.mqttUrl, sys.monitors, 2)
  await sleep(5000) // load duration, not a timing assertion
  await Promise.all(monitors.map((m) => m.stop()))
  t1 = Date.now() + 1000
  await sys.settled(60_000)
}, 120_000)

afterAll(async () => {
  await sys?.destroy()
})

interface ReadJson {
  patient: string
  readings: { time: string; type: string; value: number; unit: string; device: string; record: number; seq: number }[]
  notAuthorised: { record: number; device: string; seq: number; policy: string }[]
}

const read = (args: readonly string[], token = sys.tokens.doctor) =>
  careledger(['access', 'read', '--from', String(t0), '--to', String(t1), '--format', 'json', ...args], {
    CARELEDGER_CLOUD_URL: sys.cloud.url,
    CARELEDGER_TOKEN: token,
    CARELEDGER_CLIENT_STATE: join(dir, 'state'),
  })

/** What bed-NN's monitor published, as (seq, type, value, ts). */
const sent = (deviceId: string) =>
  monitors
    .find((m) => m.deviceId === deviceId)!
    .published.flat()
    .map((r) => ({ seq: r.seq, type: r.type, value: r.value, time: new Date(r.ts as number).toISOString() }))
    .sort((a, b) => a.seq - b.seq)

describe('careledger access read', () => {
  it("a doctor whose key satisfies the policy reads exactly what patient-01's monitor sent", async () => {
    const r = await read(['--patient', pseudonym('patient-01'), '--key', join(dir, 'doctor.key')])
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as ReadJson
    expect(out.patient).toBe(pseudonym('patient-01'))
    expect(out.notAuthorised).toEqual([])
    expect(new Set(out.readings.map((x) => x.device))).toEqual(new Set(['bed-01']))
    const got = out.readings.map((x) => ({ seq: x.seq, type: x.type, value: x.value, time: x.time })).sort((a, b) => a.seq - b.seq)
    expect(got.length).toBeGreaterThan(20)
    expect(got).toEqual(sent('bed-01'))
    expect(r.stderr).toMatch(/decryption here: [\d.]+ ms a batch \(local, 3 pairings\)/)
  })

  it('reads by patient id with the hospital pseudonym key, and as a table', async () => {
    const r = await read(['--patient', 'patient-02', '--pseudonym-key', join(dir, 'pseudonym.key'), '--key', join(dir, 'doctor.key'), '--format', 'table'])
    expect(r.code, r.stderr).toBe(0)
    const rows = r.stdout.trim().split('\n')
    expect(rows[0]).toMatch(/^time \(UTC\)\s+type\s+value\s+unit\s+device$/)
    expect(rows.length - 1).toBe(sent('bed-02').length)
    expect(rows.slice(1).every((l) => l.endsWith('bed-02'))).toBe(true)
  })

  it('outsourced decryption (the cloud does the pairings) gives the same readings as local', async () => {
    const local = JSON.parse((await read(['--patient', pseudonym('patient-02'), '--key', join(dir, 'doctor.key')])).stdout) as ReadJson
    const r = await read(['--patient', pseudonym('patient-02'), '--key', join(dir, 'doctor.key'), '--outsource'])
    expect(r.code, r.stderr).toBe(0)
    expect((JSON.parse(r.stdout) as ReadJson).readings).toEqual(local.readings)
    expect(r.stderr).toMatch(/\(outsourced; the cloud's transformation took \d+ ms in all\)/)
  })

  it('a key that does not satisfy the policy reads nothing: every batch is listed as not authorised, no crash', async () => {
    const r = await read(['--patient', pseudonym('patient-01'), '--key', join(dir, 'nurse.key')])
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as ReadJson
    expect(out.readings).toEqual([])
    expect(out.notAuthorised.length).toBeGreaterThan(0)
    for (const b of out.notAuthorised) expect(b.policy).toMatch(/^\(\(role:doctor AND hospital:h1\) OR patient:p-[0-9a-f]{24} OR \(role:researcher AND consent:research\)\) AND epoch:\d{4}-\d{2}$/)
    const table = await read(['--patient', pseudonym('patient-01'), '--key', join(dir, 'nurse.key'), '--format', 'table'])
    expect(table.stdout).toMatch(/record \d+ \(bed-01 #\d+, .*\): not authorised by policy "\(\(role:doctor AND hospital:h1\) OR/)
  })

  it("a patient's own key opens their batches and nobody else's", async () => {
    const own = JSON.parse((await read(['--patient', pseudonym('patient-01'), '--key', join(dir, 'patient-01.key')])).stdout) as ReadJson
    expect(own.readings.length).toBe(sent('bed-01').length)
    const other = JSON.parse((await read(['--patient', pseudonym('patient-02'), '--key', join(dir, 'patient-01.key')])).stdout) as ReadJson
    expect(other.readings).toEqual([])
    expect(other.notAuthorised.length).toBeGreaterThan(0)
  })

  it('an expired key is refused with a clear message, before anything is fetched', async () => {
    const r = await read(['--patient', pseudonym('patient-01'), '--key', join(dir, 'expired.key')])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^error INVALID_ARGUMENT: this key expired at the end of 2020-12 \(UTC; it was valid 2020-01 … 2020-12, it is now \d{4}-\d{2}\): ask the attribute authority for a renewed key\n$/)
  })

  it('names what is wrong with the arguments', async () => {
    const noKey = await read(['--patient', 'patient-01', '--key', join(dir, 'doctor.key')])
    expect(noKey.stderr).toMatch(/is a patient id, not a pseudonym/)
    const badTime = await careledger(['access', 'read', '--patient', pseudonym('patient-01'), '--from', 'yesterday', '--key', join(dir, 'doctor.key')], { CARELEDGER_CLOUD_URL: sys.cloud.url, CARELEDGER_TOKEN: sys.tokens.doctor })
    expect(badTime.stderr).toMatch(/--from: "yesterday" is not a time/)
    const admin = await read(['--patient', pseudonym('patient-01'), '--key', join(dir, 'doctor.key')], sys.tokens.admin)
    expect(admin.code).not.toBe(0) // the admin role may list records but not fetch ciphertext
    expect(admin.stderr).toMatch(/403|FORBIDDEN|could not be fetched/)
  })
})
