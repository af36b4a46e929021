/**
 * The console's doctor view in headless Chromium: a doctor types a token, a patient pseudonym and
 * a time range, picks a key file; the page verifies the cloud's evidence, fetches each ciphertext
 * by CID, decrypts in the browser and plots HR, SpO2, RR, temperature and blood pressure with the
 * normal ranges shaded. A batch the key may not open is listed as "not authorised by policy …".
 * Every request the page makes is watched: the key file never leaves the page. Saves
 * test-output/doctor-view.png.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Cloud } from '../../cloud/runtime.ts'
import { encodeUserKey } from '../../shared/crypto/abe/codec.ts'
import type { SealedReading } from '../../shared/protocol/batch.ts'
import { VITALS, type VitalType } from '../../shared/schema/vitals.ts'
import { currentKey } from '../helpers/authority.ts'
import { batchBody, sealTestBatch, signedPost, testAuthoritySecret, registerTestGateway, testStream } from '../helpers/cloud-batches.ts'
import { startTestCloud, tempDataDir } from '../helpers/cloud-process.ts'
import { expectNoneCarries, openBrowser, recordNetwork, screenshotPath, signIn, type TestBrowser } from '../helpers/browser.ts'

const T0 = Date.now() - 40 * 60_000
const TYPES: VitalType[] = ['heart_rate', 'spo2', 'resp_rate', 'body_temp', 'bp_systolic', 'bp_diastolic']
/** A patient who deteriorates a little: HR up, SpO2 down; one reading of each type a minute. */
const valueAt = (type: VitalType, m: number): number =>
  ({ heart_rate: 78 + m * 0.9 + (m % 3), spo2: 98 - m * 0.12, resp_rate: 14 + (m % 5) * 0.8 + m * 0.1, body_temp: 36.7 + m * 0.02, bp_systolic: 118 + (m % 7) * 2, bp_diastolic: 76 + (m % 4) * 2, ecg: 0 })[type]
const minuteReadings = (m: number, seq0: number): SealedReading[] =>
  TYPES.map((type, j) => ({ seq: seq0 + j, ts: T0 + m * 60_000, rx: T0 + m * 60_000 + 50, type, unit: VITALS[type].unit, value: Math.round(valueAt(type, m) * 10) / 10 }))

let data: ReturnType<typeof tempDataDir>
let cloud: Cloud
let browser: TestBrowser
let page: Page
let dir: string
let doctorToken: string
let pseudonym: string
let keyBytes: Uint8Array
let network: ReturnType<typeof recordNetwork>

