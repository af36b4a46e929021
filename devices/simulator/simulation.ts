/**
 * A ward of simulated monitors against one gateway: starts one monitor per device, prints a
 * periodic one-line summary, stops after a duration or on request. Used by
 * `careledger devices simulate` (devices/cli.ts), by end-to-end tests and by benchmarks.
 */
import { pino, type Logger } from 'pino'
import { CareLedgerError } from '../../shared/errors.ts'
import { selectDevices } from './credentials.ts'
import { startMonitor, type DeviceCredentials, type Monitor, type MonitorStats } from './monitor.ts'

export interface SimulationOptions {
  /** mqtt://host:1883 or mqtts://host:8883 */
  readonly gateway: string
  readonly devices: readonly DeviceCredentials[]
  /** Use the first `count` devices (default: all). */
  readonly count?: number
  /** Vital-sign ticks per second per monitor (default 1). */
  readonly rate?: number
  readonly ecg?: boolean
  /** Gateway CA certificate (PEM) for mqtts. */
  readonly ca?: string | Buffer
  /** Where sequence high-water marks live (default .careledger/simulator). */
  readonly stateDir?: string
  /** Stop by itself after this many seconds. */
  readonly durationS?: number
  readonly faultRate?: number
  /** Same seed, same patients and faults (default: random, logged). */
  readonly seed?: string | number
  readonly nibpIntervalS?: number
  readonly tempIntervalS?: number
  readonly queueLimit?: number
  readonly maxInflight?: number
  readonly ackTimeoutMs?: number
  readonly keepalive?: number
  readonly backoff?: { initialMs?: number; maxMs?: number }
  /** On stop, how long monitors may keep draining their outbox (default 5 s). */
  readonly drainMs?: number
  /** Seconds between summary lines; 0 turns them off (default 10). */
  readonly summaryIntervalS?: number
  readonly onSummary?: (line: string, stats: SimulationStats) => void
  /** pino logger (default: JSON on stderr). */
  readonly logger?: Logger
  readonly now?: () => number
}

export interface SimulationStats {
  readonly elapsedS: number
  readonly monitors: number
  readonly online: number
  readonly failed: number
  readonly generated: number
  readonly sent: number
  readonly acked: number
  readonly inFlight: number
  readonly queued: number
  readonly dropped: number
  readonly faults: number
  readonly deviceErrors: number
  readonly errorsByCode: Readonly<Record<string, number>>
  readonly reconnects: number
  readonly devices: readonly MonitorStats[]
}

export interface SimulationHandle {
  readonly seed: string
  stats(): SimulationStats
  /** Stop every monitor (idempotent); resolves with the final statistics. */
  stop(): Promise<SimulationStats>
  /** Settles when the simulation has stopped, by stop() or by its duration. */
  readonly finished: Promise<SimulationStats>
}

const SUMS = ['generated', 'sent', 'acked', 'inFlight', 'queued', 'dropped', 'faults', 'deviceErrors', 'reconnects'] as const

export function aggregate(devices: readonly MonitorStats[], elapsedS: number): SimulationStats {
  const total = Object.fromEntries(SUMS.map((k) => [k, devices.reduce((a, d) => a + d[k], 0)])) as Record<(typeof SUMS)[number], number>
  const errorsByCode: Record<string, number> = {}
  for (const d of devices) for (const [code, n] of Object.entries(d.errorsByCode)) errorsByCode[code] = (errorsByCode[code] ?? 0) + n
  return {
    elapsedS,
    monitors: devices.length,
    online: devices.filter((d) => d.online).length,
    failed: devices.filter((d) => d.failed !== null).length,
    ...total,
    errorsByCode,
    devices,
  }
}

const clock = (s: number): string => {
  const t = Math.floor(s)
  return [Math.floor(t / 3600), Math.floor(t / 60) % 60, t % 60].map((x) => String(x).padStart(2, '0')).join(':')
}

export function formatSummary(s: SimulationStats, final = false): string {
  const codes = Object.entries(s.errorsByCode).map(([k, v]) => `${k}=${v}`).join(',')
  return (
    `${final ? 'final' : 'sim'} ${clock(s.elapsedS)} | online ${s.online}/${s.monitors}${s.failed ? ` (${s.failed} failed)` : ''}` +
    ` | sent ${s.sent} acked ${s.acked} in-flight ${s.inFlight} queued ${s.queued} dropped ${s.dropped}` +
    ` | device errors ${s.deviceErrors}${codes ? ` (${codes})` : ''} | faults ${s.faults} | reconnects ${s.reconnects}`
  )
}

