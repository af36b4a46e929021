/**
 * `startCloud(config)`: keys, database, chain, blockstore, access stores, the HTTP service and the
 * scheduled jobs; returns a handle whose `stop()` shuts down gracefully (stop accepting and finish
 * in-flight requests → stop the jobs, waiting for a run in progress → seal what is pending →
 * stop the chain's worker threads → close the blockstore → checkpoint and close the database).
 *
 * Jobs (service/jobs.ts, plain timers, never overlapping themselves):
 *   seal-block     every CARELEDGER_CLOUD_BLOCK_INTERVAL_S: ChainStore.sealBlock(now)
 *   verify-chain   at start, then every CARELEDGER_CLOUD_VERIFY_INTERVAL_S: verifyChain on a
 *                  read snapshot (ingest continues meanwhile), with an in-memory cache of rows
 *                  already verified and the newest head this process sealed or verified, so
 *                  truncation or rewritten history is caught; the result is kept in SQLite and
 *                  served at /v1/chain/verification
 *   prune-nonces   every minute: forget request nonces whose timestamps can no longer pass
 *   anchor         when anchoring is on (cloud/anchor/service.ts): node-cron on
 *                  CARELEDGER_ANCHOR_SCHEDULE, and a timer following the anchor in flight
 *   scrub-blocks   every CARELEDGER_CLOUD_SCRUB_INTERVAL_S: every envelope block re-hashed against
 *                  its CID; damage is alerted on and a resend asked of its gateway (service/scrub.ts)
 */
