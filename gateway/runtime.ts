/**
 * `startGateway(config)`: wires the store, the broker and its listeners, the HTTP endpoints, the
 * disk budget and the scheduled jobs; returns a handle whose `stop()` shuts down gracefully
 * (stop accepting → commit what is pending and let its PUBACKs out → close connections → stop
 * plugins → checkpoint and close the database).
 *
 * The sealer and the outbox sync plug in as `GatewayPlugin`s (see "PLUGINS" below): each gets the
 * GatewayContext (database, stores, metrics registry, logger, config) after ingest is up, and is
 * stopped before the database closes.
 */
import { readFileSync } from 'node:fs'
import type Database from 'better-sqlite3'
import cron, { type ScheduledTask } from 'node-cron'
import { pino, type Logger } from 'pino'
import { gatewayLogOptions } from './log.ts'
import { startBroker, type GatewayBroker } from './broker/server.ts'
import { DiskBudget } from './broker/disk-budget.ts'
import type { GatewayConfig } from './config.ts'
import { startHttp, type HealthReport, type HttpServer } from './http.ts'
import { createGatewayMetrics, type GatewayMetrics } from './metrics.ts'
import { listSetAside, openGatewayDb, type RecoveredCorruption } from './store/db.ts'
import { DeviceDirectory, DeviceStore } from './store/devices.ts'
import { GroupCommitter, ReadingStore } from './store/readings.ts'
import { ensureServerCertificate } from './tls.ts'
import { gatewayKeyring } from './keyring.ts'
import type { Keyring } from '../shared/cli/secret-files.ts'

/** What a plugin (sealer, outbox sync) gets to work with. */
export interface GatewayContext {
  readonly config: GatewayConfig
  /** The gateway's single write connection. better-sqlite3 is synchronous: keep transactions short (a few ms), they pause ingest. */
  readonly db: Database.Database
  readonly readings: ReadingStore
  readonly devices: DeviceStore
  /** Prometheus registry at /metrics: add `careledger_gateway_*` metrics here. */
  readonly metrics: GatewayMetrics
  readonly logger: Logger
  readonly disk: DiskBudget
  readonly dataDir: string
  /** Opens and seals the gateway's secret key files (gateway/keyring.ts); hand it on with `transfer()`. */
  readonly keyring: Keyring
}

/** A component started after ingest is up and stopped before the database closes. */
export interface GatewayPlugin {
  readonly name: string
  start(ctx: GatewayContext): Promise<PluginHandle | void> | PluginHandle | void
}

export interface PluginHandle {
  stop(): Promise<void> | void
  /** Merged into /healthz under components[name]. */
  health?(): Record<string, unknown>
}

export interface StartOptions {
  readonly logger?: Logger
  /** Default: from CARELEDGER_PASSPHRASE* (gateway/keyring.ts). */
  readonly keyring?: Keyring
  /** LEAD: pass the sealer and the outbox sync here (started in this order, stopped in reverse). */
  readonly plugins?: readonly GatewayPlugin[]
}

export interface Gateway extends GatewayContext {
  readonly ports: { readonly mqtt: number | null; readonly mqtts: number | null; readonly http: number | null }
  readonly broker: GatewayBroker
  readonly committer: GroupCommitter
  /** Set when this boot found the database corrupt and started a fresh one. */
  readonly recovered: RecoveredCorruption | null
  health(): HealthReport
  /** Reissue the MQTTS certificate if it expires within 30 days (or names changed); hot-swapped. */
  renewCertificate(): Promise<boolean>
  stop(): Promise<void>
}

const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
})()

const componentTrouble = (components: Record<string, unknown>): boolean =>
  Object.values(components).some((c) => {
    const status = (c as { status?: unknown } | null)?.status
    return status === 'failing' || status === 'alert'
  })