const check = (ok: boolean, message: string, info: Record<string, unknown>): void => {
  if (!ok) throw new CareLedgerError('INVALID_ARGUMENT', message, info)
}

export function startSimulation(opts: SimulationOptions): SimulationHandle {
  const rate = opts.rate ?? 1
  check(Number.isFinite(rate) && rate > 0 && rate <= 1000, `--rate must be in (0, 1000] ticks per second, got ${rate}`, { rate })
  const faultRate = opts.faultRate ?? 0
  check(Number.isFinite(faultRate) && faultRate >= 0 && faultRate <= 1, `--fault-rate must be a probability in [0, 1], got ${faultRate}`, { faultRate })
  check(opts.durationS === undefined || (Number.isFinite(opts.durationS) && opts.durationS > 0), `--duration must be a positive number of seconds`, { durationS: opts.durationS })
  check(/^mqtts?:\/\//.test(opts.gateway), `--gateway must be an mqtt:// or mqtts:// URL, got ${opts.gateway}`, { gateway: opts.gateway })
  const devices = selectDevices(opts.devices, opts.count)
  check(devices.length > 0, 'no devices to simulate', {})

  const seed = String(opts.seed ?? Math.floor(Math.random() * 2 ** 32))
  const log = opts.logger ?? pino({ name: 'careledger-simulator' }, pino.destination(2))
  const now = opts.now ?? Date.now
  const startedAt = now()
  log.info({ gateway: opts.gateway, monitors: devices.length, rate, ecg: !!opts.ecg, faultRate, seed }, 'simulation starting')

  const monitors: Monitor[] = []
  let failures = 0
  const onFailed = (): void => {
    // Nothing left to simulate when every device was refused: stop rather than idle forever.
    if (++failures === devices.length) {
      log.error({ monitors: devices.length }, 'every monitor was refused by the gateway; stopping')
      void stop()
    }
  }
  try {
    for (const device of devices) {
      monitors.push(
        startMonitor({
          device,
          url: opts.gateway,
          ca: opts.ca,
          rate,
          physiology: { ecg: opts.ecg, nibpIntervalS: opts.nibpIntervalS, tempIntervalS: opts.tempIntervalS },
          faultRate,
          seed,
          stateDir: opts.stateDir ?? '.careledger/simulator',
          queueLimit: opts.queueLimit,
          maxInflight: opts.maxInflight,
          ackTimeoutMs: opts.ackTimeoutMs,
          keepalive: opts.keepalive,
          backoff: opts.backoff,
          logger: log,
          now,
          onFailed,
        }),
      )
    }
  } catch (e) {
    void Promise.all(monitors.map((m) => m.stop(0))) // e.g. a device locked by another simulator
    throw e
  }

  const stats = (): SimulationStats => aggregate(monitors.map((m) => m.stats()), (now() - startedAt) / 1000)
  const summaryMs = (opts.summaryIntervalS ?? 10) * 1000
  const onSummary = opts.onSummary ?? ((line: string) => process.stdout.write(`${line}\n`))
  const summaryTimer = summaryMs > 0 ? setInterval(() => onSummary(formatSummary(stats()), stats()), summaryMs) : undefined
  const durationTimer = opts.durationS !== undefined ? setTimeout(() => void stop(), opts.durationS * 1000) : undefined

  let resolveFinished!: (s: SimulationStats) => void
  const finished = new Promise<SimulationStats>((r) => (resolveFinished = r))
  let stopping: Promise<SimulationStats> | null = null
  const stop = (): Promise<SimulationStats> => {
    stopping ??= (async () => {
      clearInterval(summaryTimer)
      clearTimeout(durationTimer)
      await Promise.all(monitors.map((m) => m.stop(opts.drainMs ?? 5000)))
      const final = stats()
      log.info({ ...final, devices: undefined }, 'simulation stopped')
      resolveFinished(final)
      return final
    })()
    return stopping
  }
  return { seed, stats, stop, finished }
}
