/**
 * The append path's threads on GET /metrics (docs/operations.md §Cloud metrics): how many records'
 * commitments the pipelined append computed ahead and used, or had to recompute in the transaction
 * (their predicted id had shifted: duplicates or refusals in the queue), and append worker threads
 * retired after a failure — after which the event loop computes alone and the append rate halves.
 * Read at scrape time from the chain store's counters.
 */
import { Counter, type Registry } from 'prom-client'
import type { ChainStore } from '../chain/store.ts'
import { METRIC_PREFIX } from './metrics.ts'

/** A counter whose value is read from `value()` at scrape time (it only ever grows). */
function readCounter(registry: Registry, name: string, help: string, labels: readonly string[], value: () => Record<string, number>): void {
  new Counter({
    name: `${METRIC_PREFIX}${name}`,
    help,
    labelNames: labels,
    registers: [registry],
    collect() {
      this.reset()
      for (const [label, n] of Object.entries(value())) {
        if (labels.length > 0) this.inc({ [labels[0]!]: label }, n)
        else this.inc(n)
      }
    },
  })
}

export function registerAppendMetrics(registry: Registry, chain: ChainStore): void {
  readCounter(
    registry,
    'append_precomputed_total',
    'Records whose commitment the pipelined append computed on a worker ahead of the transaction: used, or recomputed in it (its id had shifted).',
    ['outcome'],
    () => chain.pipelineStats() as unknown as Record<string, number>,
  )
  readCounter(registry, 'append_workers_retired_total', 'ALERT when it grows: append worker threads retired after failing; their work now runs on the event loop.', [], () => ({
    retired: chain.appendThreadStats().retired,
  }))
}
