/** What every route works with: one instance per running cloud (runtime.ts builds it). */
import type { Logger } from 'pino'
import type { CloudConfig } from '../config.ts'
import type { CloudKeys } from '../keys.ts'
import type { CloudDb } from '../store/db.ts'
import type { ChainStore } from '../chain/store.ts'
import type { ChainBackend } from '../store/chain-backend.ts'
import type { AppendQueue } from '../chain/append-queue.ts'
import type { EnrolmentApi, GatewayRegistryApi, NonceStoreApi, TokenStoreApi } from '../access/store.ts'
import type { EnvelopeStore } from './blockstore.ts'
import type { CloudMetrics } from './metrics.ts'
import type { VerificationStore } from './verification.ts'
import type { RateWindow } from './rate.ts'
import type { AnchorService } from '../anchor/service.ts'
import type { AnchorRecords } from '../anchor/store.ts'
import type { InflightBudget } from './inflight.ts'
import type { InstructionStore } from './instructions.ts'
import type { DamageStore } from './envelope-damage.ts'
import type { SupervisionStore } from '../supervision/store.ts'
import type { RetrievalReads } from '../retrieval/reads.ts'

export interface ServiceContext {
  readonly config: CloudConfig
  readonly keys: CloudKeys
  /** The single write connection. better-sqlite3 is synchronous: keep transactions short. */
  readonly db: CloudDb
  readonly chain: ChainStore
  /**
   * The chain as the routes that append and read records and blocks use it: `chain` behind the
   * async interface, or PostgreSQL with `--database postgres://…` (then `chain` is not the chain).
   */
  readonly backend: ChainBackend
  /** Group commit of concurrent single uploads (one transaction and fsync per group). */
  readonly appendQueue: AppendQueue
  readonly blocks: EnvelopeStore
  /** Access stores (cloud/access/store.ts): cloud.db, or PostgreSQL shared by every process with `--database postgres://…`. Always await. */
  readonly tokens: TokenStoreApi
  readonly gateways: GatewayRegistryApi
  readonly enrolment: EnrolmentApi
  readonly nonces: NonceStoreApi
  readonly verification: VerificationStore
  readonly ingestRate: RateWindow
  /** Signed request bodies being read, per gateway and in total (inflight.ts). */
  readonly inflight: InflightBudget
  /** Instructions waiting for gateways (instructions.ts). */
  readonly instructions: InstructionStore
  /** Envelope blocks the scrub found damaged (envelope-damage.ts). */
  readonly damage: DamageStore
  /** Correction and deletion requests, regulators' decisions, the redaction log (cloud/supervision/): cloud.db, or the shared PostgreSQL. Always await. */
  readonly supervision: SupervisionStore
  /** What the evidence routes read (cloud/retrieval/reads.ts); absent: this process's cloud.db and `chain`. Always await. */
  readonly retrieval?: RetrievalReads
  readonly metrics: CloudMetrics
  /** Anchoring to an EVM chain; null when off (cloud/anchor/). */
  readonly anchor: AnchorService | null
  /** The anchors GET /v1/anchors lists when anchoring is off in this process; absent: cloud.db's. */
  readonly anchors?: AnchorRecords
  readonly logger: Logger
  readonly startedAt: number
  readonly now: () => number
  /** Called when envelope damage is found or repaired (the runtime runs a verification then). */
  onDamageChange?: () => void
}
