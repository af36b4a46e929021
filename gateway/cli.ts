/**
 * `careledger gateway …`: run the gateway and manage its devices. The device commands work on the
 * data directory while the gateway runs (WAL + busy_timeout); the running gateway notices changes
 * within a second (PRAGMA data_version) — a removed, disabled or re-keyed device is disconnected,
 * a moved device's later readings belong to its new patient.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { JS_CACHE_ENV, JS_CACHE_HOOK, prepareJsCache } from './js-cache.ts'
import { addBackofficeCommands } from './backoffice/cli.ts'
import { Command, Option } from 'commander'
import type { DeviceRecord, DeviceStore } from './store/devices.ts'
import type { GatewayPlugin } from './runtime.ts'
import { errorsTopic, readingsTopic } from '../shared/schema/device.ts'
import { SETTINGS } from './config.ts'
// Everything heavier (better-sqlite3, @peculiar/x509, aedes, fastify, prom-client) is imported
// inside the actions: `careledger --help` stays fast and `gateway start` re-executes itself
// (memoryTuning below) before loading any of it.

const collect = (v: string, prev: string[] = []): string[] => [...prev, v]
const dataOption = (): Option => new Option('--data <dir>', 'gateway data directory (env CARELEDGER_GATEWAY_DATA, default ./.careledger/gateway)')
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')

async function withDevices<T>(data: string | undefined, f: (devices: DeviceStore) => T): Promise<T> {
  const [{ resolveDataDir }, { openGatewayDb }, { DeviceStore }] = await Promise.all([import('./config.ts'), import('./store/db.ts'), import('./store/devices.ts')])
  const { db } = openGatewayDb(resolveDataDir(data))
  try {
    return f(new DeviceStore(db))
  } finally {
    db.close()
  }
}

const out = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : `${s}\n`)
const warn = (s: string): void => void process.stderr.write(`${s}\n`)

export interface GatewayCommandOptions {
  /**
   * The plugins `gateway start` runs; by default the back office (sealer, outbox sync, retention).
   * A factory, so nothing of them is loaded for other commands. Tests pass `() => []` for ingest only.
   */
  readonly plugins?: () => Promise<readonly GatewayPlugin[]> | readonly GatewayPlugin[]
}

