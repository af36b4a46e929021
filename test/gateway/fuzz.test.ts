/**
 * Fuzzing the real gateway process (issue 8): fast-check generates MQTT payloads — nesting depth,
 * sizes up to and over the limit, encodings (invalid UTF-8, a BOM, lone surrogates), repeated
 * names, numbers at the edges of binary64 and of the vital limits, timestamps at calendar edges —
 * and raw packets after login. Properties: the process never dies; every PUBLISH gets an answer
 * (a PUBACK, with an error on the errors topic for each rejection the validator names, or a clear
 * disconnect with PAYLOAD_TOO_LARGE for a payload over the limit); RSS stays under the budget.
 *
 * Short by default (CI); CARELEDGER_FUZZ_RUNS=5000 for a long run. A failure prints fast-check's
 * seed and path: rerun with CARELEDGER_FUZZ_SEED=<seed> to replay it.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { GATEWAY_RSS_BUDGET_MB } from '../../bench/lib/exhaustion.ts'
import { validatePayload } from '../../shared/schema/reading.ts'
import { connectDevice, enrolInStore, GatewayProcess, tempDataDir, type TestDevice } from '../helpers/gateway-process.ts'
import { connectPacket, memoryOf, rawConnect, remainingLength, subscribePacket } from '../helpers/mqtt-raw.ts'

const RUNS = Number(process.env.CARELEDGER_FUZZ_RUNS ?? 60)
const SEED = process.env.CARELEDGER_FUZZ_SEED === undefined ? undefined : Number(process.env.CARELEDGER_FUZZ_SEED)
const MAX_BYTES = 16 * 1024
const TIMEOUT_MS = 10_000

let data: ReturnType<typeof tempDataDir>
let gw: GatewayProcess
let cred: { deviceId: string; secret: string }
let rawCred: { deviceId: string; secret: string }
let dev: TestDevice
let peakRss = 0
let sampler: NodeJS.Timeout

beforeAll(async () => {
  data = tempDataDir('fuzz')
  ;[cred, rawCred] = enrolInStore(data.dir, 2, 'fuzz') as [typeof cred, typeof cred]
  gw = await GatewayProcess.start({ dataDir: data.dir, args: ['--max-payload-bytes', String(MAX_BYTES), '--max-readings', '50', '--seal-interval-s', '1'], readyTimeoutMs: 60_000 })
  dev = await connectDevice(gw.mqttUrl, cred)
  sampler = setInterval(() => (peakRss = Math.max(peakRss, memoryOf(gw.pid).rss)), 100)
})

afterAll(async () => {
  clearInterval(sampler)
  await dev?.client.endAsync(true).catch(() => {})
  await gw?.stop()
  data?.cleanup()
})

const alive = (): boolean => gw.child!.exitCode === null && gw.child!.signalCode === null

// ── generators ───────────────────────────────────────────────────────────────────────────────
const edgeNumber = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, 5e-324, -5e-324, Number.MAX_VALUE, -Number.MAX_VALUE, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 1e-7, 0.1, -0.58918, 19.999999999999996, 20, 20.000000000000004, -20, 350, 350.00000000000006, 100, 46.1, 9.9),
  fc.integer(),
)
/** Numbers as JSON text, including forms JSON.stringify never writes. */
const numberText = fc.oneof(
  edgeNumber.map((n) => JSON.stringify(n)),
  fc.constantFrom('1e400', '-1e400', '1E-400', '0.0000000000000000000000001', '123456789012345678901234567890', '-0.0', '1.0e+2', '01', '.5', '5.', '+1', 'NaN', 'Infinity', '0x10', '1_000'),
)
const tsText = fc.oneof(
  fc.constantFrom('"2026-02-30T10:00:00Z"', '"2024-02-29T10:00:00Z"', '"2016-12-31T23:59:60Z"', '"2026-11-25T10:00:60Z"', '"2026-11-25 10:00:00Z"', '"2026-11-25T10:00:00+24:00"', '"2026-11-25T10:00:00.1234567891Z"', '"9999-12-31T23:59:59Z"', '"0000-01-01T00:00:00Z"', '""'),
  fc.integer({ min: 0, max: 12 }).chain((m) => fc.integer({ min: 0, max: 32 }).map((d) => `"2026-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}T10:00:00Z"`)),
  fc.constant(String(Date.now())),
  numberText,
)
const typeUnit = fc.constantFrom(['heart_rate', '/min'], ['spo2', '%'], ['body_temp', 'Cel'], ['ecg', 'mV'], ['ecg', 'mv'], ['glucose', 'mmol/L'], ['resp_rate', '/min'])
/** A reading-shaped object as JSON text, with edge values and sometimes a repeated or extra name. */
const readingText = fc
  .record({
    seq: fc.oneof(fc.integer({ min: 0, max: 1e6 }).map(String), numberText),
    ts: tsText,
    tu: typeUnit,
    value: numberText,
    samples: fc.array(numberText, { maxLength: 40 }),
    hz: fc.option(numberText),
    extra: fc.option(fc.constantFrom(',"seq":1', ',"value":1', ',"patient":"p-1"', ',"s\\u0065q":2', ',"hz":250')),
  })
  .map((r) => {
    const body = r.tu[0] === 'ecg' ? `"samples":[${r.samples.join(',')}]${r.hz === null ? '' : `,"hz":${r.hz}`}` : `"value":${r.value}`
    return `{"seq":${r.seq},"ts":${r.ts},"type":"${r.tu[0]}","unit":"${r.tu[1]}",${body}${r.extra ?? ''}}`
  })
