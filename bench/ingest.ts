/**
 * npm run bench:ingest — durable ingest of the real gateway (a separate process: aedes + SQLite
 * WAL synchronous=FULL, group commit, validation, metrics) against Debian's mosquitto (no
 * persistence, password file) as the relay-only baseline, under the same load:
 * 10 devices × QoS 1, one realistic reading (~85 bytes of JSON) per message, a window of
 * un-acknowledged messages per device, driven by several load-generator processes.
 *
 * Reported per broker: readings/s (for the gateway: durably committed before their PUBACK, and
 * checked against the database afterwards), PUBACK latency p50/p99 (publish() → PUBACK), broker
 * CPU µs per reading from /proc/<pid>/stat (utime+stime delta over the measured phase), peak RSS
 * (VmHWM), and the load generators' own CPU so one can see they were not the bottleneck.
 *
 * The gateway runs as deployed, back office included: its worker thread seals (FABEO envelope,
 * Merkle root, signed manifest, block) every second during the run. Sealing throughput is read from
 * its /metrics: readings sealed while ingest ran, and the rate at which it clears what is left after
 * the publishers stop — "keeps up" means it seals at least as fast as ingest stores.
 *
 * Memory: besides VmHWM, the RSS is sampled every 250 ms and split at its highest sample into the
 * two V8 heaps (ingest thread, back office), the back office's WebAssembly memory (mcl-wasm, when
 * it is the pairing backend), Node's external memory, other native memory and the
 * file-backed pages of the node binary.
 *
 *   node bench/ingest.ts [--per-device 30000] [--window 100] [--generators 2] [--warmup 3000]
 *   GW_NODE_OPTIONS='--max-semi-space-size=8' node bench/ingest.ts   # try other V8 settings on the gateway only
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import Database from 'better-sqlite3'
import { enrolInStore, freePorts, GatewayProcess, REPO, tempDataDir } from '../test/helpers/gateway-process.ts'
import { LatencyHistogram } from './lib/latency.ts'

const { values: opt } = parseArgs({
  options: {
    'per-device': { type: 'string', default: '30000' },
    window: { type: 'string', default: '100' },
    generators: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '3000' },
    devices: { type: 'string', default: '10' },
  },
})
const PER_DEVICE = Number(opt['per-device'])
const WINDOW = Number(opt.window)
const GENERATORS = Number(opt.generators)
const WARMUP = Number(opt.warmup)
const DEVICES = Number(opt.devices)
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
  } catch {
    return 100
  }
})()

interface PhaseResult {
  readonly readings: number
  readonly failed: number
  readonly seconds: number
  readonly perSecond: number
  readonly p50: number
  readonly p99: number
  readonly brokerCpuMicrosPerReading: number
  readonly brokerCoreShare: number
  readonly generatorCoreShare: number[]
}

interface SealingResult {
  /** Readings sealed while the publishers were running, per second of that time. */
  readonly duringIngestPerSecond: number
  /** After the publishers stopped: readings sealed per second until none was left. */
  readonly drainPerSecond: number
  readonly drainSeconds: number
  /** All readings of the run over the time from the first PUBLISH to the last one sealed. */
  readonly overallPerSecond: number
  readonly sealed: number
  /** Whole run (warm-up, measured phase, sealing the rest): process CPU per reading, and its split. */
  readonly cpuMicrosPerReading: { readonly total: number; readonly backoffice: number; readonly ingest: number }
}

