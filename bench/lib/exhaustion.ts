/**
 * The resource-exhaustion scenario (issue 8, "What must be shown"), shared by the CI test
 * (test/gateway/exhaustion.test.ts, a few seconds) and `npm run bench:exhaustion` (a minute):
 * a real gateway process, an enrolled device publishing at a steady rate, and at the same time
 *
 *   - a connection flood: silent TCP connections to the MQTT and MQTTS ports, from many source
 *     addresses (127.0.0.0/8 is loopback), opened again as fast as the gateway closes them;
 *   - oversized packet headers: CONNECTs announcing 250 MiB, followed by as much data as the
 *     gateway will take;
 *   - slow TLS handshakes: the first bytes of a ClientHello, then silence;
 *   - a login flood: CONNECTs with unknown ids and with the device's own id and wrong secrets;
 *   - a second enrolled device logging in (a scrypt check) in the middle of it all.
 *
 * It reports what the device saw (acknowledged readings, PUBACK latency p50/p99/max), the
 * gateway's resident memory (sampled, and its peak VmHWM), its CPU time, and what the attacks got.
 * Only loopback addresses are used; every loop stops at the deadline.
 */
import type { Socket } from 'node:net'
import { enrolInStore, GatewayProcess, tempDataDir } from '../../test/helpers/gateway-process.ts'
import { connectPacket, cpuSecondsOf, memoryOf, rawConnect, rawTcp, remainingLength } from '../../test/helpers/mqtt-raw.ts'
import { percentile } from './measure.ts'

/** The gateway's memory budget (docs/operations.md §Memory budget): resident set, MB. */
export const GATEWAY_RSS_BUDGET_MB = 256

export interface ExhaustionOptions {
  readonly seconds: number
  /** Readings per second the enrolled device publishes (one per message, QoS 1). */
  readonly rate: number
  /** Concurrency of each attack. */
  readonly flood: number
  readonly log?: (line: string) => void
}

export interface ExhaustionReport {
  readonly seconds: number
  readonly sent: number
  readonly acked: number
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number }
  readonly secondLoginMs: number
  readonly secondLoginAttempts: number
  readonly rssMb: { readonly before: number; readonly peakSampled: number; readonly hwm: number; readonly after: number }
  readonly gatewayCpuSeconds: number
  readonly attacks: Readonly<Record<string, number>>
  readonly refusedByGateway: Readonly<Record<string, number>>
  readonly alive: boolean
}

const sleep = (ms: number): Promise<void> => new Promise((ok) => setTimeout(ok, ms))
/** A ClientHello's record header and the start of its handshake header: a handshake that never goes on. */
const PARTIAL_CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])

