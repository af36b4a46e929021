/**
 * Gateway configuration: one typed object built from CLI flags > environment variables > embedded
 * defaults, validated with zod. Every error names the flag or variable the bad value came from.
 *
 * | variable | flag | default | meaning |
 * |---|---|---|---|
 * | `CARELEDGER_GATEWAY_DATA` | `--data <dir>` | `./.careledger/gateway` | data directory: `gateway.db` (+ `-wal`, `-shm`), `tls/`, `blocks/`; everything in it counts against the disk budget |
 * | `CARELEDGER_MQTT_HOST` | `--mqtt-host <host>` | `0.0.0.0` | address the MQTT and MQTTS listeners bind to |
 * | `CARELEDGER_MQTT_PORT` | `--mqtt-port <port>` | `1883` | plain MQTT 3.1.1 listener; `0` disables it |
 * | `CARELEDGER_MQTTS_PORT` | `--mqtts-port <port>` | `8883` | MQTT over TLS listener (server certificate from the gateway CA); `0` disables it |
 * | `CARELEDGER_MQTT_MAX_CONNECTIONS` | `--mqtt-max-connections <n>` | `512` | most open MQTT/MQTTS connections; more are closed at accept |
 * | `CARELEDGER_MQTT_MAX_UNAUTHENTICATED` | `--mqtt-max-unauthenticated <n>` | `128` | most connections that have not logged in yet (TLS handshake, CONNECT, secret check) |
 * | `CARELEDGER_MQTT_MAX_UNAUTHENTICATED_PER_SOURCE` | `--mqtt-max-unauthenticated-per-source <n>` | `32` | the same, from one source IP address (also its share of the login queue) |
 * | `CARELEDGER_MQTT_LOGIN_QUEUE` | `--mqtt-login-queue <n>` | `32` | logins that may wait for their scrypt check; beyond, CONNACK 3 (server unavailable) |
 * | `CARELEDGER_MQTT_CONNECT_TIMEOUT_S` | `--mqtt-connect-timeout-s <s>` | `10` | a connection must finish its TLS handshake, and then send its CONNECT, within this time each |
 * | `CARELEDGER_HTTP_HOST` | `--http-host <host>` | `127.0.0.1` | address of `GET /healthz` and `GET /metrics` |
 * | `CARELEDGER_HTTP_PORT` | `--http-port <port>` | `9464` | port of `/healthz` and `/metrics`; `0` disables it |
 * | `CARELEDGER_TLS_NAMES` | `--tls-name <names>` | (none) | extra DNS names / IP addresses for the server certificate, comma-separated (flag repeatable); localhost, 127.0.0.1, ::1 and the hostname are always included |
 * | `CARELEDGER_DISK_BUDGET_MB` | `--disk-budget-mb <mb>` | `1024` | most disk the data directory may use (≥ 8: the SQLite WAL alone may take ~4–8 MB); at the budget new readings are refused with STORAGE_FULL |
 * | `CARELEDGER_MIN_FREE_MB` | `--min-free-mb <mb>` | `64` | also refuse new readings when the file system has less free space than this |
 * | `CARELEDGER_DISK_CHECK_MS` | `--disk-check-ms <ms>` | `5000` | how often the whole data directory is re-measured (the database itself every 250 ms while readings are committed, every 5 s otherwise) |
 * | `CARELEDGER_QUARANTINE_MAX_ROWS` | `--quarantine-max-rows <n>` | `10000` | rejected readings kept for inspection; the oldest are dropped beyond this (counted in a metric) |
 * | `CARELEDGER_MAX_PAYLOAD_BYTES` | `--max-payload-bytes <n>` | `262144` | largest MQTT payload accepted (PAYLOAD_TOO_LARGE beyond) |
 * | `CARELEDGER_MAX_READINGS` | `--max-readings <n>` | `1000` | most readings in one payload array (TOO_MANY_READINGS beyond) |
 * | `CARELEDGER_MAX_FUTURE_S` | `--max-future-s <s>` | `300` | how far ahead of the gateway clock a reading's ts may be (FUTURE_TIMESTAMP beyond) |
 * | `CARELEDGER_SEAL_INTERVAL_S` | `--seal-interval-s <s>` | `5` | sealer: seconds between sealing unsealed readings into batches |
 * | `CARELEDGER_SEAL_OFFLINE_INTERVAL_S` | `--seal-offline-interval-s <s>` | `60` | sealer: the interval while the cloud is unreachable (larger batches: a backlog ships in fewer uploads) |
 * | `CARELEDGER_DEFAULT_POLICY` | `--default-policy <policy>` | `role:doctor` | sealer: CP-ABE policy for batches with no more specific policy |
 * | `CARELEDGER_RETENTION_HOURS` | `--retention-hours <h>` | `72` | outbox: hours synced data is kept on the gateway before it may be deleted |
 * | `CARELEDGER_CLOUD_URL` | `--cloud-url <url>` | (none) | outbox: cloud endpoint; without it nothing is shipped (readings stay on the gateway) |
 * | `CARELEDGER_LOG_LEVEL` | `--log-level <level>` | `info` | pino level: fatal, error, warn, info, debug, trace, silent |
 * | `CARELEDGER_MAX_HEAP_MB` | `--max-heap-mb <mb>` | `128` | V8 old-space limit of the gateway process (`gateway start` re-executes itself with it, see gateway/cli.ts); raise it if a plugin needs more |
 * | `CARELEDGER_INGEST_LINGER_MS` | `--ingest-linger-ms <ms>` | `10` | how long a durable commit may wait for other monitors' PUBLISHes (0: none); PUBACKs still follow the commit |
 *
 * An empty environment variable counts as unset.
 */
