/** Messages between the main thread and the back-office worker. */
import type { KeyringTransfer } from '../../shared/cli/secret-files.ts'
import type { BackendChoice } from '../../shared/crypto/abe/backend.ts'

/**
 * Default cap of the outbox backoff (= DEFAULT_BACKOFF.capMs of outbox/sync.ts). Kept here because
 * the ingest thread does not import outbox/sync.ts and what it pulls in (the blockstore, CAR
 * writer, HTTP client): the back office's modules stay in the worker (see plugin.ts).
 */
export const DEFAULT_SYNC_BACKOFF_MAX_MS = 5 * 60_000

/**
 * On the ingest thread a pass seals at most this many readings (~80–200 ms of event-loop time in
 * slices of one batch); a pass that leaves more behind reports `lastPass.more`, and the plugin
 * moves the back office to a worker thread. 5,000 covers a 20-bed ward's 60-s offline pass (~3,600).
 */
export const INLINE_MAX_READINGS = 5000
export interface BackofficeOptions {
  readonly dataDir: string
  readonly logLevel: string
  readonly sealIntervalMs: number
  /** Sealing interval while the outbox cannot reach the cloud (its last round failed). */
  readonly offlineSealIntervalMs: number
  readonly defaultPolicy: string
  readonly cloudUrl: string | null
  readonly retentionHours: number
  /** Cap of the outbox's jittered exponential backoff (CARELEDGER_SYNC_BACKOFF_MAX_S; default 5 min). */
  readonly syncBackoffMaxMs: number
  /** The main thread's keyring: the passphrase (a descriptor can be read once) and the keys it derived. */
  readonly keyring: KeyringTransfer
  /** The pairing backend to load (CARELEDGER_CRYPTO_BACKEND / --crypto-backend; shared/cli/crypto-backend.ts). */
  readonly cryptoBackend: BackendChoice
}

/** From the plugin to the back office: stop; seal now (tests, `seal now`); retention is due. */
export interface BackofficeMessage {
  readonly type: 'stop' | 'tick' | 'prune' | (string & {})
}

export interface BackofficeStatus {
  readonly type: 'status'
  readonly ready?: boolean
  /** This gateway's id (signingKeyId of its Ed25519 key). */
  readonly gatewayId: string
  readonly sealedBatches: number
  readonly sealedReadings: number
  readonly sealMs: number
  /** CPU time the worker thread has used, µs. */
  readonly cpuMicros: number
  /** V8 heap the worker thread has committed, bytes (the process-wide nodejs_heap_* metrics are the ingest thread's). */
  readonly heapBytes: number
  /** Bytes of the blockstore (`<data>/blocks`), for the ingest thread's disk budget; null until first measured. */
  readonly blockBytes: number | null
  /** The sealing interval in force: the configured one, or the offline one while the cloud is unreachable. */
  readonly sealIntervalMs: number
  readonly sealFailures: number
  readonly outboxPending: number
  readonly outboxOldestSealedAt: number | null
  readonly outboxRejected: number
  readonly lastSyncAt: number | null
  readonly syncFailures: number
  readonly cloudUrl: string | null
  /** The pairing backend the worker uses ('noble' | 'mcl'). */
  readonly cryptoBackend: string
  /** WebAssembly memory of the pairing backend, bytes (outside the V8 heap; 0 with noble). */
  readonly wasmBytes: number
  /** After a pass: what its sealing did; `more` when it stopped at its cap with readings left (a burst). */
  readonly lastPass?: { readonly readings: number; readonly more: boolean }
}
