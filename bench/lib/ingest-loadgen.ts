/**
 * One load-generator process for bench/ingest.ts. argv[2] is JSON
 * { url, devices: [{deviceId, secret, firstSeq}], window }. Protocol on stdio (one JSON per line):
 *   → {"ready":true}                                  after every device connected
 *   ← go <count>                                      publish <count> messages per device, QoS 1
 *   → {"acked","failed","seconds","cpuMicros","latency"} when every message was answered
 *   ← quit
 * Several of these run side by side so that the mqtt.js client side (~15–25 µs of CPU per
 * message) is never what limits the broker under test.
 */
import { createInterface } from 'node:readline'
import { Publisher } from './ingest-publisher.ts'
import { LatencyHistogram } from './latency.ts'

interface Args {
  readonly url: string
  readonly devices: ReadonlyArray<{ deviceId: string; secret: string; firstSeq: number }>
  readonly window: number
}

const args = JSON.parse(process.argv[2]!) as Args
const send = (o: unknown): void => void process.stdout.write(`${JSON.stringify(o)}\n`)
let nextSeq = args.devices.map((d) => d.firstSeq)

const connected = await Promise.all(
  args.devices.map(async (d) => {
    const p = new Publisher({ url: args.url, deviceId: d.deviceId, secret: d.secret, window: args.window, reconnectPeriod: 0 })
    await p.connect()
    return p
  }),
)
// One Publisher per phase, all sharing the connected mqtt.js clients.
send({ ready: true })

for await (const line of createInterface({ input: process.stdin })) {
  const [cmd, arg] = line.trim().split(/\s+/)
  if (cmd === 'quit') break
  if (cmd !== 'go') continue
  const count = Number(arg)
  const phase = args.devices.map(
    (d, i) => new Publisher({ url: args.url, deviceId: d.deviceId, secret: d.secret, window: args.window, count, firstSeq: nextSeq[i] }),
  )
  phase.forEach((p, i) => (p.client = connected[i]!.client))
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await Promise.all(phase.map((p) => p.run()))
  const seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  nextSeq = phase.map((p) => p.nextSeq)
  const latency = phase.reduce((h, p) => h.merge(p.latency), new LatencyHistogram())
  send({
    acked: phase.reduce((n, p) => n + p.ackedCount, 0),
    failed: phase.reduce((n, p) => n + p.failed, 0),
    seconds,
    cpuMicros: cpu.user + cpu.system,
    latency: latency.toJSON(),
    errors: phase.flatMap((p) => p.errors).slice(0, 5),
  })
}
await Promise.all(connected.map((p) => p.end()))
process.exit(0)
