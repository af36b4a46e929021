/**
 * A real cloud as a separate process (`node bin/careledger.ts cloud start …`): start it, wait for
 * its "cloud ready" log line, kill it (SIGKILL or SIGTERM) and restart it on the same port and
 * data directory. Also: an in-process cloud on a free port for tests that need its handle, and a
 * snapshot of everything the cloud has stored (row counts of every table, files in blocks/) to
 * prove that a refused request stored nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { pino } from 'pino'
import { BIN, REPO, freePorts } from './gateway-process.ts'
import { loadCloudConfig } from '../../cloud/config.ts'
import { startCloud, type Cloud } from '../../cloud/runtime.ts'

export { careledger, freePorts, tempDataDir } from './gateway-process.ts'

export interface CloudProcessOptions {
  readonly dataDir: string
  /** Fixed port (kept across restarts); a free one is picked when omitted. */
  readonly port?: number
  /** Extra CLI flags, e.g. ['--block-interval-s', '0.2']. */
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

export class CloudProcess {
  readonly options: CloudProcessOptions
  readonly port: number
  /** Every JSON log line of every incarnation, in order. */
  readonly logs: LogLine[] = []
  /** Raw stdout of every incarnation (to search for what must never be logged). */
  stdout = ''
  stderr = ''
  child: ChildProcess | null = null
  #exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null
  #listeners = new Set<(l: LogLine) => void>()

  private constructor(options: CloudProcessOptions, port: number) {
    this.options = options
    this.port = port
  }

  static async start(options: CloudProcessOptions): Promise<CloudProcess> {
    const port = options.port ?? (await freePorts(1))[0]!
    const p = new CloudProcess(options, port)
    await p.#spawn()
    return p
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  get pid(): number {
    return this.child!.pid!
  }

  async #spawn(): Promise<void> {
    const { dataDir, args = [], env = {}, readyTimeoutMs = 20_000 } = this.options
    const child = spawn(process.execPath, [BIN, 'cloud', 'start', '--data', dataDir, '--host', '127.0.0.1', '--port', String(this.port), ...args], {
      cwd: REPO,
      env: { ...process.env, CARELEDGER_LOG_LEVEL: 'debug', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.child = child
    this.#exit = new Promise((ok) => child.once('exit', (code, signal) => ok({ code, signal })))
    let buf = ''
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk
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
      this.waitForLog((l) => l.event === 'cloud_ready', readyTimeoutMs),
      exit.then(({ code, signal }) => Promise.reject(new Error(`cloud exited (code ${code}, signal ${signal}) before it was ready:\n${this.stderr}`))),
    ])
  }

  /** Resolve with the first log line (from now on) matching `pred`. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    return new Promise((ok, fail) => {
      const t = setTimeout(() => {
        this.#listeners.delete(f)
        fail(new Error(`no matching cloud log line within ${timeoutMs} ms; stderr:\n${this.stderr}`))
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

  /** Start again on the same port and data directory (after kill or stop). */
  async restart(): Promise<void> {
    await this.kill('SIGKILL')
    await this.#spawn()
  }
}

/** An in-process cloud on a free port, quiet, sealing blocks every `blockIntervalS`. */
export async function startTestCloud(dataDir: string, flags: Record<string, string> = {}, env: Record<string, string | undefined> = {}): Promise<Cloud> {
  const { config } = loadCloudConfig({ data: dataDir, port: '0', blockIntervalS: '0.2', verifyIntervalS: '0', verifyWorkers: '1', ...flags }, env)
  return startCloud(config, { logger: pino({ level: 'silent' }) })
}

/** Row counts of every table of cloud.db and the files in blocks/: what "nothing stored" means. */
export function storedState(dataDir: string): Record<string, number> {
  const out: Record<string, number> = {}
  const db = new Database(join(dataDir, 'cloud.db'), { readonly: true })
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").pluck().all() as string[]
    for (const t of tables) out[t] = db.prepare(`SELECT count(*) FROM "${t}"`).pluck().get() as number
  } finally {
    db.close()
  }
  out['files:blocks'] = countFiles(join(dataDir, 'blocks'))
  return out
}

function countFiles(dir: string): number {
  if (!existsSync(dir)) return 0
  let n = 0
  for (const e of readdirSync(dir)) {
    const p = join(dir, e)
    n += statSync(p).isDirectory() ? countFiles(p) : 1
  }
  return n
}

/** Bearer-authenticated GET. */
export const getAs = (baseUrl: string, token: string | null, path: string, init: RequestInit = {}): Promise<Response> =>
  fetch(new URL(path, baseUrl), { ...init, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.headers as Record<string, string> | undefined) } })

/** A response's JSON body, for assertions (fetch types it as unknown). */
export const json = async (res: Response | Promise<Response>): Promise<any> => (await res).json()