export async function runExhaustion(o: ExhaustionOptions): Promise<ExhaustionReport> {
  const log = o.log ?? (() => {})
  const data = tempDataDir('exhaustion')
  const [device, second] = enrolInStore(data.dir, 2, 'ward')
  const gw = await GatewayProcess.start({ dataDir: data.dir, args: ['--seal-interval-s', '2'], readyTimeoutMs: 60_000 })
  try {
    const { connectDevice } = await import('../../test/helpers/gateway-process.ts')
    const dev = await connectDevice(gw.mqttUrl, device!, { subscribe: false })
    await sleep(500)
    const before = memoryOf(gw.pid).rss
    const cpu0 = cpuSecondsOf(gw.pid)
    const deadline = Date.now() + o.seconds * 1000
    const running = (): boolean => Date.now() < deadline
    const attacks: Record<string, number> = { floodConnections: 0, oversizedConnects: 0, oversizedBytesOffered: 0, slowTlsHandshakes: 0, badLogins: 0, connack3: 0, connack4: 0 }
    let src = 0
    const nextSource = (): string => `127.0.${10 + (src % 200)}.${1 + (Math.floor(src++ / 200) % 250)}`

    let peak = before
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, memoryOf(gw.pid).rss)
      } catch {
        /* the process is gone: reported below */
      }
    }, 100)

    const loop = async (body: () => Promise<void>): Promise<void> => {
      while (running()) {
        try {
          await body()
        } catch {
          await sleep(5) // refused at accept: try again
        }
      }
    }
    const holdUntilClosed = (s: Socket): Promise<void> =>
      new Promise((ok) => {
        if (s.destroyed) return ok()
        const t = setInterval(() => !running() && s.destroy(), 200)
        s.once('close', () => {
          clearInterval(t)
          ok()
        })
      })

    const flood = async (): Promise<void> => {
      const port = attacks.floodConnections! % 2 === 0 ? gw.ports.mqtt : gw.ports.mqtts
      attacks.floodConnections!++
      await holdUntilClosed(await rawTcp(port, nextSource()))
    }
    const oversized = async (): Promise<void> => {
      const c = await rawConnect(gw.ports.mqtt, { localAddress: nextSource() })
      attacks.oversizedConnects!++
      c.write(Buffer.concat([Buffer.from([0x10]), remainingLength(250 * 1024 * 1024)]))
      const chunk = Buffer.alloc(256 * 1024, 0x41)
      while (!c.isClosed() && running() && c.socket.write(chunk)) attacks.oversizedBytesOffered! += chunk.length
      await holdUntilClosed(c.socket)
    }
    const slowTls = async (): Promise<void> => {
      const s = await rawTcp(gw.ports.mqtts, nextSource())
      attacks.slowTlsHandshakes!++
      s.write(PARTIAL_CLIENT_HELLO)
      await holdUntilClosed(s)
    }
    const badLogin = async (): Promise<void> => {
      const c = await rawConnect(gw.ports.mqtt, { localAddress: nextSource() })
      const id = attacks.badLogins! % 3 === 0 ? device!.deviceId : `stranger-${attacks.badLogins}`
      attacks.badLogins!++
      c.write(connectPacket({ clientId: id, username: id, password: 'wrong-secret' }))
      const p = await Promise.race([c.next((x) => x.cmd === 'connack', 30_000).catch(() => null), c.closed.then(() => null)])
      const code = (p as { returnCode?: number } | null)?.returnCode
      if (code === 3) attacks.connack3!++
      if (code === 4) attacks.connack4!++
      c.socket.destroy()
    }

    // The device: one reading per message at `rate`, each PUBACK timed.
    const latencies: number[] = []
    let sent = 0
    let acked = 0
    const publisher = (async () => {
      let seq = 0
      const interval = 1000 / o.rate
      let next = performance.now()
      const inflight: Array<Promise<void>> = []
      while (running()) {
        const t0 = performance.now()
        sent++
        inflight.push(
          dev.publish({ seq: seq++, ts: Date.now(), type: 'heart_rate', unit: '/min', value: 60 + (seq % 40) }).then(() => {
            latencies.push(performance.now() - t0)
            acked++
          }),
        )
        next += interval
        await sleep(Math.max(0, next - performance.now()))
      }
      await Promise.race([Promise.all(inflight), sleep(15_000)])
    })()

    // Halfway: a second enrolled device logs in (its first login since the start: a scrypt check),
    // reconnecting with backoff as docs/protocol.md tells devices to when refused (CONNACK 3, or a
    // connection closed because every unauthenticated slot is taken).
    let secondLoginAttempts = 0
    const secondLogin = (async () => {
      await sleep((o.seconds * 1000) / 2)
      const t0 = performance.now()
      for (let backoff = 250; ; backoff = Math.min(2000, backoff * 2)) {
        secondLoginAttempts++
        try {
          // mqtt.js does not reject when a connection is closed before CONNACK: bound the wait.
          const d2 = await Promise.race([connectDevice(gw.mqttUrl, second!, { subscribe: false }), sleep(6000).then(() => Promise.reject(new Error('no CONNACK')))])
          const ms = performance.now() - t0
          await d2.publish({ seq: 1, ts: Date.now(), type: 'spo2', unit: '%', value: 97 })
          await d2.end()
          return ms
        } catch (e) {
          if (secondLoginAttempts >= 12) throw e
          await sleep(backoff / 2 + Math.random() * (backoff / 2))
        }
      }
    })().catch(() => NaN)

    const n = o.flood
    await Promise.all([
      ...Array.from({ length: n }, () => loop(flood)),
      ...Array.from({ length: 4 }, () => loop(oversized)),
      ...Array.from({ length: Math.max(1, n >> 2) }, () => loop(slowTls)),
      ...Array.from({ length: Math.max(1, n >> 2) }, () => loop(badLogin)),
      publisher,
    ])
    const secondLoginMs = await secondLogin
    clearInterval(sampler)
    const cpu = cpuSecondsOf(gw.pid) - cpu0
    const mem = memoryOf(gw.pid)
    await dev.end()
    const metricsText = await (await fetch(`${gw.httpUrl}/metrics`)).text()
    const refusedByGateway: Record<string, number> = {}
    for (const m of metricsText.matchAll(/^careledger_gateway_(connections_refused_total|auth_failures_total)\{reason="([A-Z_]+)"\} (\d+)/gm)) {
      if (Number(m[3]) > 0) refusedByGateway[`${m[1] === 'auth_failures_total' ? 'auth' : 'conn'}:${m[2]}`] = Number(m[3])
    }
    const mb = (b: number): number => Math.round(b / 2 ** 20)
    const report: ExhaustionReport = {
      seconds: o.seconds,
      sent,
      acked,
      latencyMs: { p50: percentile([...latencies].sort((a, b) => a - b), 50), p99: percentile([...latencies].sort((a, b) => a - b), 99), max: Math.max(...latencies) },
      secondLoginMs,
      secondLoginAttempts,
      rssMb: { before: mb(before), peakSampled: mb(peak), hwm: mb(mem.hwm), after: mb(mem.rss) },
      gatewayCpuSeconds: cpu,
      attacks,
      refusedByGateway,
      alive: gw.child!.exitCode === null && gw.child!.signalCode === null,
    }
    log(formatReport(report))
    return report
  } finally {
    await gw.stop()
    data.cleanup()
  }
}

