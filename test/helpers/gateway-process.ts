/**
 * A real gateway as a separate process (`node bin/careledger.ts gateway start …`), for tests and
 * the bench: start it, wait for its "gateway ready" log line, kill it (SIGKILL or SIGTERM) and
 * restart it on the same ports and data directory. Also: free ports, a throw-away data directory,
 * and the CLI as a subprocess.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN, CareLedgerProcess, REPO } from './careledger-process.ts'
import { openGatewayDb } from '../../gateway/store/db.ts'
import { DeviceStore } from '../../gateway/store/devices.ts'

export { BIN, REPO, type LogLine } from './careledger-process.ts'

export interface Ports {
  readonly mqtt: number
  readonly mqtts: number
  readonly http: number
}

export interface GatewayProcessOptions {
  readonly dataDir: string
  /** Fixed ports (kept across restarts); free ones are picked when omitted. */
  readonly ports?: Ports
  /** Extra CLI flags, e.g. ['--disk-budget-mb', '2']. */
  readonly args?: readonly string[]
  readonly env?: Readonly<Record<string, string>>
  readonly readyTimeoutMs?: number
}

/** Ports nobody listens on right now (the OS hands them out; a tiny race is accepted in tests). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<import('node:net').Server>((ok) => {
      const s = createServer()
      s.listen(0, '127.0.0.1', () => ok(s))
    })),
  )
  const ports = servers.map((s) => (s.address() as { port: number }).port)
  await Promise.all(servers.map((s) => new Promise((ok) => s.close(ok))))
  return ports
}

/**
 * Enrol `count` devices `<prefix>-0 …` for patients `P-0 …` straight into the gateway's store (the
 * CLI would cost a process start per device); returns their credentials.
 */
export function enrolInStore(dataDir: string, count: number, prefix: string): Array<{ deviceId: string; secret: string }> {
  const { db } = openGatewayDb(dataDir)
  try {
    const store = new DeviceStore(db)
    return Array.from({ length: count }, (_, i) => ({ deviceId: `${prefix}-${i}`, secret: store.add(`${prefix}-${i}`, `P-${i}`).secret }))
  } finally {
    db.close()
  }
}

export function tempDataDir(label: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `careledger-${label}-`))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

export class GatewayProcess extends CareLedgerProcess {
  readonly options: GatewayProcessOptions
  readonly ports: Ports

  private constructor(options: GatewayProcessOptions, ports: Ports) {
    super('gateway', { CARELEDGER_LOG_LEVEL: 'info', ...options.env }, options.readyTimeoutMs)
    this.options = options
    this.ports = ports
  }

  static async start(options: GatewayProcessOptions): Promise<GatewayProcess> {
    let ports: Ports
    if (options.ports) ports = options.ports
    else {
      const [mqtt, mqtts, http] = await freePorts(3)
      ports = { mqtt: mqtt!, mqtts: mqtts!, http: http! }
    }
    const gw = new GatewayProcess(options, ports)
    await gw.spawn()
    return gw
  }

  get mqttUrl(): string {
    return `mqtt://127.0.0.1:${this.ports.mqtt}`
  }

