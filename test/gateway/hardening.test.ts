/**
 * Issue 8, gateway items 1–5, against a real gateway process over real sockets: what one device or
 * one stranger on the ward network can send, and that none of it takes the gateway down, fills its
 * memory, holds its sockets, starves an enrolled device or floods its logs. Independent clients:
 * Debian's mosquitto_pub and openssl s_client; raw sockets with hand-made MQTT fixed headers.
 */
import { execFile, execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeSamples } from '../../gateway/store/readings.ts'
import { connectDevice, enrolInStore, GatewayProcess, tempDataDir, type TestDevice } from '../helpers/gateway-process.ts'
import { closedWithin, connectPacket, memoryOf, openFiles, publishPacket, rawConnect, rawTcp, remainingLength, subscribePacket, type Packet } from '../helpers/mqtt-raw.ts'

const hasMosquittoClients = (() => {
  try {
    execFileSync('which', ['mosquitto_pub'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()
const readings = (id: string) => `careledger/v1/devices/${id}/readings`
const errors = (id: string) => `careledger/v1/devices/${id}/errors`
const hr = (seq: number) => ({ seq, ts: Date.now(), type: 'heart_rate', unit: '/min', value: 72 })
const metric = async (gw: GatewayProcess, name: string): Promise<number> => {
  const text = await (await fetch(`${gw.httpUrl}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? NaN : Number(line.slice(name.length + 1))
}
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms))
const alive = (gw: GatewayProcess) => gw.child !== null && gw.child.exitCode === null && gw.child.signalCode === null
const errorMessage = (p: Packet) => (p.cmd === 'publish' ? (JSON.parse(p.payload.toString()) as { seq: number | null; code: string; message: string }) : null)

const LIMITS = ['--mqtt-connect-timeout-s', '1', '--mqtt-max-unauthenticated', '16', '--mqtt-max-unauthenticated-per-source', '4', '--mqtt-login-queue', '8', '--mqtt-max-connections', '40']
let data: ReturnType<typeof tempDataDir>
let gw: GatewayProcess
let creds: Array<{ deviceId: string; secret: string }>

beforeAll(async () => {
  data = tempDataDir('hardening')
  creds = enrolInStore(data.dir, 25, 'hd')
  gw = await GatewayProcess.start({ dataDir: data.dir, args: LIMITS, readyTimeoutMs: 60_000 })
})

afterAll(async () => {
  await gw?.stop()
  data?.cleanup()
})

describe('item 1: nothing a device sends throws out of the ingest path', () => {
  it('a payload of thousands of nested arrays or objects is acknowledged, answered SCHEMA, and the gateway lives on', async () => {
    const dev = await connectDevice(gw.mqttUrl, creds[0]!)
    for (const deep of ['['.repeat(5000) + ']'.repeat(5000), '{"a":'.repeat(4000) + '1' + '}'.repeat(4000), `[${JSON.stringify(hr(1)).slice(0, -1)},"x":${'['.repeat(5000)}${']'.repeat(5000)}}]`]) {
      await dev.publish(deep) // the PUBACK: stored (quarantined) and answered, not crashed
      const e = await dev.nextError((x) => x.code === 'SCHEMA' && x.message.includes('deeper than'))
      expect(e.seq).toBeNull()
      dev.errors.length = 0
    }
    await dev.publish(hr(2))
    expect(alive(gw)).toBe(true)
    await dev.end()
  })

  it.skipIf(!hasMosquittoClients)('the same through mosquitto_pub (QoS 1: exit 0 only after the PUBACK)', async () => {
    const dev = creds[2]!
    const before = await metric(gw, 'careledger_gateway_readings_rejected_total{reason="SCHEMA"}')
    const out = await new Promise<{ code: number; stderr: string }>((ok) => {
      const p = execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(gw.ports.mqtt), '-V', 'mqttv311', '-q', '1', '-i', dev.deviceId, '-u', dev.deviceId, '-P', dev.secret, '-t', readings(dev.deviceId), '-s'], (err, _o, stderr) =>
        ok({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
      )
      p.stdin!.end('['.repeat(20_000) + ']'.repeat(20_000))
    })
    expect(out.code, out.stderr).toBe(0)
    expect(alive(gw)).toBe(true)
    expect(await metric(gw, 'careledger_gateway_readings_rejected_total{reason="SCHEMA"}')).toBe(before + 1)
  })
})

describe('item 2: packets are refused by their fixed header; connections are capped', () => {
  it('CONNECTs announcing 250 MiB are refused at once and nothing of them is buffered', async () => {
    const before = memoryOf(gw.pid).rss
    const conns = await Promise.all([1, 2, 3, 4].map((i) => rawConnect(gw.ports.mqtt, { localAddress: `127.0.1.${i}` })))
    const chunk = Buffer.alloc(1 << 20, 0x61)
    let peak = before
    const sampler = setInterval(() => (peak = Math.max(peak, memoryOf(gw.pid).rss)), 50)
    for (const c of conns) {
      c.write(Buffer.concat([Buffer.from([0x10]), remainingLength(250 * 1024 * 1024)]))
      for (let i = 0; i < 16 && !c.isClosed(); i++) c.write(chunk) // 16 MiB offered per connection
    }
    for (const c of conns) expect(await closedWithin(c.socket, 5000)).toBe(true)
    clearInterval(sampler)
    console.log(`gateway RSS ${(before / 2 ** 20).toFixed(0)} MB before, ${(peak / 2 ** 20).toFixed(0)} MB at most while 4 × 250 MiB CONNECTs were offered`)
    expect(peak - before).toBeLessThan(48 * 2 ** 20) // was +800 MB (issue 8)
    expect(await metric(gw, 'careledger_gateway_connections_refused_total{reason="CONNECT_TOO_LARGE"}')).toBeGreaterThanOrEqual(4)
  })

  it('a first packet that is not CONNECT, and a Remaining Length of more than 4 bytes, close the connection', async () => {
    const a = await rawConnect(gw.ports.mqtt, { localAddress: '127.0.1.10' })
    a.write(publishPacket('x', 'y'))
    expect(await closedWithin(a.socket, 3000)).toBe(true)
    const b = await rawConnect(gw.ports.mqtt, { localAddress: '127.0.1.11' })
    b.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]))
    expect(await closedWithin(b.socket, 3000)).toBe(true)
    expect(await metric(gw, 'careledger_gateway_connections_refused_total{reason="NOT_CONNECT"}')).toBeGreaterThanOrEqual(1)
    expect(await metric(gw, 'careledger_gateway_connections_refused_total{reason="MALFORMED_LENGTH"}')).toBeGreaterThanOrEqual(1)
  })

  it('packets sent right after CONNECT, before CONNACK, wait for the login and are then served (MQTT 3.1.1 §3.1.4)', async () => {
    const c = creds[3]!
    const conn = await rawConnect(gw.ports.mqtt)
    conn.write(Buffer.concat([connectPacket({ clientId: c.deviceId, username: c.deviceId, password: c.secret }), subscribePacket(errors(c.deviceId), 1), publishPacket(readings(c.deviceId), JSON.stringify(hr(1)), 2)]))
    expect(await conn.next((p) => p.cmd === 'connack')).toMatchObject({ returnCode: 0 })
    expect(await conn.next((p) => p.cmd === 'suback')).toMatchObject({ granted: [1] })
    expect(await conn.next((p) => p.cmd === 'puback')).toMatchObject({ messageId: 2 })
    conn.socket.destroy()
  })

  it('after login, a PUBLISH announcing 2 MiB is refused by its header alone: PAYLOAD_TOO_LARGE on the errors topic, no PUBACK, closed', async () => {
    const c = creds[4]!
    const conn = await rawConnect(gw.ports.mqtt)
    conn.write(Buffer.concat([connectPacket({ clientId: c.deviceId, username: c.deviceId, password: c.secret }), subscribePacket(errors(c.deviceId), 1)]))
    await conn.next((p) => p.cmd === 'suback')
    const topic = Buffer.from(readings(c.deviceId))
    const len = 2 + topic.length + 2 + 2 * 1024 * 1024
    // The fixed header, the topic and the packet id: the 2 MiB body is never sent.
    conn.write(Buffer.concat([Buffer.from([0x32]), remainingLength(len), Buffer.from([topic.length >> 8, topic.length & 0xff]), topic, Buffer.from([0, 7]), Buffer.from('{"seq":')]))
    const err = errorMessage(await conn.next((p) => p.cmd === 'publish'))
    expect(err).toMatchObject({ seq: null, code: 'PAYLOAD_TOO_LARGE' })
    expect(err!.message).toContain(`announcing ${len} bytes`)
    await conn.closed
    expect(conn.packets.some((p) => p.cmd === 'puback')).toBe(false)
  })

  it('caps unauthenticated connections per source and in total; a silent one is closed after the connect timeout', async () => {
    const open: Socket[] = []
    // Four from one source are admitted; the fifth is closed at once.
    for (let i = 0; i < 4; i++) open.push(await rawTcp(gw.ports.mqtt, '127.0.2.1'))
    const fifth = await rawTcp(gw.ports.mqtt, '127.0.2.1')
    expect(await closedWithin(fifth, 1000)).toBe(true)
    expect(open.every((s) => !s.destroyed)).toBe(true)
    // 16 in total (the cap), from four sources; the 17th from a fifth source is closed at once.
    for (let src = 2; src <= 4; src++) for (let i = 0; i < 4; i++) open.push(await rawTcp(gw.ports.mqtt, `127.0.2.${src}`))
    const seventeenth = await rawTcp(gw.ports.mqtt, '127.0.2.9')
    expect(await closedWithin(seventeenth, 1000)).toBe(true)
    expect(await metric(gw, 'careledger_gateway_connections_refused_total{reason="SOURCE_UNAUTHENTICATED"}')).toBeGreaterThanOrEqual(1)
    expect(await metric(gw, 'careledger_gateway_connections_refused_total{reason="MAX_UNAUTHENTICATED"}')).toBeGreaterThanOrEqual(1)
    // Silent connections hold a slot for the connect timeout (1 s here), no longer.
    const results = await Promise.all(open.map((s) => closedWithin(s, 8000)))
    expect(results.every(Boolean)).toBe(true)
    // Slots are free again: a device logs in.
    const dev = await connectDevice(gw.mqttUrl, creds[5]!)
    await dev.publish(hr(1))
    await dev.end()
  })

  it('caps connections in total: the connection over the cap is closed at accept', async () => {
    const devices: TestDevice[] = []
    for (const c of creds.slice(0, 24)) devices.push(await connectDevice(gw.mqttUrl, c, { subscribe: false }))
    // 24 devices + 16 connections not logged in yet = the cap of 40; the next one is refused.
    const pending: Socket[] = []
    for (let i = 0; i < 16; i++) pending.push(await rawTcp(gw.ports.mqtt, `127.0.5.${1 + (i % 4)}`))
    const over = await rawTcp(gw.ports.mqtt, '127.0.5.9')
    expect(await closedWithin(over, 1000)).toBe(true)
    expect(await metric(gw, 'careledger_gateway_connections_refused_total{reason="MAX_CONNECTIONS"}')).toBeGreaterThanOrEqual(1)
    for (const s of pending) s.destroy()
    await Promise.all(devices.map((d) => d.end()))
  })
})

describe('item 3: MQTTS sockets that never finish the TLS handshake are closed', () => {
  it('silent TCP connections to the TLS port, and one speaking garbage, are closed; file descriptors return', async () => {
    await sleep(200)
    const fdsBefore = openFiles(gw.pid)
    const silent: Socket[] = []
    for (let i = 0; i < 12; i++) silent.push(await rawTcp(gw.ports.mqtts, `127.0.6.${1 + (i % 4)}`))
    const garbage = await rawTcp(gw.ports.mqtts, '127.0.6.9')
    garbage.write('GET / HTTP/1.1\r\n\r\n')
    expect(await closedWithin(garbage, 3000)).toBe(true)
    expect(openFiles(gw.pid)).toBeGreaterThanOrEqual(fdsBefore + 12)
    // handshakeTimeout = the connect timeout (1 s here): every one of them is closed by the gateway.
    expect((await Promise.all(silent.map((s) => closedWithin(s, 8000)))).every(Boolean)).toBe(true)
    await sleep(200)
    expect(openFiles(gw.pid)).toBeLessThanOrEqual(fdsBefore + 1)
    expect(await metric(gw, 'careledger_gateway_connections_refused_total{reason="TLS_HANDSHAKE"}')).toBeGreaterThanOrEqual(13)
  })
})

describe('item 4: a login flood does not starve an enrolled device', () => {
  it('strangers’ CONNECTs are answered quickly (CONNACK 3 when the queue is full) while an enrolled device logs in', { timeout: 180_000 }, async () => {
    const strangers: Array<Promise<number | 'closed'>> = []
    const flood = async (source: string, i: number): Promise<number | 'closed'> => {
      try {
        const c = await rawConnect(gw.ports.mqtt, { localAddress: source })
        c.write(connectPacket({ clientId: `stranger-${i}`, username: `stranger-${i}`, password: 'not-a-secret' }))
        const answer = await Promise.race([c.next((p) => p.cmd === 'connack', 30_000).then((p) => (p as { returnCode: number }).returnCode), c.closed.then(() => 'closed' as const)])
        c.socket.destroy()
        return answer
      } catch {
        return 'closed'
      }
    }
    for (let i = 0; i < 240; i++) strangers.push(flood(`127.0.7.${1 + (i % 12)}`, i))
    await sleep(50)
    // The enrolled device has not logged in since the gateway started: its login needs scrypt too.
    const c = creds[24]!
    const t0 = performance.now()
    // As docs/protocol.md tells devices: a connection closed before CONNACK (every unauthenticated
    // slot taken by the flood) or CONNACK 3 is retried with backoff. mqtt.js does not reject when the
    // connection closes before CONNACK, so each attempt is bounded here.
    let attempts = 0
    let dev: TestDevice | undefined
    for (let backoff = 250; !dev; backoff = Math.min(2000, backoff * 2)) {
      attempts++
      dev = await Promise.race([connectDevice(gw.mqttUrl, c, { subscribe: false }), sleep(5000).then(() => undefined)]).catch(() => undefined)
      if (!dev) {
        expect(attempts).toBeLessThan(20)
        await sleep(backoff / 2 + Math.random() * (backoff / 2))
      }
    }
    const loginMs = performance.now() - t0
    await dev.publish(hr(1))
    const answers = await Promise.all(strangers)
    console.log(`enrolled device logged in after ${loginMs.toFixed(0)} ms (${attempts} attempt(s)) during a flood of 240 bad CONNECTs from 12 sources; answers: ${JSON.stringify(count(answers))}`)
    expect(answers.every((a) => a === 3 || a === 4 || a === 'closed')).toBe(true)
    expect(answers.filter((a) => a === 3).length).toBeGreaterThan(0)
    expect(await metric(gw, 'careledger_gateway_auth_failures_total{reason="BUSY"}')).toBeGreaterThan(0)
    await dev.end()
  })
})

describe('items 8, 9, 17 over MQTT: what a device sends is what is stored, or refused with a reason', () => {
  it('stores ECG samples exactly as sent (-0.58918, not -0.5891799926757812)', async () => {
    const dev = await connectDevice(gw.mqttUrl, creds[7]!)
    await dev.publish(`{"seq":1,"ts":${Date.now()},"type":"ecg","unit":"mV","hz":250,"samples":[-0.58918,0.012,19.999999999999996]}`)
    const db = new Database(join(data.dir, 'gateway.db'), { readonly: true })
    try {
      const row = db.prepare("SELECT samples FROM readings WHERE device_id = ? AND seq = 1").get(creds[7]!.deviceId) as { samples: Buffer }
      expect([...decodeSamples(row.samples)]).toEqual([-0.58918, 0.012, 19.999999999999996])
    } finally {
      db.close()
    }
    await dev.end()
  })

  it('answers an impossible date, a space for T, invalid UTF-8, a missing hz and a repeated name, each with its code', async () => {
    const dev = await connectDevice(gw.mqttUrl, creds[8]!)
    const now = Date.now()
    const cases: Array<[string | Buffer, string, number | null]> = [
      ['{"seq":10,"ts":"2026-02-30T10:00:00Z","type":"heart_rate","unit":"/min","value":72}', 'BAD_TIMESTAMP', 10],
      ['{"seq":11,"ts":"2026-11-25 10:00:00Z","type":"heart_rate","unit":"/min","value":72}', 'BAD_TIMESTAMP', 11],
      [Buffer.concat([Buffer.from('{"seq":12,"note":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]), 'MALFORMED_JSON', null],
      [`{"seq":13,"ts":${now},"type":"ecg","unit":"mV","samples":[0.1]}`, 'SCHEMA', 13],
      [`{"seq":14,"ts":${now},"type":"heart_rate","unit":"/min","value":72,"value":180}`, 'SCHEMA', null],
    ]
    for (const [payload, code, seq] of cases) {
      await dev.publish(payload)
      const e = await dev.nextError((x) => x.code === code && x.seq === seq)
      expect(e.message.length).toBeGreaterThan(10)
    }
    expect(dev.errors.find((e) => e.code === 'BAD_TIMESTAMP' && e.seq === 10)!.message).toBe('ts "2026-02-30T10:00:00Z" has day 30: February 2026 has 28 days')
    await dev.end()
  })
})

describe('item 5: hygiene', () => {
  it('clips attacker-controlled strings in log lines (user name, topic)', async () => {
    const longName = 'u'.repeat(900) // fits the 1 KiB CONNECT limit
    const c = await rawConnect(gw.ports.mqtt, { localAddress: '127.0.8.1' })
    c.write(connectPacket({ clientId: 'x', username: longName, password: 'p' }))
    await c.next((p) => p.cmd === 'connack')
    c.socket.destroy()
    const dev = await connectDevice(gw.mqttUrl, creds[6]!)
    const gone = new Promise<void>((ok) => dev.client.once('close', () => ok()))
    void dev.client.publish('t/' + 'x'.repeat(60_000), '{}', { qos: 1 })
    await dev.nextError((e) => e.code === 'FORBIDDEN_TOPIC')
    await gone
    dev.client.end(true)
    // A 60,000-character user name does not even reach the login (CONNECT over 1 KiB).
    const big = await rawConnect(gw.ports.mqtt, { localAddress: '127.0.8.2' })
    big.write(connectPacket({ clientId: 'x', username: 'v'.repeat(60_000), password: 'p' }))
    expect(await closedWithin(big.socket, 3000)).toBe(true)
    await sleep(300)
    const longest = Math.max(...gw.stdout.split('\n').map((l) => l.length))
    expect(longest).toBeLessThan(4096)
    const refusal = gw.logs.find((l) => l.event === 'auth_refused' && typeof l.username === 'string' && l.username.startsWith('uuu'))
    expect((refusal!.username as string).length).toBeLessThan(120)
  })

  it('TLS 1.2 offers AEAD suites only (openssl s_client)', async () => {
    const sClient = (args: string[]) =>
      new Promise<string>((ok) => {
        const p = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${gw.ports.mqtts}`, ...args], { timeout: 10_000 }, (_e, stdout, stderr) => ok(stdout + stderr))
        p.stdin!.end()
      })
    expect(await sClient(['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'])).toMatch(/Cipher is ECDHE-ECDSA-AES128-GCM-SHA256/)
    expect(await sClient(['-tls1_2', '-cipher', 'ECDHE-ECDSA-CHACHA20-POLY1305'])).toMatch(/Cipher is ECDHE-ECDSA-CHACHA20-POLY1305/)
    for (const cbc of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384', 'ECDHE-ECDSA-AES128-SHA256']) {
      expect(await sClient(['-tls1_2', '-cipher', cbc]), cbc).toMatch(/handshake failure|no ciphers available|alert/i)
    }
    expect(await sClient(['-tls1_1'])).not.toMatch(/Cipher is (?!\(NONE\))/)
    expect(await sClient(['-tls1_3'])).toMatch(/Cipher is TLS_AES_(128|256)_GCM_SHA(256|384)|Cipher is TLS_CHACHA20/)
  })

  it('docker-compose.yml limits the gateway container memory, above the heap limit it sets', () => {
    const compose = readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8')
    const limit = /^\s+mem_limit:\s*"?(\d+)m"?/m.exec(compose)
    expect(limit, 'mem_limit in docker-compose.yml').not.toBeNull()
    const heap = Number(/CARELEDGER_MAX_HEAP_MB:\s*"(\d+)"/.exec(compose)![1])
    expect(Number(limit![1])).toBeGreaterThan(heap * 2)
  })
})

function count<T extends string | number>(xs: readonly T[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const x of xs) out[String(x)] = (out[String(x)] ?? 0) + 1
  return out
}