import { isIP } from 'node:net'
import { resolve } from 'node:path'
import { z } from 'zod'
import { LOG_LEVELS, parseSettings, resolveDirSetting, resolveSettings, settingsTable, type Env, type LogLevel, type Setting, type Source } from '../shared/config/settings.ts'

export { LOG_LEVELS, type LogLevel, type Setting, type Source } from '../shared/config/settings.ts'

export interface GatewayConfig {
  /** Absolute path of the data directory. */
  readonly dataDir: string
  readonly mqtt: {
    readonly host: string
    readonly port: number
    readonly maxConnections: number
    readonly maxUnauthenticated: number
    readonly maxUnauthenticatedPerSource: number
    readonly loginQueue: number
    readonly connectTimeoutMs: number
  }
  readonly mqtts: { readonly port: number }
  readonly http: { readonly host: string; readonly port: number }
  readonly tls: { readonly extraNames: readonly string[] }
  readonly disk: { readonly budgetBytes: number; readonly minFreeBytes: number; readonly checkIntervalMs: number }
  readonly quarantine: { readonly maxRows: number }
  readonly validation: { readonly maxBytes: number; readonly maxReadings: number; readonly maxFutureMs: number }
  /** Carried through for the sealer (lead). */
  readonly seal: { readonly intervalSeconds: number; readonly offlineIntervalSeconds: number; readonly defaultPolicy: string }
  /** Carried through for the outbox sync (lead). */
  readonly sync: { readonly cloudUrl: string | null; readonly retentionHours: number }
  readonly log: { readonly level: LogLevel }
  readonly memory: { readonly maxHeapMb: number }
  /** Ingest commit linger (store/readings.ts GroupCommitter). */
  readonly ingest: { readonly lingerMs: number }
}

