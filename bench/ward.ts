/**
 * npm run bench:ward — the gateway at a ward's real load, beside Debian's mosquitto carrying the
 * same simulated traffic (issue 11).
 *
 * One run, all real processes: a cloud (blocks every 2 s, as deployed), the gateway registered
 * with it (seal interval 5 s, the default; bin/start.ts's policy), and — in the same run, side by
 * side — mosquitto (no persistence, password file) with the same enrolled devices. Both brokers
 * are pinned to one core (`taskset`, all threads) as a Raspberry-Pi-class stand-in; the
 * simulators and the cloud run on the other cores.
 *
 *   idle     no monitor connected, --idle-s seconds: CPU share of each broker
 *   ward     two `careledger devices simulate` processes (the real simulator, --monitors monitors at
 *            --rate ticks/s: ~3 readings a tick), one per broker; after --warmup-s, CPU share over
 *            --measure-s seconds, RSS sampled every second (timeline; peak = VmHWM, start-up
 *            included, and the largest sample from the first monitor on; steady = median of the
 *            second half)
 *   latency  every reading the gateway received in the measured window: received → sealed by the
 *            gateway (batches.sealed_at) → in a block (the cloud's block time), from the gateway's
 *            database and GET /v1/records + /v1/blocks (cid → block), after everything settled
 *
 * CPU is CPU time (utime + stime) from /proc/<pid>/stat over the phase, not wall time: the machine
 * may be shared. The machine's own load (load average, and all cores' busy share from /proc/stat
 * over the phase) is printed beside it. Per-thread CPU of the gateway comes from
 * /proc/<pid>/task/<tid>/stat.
 *
 *   node bench/ward.ts [--monitors 20] [--rate 1] [--idle-s 60] [--warmup-s 45] [--measure-s 120]
 *                      [--core 1] [--no-mosquitto] [--runs 1] [--linger-ms <gateway's CARELEDGER_INGEST_LINGER_MS>]
 *   GW_NODE_OPTIONS='--cpu-prof --cpu-prof-dir=/tmp/prof' node bench/ward.ts   # profile the gateway (both threads)
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { BIN, freePorts, REPO } from '../test/helpers/gateway-process.ts'
import { sleep, TestSystem, ward } from '../test/helpers/system.ts'
import { percentile } from './lib/measure.ts'

const { values: opt } = parseArgs({
  options: {
    monitors: { type: 'string', default: '20' },
    rate: { type: 'string', default: '1' },
    'idle-s': { type: 'string', default: '60' },
    'warmup-s': { type: 'string', default: '45' },
    'measure-s': { type: 'string', default: '120' },
    core: { type: 'string', default: String(Math.max(0, os.availableParallelism() - 1)) },
    'no-mosquitto': { type: 'boolean', default: false },
    runs: { type: 'string', default: '1' },
    'linger-ms': { type: 'string' },
  },
})
const MONITORS = Number(opt.monitors)
const RATE = Number(opt.rate)
const IDLE_S = Number(opt['idle-s'])
const WARMUP_S = Number(opt['warmup-s'])
const MEASURE_S = Number(opt['measure-s'])
const CORE = Number(opt.core)
const RUNS = Number(opt.runs)
const SEAL_INTERVAL_S = 5
const BLOCK_INTERVAL_S = 2
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
  } catch {
    return 100
  }
})()

// ---- /proc ------------------------------------------------------------------------------------------

/** utime + stime of a process (all its threads), or of one thread, in seconds. */
function cpuSeconds(path: string): number {
  const stat = readFileSync(path, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}
const processCpu = (pid: number): number => cpuSeconds(`/proc/${pid}/stat`)

/** CPU seconds per thread name (comm) of a process: where the time goes between ingest, the back office and the pools. */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim()
      const key = tid === String(pid) ? 'main (ingest)' : comm
      out.set(key, (out.get(key) ?? 0) + cpuSeconds(`/proc/${pid}/task/${tid}/stat`))
    } catch {
      /* the thread ended */
    }
  }
  return out
}

function statusKb(pid: number, key: string): number {
  const m = new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) : Number.NaN
}
const rssMb = (pid: number): number => statusKb(pid, 'VmRSS') / 1024
const hwmMb = (pid: number): number => statusKb(pid, 'VmHWM') / 1024

/** Busy and total jiffies of all cores (/proc/stat): how loaded the machine was. */
function machineJiffies(): { busy: number; total: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number)
  const idle = cpu[3]! + cpu[4]!
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0)
  return { busy: total - idle, total }
}