  get mqttsUrl(): string {
    return `mqtts://127.0.0.1:${this.ports.mqtts}`
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.ports.http}`
  }

  protected startArgs(): readonly string[] {
    const { dataDir, args = [] } = this.options
    return [
      '--data', dataDir,
      '--mqtt-host', '127.0.0.1',
      '--mqtt-port', String(this.ports.mqtt),
      '--mqtts-port', String(this.ports.mqtts),
      '--http-port', String(this.ports.http),
      ...args,
    ]
  }
}

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Run `careledger …` as a subprocess. */
export function careledger(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<CliResult> {
  return new Promise((ok) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
    child.once('close', (code) => ok({ code, stdout, stderr }))
  })
}

/** Run the CLI; throw with its stderr unless it exits 0; return its stdout. */
export async function cli(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<string> {
  const r = await careledger(args, env)
  if (r.code !== 0) throw new Error(`careledger ${args.join(' ')} exited ${r.code}:\n${r.stderr || r.stdout}`)
  return r.stdout
}

export interface EnrolledDevice {
  readonly deviceId: string
  readonly secret: string
  readonly patientId: string
}

/** `careledger gateway device add <id> --patient <p> --json` */
export async function enrol(dataDir: string, deviceId: string, patientId: string): Promise<EnrolledDevice> {
  const r = await careledger(['gateway', 'device', 'add', deviceId, '--patient', patientId, '--json', '--data', dataDir])
  if (r.code !== 0) throw new Error(`enrolment of ${deviceId} failed (${r.code}): ${r.stderr}`)
  return JSON.parse(r.stdout) as EnrolledDevice
}

/** Resolves when an mqtt.js client's connection closes. */
export function closed(client: import('mqtt').MqttClient): Promise<void> {
  return new Promise((ok) => client.once('close', () => ok()))
}

/** A device connection for tests: mqtt.js, QoS 1, subscribed to its own errors topic. */
export interface TestDevice {
  readonly client: import('mqtt').MqttClient
  /** Every message received on the errors topic, parsed. */
  readonly errors: Array<{ seq: number | null; code: string; message: string }>
  /** Wait for the next errors-topic message satisfying `pred` (also looks at ones already received). */
  nextError(pred?: (e: { seq: number | null; code: string; message: string }) => boolean, timeoutMs?: number): Promise<{ seq: number | null; code: string; message: string }>
  /** Publish on the device's own readings topic (QoS 1); resolves on PUBACK. */
  publish(payload: unknown, topic?: string): Promise<void>
  end(): Promise<void>
}

export async function connectDevice(
  url: string,
  dev: { deviceId: string; secret: string },
  opts: { ca?: string; clientId?: string; subscribe?: boolean; reconnectPeriod?: number; clean?: boolean } = {},
): Promise<TestDevice> {
  const { default: mqtt } = await import('mqtt')
  const client = await mqtt.connectAsync(url, {
    protocolVersion: 4,
    clientId: opts.clientId ?? dev.deviceId,
    username: dev.deviceId,
    password: dev.secret,
    clean: opts.clean ?? true,
    reconnectPeriod: opts.reconnectPeriod ?? 0,
    connectTimeout: 5000,
    ...(opts.ca ? { ca: opts.ca } : {}),
  })
  const errors: TestDevice['errors'] = []
  const waiters = new Set<(e: TestDevice['errors'][number]) => boolean>()
  client.on('message', (_topic, payload) => {
    const e = JSON.parse(payload.toString()) as TestDevice['errors'][number]
    errors.push(e)
    for (const w of waiters) if (w(e)) waiters.delete(w)
  })
  if (opts.subscribe ?? true) await client.subscribeAsync(`careledger/v1/devices/${dev.deviceId}/errors`, { qos: 1 })
  return {
    client,
    errors,
    nextError(pred = () => true, timeoutMs = 5000) {
      const seen = errors.find(pred)
      if (seen) return Promise.resolve(seen)
      return new Promise((ok, fail) => {
        const t = setTimeout(() => {
          waiters.delete(w)
          fail(new Error(`no matching message on the errors topic within ${timeoutMs} ms (got ${JSON.stringify(errors)})`))
        }, timeoutMs)
        const w = (e: TestDevice['errors'][number]): boolean => {
          if (!pred(e)) return false
          clearTimeout(t)
          ok(e)
          return true
        }
        waiters.add(w)
      })
    },
    async publish(payload, topic = `careledger/v1/devices/${dev.deviceId}/readings`) {
      const body = typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload)
      await client.publishAsync(topic, body as string | Buffer, { qos: 1 })
    },
    async end() {
      await client.endAsync(true)
    },
  }
}
