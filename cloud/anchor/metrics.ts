/**
 * Anchoring on GET /metrics (docs/operations.md §Cloud metrics): gauges read from the anchor
 * service's status at scrape time (on PostgreSQL, from the shared rows), in the cloud's registry, prefix `careledger_cloud_anchor_`.
 */
import { Gauge, type Registry } from 'prom-client'
import { METRIC_PREFIX } from '../service/metrics.ts'
import type { AnchorServiceStatus } from './service.ts'

export function registerAnchorMetrics(registry: Registry, status: () => Promise<AnchorServiceStatus>): void {
  const p = `${METRIC_PREFIX}anchor_`
  const registers = [registry]
  const gauge = (name: string, help: string, value: (s: AnchorServiceStatus) => number, labelNames: readonly string[] = []) =>
    new Gauge({
      name: `${p}${name}`,
      help,
      labelNames,
      registers,
      async collect() {
        this.set(value(await status()))
      },
    })
  gauge('height', 'Height of the newest chain block anchored with enough confirmations (-1: none yet).', (s) => s.latest?.height ?? -1)
  gauge('lag_blocks', 'Blocks sealed since the newest confirmed anchor (-1: no anchor yet).', (s) => s.lagBlocks ?? -1)
  gauge('confirmations', 'Confirmations of the anchor in flight, else of the newest confirmed anchor (its count when it was confirmed).', (s) => (s.pending ?? s.latest)?.confirmations ?? 0)
  gauge('pending', '1 while an anchor transaction is in flight.', (s) => (s.pending ? 1 : 0))
  gauge('ok', 'ALERT when 0 for long: 1 if the last anchoring step reached the RPC and the setup is right, or another process anchors (standby, PostgreSQL).', (s) => (s.state === 'ok' || s.state === 'waiting-fee' || s.state === 'standby' ? 1 : 0))
  gauge('behind', 'ALERT when 1: the contract holds an anchor above this chain\'s head (rolled back?).', (s) => (s.state === 'behind' ? 1 : 0))
  gauge('consecutive_failures', 'Anchoring steps failed in a row (RPC down, slow or erroring, or a misconfiguration).', (s) => s.consecutiveFailures)
  gauge('rpc_failures', 'Anchoring steps that failed on the RPC since start.', (s) => s.rpcFailures)
  gauge('last_confirmed_timestamp_seconds', 'When the newest anchor reached its confirmations (0: never).', (s) => (s.latest?.confirmedAt ?? 0) / 1000)
  new Gauge({
    name: `${p}steps`,
    help: 'Anchoring steps since start, by outcome: sent, resent (a dropped transaction broadcast again), replaced (higher fees), reorged, confirmed, failed, …',
    labelNames: ['outcome'] as const,
    registers,
    async collect() {
      for (const [outcome, n] of Object.entries((await status()).outcomes)) this.set({ outcome }, n ?? 0)
    },
  })
}
