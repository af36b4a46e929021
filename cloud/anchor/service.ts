/**
 * Anchoring inside the running cloud: node-cron asks for an anchor of the newest block on
 * CARELEDGER_ANCHOR_SCHEDULE; a timer follows the anchor in flight every CARELEDGER_ANCHOR_POLL_S
 * until it has CARELEDGER_ANCHOR_CONFIRMATIONS; `anchorNow()` asks at once. Steps (anchorer.ts)
 * never overlap. Nothing here is on the chain's path: sealing and ingest never wait for it, and an
 * RPC that is down, slow or answering errors only delays anchoring — the step is retried with
 * jittered exponential backoff (1 s doubling to CARELEDGER_ANCHOR_BACKOFF_MAX_S), and a request made
 * meanwhile is remembered, so anchoring resumes with the then-newest block. `status()` is what
 * /healthz, /metrics, GET /v1/anchors and the console show.
 *
 * On a chain shared through PostgreSQL every process runs this service on the shared anchors
 * table, but only the one holding the sealer lease (`active`) steps: the others are in
 * 'standby', answer status from the shared rows, and take over — following the anchor in flight
 * first — when they take the lease.
 */
import cron, { type ScheduledTask } from 'node-cron'
import { FetchRequest, JsonRpcProvider, Network } from 'ethers'
import type { Logger } from 'pino'
import type { Env } from '../../shared/config/settings.ts'
import type { CloudDb } from '../store/db.ts'
import { loadAnchorWallet, type AnchorConfig } from './config.ts'
import { anchorView, type AnchorView } from './view.ts'
import { AnchorStore, type AnchorRecords, type AnchorRow } from './store.ts'

export { ANCHORING_OFF, anchorView, type AnchorView } from './view.ts'
import { ChainBlocks, type BlockSource } from './blocks.ts'
import { Anchorer, AnchorSetupError, displayError, type StepKind, type StepOutcome } from './anchorer.ts'

/** An ethers provider for anchoring: fixed network (no detection loop while the RPC is down), no response cache, one request per HTTP call, a timeout. */
export function anchorProvider(config: Pick<AnchorConfig, 'rpcUrl' | 'chainId' | 'rpcTimeoutMs'>): JsonRpcProvider {
  const req = new FetchRequest(config.rpcUrl!)
  req.timeout = config.rpcTimeoutMs
  const network = Network.from(config.chainId!)
  return new JsonRpcProvider(req, network, { staticNetwork: network, cacheTimeout: -1, batchMaxCount: 1 })
}

export type AnchorState = 'off' | 'starting' | 'standby' | 'ok' | 'retrying' | 'misconfigured' | 'behind' | 'waiting-fee'

export interface AnchorServiceStatus {
  readonly enabled: boolean
  readonly state: AnchorState
  readonly chainId: number | null
  readonly contract: string | null
  readonly account: string | null
  readonly schedule: string | null
  readonly confirmationsRequired: number | null
  /** Newest anchor with enough confirmations: what counts. */
  readonly latest: AnchorView | null
  /** The anchor in flight, if any. */
  readonly pending: AnchorView | null
  /** Height of the chain's newest block (−1: none). */
  readonly chainHeight: number
  /** Blocks sealed since the latest confirmed anchor (null before the first). */
  readonly lagBlocks: number | null
  readonly lastError: string | null
  readonly lastErrorAt: number | null
  readonly consecutiveFailures: number
  readonly nextAttemptAt: number | null
  readonly lastSuccessAt: number | null
  readonly nextScheduledAt: number | null
  /** Step outcomes of this process, by kind. */
  readonly outcomes: Readonly<Partial<Record<StepKind, number>>>
  readonly rpcFailures: number
}

export interface AnchorServiceOptions {
  readonly config: AnchorConfig
  /** cloud.db: the anchors and the blocks, unless `records` and `blocks` say otherwise. */
  readonly db: CloudDb
  /** Where the anchors are kept and the blocks read (PostgreSQL: cloud/store/pg/anchors.ts). */
  readonly records?: AnchorRecords
  readonly blocks?: BlockSource
  /** Whether this process anchors now (PostgreSQL: it holds the sealer lease); default always. */
  readonly active?: () => boolean
  readonly logger: Logger
  readonly now?: () => number
  readonly env?: Env
  /** [0, 1) for the backoff jitter. */
  readonly random?: () => number
}