/** Pin every thread of a process (and the threads it starts later) to one core. */
function pin(pid: number, core: number): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { stdio: 'ignore' })
}

class RssSampler {
  readonly samples: Array<{ t: number; mb: number }> = []
  readonly #timer: NodeJS.Timeout
  constructor(pid: number, t0: number) {
    this.#timer = setInterval(() => {
      try {
        this.samples.push({ t: (performance.now() - t0) / 1000, mb: rssMb(pid) })
      } catch {
        /* exited */
      }
    }, 1000)
  }
  stop(): void {
    clearInterval(this.#timer)
  }
  /** Largest sample from `fromS` on. */
  peak(fromS: number): number {
    return Math.max(...this.samples.filter((s) => s.t >= fromS).map((s) => s.mb))
  }
  /** Median of the samples from `fromS` on. */
  steady(fromS: number): number {
    const xs = this.samples.filter((s) => s.t >= fromS).map((s) => s.mb).sort((a, b) => a - b)
    return percentile(xs, 50)
  }
  /** min–max per window of `stepS` seconds: the timeline. */
  timeline(stepS: number): string {
    const rows: string[] = []
    const end = this.samples.at(-1)?.t ?? 0
    for (let a = 0; a < end; a += stepS) {
      const w = this.samples.filter((s) => s.t >= a && s.t < a + stepS).map((s) => s.mb)
      if (w.length) rows.push(`${Math.round(a)}s ${Math.min(...w).toFixed(0)}–${Math.max(...w).toFixed(0)}`)
    }
    return rows.join(', ')
  }
}

// ---- mosquitto ----------------------------------------------------------------------------------------

interface Mosquitto {
  readonly child: ChildProcess
  readonly url: string
  stop(): Promise<void>
}

