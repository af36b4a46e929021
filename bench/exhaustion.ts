/**
 * `npm run bench:exhaustion [-- --seconds 60 --rate 50 --flood 64]`: the gateway under connection
 * floods, oversized packet headers, stalled TLS handshakes and a login flood, with an enrolled
 * device publishing meanwhile. Prints acknowledged readings, PUBACK p50/p99, RSS against the
 * budget, and gateway CPU (bench/lib/exhaustion.ts). Loopback only; the machine is usually shared,
 * so compare CPU seconds rather than wall-clock latency between runs.
 */
import { parseArgs } from 'node:util'
import { runExhaustion } from './lib/exhaustion.ts'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '60' }, rate: { type: 'string', default: '50' }, flood: { type: 'string', default: '64' } } })
const report = await runExhaustion({ seconds: Number(values.seconds), rate: Number(values.rate), flood: Number(values.flood), log: (l) => console.log(l) })
console.log(JSON.stringify(report))
process.exit(report.alive && report.acked === report.sent ? 0 : 1)