const NOTABLE: ReadonlySet<StepKind> = new Set(['sent', 'resent', 'replaced', 'reorged', 'confirmed', 'failed', 'behind'])

export class AnchorService {
  readonly config: AnchorConfig
  readonly store: AnchorRecords
  readonly anchorer: Anchorer
  readonly #o: AnchorServiceOptions
  readonly #now: () => number
  readonly #blocks: BlockSource
  readonly #active: () => boolean
  readonly #provider: JsonRpcProvider
  readonly #task: ScheduledTask
  #state: AnchorState = 'starting'
  /** Anchor requests made, and the newest one an anchorHead step has answered: a request made while a step runs is never lost. */
  #requests = 0
  #answered = 0
  #failures = 0
  #rpcFailures = 0
  #lastError: string | null = null
  #lastErrorAt: number | null = null
  #lastSuccessAt: number | null = null
  #nextAttemptAt: number | null = null
  #timer: NodeJS.Timeout | null = null
  #running: Promise<unknown> = Promise.resolve()
  #stopped = false
  readonly #outcomes: Partial<Record<StepKind, number>> = {}

  /** Decrypts the key first: a missing keystore or a wrong password stops the cloud's start with a clear error. Nothing here waits for the RPC. */
  static async start(o: AnchorServiceOptions): Promise<AnchorService> {
    const wallet = await loadAnchorWallet(o.config, o.env)
    return new AnchorService(o, wallet)
  }

