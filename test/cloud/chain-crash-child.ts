/**
 * Child process of chain-crash.test.ts: appends and seals forever on a chain database, the way the
 * service would, and reports on stdout — synchronously, only after the call returned, i.e. after
 * its transaction committed — every record and block it was told about:
 *
 *   R <id> <stream> <seq> <chameleon hash hex> <created|duplicate>
 *   B <height> <block hash hex> <first> <last>
 *   S append|bulk|seal … E      before and after each call (so the parent knows where a kill landed)
 *
 * On start it resumes every stream where the database says it ended, and first re-sends the last
 * stored batch of each (a gateway that never got its answer retries: must be a duplicate).
 * Usage: node chain-crash-child.ts <db> <seed>
 */
import { writeSync } from 'node:fs'
import { openCloudDb } from '../../cloud/store/db.ts'
import { ChainStore, type BulkAppendResult } from '../../cloud/chain/store.ts'
import { chainTestKeys, testFleet, type TestStream } from './chain-helpers.ts'

const [dbPath, seed = '1'] = process.argv.slice(2)
if (!dbPath) throw new Error('usage: chain-crash-child.ts <db> <seed>')

const db = openCloudDb(dbPath)
const keys = chainTestKeys('crash test')
const store = new ChainStore(db, keys.store, { workers: 1, parallelThreshold: 4 })
const fleet = testFleet(2, 5, 'crash')
let rnd = Number(seed) * 2654435761 >>> 0
const random = (): number => ((rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0) / 2 ** 32)

const next = new Map<TestStream, number>()
for (const s of fleet) {
  const last = store.getStream(s.id)?.lastSeq ?? -1
  for (let seq = 0; seq <= last; seq++) s.manifest(seq) // rebuild the commitments for the links
  next.set(s, last + 1)
}

const say = (line: string): void => void writeSync(1, `${line}\n`)
const report = (r: BulkAppendResult): void => {
  switch (r.status) {
    case 'created':
    case 'duplicate':
      return say(`R ${r.record.id} ${r.record.stream} ${r.record.seq} ${r.record.commitment} ${r.status}`)
    case 'rejected':
      throw r.error
    case 'conflict':
      throw new Error(`unexpected conflict at ${r.existing.stream}#${r.existing.seq}`)
  }
}

// The retry of an unanswered upload.
for (const s of fleet) {
  const seq = next.get(s)! - 1
  if (seq >= 0) {
    const r = store.appendBatch(s.batch(seq))
    if (r.status !== 'duplicate') throw new Error(`re-sent ${s.id}#${seq} was ${r.status}`)
    report(r)
  }
}
say('READY')

for (;;) {
  const x = random()
  if (x < 0.45) {
    const s = fleet[Math.floor(random() * fleet.length)]!
    const seq = next.get(s)!
    const input = s.batch(seq)
    say('S append')
    report(store.appendBatch(input))
    next.set(s, seq + 1)
  } else if (x < 0.85) {
    const inputs = []
    for (let i = 0; i < 12; i++) {
      const s = fleet[Math.floor(random() * fleet.length)]!
      const seq = next.get(s)!
      inputs.push(s.batch(seq))
      next.set(s, seq + 1)
    }
    say('S bulk')
    for (const r of store.appendBatches(inputs)) report(r)
  } else {
    say('S seal')
    const b = store.sealBlock(Date.now())
    if (b) say(`B ${b.height} ${b.hash} ${b.firstRecord} ${b.lastRecord}`)
  }
  say('E')
}