const deep = fc.tuple(fc.integer({ min: 1, max: 20_000 }), fc.constantFrom('[', '{"a":')).map(([n, open]) => open.repeat(n) + '1' + (open === '[' ? ']' : '}').repeat(n))
const utf8Edges = fc.oneof(
  fc.uint8Array({ maxLength: 512 }),
  fc.string({ unit: 'binary', maxLength: 200 }).map((s) => `{"seq":1,"ts":${Date.now()},"type":"${s}","unit":"/min","value":1}`),
  readingText.map((t) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(t)])),
  readingText.chain((t) => fc.integer({ min: 0, max: Math.max(0, t.length - 1) }).map((i) => Buffer.concat([Buffer.from(t.slice(0, i)), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from(t.slice(i))]))),
)
const payload: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: readingText },
  { weight: 3, arbitrary: fc.array(readingText, { minLength: 0, maxLength: 60 }).map((xs) => `[${xs.join(',')}]`) },
  { weight: 2, arbitrary: deep },
  { weight: 2, arbitrary: utf8Edges },
  { weight: 1, arbitrary: fc.json({ depthSize: 'large', maxDepth: 12 }) },
  { weight: 1, arbitrary: fc.integer({ min: MAX_BYTES - 64, max: MAX_BYTES + 4096 }).map((n) => `{"seq":1,"pad":"${'x'.repeat(Math.max(0, n - 20))}"}`) },
)

/** Publish one payload and wait for its answer: the PUBACK (plus its errors), or the disconnect. */
async function answerTo(p: string | Uint8Array): Promise<'puback' | 'disconnected'> {
  const bytes = typeof p === 'string' ? Buffer.from(p) : Buffer.from(p)
  const before = dev.errors.length
  let onClose = (): void => {}
  const gone = new Promise<'disconnected'>((ok) => dev.client.once('close', (onClose = () => ok('disconnected'))))
  const acked = dev.client.publishAsync(`careledger/v1/devices/${cred.deviceId}/readings`, bytes, { qos: 1 }).then(() => 'puback' as const)
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'timeout'>((ok) => (timer = setTimeout(() => ok('timeout'), TIMEOUT_MS)))
  const answer = await Promise.race([acked, gone, timeout])
  clearTimeout(timer)
  dev.client.removeListener('close', onClose)
  if (answer === 'timeout') throw new Error(`no answer within ${TIMEOUT_MS} ms to a payload of ${bytes.length} bytes: ${bytes.subarray(0, 120).toString('latin1')}`)
  // The gateway's own validator says how many rejections must be reported (SEQ_REUSED may add some).
  const expected = bytes.length > MAX_BYTES ? 1 : validatePayload(bytes, { now: Date.now(), maxBytes: MAX_BYTES, maxReadings: 50 }).rejected.length
  if (answer === 'disconnected') {
    expect(bytes.length, 'only a payload over the limit is refused by a disconnect').toBeGreaterThan(MAX_BYTES)
    expect(dev.errors.slice(before).some((e) => e.code === 'PAYLOAD_TOO_LARGE')).toBe(true)
    dev = await connectDevice(gw.mqttUrl, cred)
    return answer
  }
  expect(bytes.length).toBeLessThanOrEqual(MAX_BYTES)
  const deadline = Date.now() + TIMEOUT_MS
  while (dev.errors.length - before < expected && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 10))
  expect(dev.errors.length - before, 'one error message per rejected reading').toBeGreaterThanOrEqual(expected)
  return answer
}

it(`answers every generated payload and never dies (${RUNS} runs)`, { timeout: 120_000 + RUNS * 2_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(payload, async (p) => {
      await answerTo(p)
      expect(alive()).toBe(true)
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  )
  expect(alive()).toBe(true)
  console.log(`fuzz: ${RUNS} payloads; gateway peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MB (budget ${GATEWAY_RSS_BUDGET_MB} MB)`)
  expect(peakRss).toBeLessThan(GATEWAY_RSS_BUDGET_MB * 2 ** 20)
})

it(`answers arbitrary packets after a login, or closes the connection; the gateway lives (${Math.ceil(RUNS / 2)} runs)`, { timeout: 120_000 + RUNS * 2_000 }, async () => {
  // Framed: any type and flags byte, a correct Remaining Length, any body. The gateway has the whole
  // packet, so it must act on it: answer, ignore it and answer the PINGREQ after it, or close.
  const packet = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 2048 })).map(([h, body]) => Buffer.concat([Buffer.from([h]), remainingLength(body.length), Buffer.from(body)]))
  await fc.assert(
    fc.asyncProperty(packet, async (p) => {
      const c = await rawConnect(gw.ports.mqtt)
      c.write(Buffer.concat([connectPacket({ clientId: rawCred.deviceId, username: rawCred.deviceId, password: rawCred.secret }), subscribePacket(`careledger/v1/devices/${rawCred.deviceId}/errors`)]))
      await c.next((x) => x.cmd === 'suback')
      c.write(Buffer.concat([p, Buffer.from([0xc0, 0x00])])) // then PINGREQ
      const outcome = await Promise.race([c.next((x) => x.cmd === 'pingresp', TIMEOUT_MS).then(() => 'pingresp'), c.closed.then(() => 'closed')]).catch(() => 'no answer')
      c.socket.destroy()
      expect(outcome, `packet ${p.subarray(0, 32).toString('hex')}…`).not.toBe('no answer')
      expect(alive()).toBe(true)
    }),
    { numRuns: Math.ceil(RUNS / 2), seed: SEED, endOnFailure: true },
  )
  expect(alive()).toBe(true)
})
