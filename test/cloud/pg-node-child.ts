/**
 * Child process of pg-failover.test.ts and bench/cloud-pg.ts: one cloud process's chain work on a
 * shared PostgreSQL database — bulk appends of its own gateways' batches as fast as it can, and
 * the sealer lease (sealing every `sealEveryMs` while it holds it). Reports on stdout, only after
 * the call returned (its transaction committed):
 *
 *   L acquired|lost                     the sealer lease
 *   R <id> <stream> <seq> <hash hex>    a record it was told is stored (status created)
 *   B <height> <hash hex> <first> <last> a block it sealed
 *   C <user µs> <system µs> <records>   its own CPU so far, after each bulk
 *
 * Usage: node pg-node-child.ts <url> <name> <sealEveryMs> [bulk=50] [maxRecords=∞] [workers=0]
 */
import { writeSync } from 'node:fs'
import { openPgChainStore } from '../../cloud/store/pg/chain-store.ts'
import { SealerLease } from '../../cloud/store/pg/sealer-lease.ts'
import { chainTestKeys, testFleet } from './chain-helpers.ts'

const [url, name, sealEvery = '500', bulkArg = '50', maxArg = 'Infinity', workersArg = '0'] = process.argv.slice(2)
if (!url || !name) throw new Error('usage: pg-node-child.ts <url> <name> <sealEveryMs> [bulk] [maxRecords] [workers]')
const bulk = Number(bulkArg)
const max = Number(maxArg)
/** Synchronous, so a line is out before the next call; a full pipe (EAGAIN) is waited out. */
const say = (line: string): void => {
  const bytes = Buffer.from(`${line}\n`)
  for (let off = 0; off < bytes.length; ) {
    try {
      off += writeSync(1, bytes, off)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2)
    }
  }
}

const keys = chainTestKeys('pg failover')
const store = await openPgChainStore(url, keys.store, { workers: Number(workersArg), processName: name })
const lease = new SealerLease({
  url,
  store,
  sealEveryMs: Number(sealEvery),
  retryMs: 200,
  onEvent: (event, detail) => {
    if (event === 'acquired' || event === 'lost') say(`L ${event}`)
    else if (event === 'sealed' && detail && 'height' in detail) say(`B ${detail.height} ${detail.hash} ${detail.firstRecord} ${detail.lastRecord}`)
  },
})
lease.start()
// SIGTERM: finish the bulk in hand, give the lease up, close (after maxRecords it only seals, until then).
let stopping = false
const stopped = new Promise<void>((ok) => process.once('SIGTERM', () => ok(void (stopping = true))))

const fleet = testFleet(4, 10, `pg-${name}`)
let made = 0
let records = 0
const t0 = process.cpuUsage()
while (records < max && !stopping) {
  const inputs = []
  for (let i = 0; i < bulk; i++) {
    const s = fleet[made % fleet.length]!
    inputs.push(s.batch(Math.floor(made / fleet.length))) // each stream's seqs in order: the links hold
    made++
  }
  const results = await store.appendBatches(inputs)
  for (const r of results) {
    if (r.status !== 'created') throw new Error(`unexpected ${r.status}`)
    say(`R ${r.record.id} ${r.record.stream} ${r.record.seq} ${r.record.commitment}`)
    records++
  }
  const cpu = process.cpuUsage(t0)
  say(`C ${cpu.user} ${cpu.system} ${records}`)
}
say('D')
await stopped
await lease.stop()
await store.close()
process.exit(0)
