/**
 * A real cloud as a separate process (`node bin/careledger.ts cloud start …`): start it, wait for
 * its "cloud ready" log line, kill it (SIGKILL or SIGTERM) and restart it on the same port and
 * data directory. Also: an in-process cloud on a free port for tests that need its handle, and a
 * snapshot of everything the cloud has stored (row counts of every table, files in blocks/) to
 * prove that a refused request stored nothing.
 */
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { pino } from 'pino'
import { freePorts } from './gateway-process.ts'
import { CareLedgerProcess } from './careledger-process.ts'
import { loadCloudConfig } from '../../cloud/config.ts'
import { startCloud, type Cloud } from '../../cloud/runtime.ts'

export { careledger, cli, freePorts, tempDataDir } from './gateway-process.ts'

export interface CloudProcessOptions {
  readonly dataDir: string
  /** Fixed port (kept across restarts); a free one is picked when omitted. */
  readonly port?: number
  /** Extra CLI flags, e.g. ['--block-interval-s', '0.2']. */
  readonly args?: readonly string[]
  readonly env?: Readonly<Record<string, string>>
  readonly readyTimeoutMs?: number
}

export type { LogLine } from './careledger-process.ts'

export class CloudProcess extends CareLedgerProcess {
  readonly options: CloudProcessOptions
  readonly port: number

  private constructor(options: CloudProcessOptions, port: number) {
    super('cloud', { CARELEDGER_LOG_LEVEL: 'debug', ...options.env }, options.readyTimeoutMs)
    this.options = options
    this.port = port
  }

  static async start(options: CloudProcessOptions): Promise<CloudProcess> {
    const port = options.port ?? (await freePorts(1))[0]!
    const p = new CloudProcess(options, port)
    await p.spawn()
    return p
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  protected startArgs(): readonly string[] {
    return ['--data', this.options.dataDir, '--host', '127.0.0.1', '--port', String(this.port), ...(this.options.args ?? [])]
  }
}

/** An in-process cloud on a free port, quiet, sealing blocks every `blockIntervalS`. */
export async function startTestCloud(dataDir: string, flags: Record<string, string> = {}, env: Record<string, string | undefined> = {}): Promise<Cloud> {
  const { config } = loadCloudConfig({ data: dataDir, port: '0', blockIntervalS: '0.2', verifyIntervalS: '0', verifyWorkers: '1', ...flags }, env)
  return startCloud(config, { logger: pino({ level: 'silent' }), env: { ...process.env, ...env } })
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
