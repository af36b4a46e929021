/**
 * A cloud process's part in a chain shared through PostgreSQL (`careledger cloud start --database
 * postgres://…`): the PgChainStore every route appends to and reads from, and the sealer lease
 * (sealer-lease.ts) in place of the SQLite cloud's seal-block job — every process tries to take
 * it, the one holding it seals every block interval, the others take over within about a second
 * when it dies. runtime.ts wires it in; what is not on PostgreSQL yet stays in cloud.db.
 */
import os from 'node:os'
import type { Logger } from 'pino'
import type { BlockSummary, ChainKeys } from '../../chain/store.ts'
import type { VerificationReport, VerifyOptions } from '../../chain/verify.ts'
import type { CloudMetrics } from '../../service/metrics.ts'
import { openPgChainStore, type PgChainStore } from './chain-store.ts'
import { SealerLease } from './sealer-lease.ts'
import { verifyPgChain } from './snapshot.ts'

export interface SharedChain {
  readonly store: PgChainStore
  readonly lease: SealerLease
  verify(opts: VerifyOptions): Promise<VerificationReport>
  /** Seal now if this process holds the lease (the final seal of a graceful stop). */
  sealNow(): Promise<BlockSummary | null>
  /** Give the lease up (sealing what is pending first, if held) and close the connections. */
  stop(): Promise<void>
}

export async function startSharedChain(o: { url: string; keys: ChainKeys; blockIntervalMs: number; logger: Logger; metrics: CloudMetrics; now: () => number }): Promise<SharedChain> {
  const name = `${os.hostname()}:${process.pid}`
  const store = await openPgChainStore(o.url, o.keys, { processName: name })
  const lease = new SealerLease({
    url: o.url,
    store,
    sealEveryMs: o.blockIntervalMs,
    retryMs: Math.min(1000, o.blockIntervalMs),
    now: o.now,
    onEvent: (event, detail) => {
      if (event === 'acquired') o.logger.info({ event: 'sealer_lease_acquired', process: name }, 'this process now seals the blocks (sealer lease)')
      else if (event === 'lost') o.logger.warn({ event: 'sealer_lease_lost', process: name }, 'sealer lease lost; another process seals')
      else if (event === 'seal-failed') {
        o.metrics.sealFailures.inc()
        o.logger.error({ event: 'seal_failed', err: detail }, 'sealing a block failed')
      } else if (event === 'sealed' && detail && 'height' in detail) {
        o.metrics.blocksSealed.inc()
        o.metrics.height.set(detail.height)
        o.logger.debug({ event: 'block_sealed', height: detail.height, records: detail.count, first: detail.firstRecord }, `sealed block ${detail.height}`)
      }
    },
  })
  lease.start()
  let stopped = false
  return {
    store,
    lease,
    verify: (opts) => verifyPgChain(o.url, opts),
    sealNow: () => lease.sealNow(),
    async stop() {
      if (stopped) return
      stopped = true
      if (lease.held) await lease.sealNow()
      await lease.stop()
      await store.close()
    },
  }
}
