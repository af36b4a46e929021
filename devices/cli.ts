/**
 * `careledger devices …` — simulated bedside monitors (docs/protocol.md is what they speak).
 * Summaries go to stdout, pino JSON logs to stderr.
 */
import { readFileSync } from 'node:fs'
import { Command, InvalidArgumentError } from 'commander'
import { pino } from 'pino'
import { CareLedgerError } from '../shared/errors.ts'
import { loadCredentials } from './simulator/credentials.ts'
import { formatSummary, startSimulation } from './simulator/simulation.ts'

// The programmatic entry, for end-to-end tests and benchmarks.
export { startSimulation, type SimulationHandle, type SimulationOptions, type SimulationStats } from './simulator/simulation.ts'
export { loadCredentials } from './simulator/credentials.ts'

const number = (what: string, check: (n: number) => boolean) => (v: string): number => {
  const n = Number(v)
  if (v.trim() === '' || !Number.isFinite(n) || !check(n)) throw new InvalidArgumentError(`${what}, got "${v}"`)
  return n
}
const positive = number('must be a positive number', (n) => n > 0)
const positiveInt = number('must be a positive integer', (n) => Number.isSafeInteger(n) && n > 0)
const probability = number('must be a probability between 0 and 1', (n) => n >= 0 && n <= 1)

interface SimulateFlags {
  gateway: string
  credentials: string
  count?: number
  rate: number
  ecg?: boolean
  ca?: string
  stateDir: string
  duration?: number
  faultRate: number
  seed?: string
  nibpInterval: number
  queueLimit: number
  maxInflight: number
  summaryInterval: number
  logLevel: string
}

export function devicesCommand(): Command {
  const cmd = new Command('devices').description('simulated bedside monitors that publish vital signs to a gateway over MQTT')

  cmd
    .command('simulate')
    .description('run N simulated monitors, each with its own MQTT connection, credentials and patient')
    .option('-g, --gateway <url>', 'gateway MQTT URL (mqtt://host:1883, or mqtts://host:8883 with --ca)', 'mqtt://127.0.0.1:1883')
    .requiredOption('-c, --credentials <file>', 'enrolment credentials: {"devices":[{"deviceId":"bed-01","secret":"…"}]}')
    .option('-n, --count <n>', 'simulate the first N devices of the file (default: all)', positiveInt)
    .option('-r, --rate <ticks>', 'vital-sign ticks per second per monitor', positive, 1)
    .option('--ecg', 'also send 1-s ECG chunks (250 Hz lead II)')
    .option('--ca <file>', 'gateway CA certificate (PEM) for mqtts://')
    .option('--state-dir <dir>', 'where per-device sequence high-water marks are kept', '.careledger/simulator')
    .option('-d, --duration <seconds>', 'stop after this many seconds (default: until Ctrl-C)', positive)
    .option('--fault-rate <p>', 'probability that a reading is deliberately invalid (to exercise quarantine)', probability, 0)
    .option('--seed <seed>', 'seed for patients and faults (default: random, logged)')
    .option('--nibp-interval <seconds>', 'seconds between blood-pressure cuff readings', positive, 300)
    .option('--queue-limit <messages>', 'messages a monitor keeps while the gateway is unreachable before dropping the oldest', positiveInt, 3600)
    .option('--max-inflight <messages>', 'messages awaiting PUBACK at once per monitor', positiveInt, 8)
    .option('--summary-interval <seconds>', 'seconds between summary lines (0: none)', number('must be ≥ 0', (n) => n >= 0), 10)
    .option('--log-level <level>', 'pino log level on stderr (trace, debug, info, warn, error, silent)', 'info')
    .action(async (f: SimulateFlags) => {
      const logger = pino({ name: 'careledger-simulator', level: f.logLevel }, pino.destination(2))
      let ca: Buffer | undefined
      if (f.ca) {
        try {
          ca = readFileSync(f.ca)
        } catch (e) {
          throw new CareLedgerError('INVALID_ARGUMENT', `cannot read --ca ${f.ca}: ${(e as Error).message}`, { ca: f.ca })
        }
      }
      const sim = startSimulation({
        gateway: f.gateway,
        devices: loadCredentials(f.credentials),
        count: f.count,
        rate: f.rate,
        ecg: !!f.ecg,
        ca,
        stateDir: f.stateDir,
        durationS: f.duration,
        faultRate: f.faultRate,
        seed: f.seed,
        nibpIntervalS: f.nibpInterval,
        queueLimit: f.queueLimit,
        maxInflight: f.maxInflight,
        summaryIntervalS: f.summaryInterval,
        logger,
      })
      let signals = 0
      const onSignal = (sig: NodeJS.Signals): void => {
        if (++signals > 1) process.exit(130) // a second Ctrl-C: do not wait for the drain
        logger.info({ signal: sig }, 'stopping: draining outboxes (press Ctrl-C again to quit now)')
        void sim.stop()
      }
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
      const final = await sim.finished
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      process.stdout.write(`${formatSummary(final, true)}\n`)
      if (final.failed === final.monitors) {
        process.stderr.write(`error: no monitor could connect to ${f.gateway} (see the log above)\n`)
        process.exitCode = 1
      }
    })

  return cmd
}