export function gatewayCommand(options: GatewayCommandOptions = {}): Command {
  const cmd = new Command('gateway').description('edge gateway: MQTT ingest of bedside monitors into a durable store, device enrolment, TLS CA')

  const start = cmd
    .command('start')
    .description('run the gateway (MQTT 1883, MQTTS 8883, /healthz and /metrics on 127.0.0.1:9464 by default); SIGINT/SIGTERM stop it gracefully')
  for (const s of SETTINGS) {
    const o = new Option(s.flag, `${s.doc} (env ${s.env}${s.default ? `, default ${s.default}` : ''})`)
    start.addOption(s.option === 'tlsName' ? o.argParser(collect) : o)
  }
  start.action(async (opts: Record<string, unknown>) => {
    const { loadGatewayConfig } = await import('./config.ts')
    const { config } = loadGatewayConfig(opts) // validate before re-executing, so errors print once
    reexecWithMemoryTuning(config.memory.maxHeapMb)
    const { startGateway } = await import('./runtime.ts')
    const plugins = options.plugins ? await options.plugins() : [(await import('./backoffice/plugin.ts')).backofficePlugin()]
    const gw = await startGateway(config, { plugins })
    let signalled = false
    const shutdown = (signal: string): void => {
      if (signalled) return
      signalled = true
      gw.logger.info({ event: 'signal', signal }, `received ${signal}`)
      gw.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          gw.logger.fatal({ err }, 'graceful stop failed')
          process.exit(1)
        },
      )
    }
    process.once('SIGINT', () => shutdown('SIGINT'))
    process.once('SIGTERM', () => shutdown('SIGTERM'))
    process.on('uncaughtException', (err) => {
      gw.logger.fatal({ err, event: 'uncaught_exception' }, 'uncaught exception: exiting (acknowledged readings are committed)')
      process.exit(1)
    })
  })

  cmd
    .command('config')
    .description('print the effective configuration and where each value came from')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const { loadGatewayConfig } = await import('./config.ts')
      const { config, sources } = loadGatewayConfig({})
      if (opts.json) return out(JSON.stringify({ config, sources }, null, 2))
      for (const s of SETTINGS) {
        const src = sources[s.path]!
        out(`${s.env.padEnd(32)} ${JSON.stringify(pick(config, s.path)).padEnd(30)} ${src.kind === 'default' ? '(default)' : `(${src.kind} ${src.name})`}`)
      }
    })

  cmd
    .command('ca')
    .description('print the gateway CA certificate (PEM) that devices pin for MQTTS; creates the CA if the gateway has none yet')
    .addOption(dataOption())
    .action(async (opts: { data?: string }) => {
      const [{ resolveDataDir }, { certFingerprint, ensureCa, TLS_DIR }, { Keyring }] = await Promise.all([import('./config.ts'), import('./tls.ts'), import('../shared/cli/secret-files.ts')])
      const dataDir = resolveDataDir(opts.data)
      // Creating the CA seals its key under the gateway's passphrase (environment, else a prompt).
      const keyring = Keyring.forCommand()
      const caKey = join(dataDir, TLS_DIR, 'ca.key')
      if (!existsSync(caKey)) await keyring.unlockFor(caKey)
      const { caPem, created } = await ensureCa(dataDir, new Date(), keyring)
      out(caPem)
      warn(`${created ? 'created a new gateway CA; ' : ''}SHA-256 fingerprint ${certFingerprint(caPem)}`)
    })

  const device = cmd.command('device').description('enrol and manage bedside monitors')

  device
    .command('add')
    .description('enrol a device for a patient and print its secret (shown once)')
    .argument('<deviceId>', 'device id: 1-64 of a-z 0-9 . _ - (also the MQTT username and client id)')
    .requiredOption('--patient <patientId>', 'patient the device is attached to')
    .option('--json', 'print {"deviceId","secret","patientId"} for scripts')
    .addOption(dataOption())
    .action(async (deviceId: string, opts: { patient: string; json?: boolean; data?: string }) => {
      const e = await withDevices(opts.data, (d) => d.add(deviceId, opts.patient))
      if (e.previousMaxSeq !== null) {
        warn(`warning: readings up to seq ${e.previousMaxSeq} from an earlier enrolment of ${deviceId} are stored; the device must continue with seq > ${e.previousMaxSeq} (a repeated seq is stored once)`)
      }
      if (opts.json) return out(JSON.stringify({ deviceId, secret: e.secret, patientId: e.device.patientId }))
      out(
        [
          `enrolled device ${deviceId} for patient ${e.device.patientId}`,
          `secret (shown once — put it in the device now): ${e.secret}`,
          `MQTT 3.1.1: username and client id ${deviceId}; publish QoS 1 to ${readingsTopic(deviceId)}; subscribe to ${errorsTopic(deviceId)}`,
        ].join('\n'),
      )
    })

  device
    .command('list')
    .description('list enrolled devices (no secrets)')
    .option('--json', 'machine-readable output')
    .addOption(dataOption())
    .action(async (opts: { json?: boolean; data?: string }) => {
      const list = await withDevices(opts.data, (d) => d.list())
      if (opts.json) return out(JSON.stringify(list))
      if (list.length === 0) return out('no devices enrolled (careledger gateway device add <deviceId> --patient <patientId>)')
      const rows = [['DEVICE', 'PATIENT', 'STATUS', 'ENROLLED', 'UPDATED'], ...list.map((d: DeviceRecord) => [d.deviceId, d.patientId, d.disabled ? 'disabled' : 'enabled', iso(d.createdAt), iso(d.updatedAt)])]
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
      for (const r of rows) out(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd())
    })

  device
    .command('remove')
    .description('remove a device: it can no longer connect (an open connection is closed); its stored readings are kept')
    .argument('<deviceId>')
    .addOption(dataOption())
    .action(async (deviceId: string, opts: { data?: string }) => {
      const d = await withDevices(opts.data, (s) => s.remove(deviceId))
      out(`removed device ${deviceId} (was attached to patient ${d.patientId}); its stored readings are kept`)
    })

  device
    .command('move')
    .description('bed change: attach a device to another patient; stored readings keep the patient they were received under')
    .argument('<deviceId>')
    .requiredOption('--patient <patientId>', 'the new patient')
    .addOption(dataOption())
    .action(async (deviceId: string, opts: { patient: string; data?: string }) => {
      const m = await withDevices(opts.data, (s) => s.move(deviceId, opts.patient))
      out(`moved device ${deviceId}: patient ${m.from} → ${m.to} (readings received from now on belong to ${m.to})`)
    })

  device
    .command('rotate-secret')
    .description('issue a new secret (shown once); the old one stops working and an open connection is closed')
    .argument('<deviceId>')
    .option('--json', 'print {"deviceId","secret"} for scripts')
    .addOption(dataOption())
    .action(async (deviceId: string, opts: { json?: boolean; data?: string }) => {
      const secret = await withDevices(opts.data, (s) => s.rotateSecret(deviceId))
      if (opts.json) return out(JSON.stringify({ deviceId, secret }))
      out(`new secret for ${deviceId} (shown once): ${secret}`)
    })

  for (const [name, disabled] of [['disable', true], ['enable', false]] as const) {
    device
      .command(name)
      .description(disabled ? 'refuse a device without forgetting it (CONNACK 5; an open connection is closed)' : 'accept a disabled device again')
      .argument('<deviceId>')
      .addOption(dataOption())
      .action(async (deviceId: string, opts: { data?: string }) => {
        await withDevices(opts.data, (s) => s.setDisabled(deviceId, disabled))
        out(`device ${deviceId} ${disabled ? 'disabled' : 'enabled'}`)
      })
  }

  addBackofficeCommands(cmd)
  return cmd
}