async function metric(httpUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text()
  return Number(new RegExp(`^careledger_gateway_${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN)
}

interface RunResult extends PhaseResult {
  readonly name: string
  readonly peakRssMb: number
  readonly stored?: number
  /** Gateway only, from its /metrics over the measured phase. */
  readonly commits?: { readonly count: number; readonly meanMs: number; readonly meanPublishes: number }
  readonly sealing?: SealingResult
  readonly memoryAtPeak?: MemorySample | null
}

/** Group-commit counters from the gateway's /metrics (sum and count of the two histograms). */
async function commitStats(httpUrl: string): Promise<{ seconds: number; commits: number; publishes: number }> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text()
  const v = (name: string) => Number(/^(\S+) (\S+)$/m.exec(text.split('\n').find((l) => l.startsWith(`${name} `)) ?? '')?.[2] ?? Number.NaN)
  return {
    seconds: v('careledger_gateway_commit_duration_seconds_sum'),
    commits: v('careledger_gateway_commit_duration_seconds_count'),
    publishes: v('careledger_gateway_commit_batch_publishes_sum'),
  }
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12]) // utime + stime (fields 14, 15)
}

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : Number.NaN
}

/** Where the gateway's memory is at its highest RSS: sampled every 250 ms from /proc and /metrics. */
interface MemorySample {
  rssMb: number
  anonMb: number
  fileMb: number
  ingestHeapMb: number
  backofficeHeapMb: number
  /** WebAssembly memory of the back office's pairing backend (mcl-wasm), outside both V8 heaps. */
  backofficeWasmMb: number
  externalMb: number
}

class MemorySampler {
  peak: MemorySample | null = null
  readonly #timer: NodeJS.Timeout
  constructor(pid: number, httpUrl: string) {
    this.#timer = setInterval(() => void this.#sample(pid, httpUrl).catch(() => {}), 250)
  }
  async #sample(pid: number, httpUrl: string): Promise<void> {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN) / 1024
    const rssMb = kb('VmRSS')
    if (this.peak && rssMb <= this.peak.rssMb) return
    const text = await (await fetch(`${httpUrl}/metrics`)).text()
    const v = (name: string) => Number(new RegExp(`^careledger_gateway_${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN) / 2 ** 20
    this.peak = { rssMb, anonMb: kb('RssAnon'), fileMb: kb('RssFile'), ingestHeapMb: v('nodejs_heap_size_total_bytes'), backofficeHeapMb: v('backoffice_heap_bytes'), backofficeWasmMb: v('backoffice_wasm_bytes'), externalMb: v('nodejs_external_memory_bytes') }
  }
  stop(): MemorySample | null {
    clearInterval(this.#timer)
    return this.peak
  }
}

class Generator {
  readonly child: ChildProcess
  readonly #lines: string[] = []
  readonly #waiters: Array<(l: string) => void> = []
  stderr = ''

  constructor(url: string, devices: Array<{ deviceId: string; secret: string; firstSeq: number }>) {
    this.child = spawn(process.execPath, [join(REPO, 'bench/lib/ingest-loadgen.ts'), JSON.stringify({ url, devices, window: WINDOW })], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      const w = this.#waiters.shift()
      if (w) w(l)
      else this.#lines.push(l)
    })
    this.child.stderr!.setEncoding('utf8').on('data', (c: string) => (this.stderr += c))
  }

  next(): Promise<Record<string, unknown>> {
    const l = this.#lines.shift()
    const parse = (s: string) => JSON.parse(s) as Record<string, unknown>
    if (l !== undefined) return Promise.resolve(parse(l))
    return new Promise((ok, fail) => {
      this.child.once('exit', (code) => fail(new Error(`load generator exited (${code}): ${this.stderr}`)))
      this.#waiters.push((s) => ok(parse(s)))
    })
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`)
  }
}

async function runPhase(gens: Generator[], brokerPid: number, perDevice: number): Promise<PhaseResult> {
  const ticks0 = cpuTicks(brokerPid)
  const t0 = performance.now()
  for (const g of gens) g.send(`go ${perDevice}`)
  const results = (await Promise.all(gens.map((g) => g.next()))) as Array<{
    acked: number
    failed: number
    seconds: number
    cpuMicros: number
    latency: ReturnType<LatencyHistogram['toJSON']>
    errors: string[]
  }>
  const seconds = (performance.now() - t0) / 1000
  const ticks = cpuTicks(brokerPid) - ticks0
  const readings = results.reduce((n, r) => n + r.acked, 0)
  const failed = results.reduce((n, r) => n + r.failed, 0)
  if (failed) console.error('load generator errors:', results.flatMap((r) => r.errors))
  const latency = results.reduce((h, r) => h.merge(LatencyHistogram.fromJSON(r.latency)), new LatencyHistogram())
  const cpuMicros = (ticks / CLK_TCK) * 1e6
  return {
    readings,
    failed,
    seconds,
    perSecond: readings / seconds,
    p50: latency.quantile(0.5),
    p99: latency.quantile(0.99),
    brokerCpuMicrosPerReading: cpuMicros / readings,
    brokerCoreShare: cpuMicros / 1e6 / seconds,
    generatorCoreShare: results.map((r) => r.cpuMicros / 1e6 / r.seconds),
  }
}

async function drive(name: string, url: string, brokerPid: number, creds: Array<{ deviceId: string; secret: string }>, httpUrl?: string): Promise<RunResult> {
  const perGen = Math.ceil(creds.length / GENERATORS)
  const gens: Generator[] = []
  for (let g = 0; g < GENERATORS; g++) {
    const mine = creds.slice(g * perGen, (g + 1) * perGen).map((c) => ({ ...c, firstSeq: 1 }))
    if (mine.length) gens.push(new Generator(url, mine))
  }
  await Promise.all(gens.map((g) => g.next())) // ready
  if (WARMUP > 0) await runPhase(gens, brokerPid, WARMUP)
  const c0 = httpUrl ? await commitStats(httpUrl) : null
  const measured = await runPhase(gens, brokerPid, PER_DEVICE)
  const c1 = httpUrl ? await commitStats(httpUrl) : null
  for (const g of gens) g.send('quit')
  await Promise.all(gens.map((g) => new Promise((ok) => (g.child.exitCode !== null ? ok(null) : g.child.once('exit', ok)))))
  const commits = c0 && c1 ? { count: c1.commits - c0.commits, meanMs: ((c1.seconds - c0.seconds) / (c1.commits - c0.commits)) * 1000, meanPublishes: (c1.publishes - c0.publishes) / (c1.commits - c0.commits) } : undefined
  return { name, ...measured, peakRssMb: peakRssMb(brokerPid), ...(commits ? { commits } : {}) }
}

async function benchGateway(): Promise<RunResult> {
  const data = tempDataDir('bench-ingest')
  try {
    const creds = enrolInStore(data.dir, DEVICES, 'bench')
    const gw = await GatewayProcess.start({ dataDir: data.dir, args: ['--mqtts-port', '0', '--seal-interval-s', '1'], env: process.env.GW_NODE_OPTIONS ? { NODE_OPTIONS: process.env.GW_NODE_OPTIONS } : {} })
    try {
      const ticksStart = cpuTicks(gw.pid)
      const memory = new MemorySampler(gw.pid, gw.httpUrl!)
      const backofficeStart = await metric(gw.httpUrl!, 'backoffice_cpu_seconds_total')
      const tStart = performance.now()
      const r = await drive('gateway', gw.mqttUrl, gw.pid, creds, gw.httpUrl)
      const tEnd = performance.now()
      const sealedAtEnd = await metric(gw.httpUrl!, 'readings_sealed_total')
      const total = DEVICES * (WARMUP + PER_DEVICE)
      let sealedNow = sealedAtEnd
      while (sealedNow < total && performance.now() - tEnd < 300_000) {
        await new Promise((ok) => setTimeout(ok, 200))
        sealedNow = await metric(gw.httpUrl!, 'readings_sealed_total')
      }
      const tSealed = performance.now()
      await new Promise((ok) => setTimeout(ok, 1500)) // the back office reports its CPU after each pass
      const processMicros = ((cpuTicks(gw.pid) - ticksStart) / CLK_TCK) * 1e6
      const backofficeMicros = ((await metric(gw.httpUrl!, 'backoffice_cpu_seconds_total')) - backofficeStart) * 1e6
      const sealing: SealingResult = {
        cpuMicrosPerReading: { total: processMicros / total, backoffice: backofficeMicros / total, ingest: (processMicros - backofficeMicros) / total },
        duringIngestPerSecond: sealedAtEnd / ((tEnd - tStart) / 1000),
        drainPerSecond: (sealedNow - sealedAtEnd) / Math.max(0.001, (tSealed - tEnd) / 1000),
        drainSeconds: (tSealed - tEnd) / 1000,
        overallPerSecond: sealedNow / ((tSealed - tStart) / 1000),
        sealed: sealedNow,
      }
      const rssAfterSealing = peakRssMb(gw.pid)
      const memoryAtPeak = memory.stop()
      const check = new Database(join(data.dir, 'gateway.db'), { readonly: true })
      const stored = check.prepare('SELECT count(*) FROM readings').pluck().get() as number
      check.close()
      const expected = DEVICES * (WARMUP + PER_DEVICE)
      if (stored !== expected) console.error(`!! ${stored} readings stored, ${expected} acknowledged`)
      return { ...r, stored, sealing, peakRssMb: rssAfterSealing, memoryAtPeak }
    } finally {
      await gw.stop()
    }
  } finally {
    data.cleanup()
  }
}

async function benchMosquitto(): Promise<RunResult | null> {
  try {
    execFileSync('which', ['mosquitto', 'mosquitto_passwd'])
  } catch {
    console.error('mosquitto is not installed (apt-get install -y mosquitto): no baseline')
    return null
  }
  const data = tempDataDir('bench-mosquitto')
  const [port] = await freePorts(1)
  const creds = Array.from({ length: DEVICES }, (_, i) => ({ deviceId: `bench-${i}`, secret: `secret-${i}-${Math.random().toString(36).slice(2)}` }))
  const pw = join(data.dir, 'passwords')
  writeFileSync(pw, creds.map((c) => `${c.deviceId}:${c.secret}`).join('\n') + '\n', { mode: 0o600 })
  execFileSync('mosquitto_passwd', ['-U', pw]) // hash in place
  const conf = join(data.dir, 'mosquitto.conf')
  writeFileSync(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous false', `password_file ${pw}`, 'persistence false', 'user root', 'log_dest stderr', 'log_type error', ''].join('\n'))
  const child = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  try {
    await waitForPort(port!)
    return await drive('mosquitto', `mqtt://127.0.0.1:${port}`, child.pid!, creds)
  } finally {
    process.kill(child.pid!, 'SIGTERM')
    await new Promise((ok) => child.once('exit', ok))
    data.cleanup()
  }
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy()
        res(true)
      })
      s.once('error', () => res(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`nothing listens on ${port}`)
}

