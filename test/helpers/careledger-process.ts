/**
 * What GatewayProcess and CloudProcess share: a `careledger <role> start …` child process whose
 * JSON log lines are collected, awaited ("… ready"), and which can be killed (SIGKILL, SIGTERM)
 * and restarted on the same ports and data directory. Children still running when the test
 * process exits are killed.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join, resolve } from 'node:path'
import { applyTestPassphrase } from './test-passphrase.ts'

// Benchmarks use these helpers outside vitest: their processes seal keys under the test passphrase too.
applyTestPassphrase()

export const REPO = resolve(import.meta.dirname, '../..')
export const BIN = join(REPO, 'bin/careledger.ts')

export interface LogLine {
  readonly level: number
  readonly msg: string
  readonly event?: string
  readonly [k: string]: unknown
}

export type Exit = { code: number | null; signal: NodeJS.Signals | null }

const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
})

export abstract class CareLedgerProcess {
  /** Every JSON log line of every incarnation, in order. */
  readonly logs: LogLine[] = []
  /** Raw stdout of every incarnation (to search for what must never be logged). */
  stdout = ''
  stderr = ''
  child: ChildProcess | null = null
  #exit: Promise<Exit> | null = null
  readonly #listeners = new Set<(l: LogLine) => void>()

  /** 'cloud' or 'gateway': the CLI role, and the name in messages. */
  protected readonly role: 'cloud' | 'gateway'
  /** Added to process.env at every start. */
  protected readonly spawnEnv: Readonly<Record<string, string>>
  protected readonly readyTimeoutMs: number

  constructor(role: 'cloud' | 'gateway', spawnEnv: Readonly<Record<string, string>>, readyTimeoutMs = 20_000) {
    this.role = role
    this.spawnEnv = spawnEnv
    this.readyTimeoutMs = readyTimeoutMs
  }

  /** Arguments after `careledger <role> start`. */
  protected abstract startArgs(): readonly string[]

  get pid(): number {
    return this.child!.pid!
  }

  protected async spawn(): Promise<void> {
    const child = spawn(process.execPath, [BIN, this.role, 'start', ...this.startArgs()], {
      cwd: REPO,
      env: { ...process.env, ...this.spawnEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
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
      this.waitForLog((l) => l.event === `${this.role}_ready`, this.readyTimeoutMs),
      exit.then(({ code, signal }) => Promise.reject(new Error(`${this.role} exited (code ${code}, signal ${signal}) before it was ready:\n${this.stderr}`))),
    ])
  }

  /** Resolve with the first log line (from now on) matching `pred`. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    return new Promise((ok, fail) => {
      const t = setTimeout(() => {
        this.#listeners.delete(f)
        fail(new Error(`no matching ${this.role} log line within ${timeoutMs} ms; stderr:\n${this.stderr}`))
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
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<Exit> {
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return (await this.#exit)!
    process.kill(child.pid!, signal)
    return this.#exit!
  }

  /** Graceful stop (SIGTERM). */
  stop(): Promise<Exit> {
    return this.kill('SIGTERM')
  }

  /** Start again on the same ports and data directory (after kill or stop). */
  async restart(): Promise<void> {
    await this.kill('SIGKILL')
    await this.spawn()
  }
}