/**
 * Memory tuning that can only be set when a process starts. Measured with bench:ingest on a
 * 24 GB host: V8 sizes the young generation from the machine's RAM (it grew to 134 MB under ingest
 * load), and with no old-space limit dead promoted objects keep young ones alive until a rare
 * major GC (old space reached ~150 MB and scavenges got slow). With 16 MB semi-spaces and a
 * 128 MB old-space limit the gateway uses less memory AND ingests faster. glibc also keeps one
 * malloc arena per thread, and every device connect runs a 16 MB scrypt on a libuv thread (now one
 * at a time, gateway/store/devices.ts). `gateway start` therefore re-executes
 * itself once, keeping its PID (process.execve), with `--max-semi-space-size=16
 * --max-old-space-size=<--max-heap-mb>` and MALLOC_ARENA_MAX=2, MALLOC_MMAP_THRESHOLD_=131072
 * (large buffers are unmapped when freed). The back-office worker sets its own, smaller heap
 * (gateway/backoffice/plugin.ts). Settings the operator already made win;
 * CARELEDGER_GATEWAY_NO_REEXEC=1 turns this off.
 */
export function memoryTuning(maxHeapMb: number): { v8: string[]; env: Record<string, string> } {
  return {
    v8: ['--max-semi-space-size=16', `--max-old-space-size=${maxHeapMb}`],
    env: { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072' },
  }
}

function reexecWithMemoryTuning(maxHeapMb: number): void {
  const env = process.env
  if (env.CARELEDGER_GATEWAY_TUNED === '1' || env.CARELEDGER_GATEWAY_NO_REEXEC === '1') return
  if (process.platform !== 'linux' || typeof process.execve !== 'function') return
  const tuning = memoryTuning(maxHeapMb)
  // process.execve keeps only stdin, stdout and stderr open: a passphrase on descriptor 3+ would be
  // lost. Start untuned rather than without the passphrase (docs/operations.md §Passphrases).
  const fd = env.CARELEDGER_PASSPHRASE_FD?.trim()
  if (fd && !['0', '1', '2'].includes(fd)) {
    process.stderr.write(`careledger: CARELEDGER_PASSPHRASE_FD=${fd} would not survive re-executing with the memory limits, so the gateway runs without them; to keep them, give the passphrase on stdin (CARELEDGER_PASSPHRASE_FD=0) or as CARELEDGER_PASSPHRASE_FILE, or set them yourself: NODE_OPTIONS="${tuning.v8.join(' ')}" ${Object.entries(tuning.env).map(([k, v]) => `${k}=${v}`).join(' ')}\n`)
    return
  }
  const given = `${process.execArgv.join(' ')} ${env.NODE_OPTIONS ?? ''}`
  const v8 = tuning.v8.filter((f) => !given.includes(f.split('=')[0]!))
  const extraEnv = Object.fromEntries(Object.entries(tuning.env).filter(([k]) => env[k] === undefined))
  // The re-executed process loads its modules stripped in advance: no TypeScript stripper in it (gateway/js-cache.ts).
  const jsCache = prepareJsCache()
  const hook = jsCache ? [`--import=${pathToFileURL(JS_CACHE_HOOK).href}`] : []
  process.removeAllListeners('warning') // process.execve is experimental in Node 24: no warning line for it
  process.execve(process.execPath, [process.execPath, ...process.execArgv, ...v8, ...hook, ...process.argv.slice(1)], {
    ...env,
    ...extraEnv,
    ...(jsCache ? { [JS_CACHE_ENV]: jsCache } : {}),
    CARELEDGER_GATEWAY_TUNED: '1',
  })
}

function pick(obj: unknown, path: string): unknown {
  // Settings whose raw path differs from the typed config (MB/seconds conversions).
  const alias: Record<string, string> = { 'disk.budgetMb': 'disk.budgetBytes', 'disk.minFreeMb': 'disk.minFreeBytes', 'validation.maxFutureS': 'validation.maxFutureMs' }
  let cur: unknown = obj
  for (const k of (alias[path] ?? path).split('.')) cur = (cur as Record<string, unknown> | undefined)?.[k]
  return cur
}
