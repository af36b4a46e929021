/**
 * A real, throw-away PostgreSQL server for tests and benchmarks: initdb into a temp directory,
 * pg_ctl start on a random port (TCP on 127.0.0.1, its unix socket in the same temp directory),
 * trust authentication for the role `careledger`, and `pg_ctl stop -m immediate` + removal at
 * the end. initdb refuses to run as root, so as root (CI) the server runs as the `postgres` user
 * through runuser, owning its temp directory.
 *
 * Binaries: $CARELEDGER_PG_BIN, else the newest /usr/lib/postgresql/<v>/bin (Debian's
 * `postgresql` package, installed by .ci/run), else initdb/pg_ctl on PATH. Without them,
 * `postgresUnavailable()` says why and the PostgreSQL tests are skipped (a newcomer's machine).
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll } from 'vitest'

export interface PostgresServer {
  /** postgres://careledger@127.0.0.1:<port>/postgres */
  readonly url: string
  readonly port: number
  /** A new empty database on this server; its URL. */
  createDatabase(name: string): Promise<string>
  /** The postmaster and its children (backends, checkpointer, …), for CPU accounting. */
  pids(): number[]
  stop(): Promise<void>
}

function binDir(): string | null {
  const env = process.env.CARELEDGER_PG_BIN
  if (env) return existsSync(join(env, 'initdb')) ? env : null
  const root = '/usr/lib/postgresql'
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(join(root, v, 'bin/initdb')))
      .sort((a, b) => Number(b) - Number(a))
    if (versions.length > 0) return join(root, versions[0]!, 'bin')
  }
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' })
  if (which.status === 0 && which.stdout.trim()) return join(which.stdout.trim(), '..')
  return null
}

/** Why PostgreSQL tests cannot run here, or null when they can. */
export function postgresUnavailable(): string | null {
  const bin = binDir()
  if (!bin) return 'PostgreSQL binaries not found (install Debian\'s `postgresql` package or set CARELEDGER_PG_BIN to the directory holding initdb and pg_ctl)'
  if (process.getuid?.() === 0) {
    const user = spawnSync('id', ['-u', 'postgres'])
    if (user.status !== 0) return 'running as root and there is no `postgres` user to run initdb as (initdb refuses root)'
  }
  return null
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer()
    s.once('error', fail)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => ok(port))
    })
  })
}

export async function startPostgres(): Promise<PostgresServer> {
  const why = postgresUnavailable()
  if (why) throw new Error(why)
  const bin = binDir()!
  const asRoot = process.getuid?.() === 0
  const dir = mkdtempSync(join(tmpdir(), 'careledger-pg-'))
  const data = join(dir, 'data')
  if (asRoot) execFileSync('chown', ['postgres:postgres', dir])
  else chmodSync(dir, 0o700)
  const run = (cmd: string, args: string[]): string => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args]
    return execFileSync(file as string, argv as string[], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  }
  run('initdb', ['-D', data, '-U', 'careledger', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions'])
  const port = await freePort()
  // fsync off: a test server's data is thrown away; the durability argument is PostgreSQL's own.
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100 -c shared_buffers=32MB`
  run('pg_ctl', ['-D', data, '-o', opts, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start'])
  const url = `postgres://careledger@127.0.0.1:${port}/postgres`
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    try {
      run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop'])
    } catch {
      // already gone
    }
    rmSync(dir, { recursive: true, force: true })
  }
  process.once('exit', () => void stop())
  return {
    url,
    port,
    async createDatabase(name: string): Promise<string> {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name ${name}: lower-case letters, digits and _ only`)
      const { default: pg } = await import('pg')
      const c = new pg.Client({ connectionString: url })
      await c.connect()
      try {
        await c.query(`CREATE DATABASE ${name}`)
      } finally {
        await c.end()
      }
      return `postgres://careledger@127.0.0.1:${port}/${name}`
    },
    pids(): number[] {
      const pidFile = join(data, 'postmaster.pid')
      if (!existsSync(pidFile)) return []
      const master = Number(readFileSync(pidFile, 'utf8').split('\n')[0])
      const out = [master]
      for (const p of readdirSync('/proc')) {
        if (!/^\d+$/.test(p)) continue
        try {
          const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
          const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
          if (ppid === master) out.push(Number(p))
        } catch {
          // exited meanwhile
        }
      }
      return out
    },
    stop,
  }
}

/**
 * The vitest fixture: one server for the test file, started in beforeAll and stopped in afterAll.
 * Returns a getter (null while skipped); `skip` is the reason PostgreSQL tests are skipped here,
 * printed once, or null.
 */
export function usePostgres(): { server: () => PostgresServer; skip: string | null } {
  const skip = postgresUnavailable()
  let server: PostgresServer | null = null
  if (skip) {
    console.warn(`[postgres] skipping the PostgreSQL tests: ${skip}`)
  } else {
    beforeAll(async () => {
      server = await startPostgres()
    }, 120_000)
    afterAll(async () => {
      await server?.stop()
    })
  }
  return {
    server: () => {
      if (!server) throw new Error('PostgreSQL is not running (see the skip reason)')
      return server
    },
    skip,
  }
}