const f = (n: number, d = 0): string => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—')

const os = await import('node:os')
const load0 = os.loadavg()[0]!
console.log(`bench:ingest — ${DEVICES} devices × ${PER_DEVICE} QoS 1 messages (1 reading each), window ${WINDOW}, ${GENERATORS} load-generator processes, warm-up ${WARMUP}/device; node ${process.version}, ${os.cpus().length} cores, load average ${load0.toFixed(2)}`)
const gw = await benchGateway()
const mq = await benchMosquitto()
const rows: Array<[string, (r: RunResult) => string, ((g: RunResult, m: RunResult) => string) | null]> = [
  ['readings/s (gateway: durable)', (r) => f(r.perSecond), (g, m) => `${f(g.perSecond / m.perSecond, 2)}×`],
  ['PUBACK latency p50, ms', (r) => f(r.p50, 2), (g, m) => `${f(g.p50 / m.p50, 2)}×`],
  ['PUBACK latency p99, ms', (r) => f(r.p99, 2), (g, m) => `${f(g.p99 / m.p99, 2)}×`],
  ['broker CPU per reading, µs', (r) => f(r.brokerCpuMicrosPerReading, 1), (g, m) => `${f(g.brokerCpuMicrosPerReading / m.brokerCpuMicrosPerReading, 2)}×`],
  ['broker CPU, share of one core', (r) => `${f(r.brokerCoreShare * 100)} %`, null],
  ['broker peak RSS (VmHWM), MB', (r) => f(r.peakRssMb, 1), (g, m) => `${f(g.peakRssMb / m.peakRssMb, 1)}×`],
  ['load generators, CPU share of one core each', (r) => r.generatorCoreShare.map((s) => `${f(s * 100)} %`).join(' / '), null],
  ['readings acknowledged (measured phase)', (r) => f(r.readings), null],
]
const table = [
  `| | gateway (aedes + SQLite FULL, group commit) | ${mq ? 'mosquitto (no persistence)' : 'mosquitto: not run'} | gateway / mosquitto |`,
  '|---|---:|---:|---:|',
  ...rows.map(([label, get, ratio]) => `| ${label} | ${get(gw)} | ${mq ? get(mq) : '—'} | ${mq && ratio ? ratio(gw, mq) : ''} |`),
]
console.log(`\n${table.join('\n')}\n`)
console.log(`durability check: ${f(gw.stored ?? 0)} readings in gateway.db = ${f(DEVICES * (WARMUP + PER_DEVICE))} acknowledged (warm-up + measured)${gw.stored === DEVICES * (WARMUP + PER_DEVICE) ? ' ✔' : ' ✘'}`)
if (gw.commits) {
  console.log(`gateway group commit: ${f(gw.commits.count)} commits, ${f(gw.commits.meanPublishes, 1)} PUBLISHes per commit, ${f(gw.commits.meanMs, 2)} ms per commit (transaction + WAL fsync; the event loop waits for it)`)
}
if (gw.sealing) {
  const sl = gw.sealing
  console.log(
    `gateway sealing (back-office thread, 1 s interval): ${f(sl.duringIngestPerSecond)} readings/s sealed while ingest ran; ` +
      `the rest (${f(sl.drainSeconds, 1)} s) at ${f(sl.drainPerSecond)} readings/s; overall ${f(sl.overallPerSecond)} readings/s, ${f(sl.sealed)} sealed`,
  )
  const c = sl.cpuMicrosPerReading
  console.log(
    `gateway CPU per reading over the whole run: ${f(c.total, 1)} µs = ingest ${f(c.ingest, 1)} µs (MQTT, validation, durable commit; all threads but the back office) ` +
      `+ back office ${f(c.backoffice, 1)} µs (sealing: CP-ABE envelope, Merkle tree, signature, block)` +
      (mq ? `; ingest = ${f(c.ingest / mq.brokerCpuMicrosPerReading, 2)}× mosquitto's relay, whole process = ${f(c.total / mq.brokerCpuMicrosPerReading, 2)}×` : ''),
  )
}
if (gw.memoryAtPeak) {
  const m = gw.memoryAtPeak
  console.log(
    `gateway memory at its highest sampled RSS (${f(m.rssMb, 1)} MB): anonymous ${f(m.anonMb, 1)} MB (V8 heaps: ingest thread ${f(m.ingestHeapMb, 1)} MB, ` +
      `back office ${f(m.backofficeHeapMb, 1)} MB + WebAssembly (pairing backend) ${f(m.backofficeWasmMb, 1)} MB; Node external ${f(m.externalMb, 1)} MB; the rest is native: SQLite, malloc, thread stacks) + file-backed ${f(m.fileMb, 1)} MB (node binary, libraries)`,
  )
}
console.log(`load average (1 min) before/after: ${load0.toFixed(2)} / ${os.loadavg()[0]!.toFixed(2)} — figures from a shared or busy machine vary; CPU µs per reading varies least`)
const targets = [
  ['≥ 20,000 durable readings/s', gw.perSecond >= 20_000, `${f(gw.perSecond)}/s`],
  [
    'gateway ingest CPU per reading ≤ 4× mosquitto (sealing, which mosquitto does not do, reported apart)',
    mq && gw.sealing ? gw.sealing.cpuMicrosPerReading.ingest <= 4 * mq.brokerCpuMicrosPerReading : null,
    mq && gw.sealing ? `${f(gw.sealing.cpuMicrosPerReading.ingest / mq.brokerCpuMicrosPerReading, 2)}× (whole process incl. sealing ${f(gw.sealing.cpuMicrosPerReading.total / mq.brokerCpuMicrosPerReading, 2)}×)` : 'no baseline',
  ],
  ['gateway RSS ≤ 250 MB (ingest and sealing)', gw.peakRssMb <= 250, `${f(gw.peakRssMb, 1)} MB`],
  ['sealing keeps up with ingest', gw.sealing ? gw.sealing.drainPerSecond >= gw.perSecond : null, gw.sealing ? `seals ${f(gw.sealing.drainPerSecond)}/s vs ingest ${f(gw.perSecond)}/s` : 'n/a'],
] as const
for (const [what, ok, value] of targets) console.log(`target ${what}: ${ok === null ? 'n/a' : ok ? 'met' : 'MISSED'} (${value})`)