export const SETTINGS: readonly Setting[] = [
  { path: 'dataDir', env: 'CARELEDGER_GATEWAY_DATA', flag: '--data <dir>', option: 'data', default: './.careledger/gateway', doc: 'data directory (database, tls/, blocks/)' },
  { path: 'mqtt.host', env: 'CARELEDGER_MQTT_HOST', flag: '--mqtt-host <host>', option: 'mqttHost', default: '0.0.0.0', doc: 'address the MQTT and MQTTS listeners bind to' },
  { path: 'mqtt.port', env: 'CARELEDGER_MQTT_PORT', flag: '--mqtt-port <port>', option: 'mqttPort', default: '1883', doc: 'plain MQTT port (0 disables)' },
  { path: 'mqtts.port', env: 'CARELEDGER_MQTTS_PORT', flag: '--mqtts-port <port>', option: 'mqttsPort', default: '8883', doc: 'MQTT over TLS port (0 disables)' },
  { path: 'mqtt.maxConnections', env: 'CARELEDGER_MQTT_MAX_CONNECTIONS', flag: '--mqtt-max-connections <n>', option: 'mqttMaxConnections', default: '512', doc: 'most open MQTT/MQTTS connections' },
  { path: 'mqtt.maxUnauthenticated', env: 'CARELEDGER_MQTT_MAX_UNAUTHENTICATED', flag: '--mqtt-max-unauthenticated <n>', option: 'mqttMaxUnauthenticated', default: '128', doc: 'most connections not logged in yet' },
  { path: 'mqtt.maxUnauthenticatedPerSource', env: 'CARELEDGER_MQTT_MAX_UNAUTHENTICATED_PER_SOURCE', flag: '--mqtt-max-unauthenticated-per-source <n>', option: 'mqttMaxUnauthenticatedPerSource', default: '32', doc: 'most connections not logged in yet from one IP address' },
  { path: 'mqtt.loginQueue', env: 'CARELEDGER_MQTT_LOGIN_QUEUE', flag: '--mqtt-login-queue <n>', option: 'mqttLoginQueue', default: '32', doc: 'logins waiting for their secret check (CONNACK 3 beyond)' },
  { path: 'mqtt.connectTimeoutS', env: 'CARELEDGER_MQTT_CONNECT_TIMEOUT_S', flag: '--mqtt-connect-timeout-s <s>', option: 'mqttConnectTimeoutS', default: '10', doc: 'time for the TLS handshake, then for the CONNECT, s' },
  { path: 'http.host', env: 'CARELEDGER_HTTP_HOST', flag: '--http-host <host>', option: 'httpHost', default: '127.0.0.1', doc: 'address of /healthz and /metrics' },
  { path: 'http.port', env: 'CARELEDGER_HTTP_PORT', flag: '--http-port <port>', option: 'httpPort', default: '9464', doc: 'port of /healthz and /metrics (0 disables)' },
  { path: 'tls.extraNames', env: 'CARELEDGER_TLS_NAMES', flag: '--tls-name <names>', option: 'tlsName', default: '', doc: 'extra DNS names / IPs for the server certificate, comma-separated (repeatable)' },
  { path: 'disk.budgetMb', env: 'CARELEDGER_DISK_BUDGET_MB', flag: '--disk-budget-mb <mb>', option: 'diskBudgetMb', default: '1024', doc: 'disk budget of the data directory, MB' },
  { path: 'disk.minFreeMb', env: 'CARELEDGER_MIN_FREE_MB', flag: '--min-free-mb <mb>', option: 'minFreeMb', default: '64', doc: 'refuse readings when the file system has less free space, MB' },
  { path: 'disk.checkIntervalMs', env: 'CARELEDGER_DISK_CHECK_MS', flag: '--disk-check-ms <ms>', option: 'diskCheckMs', default: '5000', doc: 'data directory re-measure interval, ms' },
  { path: 'quarantine.maxRows', env: 'CARELEDGER_QUARANTINE_MAX_ROWS', flag: '--quarantine-max-rows <n>', option: 'quarantineMaxRows', default: '10000', doc: 'rejected readings kept' },
  { path: 'validation.maxBytes', env: 'CARELEDGER_MAX_PAYLOAD_BYTES', flag: '--max-payload-bytes <n>', option: 'maxPayloadBytes', default: '262144', doc: 'largest payload, bytes' },
  { path: 'validation.maxReadings', env: 'CARELEDGER_MAX_READINGS', flag: '--max-readings <n>', option: 'maxReadings', default: '1000', doc: 'most readings per payload' },
  { path: 'validation.maxFutureS', env: 'CARELEDGER_MAX_FUTURE_S', flag: '--max-future-s <s>', option: 'maxFutureS', default: '300', doc: 'allowed device clock lead, s' },
  { path: 'seal.intervalSeconds', env: 'CARELEDGER_SEAL_INTERVAL_S', flag: '--seal-interval-s <s>', option: 'sealIntervalS', default: '5', doc: 'sealer interval, s' },
  { path: 'seal.offlineIntervalSeconds', env: 'CARELEDGER_SEAL_OFFLINE_INTERVAL_S', flag: '--seal-offline-interval-s <s>', option: 'sealOfflineIntervalS', default: '60', doc: 'sealer interval while the cloud is unreachable, s' },
  { path: 'seal.defaultPolicy', env: 'CARELEDGER_DEFAULT_POLICY', flag: '--default-policy <policy>', option: 'defaultPolicy', default: 'role:doctor', doc: 'default CP-ABE policy of sealed batches' },
  { path: 'sync.retentionHours', env: 'CARELEDGER_RETENTION_HOURS', flag: '--retention-hours <h>', option: 'retentionHours', default: '72', doc: 'hours synced data is kept' },
  { path: 'sync.cloudUrl', env: 'CARELEDGER_CLOUD_URL', flag: '--cloud-url <url>', option: 'cloudUrl', default: undefined, doc: 'cloud endpoint (unset: no shipping)' },
  { path: 'log.level', env: 'CARELEDGER_LOG_LEVEL', flag: '--log-level <level>', option: 'logLevel', default: 'info', doc: 'log level' },
  { path: 'memory.maxHeapMb', env: 'CARELEDGER_MAX_HEAP_MB', flag: '--max-heap-mb <mb>', option: 'maxHeapMb', default: '128', doc: 'V8 old-space limit of the gateway process, MB' },
  { path: 'ingest.lingerMs', env: 'CARELEDGER_INGEST_LINGER_MS', flag: '--ingest-linger-ms <ms>', option: 'ingestLingerMs', default: '10', doc: 'how long a durable commit may wait for other monitors\' PUBLISHes, ms (0: none)' },
]

