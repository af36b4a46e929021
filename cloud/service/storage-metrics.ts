/**
 * Storage gauges on GET /metrics (docs/operations.md §Cloud metrics): a SQLite cloud keeps the
 * envelope ciphertext in cloud.db (≈ 0.7 GB a day for a 20-bed ward sealed every 5 s), so the
 * database's size and the free space where it lives are what an operator watches. Read at scrape
 * time: a stat of each file and one statfs, no query.
 */
import { statfsSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { Gauge, type Registry } from 'prom-client'
import { METRIC_PREFIX } from './metrics.ts'

const sizeOf = (path: string): number => {
  try {
    return statSync(path).size
  } catch {
    return 0 // not there (yet): a -wal after a clean close
  }
}

export function registerStorageMetrics(registry: Registry, dbPath: string): void {
  const registers = [registry]
  new Gauge({
    name: `${METRIC_PREFIX}db_bytes`,
    help: 'Size of cloud.db and its -wal on disk (on SQLite it holds the envelope ciphertext too).',
    registers,
    collect() {
      this.set(sizeOf(dbPath) + sizeOf(`${dbPath}-wal`))
    },
  })
  const fs = (f: (s: ReturnType<typeof statfsSync>) => number) =>
    function (this: Gauge) {
      try {
        this.set(f(statfsSync(dirname(dbPath))))
      } catch {
        this.set(-1)
      }
    }
  new Gauge({ name: `${METRIC_PREFIX}data_free_bytes`, help: 'ALERT when low: bytes free to the cloud on the filesystem of its data directory (-1: unknown).', registers, collect: fs((s) => Number(s.bavail) * Number(s.bsize)) })
  new Gauge({ name: `${METRIC_PREFIX}data_size_bytes`, help: 'Size of the filesystem of the data directory (-1: unknown).', registers, collect: fs((s) => Number(s.blocks) * Number(s.bsize)) })
}