beforeAll(async () => {
  data = tempDataDir('doctor-view')
  cloud = await startTestCloud(data.dir, { blockIntervalS: '3600', verifyIntervalS: '0' })
  doctorToken = (await cloud.tokens.create('doctor', 'dr-house')).token
  const gw = await registerTestGateway(cloud)
  const monitor = testStream(gw, 'bed-07', 'P-7', '(role:doctor AND hospital:h1) OR patient:{patient}')
  const restricted = testStream(gw, 'bed-07-icu', 'P-7', 'role:intensivist') // same patient, a stricter policy
  pseudonym = monitor.pseudonym
  // Eight batches of five minutes each (one reading of every type a minute).
  let prev: string | null = null
  for (let k = 0; k < 8; k++) {
    const rs = Array.from({ length: 5 }, (_, i) => minuteReadings(k * 5 + i, (k * 5 + i) * 6)).flat()
    const b = await sealTestBatch(monitor, k, prev, { readings: rs, now: T0 + (k * 5 + 5) * 60_000 })
    prev = b.commitment
    expect((await signedPost(cloud.url, gw, '/v1/batches', await batchBody(b))).res.status).toBe(201)
  }
  const icu = await sealTestBatch(restricted, 0, null, { readings: minuteReadings(3, 0), now: T0 + 4 * 60_000 })
  expect((await signedPost(cloud.url, gw, '/v1/batches', await batchBody(icu))).res.status).toBe(201)
  expect(cloud.sealNow()).not.toBeNull()

  dir = mkdtempSync(join(tmpdir(), 'careledger-doctor-'))
  keyBytes = encodeUserKey(currentKey(testAuthoritySecret(), ['role:doctor', 'hospital:h1', 'dept:cardiology']))
  writeFileSync(join(dir, 'alice.key'), keyBytes, { mode: 0o600 })
  browser = await openBrowser({ viewport: { width: 1280, height: 1500 } })
  page = await browser.page()
  network = recordNetwork(browser.context)
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await cloud?.stop()
  data?.cleanup()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('doctor view in headless Chromium', () => {
  it('verifies, decrypts in the browser and plots the vital signs with normal ranges; the key never leaves the page', async () => {
    // The page's script is bundled from shared/ on first request: a server-only import there shows up here, not as a click timeout.
    const script = await fetch(`${cloud.url}/console/doctor.js`)
    expect(script.status, await script.clone().text().then((t) => t.slice(0, 300))).toBe(200)
    await signIn(page, `${cloud.url}/doctor`, doctorToken)
    await page.fill('#patient', pseudonym)
    const iso = (ms: number) => new Date(ms).toISOString().slice(0, 16)
    await page.fill('#from', iso(T0 - 60_000))
    await page.fill('#to', iso(T0 + 41 * 60_000))
    await page.setInputFiles('#key', join(dir, 'alice.key'))
    await expect.poll(() => page.textContent('#key-status')).toMatch(/key for dept:cardiology, hospital:h1, role:doctor, valid \d{4}-\d{2} … \d{4}-\d{2} \(UTC\) — kept in this page only/)
    await page.click('#read')
    // The page's error message, if any, is what the poll shows on failure (not a bare timeout).
    await expect.poll(async () => (await page.textContent('#summary')) || (await page.textContent('#message')), { timeout: 120_000, interval: 500 }).toMatch(/^verified 240 readings from 8 of 9 batches; 9 records checked against block 0/)
    expect(await page.textContent('#message')).toBe('')
    // One chart per vital group, each with its normal range.
    expect(await page.$$eval('figure.chart', (fs) => fs.map((f) => f.getAttribute("data-panel")))).toEqual(['hr', 'spo2', 'rr', 'temp', 'bp'])
    expect(await page.$$eval('figure.chart canvas', (cs) => cs.length)).toBe(5)
    expect(await page.textContent('#refused')).toMatch(/record \d+ \(bed-07-icu #0, .*\): not authorised by policy "role:intensivist AND epoch:\d{4}-\d{2}"/)

    await page.screenshot({ path: screenshotPath('doctor-view'), fullPage: true })
    expect(statSync(screenshotPath('doctor-view')).size).toBeGreaterThan(20_000)

    // The network, as the browser saw it: only GETs of the page, its files, evidence and blocks —
    // no request carries a body, and nothing of the key appears in any URL or header.
    const seen = network.seen()
    expect(seen.every((r) => r.origin === cloud.url)).toBe(true)
    expect(seen.filter((r) => r.method !== 'GET')).toEqual([])
    expect(seen.every((r) => r.body === '')).toBe(true)
    expect(new Set(seen.map((r) => r.path.replace(/^\/ipfs\/.*/, '/ipfs/{cid}')))).toEqual(new Set(['/doctor', '/console/console.css', '/console/uplot.css', '/console/doctor.css', '/console/doctor.js', '/v1/evidence', '/v1/evidence/records', '/ipfs/{cid}']))
    expectNoneCarries(seen, [keyBytes])
    expect(seen.filter((r) => r.path.startsWith('/ipfs/')).length).toBe(9) // every matching batch's ciphertext, by CID
  }, 180_000)

  it('runs in a browser whose locale is not a BCP 47 tag ("en-US@posix", Chromium under LANG=C.UTF-8): no script error, the form is the page\'s', async () => {
    const other = await browser.context.newPage()
    // What such a browser reports, set before any of the page's scripts run.
    await other.addInitScript(() => Object.defineProperty(Navigator.prototype, 'language', { get: () => 'en-US@posix', configurable: true }))
    const errors: string[] = []
    other.on('pageerror', (e) => errors.push(e.message))
    other.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())))
    await signIn(other, `${cloud.url}/doctor`, doctorToken)
    // Before the guard the script stopped at load, the token form submitted natively (a navigation the
    // CSP's form-action 'none' blocked) and the click above timed out.
    expect(other.url()).toBe(`${cloud.url}/doctor`)
    expect(await other.evaluate(() => navigator.language)).toBe('en-US')
    expect(errors).toEqual([])
    await other.close()
  })

  it('refuses an expired key before asking the cloud anything', async () => {
    const { keyGen } = await import('../../shared/crypto/abe/fabeo.ts')
    const { keyAttributes, parseEpoch } = await import('../../shared/protocol/epoch.ts')
    writeFileSync(join(dir, 'old.key'), encodeUserKey(keyGen(testAuthoritySecret(), keyAttributes(['role:doctor', 'hospital:h1'], { from: parseEpoch('2021-01'), until: parseEpoch('2021-06') }))))
    const before = network.seen().length
    await page.setInputFiles('#key', join(dir, 'old.key'))
    await expect.poll(() => page.textContent('#key-status')).toMatch(/valid 2021-01 … 2021-06/)
    await page.click('#read')
    await expect.poll(() => page.textContent('#message')).toMatch(/this key expired at the end of 2021-06/)
    expect(network.seen().length).toBe(before)
  })
})
