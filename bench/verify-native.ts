/**
 * `careledger chain verify` cold, with the native ristretto255 addon (native/ristretto,
 * `npm run build:native`) and without it (CARELEDGER_NO_RISTRETTO_NATIVE=1), alternated run by
 * run: records/s and CPU per record (user + system of the whole process, all threads, by
 * /usr/bin/time) with the load average at each run. The machine may be shared: CPU per record is
 * the figure to compare; records/s rises with the cores a run gets.
 *
 * The chain (BENCH_VERIFY_RECORDS, default 20,000 records, blocks of 1,000, as bench:cloud §3
 * builds it) is built once and kept in .careledger/bench-verify-native. BENCH_RUNS (default 3)
 * runs per case; BENCH_BATCH_SIZES (default "1024") the --batch-size values; BENCH_WORKERS
 * (default: the CLI's default) its --workers. Run: npm run bench:verify-native
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { encodeChameleonPublicKey } from '../shared/crypto/chameleon.ts'
import { ristrettoBatchLibrary } from '../shared/crypto/ristretto-native.ts'
import { openCloudDb } from '../cloud/store/db.ts'
import { ChainStore } from '../cloud/chain/store.ts'
import { DEFAULT_BATCH_SIZE } from '../cloud/chain/verify.ts'
import { chainTestKeys, testFleet } from '../test/cloud/chain-helpers.ts'

const ROOT = join(import.meta.dirname, '..')
const RECORDS = Number(process.env.BENCH_VERIFY_RECORDS ?? 20_000)
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const SIZES = (process.env.BENCH_BATCH_SIZES ?? String(DEFAULT_BATCH_SIZE)).split(',').map(Number)
const WORKERS = process.env.BENCH_WORKERS
const dir = join(ROOT, '.careledger', 'bench-verify-native')
const chain = join(dir, `chain-${RECORDS}.db`)
const keys = chainTestKeys('bench verify native')

if (ristrettoBatchLibrary() !== 'curve25519-dalek') console.log('note: the addon is not built here (npm run build:native): both cases run on noble')

if (!existsSync(chain)) {
  mkdirSync(dir, { recursive: true })
  const building = `${chain}.building`
  rmSync(building, { force: true })
  const db = openCloudDb(building)
  const store = new ChainStore(db, keys.store)
  const fleet = testFleet(8, 25, 'verify chain')
  for (let seq = 0, n = 0; n < RECORDS; seq++) {
    const batches = fleet.slice(0, Math.min(fleet.length, RECORDS - n)).map((s) => s.batch(seq))
    store.appendBatches(batches)
    n += batches.length
    if (n % 1000 === 0 || n === RECORDS) store.sealBlock(1_760_000_000_000 + seq * 5000)
  }
  await store.close()
  db.pragma('wal_checkpoint(TRUNCATE)')
  db.close()
  renameSync(building, chain)
}
const keyFile = join(dir, 'chameleon-public.key')
writeFileSync(keyFile, encodeChameleonPublicKey(keys.chameleon.publicKey))

const cli = (env: Record<string, string>, batchSize: number) =>
  spawnSync(
    '/usr/bin/time',
    ['-f', '%U %S', process.execPath, join(ROOT, 'bin', 'careledger.ts'), 'chain', 'verify', '--db', chain, '--chameleon-key', keyFile, '--signing-key', Buffer.from(keys.signing.publicKey).toString('hex'), '--json', '--skip-envelopes', '--batch-size', String(batchSize), ...(WORKERS ? ['--workers', WORKERS] : [])],
    { encoding: 'utf8', env: { ...process.env, ...env } },
  )

const CASES = [
  ['addon', { CARELEDGER_NO_RISTRETTO_NATIVE: '' }],
  ['noble', { CARELEDGER_NO_RISTRETTO_NATIVE: '1' }],
] as const
const results = new Map<string, { rate: number; cpu: number }[]>()
cli({}, SIZES[0]!) // fills Node's compile cache: every run below is a "later run"
console.log(`chain verify, cold process, ${RECORDS.toLocaleString('en')} records, workers ${WORKERS ?? 'default'}; ${os.cpus().length} cores`)
for (let r = 0; r < RUNS; r++) {
  for (const size of SIZES) {
    for (const [label, env] of CASES) {
      const load = os.loadavg()[0]!.toFixed(1)
      const t0 = performance.now()
      const run = cli(env, size)
      const ms = performance.now() - t0
      if (run.status !== 0) throw new Error(`careledger chain verify exited ${run.status}: ${run.stderr}`)
      const report = JSON.parse(run.stdout) as { records: number }
      const [user, sys] = run.stderr.trim().split('\n').at(-1)!.split(' ').map(Number)
      const cpu = ((user! + sys!) * 1000) / report.records
      const rate = (report.records / ms) * 1000
      const key = `${label}, batch ${size}`
      results.set(key, [...(results.get(key) ?? []), { rate, cpu }])
      console.log(`  run ${r + 1} ${key.padEnd(20)} ${Math.round(rate).toLocaleString('en').padStart(7)} records/s  ${cpu.toFixed(3)} CPU ms/record  (${ms.toFixed(0)} ms wall, load ${load})`)
    }
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
console.log('medians:')
for (const [key, rs] of results) console.log(`  ${key.padEnd(20)} ${Math.round(median(rs.map((x) => x.rate))).toLocaleString('en').padStart(7)} records/s  ${median(rs.map((x) => x.cpu)).toFixed(3)} CPU ms/record`)