export function formatReport(r: ExhaustionReport): string {
  const a = r.attacks
  return [
    `resource exhaustion, ${r.seconds} s (machine shared: wall-clock figures are noisy)`,
    `  enrolled device: ${r.acked}/${r.sent} readings acknowledged; PUBACK latency p50 ${r.latencyMs.p50.toFixed(1)} ms, p99 ${r.latencyMs.p99.toFixed(1)} ms, max ${r.latencyMs.max.toFixed(1)} ms`,
    `  second device login during the attack (scrypt): ${r.secondLoginMs.toFixed(0)} ms, ${r.secondLoginAttempts} attempt(s)`,
    `  gateway RSS: ${r.rssMb.before} MB before, peak ${r.rssMb.peakSampled} MB sampled (VmHWM ${r.rssMb.hwm} MB, budget ${GATEWAY_RSS_BUDGET_MB} MB), ${r.rssMb.after} MB after`,
    `  gateway CPU: ${r.gatewayCpuSeconds.toFixed(2)} s over the run (${((r.gatewayCpuSeconds * 1e6) / Math.max(1, a.floodConnections! + a.oversizedConnects! + a.slowTlsHandshakes! + a.badLogins!)).toFixed(0)} µs per attacking connection)`,
    `  attacks: ${a.floodConnections} silent connections, ${a.oversizedConnects} CONNECTs announcing 250 MiB (${(a.oversizedBytesOffered! / 2 ** 20).toFixed(0)} MiB written into the attackers' sockets), ${a.slowTlsHandshakes} stalled TLS handshakes, ${a.badLogins} bad logins (CONNACK 3: ${a.connack3}, CONNACK 4: ${a.connack4})`,
    `  refused by the gateway: ${JSON.stringify(r.refusedByGateway)}`,
    `  gateway alive: ${r.alive}`,
  ].join('\n')
}
