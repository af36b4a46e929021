/**
 * bench:cloud §6 — the chain on PostgreSQL beside SQLite (issue 14, "beyond one machine"), on a
 * real PostgreSQL 15 server the bench starts itself (test/helpers/postgres.ts; fsync off, as in the
 * tests: this measures CareLedger's work, not the disk):
 *
 *   a. append in this process: appendBatches in bulks of 500, a block every 1,000 records, on a
 *      fresh SQLite file (WAL, synchronous=FULL) and on a fresh PostgreSQL database
 *   b. cold `careledger chain verify` as a new process: --db (SQLite) and --database (PostgreSQL:
 *      a REPEATABLE READ snapshot copied into a temporary SQLite file, then the same verifier)
 *   c. two chain processes (test/cloud/pg-node-child.ts) appending to one PostgreSQL at once, one
 *      of them holding the sealer lease, against one such process alone
 *   d. over HTTP: 8 gateways sending bulks into one, then two `careledger cloud start --database`
 *      processes on one PostgreSQL (BENCH_PG_HTTP_RECORDS, default 4,000; 0 skips it)
 *
 * CPU per record counts every process doing the work: this one or the children (/proc/<pid>/stat,
 * or bash `times` for the cold verifier) AND the PostgreSQL server — postmaster, live backends
 * (utime + stime) and the backends already exited (the postmaster's cutime + cstime).
 * BENCH_PG=0 skips it; BENCH_PG_RECORDS (10,000) sets the chain size.
 */
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { openCloudDb } from '../../cloud/store/db.ts'
import { ChainStore } from '../../cloud/chain/store.ts'
import { SqliteChainBackend, type ChainBackend } from '../../cloud/store/chain-backend.ts'
import { openPgChainStore } from '../../cloud/store/pg/chain-store.ts'
import { encodeChameleonPublicKey } from '../../shared/crypto/chameleon.ts'
import { chainTestKeys, testFleet } from '../../test/cloud/chain-helpers.ts'
import { postgresUnavailable, startPostgres, type PostgresServer } from '../../test/helpers/postgres.ts'
import { BIN, REPO } from '../../test/helpers/careledger-process.ts'
import { writeFileSync } from 'node:fs'
import type { AppendInput } from '../../cloud/chain/record.ts'
import { cpSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { bytesToHex } from '@noble/hashes/utils.js'
import { encodeCanonical } from '../../shared/encoding/canonical.ts'
import { CloudProcess } from '../../test/helpers/cloud-process.ts'
import { cli } from '../../test/helpers/system.ts'
import { makeItems, post, type Item } from './append-http.ts'
import type { TestStream } from '../../test/cloud/chain-helpers.ts'

const TICK_MS = 10 // CLK_TCK = 100 on Linux
const CHILD = join(REPO, 'test/cloud/pg-node-child.ts')

/** utime + stime (+ cutime + cstime when `children`) of a pid, ms; 0 when it is gone. */
function procCpuMs(pid: number, children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const t = Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0)
    return t * TICK_MS
  } catch {
    return 0
  }
}

/** The PostgreSQL server's CPU so far (ms): every live process, plus the backends that have exited. */
function serverCpuMs(pg: PostgresServer): number {
  const [master, ...rest] = pg.pids()
  if (master === undefined) return 0
  return procCpuMs(master, true) + rest.reduce((s, p) => s + procCpuMs(p), 0)
}

export interface PgBenchRow {
  readonly label: string
  readonly records: number
  readonly ms: number
  /** CareLedger process(es) CPU, ms. */
  readonly cpuMs: number
  /** PostgreSQL server CPU, ms (0 for SQLite). */
  readonly serverCpuMs: number
}

function uploads(n: number, seed: string): AppendInput[] {
  const fleet = testFleet(8, 25, seed)
  return Array.from({ length: n }, (_, i) => fleet[i % fleet.length]!.batch(Math.floor(i / fleet.length)))
}

async function appendCase(label: string, store: ChainBackend, inputs: AppendInput[], pg: PostgresServer | null): Promise<PgBenchRow> {
  const s0 = pg ? serverCpuMs(pg) : 0
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < inputs.length; i += 500) {
    await store.appendBatches(inputs.slice(i, i + 500))
    if ((i + 500) % 1000 === 0) await store.sealBlock(Date.now())
  }
  await store.sealBlock(Date.now())
  const ms = performance.now() - t0
  const c = process.cpuUsage(c0)
  return { label, records: inputs.length, ms, cpuMs: (c.user + c.system) / 1000, serverCpuMs: pg ? serverCpuMs(pg) - s0 : 0 }
}