export async function startGateway(config: GatewayConfig, opts: StartOptions = {}): Promise<Gateway> {
  const logger = opts.logger ?? pino(gatewayLogOptions(config.log.level, { service: 'careledger-gateway', pid: process.pid }))
  const startedAt = Date.now()
  const metrics = createGatewayMetrics()
  const cleanups: Array<() => unknown> = []
  const undo = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c()
  }

  try {
    // Before anything is created: no passphrase for a new data directory stops the start here.
    const keyring = opts.keyring ?? gatewayKeyring(config.dataDir, process.env, logger)
    // ── store ────────────────────────────────────────────────────────────────────────────────
    const { db, path: dbPath, recovered } = openGatewayDb(config.dataDir, { integrityCheck: true, logger })
    cleanups.push(() => db.close())
    metrics.dbCorruptionRecovered.set(recovered ? 1 : 0)
    const setAside = listSetAside(config.dataDir)
    metrics.dbCorruptFiles.set(setAside.length)
    if (setAside.length && !recovered) logger.warn({ event: 'db_corrupt_files_present', files: setAside }, 'corrupt databases set aside earlier are still in the data directory')

    const readings = new ReadingStore(db)
    const devices = new DeviceStore(db)
    const directory = new DeviceDirectory(db, devices)
    const disk = new DiskBudget({
      dataDir: config.dataDir,
      db,
      budgetBytes: config.disk.budgetBytes,
      minFreeBytes: config.disk.minFreeBytes,
      checkIntervalMs: config.disk.checkIntervalMs,
      metrics,
      logger,
    })
    await disk.start()
    cleanups.push(() => disk.stop())

    const committer = new GroupCommitter(db, {
      directory,
      quarantineMaxRows: config.quarantine.maxRows,
      lingerMs: config.ingest.lingerMs,
      onFlush(r) {
        if (r.inserted) metrics.readingsAccepted.inc(r.inserted)
        if (r.duplicates) metrics.readingsDuplicate.inc(r.duplicates)
        for (const [reason, n] of r.rejectedByCode) metrics.readingsRejected.inc({ reason }, n)
        if (r.quarantineDropped) metrics.quarantineDropped.inc(r.quarantineDropped)
        metrics.quarantineRows.set(r.quarantineRows)
        metrics.commitSeconds.observe(r.seconds)
        metrics.commitBatchWrites.observe(r.writes)
        disk.noteWritten(r.bytes)
      },
      onError(err, writes) {
        metrics.commitFailures.inc()
        logger.error({ event: 'commit_failed', err, writes }, 'group commit failed: nothing of it was acknowledged')
      },
    })
    metrics.quarantineRows.set(committer.quarantineRows)

    // ── TLS ──────────────────────────────────────────────────────────────────────────────────
    const tls = config.mqtts.port !== 0 ? await ensureServerCertificate(config.dataDir, { extraNames: config.tls.extraNames, logger, keyring }) : null
    if (tls) metrics.serverCertExpiry.set(tls.notAfter.getTime() / 1000)

    // ── MQTT ─────────────────────────────────────────────────────────────────────────────────
    const broker = await startBroker({ config, committer, disk, directory, metrics, logger, tls })
    cleanups.push(() => broker.close())

    const renewCertificate = async (): Promise<boolean> => {
      if (config.mqtts.port === 0) return false
      const c = await ensureServerCertificate(config.dataDir, { extraNames: config.tls.extraNames, logger, keyring })
      metrics.serverCertExpiry.set(c.notAfter.getTime() / 1000)
      if (c.issued === null) return false
      broker.setTlsCredentials(c)
      return true
    }

    // ── scheduled jobs ───────────────────────────────────────────────────────────────────────
    const jobs: ScheduledTask[] = [
      cron.schedule(
        '17 3 * * *',
        async () => {
          try {
            await renewCertificate()
          } catch (err) {
            logger.error({ event: 'tls_renew_failed', err }, 'could not renew the MQTTS server certificate')
          }
        },
        { name: 'tls-renew', noOverlap: true },
      ),
    ]
    cleanups.push(() => Promise.all(jobs.map((j) => j.destroy())))

    const ctx: GatewayContext = { config, db, readings, devices, metrics, logger, disk, dataDir: config.dataDir, keyring }

    // ── PLUGINS (LEAD): the sealer and the outbox sync start here, after ingest is up ─────────
    const plugins: Array<{ name: string; handle: PluginHandle | null }> = []
    for (const p of opts.plugins ?? []) {
      const handle = (await p.start(ctx)) ?? null
      plugins.push({ name: p.name, handle })
      logger.info({ event: 'plugin_started', plugin: p.name }, `started ${p.name}`)
    }

    let http: HttpServer | null = null
    const health = (): HealthReport => {
      let dbOk = true
      let error: string | undefined
      try {
        db.prepare('SELECT 1').get()
      } catch (e) {
        dbOk = false
        error = (e as Error).message
      }
      const d = disk.status
      const files = listSetAside(config.dataDir)
      const components: Record<string, unknown> = {}
      for (const p of plugins) if (p.handle?.health) components[p.name] = p.handle.health()
      return {
        // A component that is failing (the back office's worker gone) or alerting (batches the cloud
        // refused) degrades the gateway: ingest still works, but an operator must look.
        status: !dbOk ? 'failing' : d.full ? 'storage_full' : recovered || files.length || componentTrouble(components) ? 'degraded' : 'ok',
        db: { ok: dbOk, path: dbPath, ...(error ? { error } : {}), corruptFilesSetAside: files },
        uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
        listeners: { mqtt: broker.listeners.mqtt, mqtts: broker.listeners.mqtts, http: http ? { host: http.host, port: http.port } : null },
        devicesConnected: broker.aedes.connectedClients,
        disk: { usedBytes: d.usedBytes, budgetBytes: d.budgetBytes, freeBytes: Number.isFinite(d.freeBytes) ? d.freeBytes : null, full: d.full, reason: d.reason },
        version: VERSION,
        ...(plugins.length ? { components } : {}),
      }
    }
    if (config.http.port !== 0) {
      http = await startHttp({ host: config.http.host, port: config.http.port, registry: metrics.registry, health })
      const h = http
      cleanups.push(() => h.close())
    }

    let stopping: Promise<void> | null = null
    const stop = (): Promise<void> =>
      (stopping ??= (async () => {
        logger.info({ event: 'gateway_stopping' }, 'stopping: no new connections; committing what is pending')
        await broker.stopAccepting()
        committer.flush()
        await new Promise((r) => setImmediate(r)) // let the PUBACKs of that commit reach the sockets
        await broker.close()
        committer.close()
        for (const p of plugins.reverse()) {
          try {
            await p.handle?.stop()
          } catch (err) {
            logger.error({ event: 'plugin_stop_failed', plugin: p.name, err }, `could not stop ${p.name} cleanly`)
          }
        }
        await Promise.all(jobs.map((j) => j.destroy()))
        disk.stop()
        await http?.close()
        try {
          db.pragma('wal_checkpoint(TRUNCATE)')
        } catch (err) {
          logger.warn({ err }, 'final WAL checkpoint failed (the WAL is replayed at next start)')
        }
        db.close()
        logger.info({ event: 'gateway_stopped' }, 'gateway stopped')
      })())

    const ports = { mqtt: broker.listeners.mqtt?.port ?? null, mqtts: broker.listeners.mqtts?.port ?? null, http: http?.port ?? null }
    logger.info(
      { event: 'gateway_ready', ports, dataDir: config.dataDir, recovered: recovered !== null, tlsNames: tls?.names ?? null },
      'gateway ready',
    )
    return { ...ctx, ports, broker, committer, recovered, health, renewCertificate, stop }
  } catch (e) {
    await undo()
    throw e
  }
}
