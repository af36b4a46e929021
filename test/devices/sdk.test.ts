/**
 * The reference client against a real aedes broker over real TCP/TLS sockets (test/helpers/mini-broker.ts).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { connect as mqttConnect } from 'mqtt'
import { backoffDelay, connectDevice, DeviceClientError, parseDeviceError, type DeviceClient, type DeviceClientEvent, type DeviceClientOptions, type DeviceReading } from '../../devices/sdk/client.ts'
import type { DeviceErrorMessage } from '../../shared/schema/device.ts'
import { makeTestPki, startMiniBroker, waitUntil, type MiniBroker } from '../helpers/mini-broker.ts'

const DEVICES = { 'bed-01': 'secret-one', 'bed-02': 'secret-two' }
const hr = (seq: number, value = 72): DeviceReading => ({ seq, ts: new Date().toISOString(), type: 'heart_rate', value, unit: '/min' })
const seqsOf = (b: MiniBroker, id: string): number[] => (b.stored.get(id) ?? []).map((r) => r.seq)

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f().catch(() => {})
})
async function broker(opts: Partial<Parameters<typeof startMiniBroker>[0]> = {}): Promise<MiniBroker> {
  const b = await startMiniBroker({ devices: DEVICES, ...opts })
  cleanup.push(() => b.close())
  return b
}
async function device(b: MiniBroker, extra: Partial<DeviceClientOptions> = {}): Promise<{ client: DeviceClient; errors: DeviceErrorMessage[]; events: DeviceClientEvent[] }> {
  const errors: DeviceErrorMessage[] = []
  const events: DeviceClientEvent[] = []
  const client = await connectDevice({
    url: b.url,
    deviceId: 'bed-01',
    secret: DEVICES['bed-01'],
    ackTimeoutMs: 2000,
    backoff: { initialMs: 50, maxMs: 200 },
    onError: (e) => errors.push(e),
    onEvent: (e) => events.push(e),
    ...extra,
  })
  cleanup.push(() => client.close())
  return { client, errors, events }
}

describe('reference client: publish and acknowledgement', () => {
  it('resolves publish on PUBACK, after the gateway stored the reading', async () => {
    const b = await broker()
    const { client } = await device(b)
    await client.publish(hr(1))
    expect(seqsOf(b, 'bed-01')).toEqual([1]) // stored before the PUBACK, not after
    await client.publish([hr(2), hr(3), { seq: 4, ts: Date.now(), type: 'spo2', value: 97, unit: '%' }])
    expect(seqsOf(b, 'bed-01')).toEqual([1, 2, 3, 4])
    expect(b.received.map((m) => JSON.parse(m.payload))[0]).toMatchObject({ seq: 1, type: 'heart_rate', value: 72, unit: '/min' })
  })

  it('rejects with ACK_TIMEOUT when no PUBACK comes, and withdraws the message from the session', async () => {
    const b = await broker()
    const { client } = await device(b, { ackTimeoutMs: 300 })
    b.holdAcks()
    const err = await client.publish(hr(1)).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DeviceClientError)
    expect((err as DeviceClientError).code).toBe('ACK_TIMEOUT')
    b.releaseAcks()
    await client.publish(hr(2)) // the connection is fine; the caller decides what to do with seq 1
    await new Promise((r) => setTimeout(r, 200))
    expect(b.received.filter((m) => JSON.parse(m.payload).seq === 1)).toHaveLength(1) // never resent by the SDK itself
  })

  it('rejects publish after close and rejects what was pending at close with CLOSED', async () => {
    const b = await broker()
    const { client } = await device(b)
    b.holdAcks()
    const pending = client.publish(hr(1)).catch((e: DeviceClientError) => e.code)
    await client.close()
    expect(await pending).toBe('CLOSED')
    expect(await client.publish(hr(2)).catch((e: DeviceClientError) => e.code)).toBe('CLOSED')
  })

  it('refuses a payload above the gateway limit before sending it', async () => {
    const b = await broker()
    const { client } = await device(b)
    const big = Array.from({ length: 8 }, (_, i) => ({ seq: i, ts: Date.now(), type: 'ecg', unit: 'mV', hz: 250, samples: Array.from({ length: 4000 }, () => 1.2345678) }))
    await expect(client.publish(big)).rejects.toThrow(/exceeds/)
  })
})

describe('reference client: errors topic', () => {
  it('delivers what the gateway publishes on the errors topic to onError', async () => {
    const b = await broker()
    const { client, errors } = await device(b)
    await b.publishError('bed-01', { seq: 7, code: 'IMPLAUSIBLE_VALUE', message: 'heart_rate 999 /min is outside the physiological range [0, 350]' })
    await b.publishError('bed-02', { seq: 8, code: 'SCHEMA', message: 'not ours' })
    await waitUntil(() => errors.length >= 1, 'the error message')
    expect(errors).toEqual([{ seq: 7, code: 'IMPLAUSIBLE_VALUE', message: 'heart_rate 999 /min is outside the physiological range [0, 350]' }])
    // And the real thing: a rejected reading is still acknowledged, and its rejection comes back.
    await client.publish([hr(1), hr(2, 999), { ...hr(3), unit: 'bpm' }])
    await waitUntil(() => errors.length === 3, 'two rejections')
    expect(errors.slice(1).map((e) => [e.seq, e.code])).toEqual([[2, 'IMPLAUSIBLE_VALUE'], [3, 'WRONG_UNIT']])
    expect(seqsOf(b, 'bed-01')).toEqual([1])
  })

  it('receives error messages published while it was offline (clean session = 0: the broker kept the subscription)', async () => {
    const b = await broker()
    const first = await device(b)
    await first.client.close()
    await b.publishError('bed-01', { seq: 41, code: 'FUTURE_TIMESTAMP', message: 'ts is 3600 s ahead' })
    const second = await device(b)
    await waitUntil(() => second.errors.length === 1, 'the queued error message')
    expect(second.errors[0]).toEqual({ seq: 41, code: 'FUTURE_TIMESTAMP', message: 'ts is 3600 s ahead' })
    expect(second.events).toContainEqual({ type: 'connected', sessionPresent: true })
  })

  it('parses only {seq, code, message}', () => {
    const enc = (x: unknown) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x))
    expect(parseDeviceError(enc({ seq: null, code: 'MALFORMED_JSON', message: 'x' }))).toEqual({ seq: null, code: 'MALFORMED_JSON', message: 'x' })
    expect(parseDeviceError(enc({ seq: '1', code: 'X', message: 'x' }))).toBeNull()
    expect(parseDeviceError(enc({ seq: 1, code: 'X' }))).toBeNull()
    expect(parseDeviceError(enc('{nope'))).toBeNull()
  })
})

describe('reference client: credentials and ACL', () => {
  it('is refused with a wrong password or an unknown device, without retrying', async () => {
    const b = await broker()
    for (const [deviceId, secret] of [['bed-01', 'wrong'], ['bed-99', 'secret-one']] as const) {
      const err = await connectDevice({ url: b.url, deviceId, secret }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(DeviceClientError)
      expect((err as DeviceClientError).code).toBe('REFUSED')
      expect((err as DeviceClientError).info.returnCode).toBe(4) // CONNACK 0x04 bad user name or password
    }
    await new Promise((r) => setTimeout(r, 300))
    expect(b.refused).toEqual([{ username: 'bed-01', returnCode: 4 }, { username: 'bed-99', returnCode: 4 }]) // no retry storm
  })

  it('the broker contract: client id must be the device id; other topics are refused', async () => {
    const b = await broker()
    const raw = (clientId: string) => mqttConnect(b.url, { protocolVersion: 4, clientId, username: 'bed-01', password: 'secret-one', reconnectPeriod: 0 })
    const impostor = raw('someone-else')
    const rc = await new Promise((resolve) => impostor.once('error', (e: Error & { code?: number }) => resolve(e.code)))
    expect(rc).toBe(2) // CONNACK 0x02 identifier rejected
    impostor.end(true)

    const c = raw('bed-01')
    await new Promise((resolve) => c.once('connect', resolve))
    const refusedSub = await c.subscribeAsync('careledger/v1/devices/bed-02/errors', { qos: 1 }).catch((e: { packet?: { granted?: number[] } }) => e.packet?.granted)
    expect(refusedSub).toEqual([128]) // SUBACK 0x80 for another device's topic
    expect((await c.subscribeAsync('careledger/v1/devices/bed-01/errors', { qos: 1 })).map((g) => g.qos)).toEqual([1])
    const closed = new Promise((resolve) => c.once('close', () => resolve(null)))
    c.publish('careledger/v1/devices/bed-02/readings', JSON.stringify(hr(1)), { qos: 1 })
    await closed // MQTT 3.1.1 cannot refuse a PUBLISH: the connection is closed instead
    c.end(true)
    expect(b.stored.size).toBe(0)
  })
})

describe('reference client: reconnection', () => {
  it('reconnects after a broker restart; publishes made while down drain in order, nothing reused', async () => {
    const b = await broker()
    const { client, errors, events } = await device(b)
    for (let s = 1; s <= 5; s++) await client.publish(hr(s))
    const restarted = b.restart(700)
    await waitUntil(() => !client.ready, 'the disconnect')
    const during = [6, 7, 8, 9, 10].map((s) => client.publish(hr(s)))
    await restarted
    await Promise.all(during)
    for (let s = 11; s <= 12; s++) await client.publish(hr(s))
    expect(seqsOf(b, 'bed-01')).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    const wire = b.received.map((m) => JSON.parse(m.payload).seq as number)
    expect(wire).toEqual([...wire].sort((x, y) => x - y)) // in order on the wire, too
    // The restarted broker lost the session, so the client subscribed again:
    expect(events.filter((e) => e.type === 'connected')).toEqual([{ type: 'connected', sessionPresent: false }, { type: 'connected', sessionPresent: false }])
    await b.publishError('bed-01', { seq: 12, code: 'SCHEMA', message: 'after restart' })
    await waitUntil(() => errors.length === 1, 'an error after the restart')
  })

  it('resends an unacknowledged PUBLISH after reconnecting [MQTT-4.4.0-1], and resolves on its PUBACK', async () => {
    const b = await broker()
    const { client } = await device(b)
    b.holdAcks() // the gateway receives seq 1 but dies before storing or acknowledging it
    const p = client.publish(hr(1))
    await new Promise((r) => setTimeout(r, 150)) // it reached the broker, which holds it
    await b.restart(300)
    await p
    expect(seqsOf(b, 'bed-01')).toEqual([1])
    expect(b.received.map((m) => m.dup)).toEqual([true]) // a redelivery carries DUP = 1 [MQTT-3.3.1-1]
  })

  it('times out a resent PUBLISH the new connection never acknowledges, instead of hanging', async () => {
    const b = await broker()
    const { client } = await device(b, { ackTimeoutMs: 400, backoff: { initialMs: 200, maxMs: 200 } })
    b.holdAcks()
    const p = client.publish(hr(1)).catch((e: DeviceClientError) => e.code)
    await new Promise((r) => setTimeout(r, 100))
    await b.restart()
    b.holdAcks() // the restarted gateway receives the resend but never acknowledges it
    expect(await p).toBe('ACK_TIMEOUT')
  }, 5000)

  it('keeps retrying with backoff while the gateway is down at boot', async () => {
    const b = await broker()
    const port = b.port
    await b.close()
    const events: DeviceClientEvent[] = []
    const connecting = connectDevice({ url: `mqtt://127.0.0.1:${port}`, deviceId: 'bed-01', secret: 'secret-one', backoff: { initialMs: 50, maxMs: 200 }, onEvent: (e) => events.push(e) })
    await waitUntil(() => events.filter((e) => e.type === 'reconnecting').length >= 3, 'three retries')
    const b2 = await startMiniBroker({ devices: DEVICES, port })
    cleanup.push(() => b2.close())
    const client = await connecting
    cleanup.push(() => client.close())
    await client.publish(hr(1))
    expect(seqsOf(b2, 'bed-01')).toEqual([1])
  })

  it('backoff grows exponentially with jitter, up to the cap', () => {
    expect(backoffDelay(0, 500, 30_000, () => 0)).toBe(250)
    expect(backoffDelay(0, 500, 30_000, () => 1)).toBe(500)
    expect(backoffDelay(3, 500, 30_000, () => 1)).toBe(4000)
    expect(backoffDelay(40, 500, 30_000, () => 0.5)).toBe(22_500)
    for (let a = 0; a < 50; a++) expect(backoffDelay(a, 500, 30_000)).toBeLessThanOrEqual(30_000)
  })
})

describe('reference client: TLS', () => {
  it('connects over mqtts with the gateway CA, and will not talk to a gateway outside it', async () => {
    const pki = makeTestPki()
    const b = await broker({ tls: { key: pki.serverKey, cert: pki.serverCert } })
    const { client } = await device(b, { ca: pki.caCert })
    await client.publish(hr(1))
    expect(seqsOf(b, 'bed-01')).toEqual([1])

    const other = makeTestPki() // a CA that did not sign this gateway
    const events: DeviceClientEvent[] = []
    const err = await connectDevice({ url: b.url, deviceId: 'bed-02', secret: 'secret-two', ca: other.caCert, backoff: { initialMs: 50, maxMs: 100 }, onEvent: (e) => events.push(e), signal: AbortSignal.timeout(1000) }).catch((e: unknown) => e)
    expect((err as DeviceClientError).code).toBe('ABORTED')
    expect(events.find((e) => e.type === 'connection-error')).toMatchObject({ reason: expect.stringMatching(/certificate|self.signed|verify/i) })
  })
})
