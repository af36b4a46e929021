/**
 * npm run bench:cloud-pg — bench:cloud §6 alone: the chain on PostgreSQL beside SQLite, cold
 * verify on both, and two chain processes on one PostgreSQL (bench/lib/cloud-pg.ts).
 */
import os from 'node:os'
import { mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { table } from './lib/measure.ts'
import { PG_TABLE_HEAD, pgRowsTable, pgSection } from './lib/cloud-pg.ts'

const log = (s: string): void => void process.stderr.write(`${s}\n`)
const scratch = mkdtempSync(join(os.tmpdir(), 'careledger-bench-pg-'))
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }))
log(`bench:cloud-pg on ${os.availableParallelism()}× ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)
const { rows, skipped } = await pgSection(log, scratch)
if (skipped) console.log(`PostgreSQL section skipped: ${skipped}`)
else {
  console.log(`PostgreSQL beside SQLite (one run; load average at the end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; the machine is shared: read CPU per record):`)
  console.log(table(PG_TABLE_HEAD, pgRowsTable(rows)))
}