  private constructor(o: AnchorServiceOptions, wallet: Awaited<ReturnType<typeof loadAnchorWallet>>) {
    this.#o = o
    this.config = o.config
    this.#now = o.now ?? Date.now
    this.store = o.records ?? new AnchorStore(o.db)
    this.#blocks = o.blocks ?? new ChainBlocks(o.db)
    this.#active = o.active ?? (() => true)
    this.#provider = anchorProvider(o.config)
    this.anchorer = new Anchorer({ config: o.config, provider: this.#provider, wallet, store: this.store, blocks: this.#blocks, now: this.#now })
    this.#task = cron.schedule(o.config.schedule, () => this.request('schedule'), { name: 'anchor', noOverlap: true })
    o.logger.info(
      { event: 'anchor_started', chainId: o.config.chainId, contract: o.config.contract, account: wallet.address, schedule: o.config.schedule, confirmations: o.config.confirmations },
      `anchoring to chain ${o.config.chainId}, contract ${o.config.contract}, as ${wallet.address} (${o.config.schedule})`,
    )
    this.#kick(0) // check the setup and follow an anchor left in flight by the previous run
  }

  /** Ask for an anchor of the newest block; it is made as soon as the RPC allows. */
  request(reason: 'schedule' | 'demand'): void {
    if (this.#stopped) return
    this.#o.logger.debug({ event: 'anchor_requested', reason }, 'anchor requested')
    this.#requests++
    if (this.#failures === 0) this.#kick(0) // while failing, the backoff timer carries the request
  }

  /** Anchor now and return what the step did (throws what the RPC threw; the service retries by itself). */
  anchorNow(): Promise<StepOutcome> {
    this.#requests++
    return this.#serial(() => this.#step(true, true))
  }

  get #wanted(): boolean {
    return this.#requests > this.#answered
  }

  #serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.#running.then(f, f)
    this.#running = run.catch(() => {})
    return run
  }

  #kick(delayMs: number): void {
    if (this.#stopped) return
    if (this.#timer) clearTimeout(this.#timer)
    this.#nextAttemptAt = this.#now() + delayMs
    this.#timer = setTimeout(() => {
      this.#timer = null
      void this.#serial(() => this.#step(false)).catch(() => {})
    }, delayMs)
    this.#timer.unref?.()
  }

  async #step(rethrow: boolean, forceHead = false): Promise<StepOutcome> {
    if (this.#stopped) return { kind: 'idle', anchor: null }
    const { logger } = this.#o
    this.#nextAttemptAt = null
    if (!this.#active()) {
      // Another process holds the sealer lease and anchors; look again for the lease (no RPC, no query).
      if (this.#state !== 'standby') logger.info({ event: 'anchor_standby' }, 'anchoring in standby: the process holding the sealer lease anchors')
      this.#state = 'standby'
      this.#kick(Math.min(this.config.pollMs, 1000))
      return { kind: 'idle', anchor: null, message: 'standby: another process anchors (sealer lease)' }
    }
    try {
      const request = this.#requests
      const head = forceHead || this.#wanted
      const outcome = head ? await this.anchorer.anchorHead() : await this.anchorer.follow()
      if (head && ['sent', 'up-to-date', 'idle', 'behind'].includes(outcome.kind)) this.#answered = Math.max(this.#answered, request)
      this.#outcomes[outcome.kind] = (this.#outcomes[outcome.kind] ?? 0) + 1
      if (this.#failures > 0) logger.info({ event: 'anchor_rpc_recovered', after: this.#failures }, `anchoring works again after ${this.#failures} failed attempt(s)`)
      this.#failures = 0
      this.#lastSuccessAt = this.#now()
      // "behind" and "waiting-fee" are verdicts of anchorHead: only its next answer lifts them.
      if (head || (this.#state !== 'behind' && this.#state !== 'waiting-fee')) this.#state = outcome.kind === 'behind' ? 'behind' : outcome.kind === 'waiting-fee' ? 'waiting-fee' : 'ok'
      if (NOTABLE.has(outcome.kind)) {
        const a = outcome.anchor
        const line = { event: `anchor_${outcome.kind}`, height: a?.height, tx: a?.txHash ?? a?.attempts.at(-1)?.hash, confirmations: a?.confirmations }
        if (outcome.kind === 'behind' || outcome.kind === 'failed') logger.error(line, `ANCHOR ${outcome.kind.toUpperCase()}: ${outcome.message ?? ''}`)
        else if (outcome.kind === 'reorged') logger.warn(line, outcome.message ?? 'anchor reorganised out')
        else logger.info(line, outcome.message ?? outcome.kind)
      }
      const more = this.#wanted || (await this.store.pending(this.anchorer.target)) !== null
      if (more) this.#kick(this.config.pollMs)
      return outcome
    } catch (e) {
      this.#failures++
      this.#lastError = e instanceof AnchorSetupError ? e.message : displayError(e)
      this.#lastErrorAt = this.#now()
      const setup = e instanceof AnchorSetupError
      if (!setup) this.#rpcFailures++
      this.#state = setup ? 'misconfigured' : 'retrying'
      const delay = this.#backoff()
      const line = { event: setup ? 'anchor_misconfigured' : 'anchor_rpc_failed', failures: this.#failures, retryInMs: Math.round(delay), error: this.#lastError }
      if (setup) logger.error(line, `anchoring cannot work: ${this.#lastError}`)
      else logger.warn(line, `anchoring step failed (${this.#failures} in a row); retrying in ${Math.round(delay / 1000)} s`)
      this.#kick(delay)
      if (rethrow) throw e
      return { kind: 'idle', anchor: null, message: this.#lastError }
    }
  }

  /** Equal-jitter exponential backoff: d/2 + U(0, d/2), d = min(cap, 1 s · 2^(failures − 1)). */
  #backoff(): number {
    const d = Math.min(this.config.backoffMaxMs, 1000 * 2 ** Math.min(30, this.#failures - 1))
    return d / 2 + (this.#o.random ?? Math.random)() * (d / 2)
  }

  view(r: AnchorRow): AnchorView {
    return anchorView(r, this.config)
  }

  async status(): Promise<AnchorServiceStatus> {
    const t = this.anchorer.target
    const [latest, pending, head] = await Promise.all([this.store.latestConfirmed(t), this.store.pending(t), this.#blocks.head()])
    const chainHeight = head?.height ?? -1
    const next = this.#task.getNextRun()
    return {
      enabled: true,
      state: this.#state,
      chainId: t.chainId,
      contract: t.contract,
      account: this.anchorer.account,
      schedule: this.config.schedule,
      confirmationsRequired: this.config.confirmations,
      latest: latest ? this.view(latest) : null,
      pending: pending ? this.view(pending) : null,
      chainHeight,
      lagBlocks: latest ? Math.max(0, chainHeight - latest.height) : null,
      lastError: this.#lastError,
      lastErrorAt: this.#lastErrorAt,
      consecutiveFailures: this.#failures,
      nextAttemptAt: this.#nextAttemptAt,
      lastSuccessAt: this.#lastSuccessAt,
      nextScheduledAt: next ? next.getTime() : null,
      outcomes: { ...this.#outcomes },
      rpcFailures: this.#rpcFailures,
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true
    await this.#task.destroy()
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    await this.#running
    this.#provider.destroy()
  }
}
