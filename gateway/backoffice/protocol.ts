/** Messages between the main thread and the back-office worker. */
export interface BackofficeOptions {
  readonly dataDir: string
  readonly logLevel: string
  readonly sealIntervalMs: number
  readonly defaultPolicy: string
  readonly cloudUrl: string | null
  readonly retentionHours: number
  readonly pruneIntervalMs: number
}

export interface BackofficeStatus {
  readonly type: 'status'
  readonly ready?: boolean
  readonly sealedBatches: number
  readonly sealedReadings: number
  readonly sealMs: number
  readonly outboxPending: number
  readonly outboxOldestSealedAt: number | null
  readonly outboxRejected: number
  readonly lastSyncAt: number | null
  readonly syncFailures: number
  readonly cloudUrl: string | null
}