function haveMosquitto(): boolean {
  try {
    execFileSync('which', ['mosquitto', 'mosquitto_passwd'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

async function startMosquitto(dir: string, creds: ReadonlyArray<{ deviceId: string; secret: string }>): Promise<Mosquitto> {
  const [port] = await freePorts(1)
  const pw = join(dir, 'mosquitto.passwords')
  writeFileSync(pw, creds.map((c) => `${c.deviceId}:${c.secret}`).join('\n') + '\n', { mode: 0o600 })
  execFileSync('mosquitto_passwd', ['-U', pw])
  const conf = join(dir, 'mosquitto.conf')
  writeFileSync(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous false', `password_file ${pw}`, 'persistence false', 'user root', 'log_dest stderr', 'log_type error', ''].join('\n'))
  const child = spawn('taskset', ['-c', String(CORE), 'mosquitto', '-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] })
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((res) => {
      const sock = connect(port!, '127.0.0.1', () => {
        sock.destroy()
        res(true)
      })
      sock.once('error', () => res(false))
    })
    if (ok) break
    await sleep(50)
  }
  return {
    child,
    url: `mqtt://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM')
      if (child.exitCode === null) await new Promise((ok) => child.once('exit', ok))
    },
  }
}

// ---- the simulator --------------------------------------------------------------------------------------

function simulate(url: string, credentials: string, stateDir: string): ChildProcess {
  return spawn(
    process.execPath,
    [BIN, 'devices', 'simulate', '--gateway', url, '--credentials', credentials, '--count', String(MONITORS), '--rate', String(RATE), '--state-dir', stateDir, '--summary-interval', '0', '--log-level', 'warn'],
    { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] },
  )
}

async function stopSimulator(child: ChildProcess): Promise<string> {
  let out = ''
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c))
  if (child.exitCode === null) {
    child.kill('SIGINT')
    await new Promise((ok) => child.once('exit', ok))
  }
  return out.trim()
}

// ---- one run --------------------------------------------------------------------------------------------

interface PhaseCpu {
  readonly seconds: number
  readonly share: number
}

interface BrokerResult {
  readonly idle: PhaseCpu
  readonly ward: PhaseCpu
  readonly rssPeakMb: number
  /** Largest 1-s sample from the first monitor's connection on (VmHWM also holds start-up transients). */
  readonly rssWardPeakMb: number
  readonly rssSteadyMb: number
  readonly timeline: string
  readonly threads?: Array<[string, number]>
}

interface RunResult {
  readonly gateway: BrokerResult
  readonly mosquitto: BrokerResult | null
  readonly readings: number
  readonly batches: number
  readonly latency: { toSealed: [number, number]; toBlock: [number, number]; max: number }
  readonly machine: { loadBefore: number; loadAfter: number; idleBusy: number; wardBusy: number }
  readonly simulator: string
  /** The ingest group commits in the measured window (the gateway's /metrics). */
  readonly commits: { count: number; publishes: number; perSecond: number }
}

/** The ingest group commit's counters: commits and the PUBLISHes they held (issue 11: the commit linger). */
async function commitStats(httpUrl: string): Promise<{ count: number; publishes: number }> {
  try {
    const text = await (await fetch(`${httpUrl}/metrics`)).text()
    const num = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN)
    return { count: num('careledger_gateway_commit_batch_publishes_count'), publishes: num('careledger_gateway_commit_batch_publishes_sum') }
  } catch {
    return { count: Number.NaN, publishes: Number.NaN }
  }
}

const cpuPhase = (before: number, after: number, seconds: number): PhaseCpu => ({ seconds: after - before, share: (after - before) / seconds })
const busyShare = (a: { busy: number; total: number }, b: { busy: number; total: number }): number => ((b.busy - a.busy) / (b.total - a.total)) * os.availableParallelism()

async function run(label: string): Promise<RunResult> {
  const loadBefore = os.loadavg()[0]!
  const sys = await TestSystem.start({
    label: 'bench-ward',
    devices: ward(MONITORS),
    sealIntervalS: SEAL_INTERVAL_S,
    blockIntervalS: BLOCK_INTERVAL_S,
    cloudEnv: { CARELEDGER_LOG_LEVEL: 'info' },
    gatewayEnv: {
      ...(process.env.GW_NODE_OPTIONS ? { NODE_OPTIONS: process.env.GW_NODE_OPTIONS } : {}),
      ...(opt['linger-ms'] !== undefined ? { CARELEDGER_INGEST_LINGER_MS: opt['linger-ms'] } : {}),
    },
  })
  let mosquitto: Mosquitto | null = null
  const sims: ChildProcess[] = []
  try {
    const gwPid = sys.gateway.pid
    pin(gwPid, CORE)
    const credentials = join(sys.root.dir, 'devices.json')
    writeFileSync(credentials, JSON.stringify({ devices: sys.monitors.map((m) => ({ deviceId: m.deviceId, secret: m.secret })) }), { mode: 0o600 })
    if (!opt['no-mosquitto'] && haveMosquitto()) mosquitto = await startMosquitto(sys.root.dir, sys.monitors)
    const mqPid = mosquitto?.child.pid ?? null
    const t0 = performance.now()
    const gwRss = new RssSampler(gwPid, t0)
    const mqRss = mqPid ? new RssSampler(mqPid, t0) : null

    // idle: let start-up settle, then measure with no monitor connected
    console.error(`[${label}] idle ${IDLE_S} s (no monitor) …`)
    await sleep(5000)
    const idle0 = { gw: processCpu(gwPid), mq: mqPid ? processCpu(mqPid) : 0, m: machineJiffies(), t: performance.now() }
    await sleep(IDLE_S * 1000)
    const idle1 = { gw: processCpu(gwPid), mq: mqPid ? processCpu(mqPid) : 0, m: machineJiffies(), t: performance.now() }
    const idleS = (idle1.t - idle0.t) / 1000

    // the ward
    console.error(`[${label}] ${MONITORS} monitors: warm-up ${WARMUP_S} s, measured ${MEASURE_S} s …`)
    const wardStart = (performance.now() - t0) / 1000
    sims.push(simulate(sys.gateway.mqttUrl, credentials, join(sys.root.dir, 'sim-gateway')))
    if (mosquitto) sims.push(simulate(mosquitto.url, credentials, join(sys.root.dir, 'sim-mosquitto')))
    await sleep(WARMUP_S * 1000)
    const c0 = await commitStats(sys.gateway.httpUrl)
    const w0 = { gw: processCpu(gwPid), mq: mqPid ? processCpu(mqPid) : 0, m: machineJiffies(), t: performance.now(), wall: Date.now(), threads: threadCpu(gwPid) }
    await sleep(MEASURE_S * 1000)
    const w1 = { gw: processCpu(gwPid), mq: mqPid ? processCpu(mqPid) : 0, m: machineJiffies(), t: performance.now(), wall: Date.now(), threads: threadCpu(gwPid) }
    const wardS = (w1.t - w0.t) / 1000
    const c1 = await commitStats(sys.gateway.httpUrl)
    const simulator = await stopSimulator(sims[0]!)
    if (sims[1]) await stopSimulator(sims[1])
    gwRss.stop()
    mqRss?.stop()
    const steadyFrom = wardStart + WARMUP_S + MEASURE_S / 2
    const threads = [...w1.threads].map(([k, v]) => [k, (v - (w0.threads.get(k) ?? 0)) / wardS] as [string, number]).filter(([, s]) => s > 0).sort((a, b) => b[1] - a[1])
    const gateway: BrokerResult = {
      idle: cpuPhase(idle0.gw, idle1.gw, idleS),
      ward: cpuPhase(w0.gw, w1.gw, wardS),
      rssPeakMb: hwmMb(gwPid),
      rssWardPeakMb: gwRss.peak(wardStart),
      rssSteadyMb: gwRss.steady(steadyFrom),
      timeline: gwRss.timeline(15),
      threads,
    }
    const mq: BrokerResult | null = mqPid
      ? { idle: cpuPhase(idle0.mq, idle1.mq, idleS), ward: cpuPhase(w0.mq, w1.mq, wardS), rssPeakMb: hwmMb(mqPid), rssWardPeakMb: mqRss!.peak(wardStart), rssSteadyMb: mqRss!.steady(steadyFrom), timeline: mqRss!.timeline(15) }
      : null

    // latency of every reading received in the measured window
    console.error(`[${label}] waiting for every reading to reach a block …`)
    await sys.settled(180_000)
    const blockTime = new Map((await sys.blocks()).map((b) => [b.height, b.time]))
    const blockOf = new Map((await sys.records()).map((r) => [r.cid, r.block]))
    const db = sys.gatewayDb()
    const rows = db
      .prepare<[number, number], { rx: number; sealed: number; cid: string }>(
        'SELECT r.received_at AS rx, b.sealed_at AS sealed, b.cid AS cid FROM readings r JOIN batches b ON b.batch_id = r.batch_id WHERE r.received_at BETWEEN ? AND ?',
      )
      .all(w0.wall, w1.wall)
    const batches = db.prepare<[number, number], number>('SELECT count(*) FROM batches WHERE sealed_at BETWEEN ? AND ?').pluck().get(w0.wall, w1.wall)!
    db.close()
    const toSealed: number[] = []
    const toBlock: number[] = []
    for (const r of rows) {
      const height = blockOf.get(r.cid)
      if (height === null || height === undefined) throw new Error(`batch ${r.cid} is not in a block`)
      toSealed.push(r.sealed - r.rx)
      toBlock.push(blockTime.get(height)! - r.rx)
    }
    toSealed.sort((a, b) => a - b)
    toBlock.sort((a, b) => a - b)
    return {
      gateway,
      mosquitto: mq,
      readings: rows.length,
      batches,
      latency: { toSealed: [percentile(toSealed, 50), percentile(toSealed, 99)], toBlock: [percentile(toBlock, 50), percentile(toBlock, 99)], max: toBlock.at(-1) ?? Number.NaN },
      commits: { count: c1.count - c0.count, publishes: c1.publishes - c0.publishes, perSecond: (c1.count - c0.count) / wardS },
      machine: { loadBefore, loadAfter: os.loadavg()[0]!, idleBusy: busyShare(idle0.m, idle1.m), wardBusy: busyShare(w0.m, w1.m) },
      simulator,
    }
  } finally {
    for (const s of sims) if (s.exitCode === null) s.kill('SIGKILL')
    await mosquitto?.stop()
    await sys.gateway.stop().catch(() => {})
    await sys.destroy()
  }
}

// ---- report ---------------------------------------------------------------------------------------------

const pct = (x: number): string => `${(x * 100).toFixed(2)} %`
const mb = (x: number): string => `${x.toFixed(1)} MB`
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`

console.log(
  `bench:ward — ${MONITORS} simulated monitors at ${RATE} tick/s (careledger devices simulate), seal every ${SEAL_INTERVAL_S} s, blocks every ${BLOCK_INTERVAL_S} s; ` +
    `brokers pinned to core ${CORE}; idle ${IDLE_S} s, warm-up ${WARMUP_S} s, measured ${MEASURE_S} s; node ${process.version}, ${os.availableParallelism()} cores`,
)
const results: RunResult[] = []
for (let i = 0; i < RUNS; i++) {
  const r = await run(`run ${i + 1}/${RUNS}`)
  results.push(r)
  const g = r.gateway
  const m = r.mosquitto
  const rows: Array<[string, string, string]> = [
    ['CPU idle (no monitor), share of one core', pct(g.idle.share), m ? pct(m.idle.share) : '—'],
    [`CPU at ward load, share of one core`, pct(g.ward.share), m ? pct(m.ward.share) : '—'],
    ['CPU per reading at ward load, µs', ((g.ward.seconds / r.readings) * 1e6).toFixed(0), m ? ((m.ward.seconds / r.readings) * 1e6).toFixed(0) : '—'],
    ['RSS peak (VmHWM, start-up included)', mb(g.rssPeakMb), m ? mb(m.rssPeakMb) : '—'],
    ['RSS peak at ward load (1-s samples from the first monitor on)', mb(g.rssWardPeakMb), m ? mb(m.rssWardPeakMb) : '—'],
    ['RSS steady (median, 2nd half of the measured phase)', mb(g.rssSteadyMb), m ? mb(m.rssSteadyMb) : '—'],
  ]
  console.log(`\nrun ${i + 1}: ${r.readings} readings received in the measured ${MEASURE_S} s (${(r.readings / MEASURE_S).toFixed(1)}/s), ${r.batches} batches sealed`)
  console.log(['| | gateway | mosquitto (no persistence) |', '|---|---:|---:|', ...rows.map((x) => `| ${x.join(' | ')} |`)].join('\n'))
  console.log(`gateway CPU by thread at ward load (share of one core): ${g.threads!.map(([k, v]) => `${k} ${pct(v)}`).join(', ')}`)
  console.log(`latency, reading received → sealed by the gateway: p50 ${s(r.latency.toSealed[0])}, p99 ${s(r.latency.toSealed[1])}; → in a sealed block: p50 ${s(r.latency.toBlock[0])}, p99 ${s(r.latency.toBlock[1])}, max ${s(r.latency.max)}`)
  console.log(`gateway RSS over time (min–max per 15 s, MB): ${g.timeline}`)
  console.log(`ingest commits at ward load: ${r.commits.perSecond.toFixed(1)}/s, ${(r.commits.publishes / r.commits.count).toFixed(2)} PUBLISHes per commit`)
  if (m) console.log(`mosquitto RSS over time (MB): ${m.timeline}`)
  console.log(`machine: load average ${r.machine.loadBefore.toFixed(2)} → ${r.machine.loadAfter.toFixed(2)}; all cores busy ${r.machine.idleBusy.toFixed(2)} of ${os.availableParallelism()} while idle was measured, ${r.machine.wardBusy.toFixed(2)} during the ward phase (this run's own processes included)`)
  if (r.simulator) console.log(`simulator (gateway side): ${r.simulator.split('\n').at(-1)}`)
}
if (RUNS > 1) {
  const range = (f: (r: RunResult) => number, fmt: (x: number) => string) => `${fmt(Math.min(...results.map(f)))} – ${fmt(Math.max(...results.map(f)))}`
  console.log(`\nover ${RUNS} runs: gateway CPU idle ${range((r) => r.gateway.idle.share, pct)}, ward ${range((r) => r.gateway.ward.share, pct)}; RSS peak ${range((r) => r.gateway.rssPeakMb, mb)} (at ward load ${range((r) => r.gateway.rssWardPeakMb, mb)}), steady ${range((r) => r.gateway.rssSteadyMb, mb)}; latency p50 ${range((r) => r.latency.toBlock[0], s)}, p99 ${range((r) => r.latency.toBlock[1], s)}`)
}
const last = results.at(-1)!
const targets = [
  ['gateway CPU ≤ 2 % of one core at ward load', Math.max(...results.map((r) => r.gateway.ward.share)) <= 0.02, pct(Math.max(...results.map((r) => r.gateway.ward.share)))],
  ['gateway CPU ≤ 0.5 % idle', Math.max(...results.map((r) => r.gateway.idle.share)) <= 0.005, pct(Math.max(...results.map((r) => r.gateway.idle.share)))],
  ['gateway RSS ≤ 150 MB at ward load', Math.max(...results.map((r) => r.gateway.rssWardPeakMb)) <= 150, `${mb(Math.max(...results.map((r) => r.gateway.rssWardPeakMb)))} at ward load; VmHWM with start-up ${mb(Math.max(...results.map((r) => r.gateway.rssPeakMb)))}`],
  ['reading → sealed block no worse than p50 4.7 s / p99 8.7 s', last.latency.toBlock[0] <= 4700 && last.latency.toBlock[1] <= 8700, `${s(last.latency.toBlock[0])} / ${s(last.latency.toBlock[1])}`],
] as const
for (const [what, ok, value] of targets) console.log(`target ${what}: ${ok ? 'met' : 'MISSED'} (${value})`)
