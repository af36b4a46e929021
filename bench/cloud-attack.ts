/**
 * npm run bench:cloud-attack — the figures of the cloud under a resource-exhaustion attack, for
 * the operations guide and the closing note: a real cloud, a real gateway with `--devices` monitors
 * publishing 6 readings/s each, and every attack of test/helpers/cloud-attack.ts at once for
 * `--seconds` (connection flood, slowloris, held last bytes of 16 MiB uploads naming the registered
 * gateway, oversized declared lengths, concurrent forged uploads, a genuine gateway hogging its caps).
 *
 * Printed: the real gateway's records and upload latency (p50/p99, from the cloud's request log),
 * a /healthz probe's latency, the cloud's RSS (sampled max and VmHWM) and its CPU seconds, this
 * process's CPU (the attackers and the probe share it: on a 2-core machine they compete with the
 * cloud), and what each attack got back. Wall-clock figures on a shared machine are noisy.
 *
 *   node bench/cloud-attack.ts [--seconds 60] [--devices 4] [--short]
 */
import { parseArgs } from 'node:util'
import { attackCloud, formatAttackReport, LONG_ATTACK, SHORT_ATTACK } from '../test/helpers/cloud-attack.ts'
import { startMonitors, TestSystem, waitFor, ward } from '../test/helpers/system.ts'

const { values: opt } = parseArgs({ options: { seconds: { type: 'string' }, devices: { type: 'string', default: '4' }, short: { type: 'boolean', default: false } } })
const base = opt.short ? SHORT_ATTACK : LONG_ATTACK
const attack = { ...base, durationMs: opt.seconds ? Number(opt.seconds) * 1000 : base.durationMs }

const sys = await TestSystem.start({ label: 'bench-cloud-attack', devices: ward(Number(opt.devices)), sealIntervalS: 1, blockIntervalS: 0.5, cloudArgs: ['--verify-interval-s', '0'], cloudEnv: { CARELEDGER_LOG_LEVEL: 'info' } })
try {
  const monitors = await startMonitors(sys.gateway.mqttUrl, sys.monitors, 2)
  await waitFor('the gateway to upload', async () => (await sys.records()).length > 0)
  const cpu0 = process.cpuUsage()
  const report = await attackCloud(sys, attack)
  const cpu = process.cpuUsage(cpu0)
  await Promise.all(monitors.map((m) => m.stop()))
  console.log(formatAttackReport(report))
  console.log(`  attackers + probe (this process): CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s`)
  console.log(JSON.stringify({ ...report, attackerCpuSeconds: (cpu.user + cpu.system) / 1e6, node: process.version, date: new Date().toISOString() }))
} finally {
  await sys.destroy()
}
