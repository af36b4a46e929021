/**
 * A real gateway as a separate process (`node bin/careledger.ts gateway start …`), for tests and
 * the bench: start it, wait for its "gateway ready" log line, kill it (SIGKILL or SIGTERM) and
 * restart it on the same ports and data directory. Also: free ports, a throw-away data directory,
 * and the CLI as a subprocess.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

export const REPO = resolve(import.meta.dirname, '../..')
export const BIN = join(REPO, 'bin/careledger.ts')

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

export interface LogLine {
  readonly level: number
  readonly msg: string
  readonly event?: string
  readonly [k: string]: unknown
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

export function tempDataDir(label: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `careledger-${label}-`))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Children still running when this process exits (normally or by an uncaught error) are killed. */
const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
})

export class GatewayProcess {
  readonly options: GatewayProcessOptions
  readonly ports: Ports
  /** Every JSON log line of every incarnation, in order. */
  readonly logs: LogLine[] = []
  stderr = ''
  child: ChildProcess | null = null
  #exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null
  #listeners = new Set<(l: LogLine) => void>()

  private constructor(options: GatewayProcessOptions, ports: Ports) {
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
    await gw.#spawn()
    return gw
  }

  get pid(): number {
    return this.child!.pid!
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

  async #spawn(): Promise<void> {
    const { dataDir, args = [], env = {}, readyTimeoutMs = 20_000 } = this.options
    const child = spawn(
      process.execPath,
      [
        BIN, 'gateway', 'start',
        '--data', dataDir,
        '--mqtt-host', '127.0.0.1',
        '--mqtt-port', String(this.ports.mqtt),
        '--mqtts-port', String(this.ports.mqtts),
        '--http-port', String(this.ports.http),
        ...args,
      ],
      { cwd: REPO, env: { ...process.env, CARELEDGER_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    this.child = child
    live.add(child)
    this.#exit = new Promise((ok) =>
      child.once('exit', (code, signal) => {
        live.delete(child)
        ok({ code, signal })
      }),
    )
    let buf = ''
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        try {
          const parsed = JSON.parse(line) as LogLine
          this.logs.push(parsed)
          for (const f of this.#listeners) f(parsed)
        } catch {
          this.stderr += `${line}\n`
        }
      }
    })
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (this.stderr += c))
    const exit = this.#exit
    await Promise.race([
      this.waitForLog((l) => l.event === 'gateway_ready', readyTimeoutMs),
      exit.then(({ code, signal }) => Promise.reject(new Error(`gateway exited (code ${code}, signal ${signal}) before it was ready:\n${this.stderr}`))),
    ])
  }

  /** Resolve with the first log line (from now on) matching `pred`. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    return new Promise((ok, fail) => {
      const t = setTimeout(() => {
        this.#listeners.delete(f)
        fail(new Error(`no matching gateway log line within ${timeoutMs} ms; stderr:\n${this.stderr}`))
      }, timeoutMs)
      const f = (l: LogLine): void => {
        if (!pred(l)) return
        clearTimeout(t)
        this.#listeners.delete(f)
        ok(l)
      }
      this.#listeners.add(f)
    })
  }

  /** Send a signal to this process (by pid) and wait for it to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return (await this.#exit)!
    process.kill(child.pid!, signal)
    return this.#exit!
  }

  /** Graceful stop (SIGTERM). */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.kill('SIGTERM')
  }

  /** Start again on the same ports and data directory (after kill or stop). */
  async restart(): Promise<void> {
    await this.kill('SIGKILL')
    await this.#spawn()
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
