/**
 * Exactly one sealer among the cloud processes sharing a PostgreSQL database: the sealer lease is
 * the session-level advisory lock (LOCK_SPACE, LOCKS.sealer), held on a connection of its own.
 * PostgreSQL releases it when that session ends — the process exits or is killed (the kernel
 * closes its socket), or its machine vanishes (the server's TCP keepalive, tcp_keepalives_*,
 * notices; docs/operations.md) — and every other process retries pg_try_advisory_lock every
 * `retryMs`, so another takes over within about retryMs.
 *
 * The holder seals every `sealEveryMs`, passing its backend pid so that the seal transaction
 * re-checks in pg_locks that the lease is still held (chain-store.ts sealBlock). The schema stops
 * what the lock alone cannot (a stalled ex-holder): one block per height, one child per parent.
 */
import pg from 'pg'
import type { BlockSummary } from '../../chain/store.ts'
import { LOCKS, LOCK_SPACE } from './migrations.ts'
import type { PgChainStore } from './chain-store.ts'

export interface SealerLeaseOptions {
  readonly url: string
  readonly store: PgChainStore
  /** How often a process without the lease tries to take it (default 1000 ms). */
  readonly retryMs?: number
  /** How often the holder seals the pending records (default 5000 ms). */
  readonly sealEveryMs: number
  readonly now?: () => number
  readonly onEvent?: (event: 'acquired' | 'lost' | 'sealed' | 'seal-failed', detail?: BlockSummary | Error) => void
}

export class SealerLease {
  readonly #o: SealerLeaseOptions
  #client: pg.Client | null = null
  #backendPid: number | null = null
  #timer: NodeJS.Timeout | null = null
  #stopped = false
  #busy = false

  constructor(opts: SealerLeaseOptions) {
    this.#o = opts
  }

  /** True while this process holds the lease. */
  get held(): boolean {
    return this.#backendPid !== null
  }

  start(): void {
    this.#schedule(0)
  }

  #schedule(ms: number): void {
    if (this.#stopped) return
    this.#timer = setTimeout(() => void this.#tick(), ms)
  }

  async #tick(): Promise<void> {
    if (this.#busy) return
    this.#busy = true
    try {
      if (!this.held) await this.#tryAcquire()
      if (this.held) await this.sealNow()
    } finally {
      this.#busy = false
      this.#schedule(this.held ? this.#o.sealEveryMs : (this.#o.retryMs ?? 1000))
    }
  }

  async #tryAcquire(): Promise<void> {
    try {
      if (!this.#client) {
        const c = new pg.Client({ connectionString: this.#o.url, keepAlive: true })
        c.on('error', () => this.#lose())
        c.on('end', () => this.#lose())
        await c.connect()
        this.#client = c
      }
      const r = await this.#client.query<{ ok: boolean; pid: number }>('SELECT pg_try_advisory_lock($1, $2) AS ok, pg_backend_pid() AS pid', [LOCK_SPACE, LOCKS.sealer])
      if (r.rows[0]!.ok) {
        this.#backendPid = r.rows[0]!.pid
        this.#o.onEvent?.('acquired')
      }
    } catch {
      this.#lose()
    }
  }

  #lose(): void {
    const was = this.held
    this.#backendPid = null
    const c = this.#client
    this.#client = null
    c?.end().catch(() => {})
    if (was) this.#o.onEvent?.('lost')
  }

  /** Seal now if this process holds the lease; null when it does not or nothing is pending. */
  async sealNow(): Promise<BlockSummary | null> {
    if (this.#backendPid === null) return null
    try {
      const block = await this.#o.store.sealBlock((this.#o.now ?? Date.now)(), { lease: this.#backendPid })
      if (block) this.#o.onEvent?.('sealed', block)
      return block
    } catch (e) {
      this.#o.onEvent?.('seal-failed', e instanceof Error ? e : new Error(String(e)))
      if ((e as { info?: { reason?: string } }).info?.reason === 'LEASE_LOST') this.#lose()
      return null
    }
  }

  /** Stop sealing and give the lease up (ending its session releases the lock). */
  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#timer) clearTimeout(this.#timer)
    const c = this.#client
    this.#client = null
    this.#backendPid = null
    await c?.end().catch(() => {})
  }
}