function coldVerify(label: string, args: string[], records: number, pg: PostgresServer | null): PgBenchRow {
  const s0 = pg ? serverCpuMs(pg) : 0
  const t0 = performance.now()
  // bash `times`: the CPU of the children it waited for (the cold verifier and its threads).
  const r = spawnSync('bash', ['-c', `"$0" "$@" >/dev/null; rc=$?; times; exit $rc`, process.execPath, BIN, 'chain', 'verify', '--skip-envelopes', ...args], { encoding: 'utf8', cwd: REPO })
  const ms = performance.now() - t0
  if (r.status !== 0) throw new Error(`${label}: chain verify exited ${r.status}: ${r.stderr}`)
  const m = /\n(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(r.stdout)
  const cpuMs = m ? (Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000 : Number.NaN
  return { label, records, ms, cpuMs, serverCpuMs: pg ? serverCpuMs(pg) - s0 : 0 }
}

/** `processes` chain processes on one database, each appending `each` records (workers each), sealer lease among them. */
async function processesCase(label: string, url: string, processes: number, each: number, workers: number, pg: PostgresServer): Promise<PgBenchRow> {
  const s0 = serverCpuMs(pg)
  const t0 = performance.now()
  const kids = Array.from({ length: processes }, (_, i) => spawn(process.execPath, [CHILD, url, `bench-${label.length}-${i}`, '1000', '500', String(each), String(workers)], { stdio: ['ignore', 'pipe', 'inherit'] }))
  const exits = kids.map((k) => new Promise<number | null>((ok) => k.once('exit', (code) => ok(code))))
  const cpu = await Promise.all(
    kids.map(
      (k, i) =>
        new Promise<number>((ok, fail) => {
          let buf = ''
          let done = false
          void exits[i]!.then((code) => done || fail(new Error(`${label}: child exited ${code} before it finished`)))
          k.stdout!.setEncoding('utf8').on('data', (d: string) => {
            buf = (buf + d).slice(-4096)
            if (!done && /(^|\n)D\n/.test(buf)) {
              done = true
              ok(procCpuMs(k.pid!)) // before it exits: its own CPU, threads included
            }
          })
        }),
    ),
  )
  const ms = performance.now() - t0
  const server = serverCpuMs(pg) - s0
  for (const k of kids) k.kill('SIGTERM')
  await Promise.all(exits)
  return { label, records: processes * each, ms, cpuMs: cpu.reduce((a, b) => a + b, 0), serverCpuMs: server }
}

/**
 * `clouds` × `careledger cloud start --database` on one PostgreSQL and one shared blockstore,
 * 8 gateways split between them sending POST /v1/batches/bulk of 200 at once (as §5 does for one
 * SQLite cloud); CPU of every cloud process and of the PostgreSQL server.
 */
async function httpCase(label: string, url: string, clouds: number, records: number, pg: PostgresServer): Promise<PgBenchRow> {
  const root = mkdtempSync(join(os.tmpdir(), 'careledger-bench-pg-http-'))
  const procs: CloudProcess[] = []
  try {
    const fleet = testFleet(8, 25, `bench pg http ${clouds}`)
    const gateways = [...new Set(fleet.map((s) => s.gateway))]
    const items = await makeItems(fleet, new Map<TestStream, string | null>(), records, new Map())
    const args = ['--database', url, '--blocks', join(root, 'blocks'), '--block-interval-s', '2', '--verify-interval-s', '0']
    for (let i = 0; i < clouds; i++) {
      const dir = join(root, `cloud-${i}`)
      if (i > 0) for (const d of ['keys', 'regulator']) cpSync(join(root, 'cloud-0', d), join(dir, d), { recursive: true })
      procs.push(await CloudProcess.start({ dataDir: dir, env: { CARELEDGER_LOG_LEVEL: 'info' }, args, readyTimeoutMs: 120_000 }))
    }
    // Gateways are enrolled once in the shared database, each with the process it will upload to.
    for (const [g, gw] of gateways.entries()) {
      const { token } = JSON.parse(await cli(['cloud', 'gateway', 'invite', '--name', `ward-${g}`, '--json', '--database', url])) as { token: string }
      const res = await fetch(`${procs[g % procs.length]!.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, publicKey: bytesToHex(gw.publicKey), name: `ward-${g}` }) })
      if (!res.ok) throw new Error(`registering ward-${g}: HTTP ${res.status} ${await res.text()}`)
    }
    const cpu = () => procs.reduce((t, p) => t + procCpuMs(p.pid), 0)
    const s0 = serverCpuMs(pg)
    const c0 = cpu()
    const t0 = performance.now()
    let created = 0
    await Promise.all(
      gateways.map(async (gw, g) => {
        const mine = items.filter((it: Item) => it.stream.gateway === gw)
        const target = procs[g % procs.length]!.url
        for (let i = 0; i < mine.length; i += 200) {
          const answer = (await post(target, gw, '/v1/batches/bulk', encodeCanonical({ batches: mine.slice(i, i + 200).map((it) => it.body) }))) as { results: { status: number }[] }
          created += answer.results.filter((r) => r.status === 201).length
        }
      }),
    )
    const ms = performance.now() - t0
    const row = { label, records, ms, cpuMs: cpu() - c0, serverCpuMs: serverCpuMs(pg) - s0 }
    if (created !== records) throw new Error(`${label}: ${created} of ${records} created`)
    return row
  } finally {
    for (const p of procs) await p.stop()
    rmSync(root, { recursive: true, force: true })
  }
}

export async function pgSection(log: (s: string) => void, scratch: string): Promise<{ rows: PgBenchRow[]; skipped: string | null }> {
  const why = postgresUnavailable()
  if (why) return { rows: [], skipped: why }
  const n = Number(process.env.BENCH_PG_RECORDS ?? 10_000)
  const keys = chainTestKeys('pg failover') // the children's keys, so that one `chain verify` checks all
  const pubDir = scratch
  writeFileSync(join(pubDir, 'chameleon.pub'), encodeChameleonPublicKey(keys.chameleon.publicKey))
  const signing = Buffer.from(keys.signing.publicKey).toString('hex')
  const pg = await startPostgres()
  const rows: PgBenchRow[] = []
  try {
    const inputs = uploads(n, 'pg-bench')
    log(`  §6 append ${n} records on SQLite…`)
    const dbPath = join(scratch, 'pg-compare.db')
    const sqlite = new SqliteChainBackend(new ChainStore(openCloudDb(dbPath), keys.store), { closeDb: true })
    rows.push(await appendCase('append, SQLite (bulk ×500, + 1 worker)', sqlite, inputs, null))
    await sqlite.close()
    log(`  §6 append ${n} records on PostgreSQL…`)
    const url = await pg.createDatabase('bench_append')
    const store = await openPgChainStore(url, keys.store)
    rows.push(await appendCase('append, PostgreSQL (bulk ×500, + 1 worker)', store, inputs, pg))
    await store.close()
    log('  §6 cold chain verify…')
    rows.push(coldVerify('cold `chain verify --db`, SQLite', ['--db', dbPath, '--chameleon-key', join(pubDir, 'chameleon.pub'), '--signing-key', signing], n, null))
    rows.push(coldVerify('cold `chain verify --database`, PostgreSQL', ['--database', url, '--chameleon-key', join(pubDir, 'chameleon.pub'), '--signing-key', signing], n, pg))
    log('  §6 chain processes on one PostgreSQL…')
    const one = await pg.createDatabase('bench_one')
    rows.push(await processesCase('1 process (+ 1 worker), sealer', one, 1, n, 1, pg))
    const two = await pg.createDatabase('bench_two')
    rows.push(await processesCase('2 processes (no workers), one sealing', two, 2, Math.floor(n / 2), 0, pg))
    rows.push(coldVerify('  … then cold `chain verify --database` of that chain', ['--database', two, '--chameleon-key', join(pubDir, 'chameleon.pub'), '--signing-key', signing], 2 * Math.floor(n / 2), pg))
    const httpRecords = Number(process.env.BENCH_PG_HTTP_RECORDS ?? 4000)
    if (httpRecords > 0) {
      log('  §6 over HTTP: one, then two `cloud start --database` on one PostgreSQL…')
      rows.push(await httpCase('HTTP bulk ×200, 8 gateways → 1 cloud on PostgreSQL', await pg.createDatabase('bench_http_one'), 1, httpRecords, pg))
      rows.push(await httpCase('HTTP bulk ×200, 8 gateways → 2 clouds on one PostgreSQL', await pg.createDatabase('bench_http_two'), 2, httpRecords, pg))
    }
  } finally {
    await pg.stop()
  }
  return { rows, skipped: null }
}

export function pgRowsTable(rows: readonly PgBenchRow[]): string[][] {
  return rows.map((r) => [
    r.label,
    r.records.toLocaleString('en-US'),
    Math.round((r.records / r.ms) * 1000).toLocaleString('en-US'),
    (r.cpuMs / r.records).toFixed(3),
    (r.serverCpuMs / r.records).toFixed(3),
    ((r.cpuMs + r.serverCpuMs) / r.records).toFixed(3),
    ((r.cpuMs + r.serverCpuMs) / r.ms).toFixed(2),
  ])
}

export const PG_TABLE_HEAD = ['case', 'records', 'records/s', 'CareLedger CPU ms/rec', 'PostgreSQL CPU ms/rec', 'total CPU ms/rec', 'cores got']