const MB = 1024 * 1024
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max)
const port = int(0, 65535)
const host = z.string().trim().min(1, 'must not be empty')
const DNS_NAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/
const tlsNames = z
  .string()
  .transform((s) => s.split(',').map((n) => n.trim()).filter(Boolean))
  .pipe(z.array(z.string().refine((n) => isIP(n) !== 0 || DNS_NAME.test(n), { error: (iss) => `"${String(iss.input)}" is neither a DNS name nor an IP address` })))

const RawSchema = z.object({
  dataDir: z.string().trim().min(1, 'must not be empty'),
  mqtt: z.object({
    host,
    port,
    maxConnections: int(1, 1_000_000),
    maxUnauthenticated: int(1, 1_000_000),
    maxUnauthenticatedPerSource: int(1, 1_000_000),
    loginQueue: int(0, 100_000),
    connectTimeoutS: int(1, 600),
  }),
  mqtts: z.object({ port }),
  http: z.object({ host, port }),
  tls: z.object({ extraNames: tlsNames }),
  disk: z.object({ budgetMb: int(8, 16 * 1024 * 1024), minFreeMb: int(0, 1024 * 1024), checkIntervalMs: int(50, 3_600_000) }),
  quarantine: z.object({ maxRows: int(0, 100_000_000) }),
  validation: z.object({ maxBytes: int(64, 16 * MB), maxReadings: int(1, 100_000), maxFutureS: int(0, 7 * 24 * 3600) }),
  seal: z.object({ intervalSeconds: int(1, 86_400), offlineIntervalSeconds: int(1, 86_400), defaultPolicy: z.string().trim().min(1, 'must not be empty').max(4096) }),
  sync: z.object({
    cloudUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
    retentionHours: int(0, 24 * 365 * 10),
  }),
  log: z.object({ level: z.enum(LOG_LEVELS) }),
  memory: z.object({ maxHeapMb: int(64, 16_384) }),
  ingest: z.object({ lingerMs: int(0, 1000) }),
})

export interface LoadedConfig {
  readonly config: GatewayConfig
  readonly sources: Readonly<Record<string, Source>>
}

/**
 * Build the gateway configuration. `flags` is what commander parsed (keys as in `Setting.option`);
 * `env` defaults to process.env. Throws CareLedgerError('INVALID_ARGUMENT') naming the source.
 */
export function loadGatewayConfig(flags: Readonly<Record<string, unknown>> = {}, env: Env = process.env): LoadedConfig {
  const { raw, sources } = resolveSettings(SETTINGS, flags, env)
  const r = parseSettings('gateway', RawSchema, SETTINGS, raw, sources)
  const config: GatewayConfig = {
    dataDir: resolve(r.dataDir),
    mqtt: {
      host: r.mqtt.host,
      port: r.mqtt.port,
      maxConnections: r.mqtt.maxConnections,
      maxUnauthenticated: r.mqtt.maxUnauthenticated,
      maxUnauthenticatedPerSource: r.mqtt.maxUnauthenticatedPerSource,
      loginQueue: r.mqtt.loginQueue,
      connectTimeoutMs: r.mqtt.connectTimeoutS * 1000,
    },
    mqtts: { port: r.mqtts.port },
    http: { host: r.http.host, port: r.http.port },
    tls: { extraNames: [...new Set(r.tls.extraNames)] },
    disk: { budgetBytes: r.disk.budgetMb * MB, minFreeBytes: r.disk.minFreeMb * MB, checkIntervalMs: r.disk.checkIntervalMs },
    quarantine: { maxRows: r.quarantine.maxRows },
    validation: { maxBytes: r.validation.maxBytes, maxReadings: r.validation.maxReadings, maxFutureMs: r.validation.maxFutureS * 1000 },
    // Offline sealing never runs more often than online sealing.
    seal: { intervalSeconds: r.seal.intervalSeconds, offlineIntervalSeconds: Math.max(r.seal.intervalSeconds, r.seal.offlineIntervalSeconds), defaultPolicy: r.seal.defaultPolicy },
    sync: { cloudUrl: r.sync.cloudUrl ?? null, retentionHours: r.sync.retentionHours },
    log: { level: r.log.level },
    memory: { maxHeapMb: r.memory.maxHeapMb },
    ingest: { lingerMs: r.ingest.lingerMs },
  }
  return { config, sources }
}

/** The table above, generated from SETTINGS (for docs/operations.md). */
export const configTable = (): string => settingsTable(SETTINGS)

/** Only the data directory (flag > CARELEDGER_GATEWAY_DATA > default), for the device/ca commands. */
export const resolveDataDir = (flag: string | undefined, env: Env = process.env): string => resolveDirSetting(SETTINGS[0]!, flag, env)