import { cryptoBackendChoice, cryptoLogFields, cryptoSelection, initCrypto } from '../shared/cli/crypto-backend.ts'
import { existsSync, readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { pino, type Logger } from 'pino'
import type { CloudConfig } from './config.ts'
import { loadCloudKeys, type CloudKeys } from './keys.ts'
import { openCloudDb } from './store/db.ts'
import { ChainStore, type BlockSummary } from './chain/store.ts'
import { SqliteChainBackend } from './store/chain-backend.ts'
import { AppendQueue } from './chain/append-queue.ts'
import { verifyChain, VerificationCache, VerifyWorkerPool } from './chain/verify.ts'
import { sqliteAccess } from './access/store.ts'
import { FileEnvelopeStore, type EnvelopeStore } from './service/blockstore.ts'
import { TableEnvelopeStore } from './service/envelope-table.ts'
import { registerStorageMetrics } from './service/storage-metrics.ts'
import { registerAppendMetrics } from './service/append-metrics.ts'
import { buildApp } from './service/app.ts'
import type { ServiceContext } from './service/context.ts'
import { every, type Job } from './service/jobs.ts'
import { createCloudMetrics } from './service/metrics.ts'
import { RateWindow } from './service/rate.ts'
import { InflightBudget } from './service/inflight.ts'
import { SqliteInstructionStore } from './service/instructions.ts'
import { sqliteSupervision } from './supervision/store.ts'
import { DamageLog, withDamage } from './service/envelope-damage.ts'
import { scrubBlockstore, type ScrubResult } from './service/scrub.ts'
import { VerificationLog, type VerificationResult } from './service/verification.ts'

export interface StartOptions {
  readonly logger?: Logger
  /** Clock (tests). */
  readonly now?: () => number
  /** Environment for secrets read at start (the anchoring keystore password); default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>
}

export interface Cloud extends ServiceContext {
  /** Base URL, e.g. http://127.0.0.1:8080 */
  readonly url: string
  readonly host: string
  readonly port: number
  readonly app: FastifyInstance
  /** Seal pending records into a block now (the scheduled job does this every interval). */
  sealNow(): BlockSummary | null
  /** Run a full chain verification now and keep its result. */
  verifyNow(): Promise<VerificationResult | null>
  /** Re-hash every envelope block now (the scheduled scrub does this every interval). */
  scrubNow(): Promise<ScrubResult>
  stop(): Promise<void>
}

const NONCE_PRUNE_MS = 60_000

const urlHost = (host: string): string => (host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host)

export async function startCloud(config: CloudConfig, opts: StartOptions = {}): Promise<Cloud> {
  const logger = opts.logger ?? pino({ level: config.log.level, base: { service: 'careledger-cloud', pid: process.pid } })
  await initCrypto(cryptoBackendChoice(undefined)) // the pairing backend (CARELEDGER_CRYPTO_BACKEND, default auto)
  const now = opts.now ?? Date.now
  const startedAt = now()
  const cleanups: Array<() => unknown> = []
  const undo = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c()
  }

  try {
    const keys: CloudKeys = loadCloudKeys(config.paths, config.chameleonPublicKeyFile, { logger })
    const db = openCloudDb(config.paths.db)
    cleanups.push(() => db.close())
    // Hash tables built once the service has appended 2,000 records (ChainStoreOptions.warmUpAfter).
    const chain = new ChainStore(db, keys, { warmUpAfter: 2000 })
    cleanups.push(() => chain.close())
    // --database postgres://…: the chain (records, blocks, appends, sealing) is shared through
    // PostgreSQL, one process sealing at a time (cloud/store/pg/cloud-chain.ts), and so are the access
    // stores; the rest stays in cloud.db (docs/operations.md §PostgreSQL).
    const metrics = createCloudMetrics()
    const shared = config.database
      ? await (await import('./store/pg/cloud-chain.ts')).startSharedChain({ url: config.database, keys, blockIntervalMs: config.chain.blockIntervalMs, logger, metrics, now })
      : null
    if (shared) cleanups.push(() => shared.stop())
    // Envelope blocks: a table of cloud.db on SQLite, of the shared database on PostgreSQL (every
    // process, on any machine, reads the same); blocks stored as files before it (`--blocks`) stay readable.
    const legacyBlocks = existsSync(config.paths.blocks) ? await FileEnvelopeStore.open(config.paths.blocks) : null
    const blocks: EnvelopeStore = shared ? new (await import('./store/pg/envelopes.ts')).PgEnvelopeStore(shared.store.pool, legacyBlocks) : new TableEnvelopeStore(db, legacyBlocks)
    cleanups.push(() => blocks.close())
    // Tokens, gateways, invites and nonces: in the shared PostgreSQL too, so that any process serves any gateway or person.
    const access = shared ? (await import('./store/pg/access.ts')).pgAccess(shared.store.pool) : sqliteAccess(db)
    registerStorageMetrics(metrics.registry, config.paths.db)
    if (!shared) registerAppendMetrics(metrics.registry, chain)
    // Anchoring (cloud/anchor/): the key is decrypted now; the RPC is never waited for.
    // Loaded only when on: a cloud without anchoring never loads ethers. On PostgreSQL the anchors
    // and blocks are the shared tables, and only the sealer lease holder anchors.
    const pgAnchoring = shared ? await import('./store/pg/anchors.ts') : null
    const sharedAnchors = shared && pgAnchoring ? new pgAnchoring.PgAnchorStore(shared.store.pool) : null
    const anchor = config.anchor.enabled
      ? await (await import('./anchor/service.ts')).AnchorService.start({
          config: config.anchor,
          db,
          ...(shared && sharedAnchors && pgAnchoring ? { records: sharedAnchors, blocks: new pgAnchoring.PgChainBlocks(shared.store.pool), active: () => shared.lease.held } : {}),
          logger,
          now,
          env: opts.env ?? process.env,
        })
      : null
    if (anchor) {
      cleanups.push(() => anchor.stop())
      const { registerAnchorMetrics } = await import('./anchor/metrics.ts')
      registerAnchorMetrics(metrics.registry, () => anchor.status())
    }

    const supervisionOpts = { chameleonPublicKey: keys.chameleonPublicKey, now, log: (line: Record<string, unknown>, msg: string) => logger.info(line, msg) }
    const ctx: ServiceContext = {
      config,
      keys,
      db,
      chain,
      backend: shared?.store ?? new SqliteChainBackend(chain),
      appendQueue: new AppendQueue(chain),
      blocks,
      tokens: access.tokens,
      gateways: access.gateways,
      enrolment: access.enrolment,
      nonces: access.nonces,
      // The verification log: shared too; the sealer lease holder verifies for every process (below).
      verification: shared ? (await import('./store/pg/verification.ts')).pgVerification(shared.store.pool) : new VerificationLog(db),
      ingestRate: new RateWindow(),
      inflight: new InflightBudget(config.limits.inflight),
      // Gateway instructions: shared too, so a gateway polling any process gets what another issued.
      instructions: shared ? (await import('./store/pg/instructions.ts')).pgInstructions(shared.store.pool, keys.signingSecretKey) : new SqliteInstructionStore(db, keys.signingSecretKey),
      // Envelope damage: shared too, so every process's /healthz names what the scrub found.
      damage: shared ? (await import('./store/pg/damage.ts')).pgDamage(shared.store.pool) : new DamageLog(db),
      // An applied redaction is committed by a block sealed in the same transaction (header v2);
      // on PostgreSQL shared by every process, under the chain-write lock (cloud/store/pg/supervision.ts).
      supervision: shared
        ? (await import('./store/pg/supervision.ts')).pgSupervision(shared.store, supervisionOpts)
        : sqliteSupervision(db, {
            ...supervisionOpts,
            seal: (t) => {
              const block = chain.sealBlock(t)
              if (block) queueMicrotask(() => chain.head()?.hash === block.hash && noteSealed(block))
              return block
            },
          }),
      // Evidence for reads and exports (cloud/retrieval/): from the shared PostgreSQL too, so any process serves them.
      ...(shared ? { retrieval: (await import('./store/pg/retrieval.ts')).pgRetrievalReads(shared.store) } : {}),
      metrics,
      anchor,
      ...(sharedAnchors ? { anchors: sharedAnchors } : {}),
      logger,
      startedAt,
      now,
    }

    // ── jobs ─────────────────────────────────────────────────────────────────────────────────
    let knownHead: { height: number; hash: string } | null = await ctx.backend.head()
    const sealNow = (): BlockSummary | null => {
      if (shared) {
        void shared.sealNow() // the lease holder seals (asynchronously); the others do nothing
        return null
      }
      let block: BlockSummary | null
      try {
        block = chain.sealBlock(now())
      } catch (err) {
        metrics.sealFailures.inc()
        throw err
      }
      if (block) noteSealed(block)
      return block
    }
    function noteSealed(block: BlockSummary): void {
      knownHead = { height: block.height, hash: block.hash }
      metrics.blocksSealed.inc()
      metrics.height.set(block.height)
      logger.debug({ event: 'block_sealed', height: block.height, records: block.count, first: block.firstRecord, redactions: block.redactions?.count }, `sealed block ${block.height}`)
    }

    const cache = new VerificationCache()
    // One pool of verification threads for the service's lifetime, instead of new threads per run.
    const pool = new VerifyWorkerPool(keys.chameleonPublicKey, config.chain.verifyWorkers > 0 ? config.chain.verifyWorkers : undefined)
    cleanups.push(() => pool.close())
    const verifyNow = async (): Promise<VerificationResult | null> => {
      const t0 = performance.now()
      // The blocks themselves are re-hashed by the scrub (their damage is added here), not every run.
      const chainReport = await (shared ? shared.verify : (o: Parameters<typeof verifyChain>[1]) => verifyChain(config.paths.db, o))({
        chameleonPublicKey: keys.chameleonPublicKey,
        signingPublicKey: keys.signingPublicKey,
        pool,
        cache,
        ...(knownHead ? { expectHead: knownHead } : {}),
      })
      const report = withDamage(chainReport, await ctx.damage.open())
      await ctx.verification.record(report)
      metrics.verificationOk.set(report.ok ? 1 : 0)
      metrics.verificationTime.set(report.checkedAt / 1000)
      metrics.verificationSeconds.observe((performance.now() - t0) / 1000)
      if (chainReport.ok) {
        if (report.head && (!knownHead || report.head.height >= knownHead.height)) knownHead = report.head
        logger.info({ event: 'chain_verified', blocks: report.blocks, records: report.records, ms: report.durationMs }, 'chain verified')
      } else {
        logger.error({ event: 'chain_verification_failed', failureCounts: report.failureCounts, first: report.failures.slice(0, 5) }, `CHAIN VERIFICATION FAILED: ${report.failures.length + report.failuresOmitted} failure(s)`)
      }
      return report
    }

    const jobs: Job[] = [
      ...(shared ? [] : [every('seal-block', config.chain.blockIntervalMs, sealNow, { logger })]), // shared: the sealer lease's own timer
      every('prune-nonces', NONCE_PRUNE_MS, () => ctx.nonces.prune(now()), { logger }),
    ]
    /**
     * On PostgreSQL the sealer lease holder verifies the shared chain for every process; the others
     * take the newest shared run for their gauges — and verify themselves only when no process has
     * for two intervals and a run's length (none yet at a first start, or the holder not verifying).
     */
    const verifyOrRefresh = async (): Promise<VerificationResult | null> => {
      if (!shared || shared.lease.held) return verifyNow()
      const latest = await ctx.verification.latest()
      if (!latest || now() - latest.checkedAt > 2 * config.chain.verifyIntervalMs + latest.durationMs) return verifyNow()
      metrics.verificationOk.set(latest.ok ? 1 : 0)
      metrics.verificationTime.set(latest.checkedAt / 1000)
      return latest
    }
    if (config.chain.verifyIntervalMs > 0) jobs.push(every('verify-chain', config.chain.verifyIntervalMs, verifyOrRefresh, { logger, runAtStart: true }))
    const verifyJob = jobs.find((j) => j.name === 'verify-chain')
    ctx.onDamageChange = () => void (verifyJob ? verifyJob.runNow() : verifyNow()).catch(() => {})
    metrics.envelopesDamaged.set(await ctx.damage.openCount())
    const scrubNow = (): Promise<ScrubResult> => scrubBlockstore(ctx, { onChange: ctx.onDamageChange })
    // On PostgreSQL only the sealer lease holder scrubs, for every process (one scrub a deployment; the damage log is shared).
    const scrubJob = async (): Promise<ScrubResult | null> => (shared && !shared.lease.held ? null : scrubNow())
    if (config.chain.scrubIntervalMs > 0) jobs.push(every('scrub-blocks', config.chain.scrubIntervalMs, scrubJob, { logger }))
    cleanups.push(() => Promise.all(jobs.map((j) => j.stop())))

    // ── HTTP ─────────────────────────────────────────────────────────────────────────────────
    const https = config.tls ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) } : null
    const app = await buildApp(ctx, { https })
    cleanups.push(() => app.close())
    // A deep accept queue: a connection flood must not crowd out the SYNs of gateways (Node defaults to 511).
    await app.listen({ host: config.http.host, port: config.http.port, backlog: 2048 })
    const addr = app.server.address()
    const port = typeof addr === 'object' && addr ? addr.port : config.http.port
    const url = `${https ? 'https' : 'http'}://${urlHost(config.http.host)}:${port}`

    let stopping: Promise<void> | null = null
    const stop = (): Promise<void> =>
      (stopping ??= (async () => {
        logger.info({ event: 'cloud_stopping' }, 'stopping: finishing in-flight requests')
        await app.close()
        await Promise.all([...jobs.map((j) => j.stop()), anchor?.stop()])
        try {
          if (shared) await shared.stop()
          else sealNow()
        } catch (err) {
          logger.error({ event: 'final_seal_failed', err }, 'could not seal the pending records on stop (they are sealed at the next start)')
        }
        await chain.close()
        await blocks.close()
        try {
          db.pragma('wal_checkpoint(TRUNCATE)')
        } catch (err) {
          logger.warn({ err }, 'final WAL checkpoint failed (the WAL is replayed at next start)')
        }
        db.close()
        logger.info({ event: 'cloud_stopped' }, 'cloud stopped')
      })())

    logger.info(
      { event: 'cloud_ready', url, dataDir: config.dataDir, signingKey: keys.signingKeyId, chameleonKey: keys.chameleonKeyId, developmentRegulator: keys.developmentRegulator, height: (await ctx.backend.stats()).height, store: shared ? 'postgres' : 'sqlite', crypto: cryptoLogFields(cryptoSelection()) },
      `cloud ready at ${url}`,
    )
    return Object.assign(ctx, { url, host: config.http.host, port, app, sealNow, verifyNow, scrubNow, stop })
  } catch (e) {
    await undo()
    throw e
  }
}
