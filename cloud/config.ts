/**
 * Cloud configuration: one typed object built from CLI flags > environment variables > embedded
 * defaults, validated with zod. Every error names the flag or variable the bad value came from.
 *
 * | variable | flag | default | meaning |
 * |---|---|---|---|
 * | `CARELEDGER_CLOUD_DATA` | `--data <dir>` | `./.careledger/cloud` | data directory: `cloud.db` (+ `-wal`, `-shm`), `blocks/` (the envelope blockstore), `keys/` (block-signing key, pinned chameleon public key), `regulator/` (development mode only) |
 * | `CARELEDGER_CLOUD_HOST` | `--host <host>` | `127.0.0.1` | address the HTTP(S) API and console listen on |
 * | `CARELEDGER_CLOUD_PORT` | `--port <port>` | `8080` | port of the API and console; `0` picks a free one (logged) |
 * | `CARELEDGER_CLOUD_TLS_CERT` | `--tls-cert <file>` | (none) | PEM certificate chain: with `_KEY`, the API speaks HTTPS only |
 * | `CARELEDGER_CLOUD_TLS_KEY` | `--tls-key <file>` | (none) | PEM private key of that certificate |
 * | `CARELEDGER_CHAMELEON_PUBLIC_KEY` | `--chameleon-public-key <file>` | (none) | the regulator's chameleon-hash public key file (`careledger` key format). Unset: development mode — a regulator key pair is generated under `<data>/regulator/` and a loud warning logged |
 * | `CARELEDGER_CLOUD_BLOCK_INTERVAL_S` | `--block-interval-s <s>` | `2` | seconds between attempts to seal pending records into a block (fractions allowed) |
 * | `CARELEDGER_CLOUD_VERIFY_INTERVAL_S` | `--verify-interval-s <s>` | `300` | seconds between full chain verifications (the first runs at start); `0` disables them |
 * | `CARELEDGER_CLOUD_VERIFY_WORKERS` | `--verify-workers <n>` | `0` | worker threads for chain verification; `0` lets the chain module choose |
 * | `CARELEDGER_CLOUD_MAX_BATCH_BYTES` | `--max-batch-bytes <n>` | `2097152` | body limit of `POST /v1/batches` (413 PAYLOAD_TOO_LARGE beyond); `POST /v1/batches/bulk` is fixed at 16 MiB by docs/api.md |
 * | `CARELEDGER_CLOUD_PUBLIC_IPFS` | `--public-ipfs <yes/no>` | `no` | serve `GET /ipfs/{cid}` (the IPFS trustless gateway) without a token: every envelope is then public ciphertext (docs/security.md §IPFS) |
 * | `CARELEDGER_CLOUD_TRANSFORM_WORKERS` | `--transform-workers <n>` | `1` | worker threads for outsourced decryption (`POST /v1/transform`, 3 pairings per record) |
 * | `CARELEDGER_CLOUD_MAX_INFLIGHT_BYTES` | `--max-inflight-bytes <n>` | `67108864` | signed request bodies being read at once, all gateways together (503 OVERLOADED beyond; at least 16 MiB) |
 * | `CARELEDGER_CLOUD_MAX_INFLIGHT_GATEWAY_BYTES` | `--max-inflight-gateway-bytes <n>` | `16777216` | the same for one gateway (429 TOO_MANY_REQUESTS beyond; at least 16 MiB) |
 * | `CARELEDGER_CLOUD_MAX_CONNECTIONS` | `--max-connections <n>` | `1000` | open connections to the API (the ones beyond are closed) |
 * | `CARELEDGER_CLOUD_MAX_CONNECTIONS_PER_ADDRESS` | `--max-connections-per-address <n>` | `100` | open connections from one remote address; `0` = no such cap (behind a reverse proxy) |
 * | `CARELEDGER_CLOUD_SCRUB_INTERVAL_S` | `--scrub-interval-s <s>` | `86400` | seconds between scrubs of the envelope blockstore (every block re-hashed against its CID); `0` disables them |
 * | `CARELEDGER_CLOUD_DATABASE` | `--database <url>` | (none) | the chain's store: unset = SQLite in `<data>/cloud.db`; a `postgres://…` URL = PostgreSQL shared by several cloud processes (the chain, tokens, gateways, nonces), one of them sealing at a time (docs/operations.md §PostgreSQL) |
 * | `CARELEDGER_CLOUD_BLOCKS` | `--blocks <dir>` | `<data>/blocks` | the envelope blockstore directory; several cloud processes on one PostgreSQL share one (a shared filesystem) |
 * | `CARELEDGER_LOG_LEVEL` | `--log-level <level>` | `info` | pino level: fatal, error, warn, info, debug, trace, silent |
 * | `CARELEDGER_ANCHOR_*` | `--anchor-*` | off | anchoring the chain head to an EVM chain: cloud/anchor/config.ts |
 *
 * An empty environment variable counts as unset.
 */
import { join, resolve } from 'node:path'
import { z } from 'zod'
import { ANCHOR_SETTINGS, AnchorRawSchema, anchorConfigFrom, type AnchorConfig } from './anchor/config.ts'
import { LOG_LEVELS, parseSettings, resolveDirSetting, resolveSettings, setPath, settingsTable, type Env, type LogLevel, type Setting, type Source } from '../shared/config/settings.ts'

export { LOG_LEVELS, getPath, type LogLevel, type Setting, type Source } from '../shared/config/settings.ts'

/** docs/api.md §POST /v1/batches/bulk: at most 500 batches or 16 MiB. */
export const BULK_MAX_BATCHES = 500
export const BULK_MAX_BYTES = 16 * 1024 * 1024

export interface CloudConfig {
  /** Absolute path of the data directory. */
  readonly dataDir: string
  readonly paths: {
    readonly db: string
    readonly blocks: string
    readonly keys: string
    readonly regulator: string
  }
  readonly http: { readonly host: string; readonly port: number }
  /** Both set or both null. */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | null
  /** PostgreSQL URL of the chain's shared store; null = the chain in the SQLite cloud.db. */
  readonly database: string | null
  /** Regulator's chameleon public key file; null = development mode. */
  readonly chameleonPublicKeyFile: string | null
  readonly chain: { readonly blockIntervalMs: number; readonly verifyIntervalMs: number; readonly verifyWorkers: number; readonly scrubIntervalMs: number }
  readonly limits: {
    readonly batchBytes: number
    readonly bulkBytes: number
    readonly bulkBatches: number
    readonly inflight: { readonly totalBytes: number; readonly gatewayBytes: number }
    readonly connections: { readonly max: number; readonly perAddress: number }
  }
  /** Reading records back (cloud/retrieval/): the IPFS trustless gateway and outsourced decryption. */
  readonly retrieval: { readonly publicIpfs: boolean; readonly transformWorkers: number }
  readonly log: { readonly level: LogLevel }
  /** How long a graceful stop may take before `cloud start` exits 1 anyway (a stuck job or database). */
  readonly stopTimeoutMs: number
  /** Anchoring the chain head to an EVM chain (cloud/anchor/config.ts); off unless an RPC URL is set. */
  readonly anchor: AnchorConfig
}

export const SETTINGS: readonly Setting[] = [
  { path: 'dataDir', env: 'CARELEDGER_CLOUD_DATA', flag: '--data <dir>', option: 'data', default: './.careledger/cloud', doc: 'data directory (cloud.db, blocks/, keys/)' },
  { path: 'http.host', env: 'CARELEDGER_CLOUD_HOST', flag: '--host <host>', option: 'host', default: '127.0.0.1', doc: 'address the API and console listen on' },
  { path: 'http.port', env: 'CARELEDGER_CLOUD_PORT', flag: '--port <port>', option: 'port', default: '8080', doc: 'port of the API and console (0 picks a free one)' },
  { path: 'tls.certFile', env: 'CARELEDGER_CLOUD_TLS_CERT', flag: '--tls-cert <file>', option: 'tlsCert', default: undefined, doc: 'PEM certificate: serve HTTPS (needs --tls-key)' },
  { path: 'tls.keyFile', env: 'CARELEDGER_CLOUD_TLS_KEY', flag: '--tls-key <file>', option: 'tlsKey', default: undefined, doc: 'PEM private key of the certificate' },
  { path: 'chameleonPublicKeyFile', env: 'CARELEDGER_CHAMELEON_PUBLIC_KEY', flag: '--chameleon-public-key <file>', option: 'chameleonPublicKey', default: undefined, doc: "regulator's chameleon public key file (unset: development mode)" },
  { path: 'chain.blockIntervalS', env: 'CARELEDGER_CLOUD_BLOCK_INTERVAL_S', flag: '--block-interval-s <s>', option: 'blockIntervalS', default: '2', doc: 'seconds between block sealing attempts' },
  { path: 'chain.verifyIntervalS', env: 'CARELEDGER_CLOUD_VERIFY_INTERVAL_S', flag: '--verify-interval-s <s>', option: 'verifyIntervalS', default: '300', doc: 'seconds between chain verifications (0 disables)' },
  { path: 'chain.verifyWorkers', env: 'CARELEDGER_CLOUD_VERIFY_WORKERS', flag: '--verify-workers <n>', option: 'verifyWorkers', default: '0', doc: 'verification worker threads (0: chain default)' },
  { path: 'limits.batchBytes', env: 'CARELEDGER_CLOUD_MAX_BATCH_BYTES', flag: '--max-batch-bytes <n>', option: 'maxBatchBytes', default: String(2 * 1024 * 1024), doc: 'body limit of POST /v1/batches, bytes' },
  { path: 'retrieval.publicIpfs', env: 'CARELEDGER_CLOUD_PUBLIC_IPFS', flag: '--public-ipfs <yes/no>', option: 'publicIpfs', default: 'no', doc: 'serve /ipfs/{cid} without a token' },
  { path: 'retrieval.transformWorkers', env: 'CARELEDGER_CLOUD_TRANSFORM_WORKERS', flag: '--transform-workers <n>', option: 'transformWorkers', default: '1', doc: 'worker threads for outsourced decryption' },
  { path: 'limits.inflightBytes', env: 'CARELEDGER_CLOUD_MAX_INFLIGHT_BYTES', flag: '--max-inflight-bytes <n>', option: 'maxInflightBytes', default: String(64 * 1024 * 1024), doc: 'signed request bodies being read at once, all gateways, bytes' },
  { path: 'limits.inflightGatewayBytes', env: 'CARELEDGER_CLOUD_MAX_INFLIGHT_GATEWAY_BYTES', flag: '--max-inflight-gateway-bytes <n>', option: 'maxInflightGatewayBytes', default: String(BULK_MAX_BYTES), doc: 'the same for one gateway, bytes' },
  { path: 'limits.maxConnections', env: 'CARELEDGER_CLOUD_MAX_CONNECTIONS', flag: '--max-connections <n>', option: 'maxConnections', default: '1000', doc: 'open connections to the API' },
  { path: 'limits.maxConnectionsPerAddress', env: 'CARELEDGER_CLOUD_MAX_CONNECTIONS_PER_ADDRESS', flag: '--max-connections-per-address <n>', option: 'maxConnectionsPerAddress', default: '100', doc: 'open connections from one address (0: no cap)' },
  { path: 'chain.scrubIntervalS', env: 'CARELEDGER_CLOUD_SCRUB_INTERVAL_S', flag: '--scrub-interval-s <s>', option: 'scrubIntervalS', default: '86400', doc: 'seconds between blockstore scrubs (0 disables)' },
  { path: 'database', env: 'CARELEDGER_CLOUD_DATABASE', flag: '--database <url>', option: 'database', default: undefined, doc: "the chain's store: a postgres:// URL (unset: SQLite in <data>/cloud.db)" },
  { path: 'blocksDir', env: 'CARELEDGER_CLOUD_BLOCKS', flag: '--blocks <dir>', option: 'blocks', default: undefined, doc: 'envelope blockstore directory (default <data>/blocks)' },
  { path: 'stopTimeoutS', env: 'CARELEDGER_CLOUD_STOP_TIMEOUT_S', flag: '--stop-timeout-s <s>', option: 'stopTimeoutS', default: '25', doc: 'seconds a graceful stop may take before the process exits 1 anyway (keep it below the service manager\'s stop timeout)' },
  { path: 'log.level', env: 'CARELEDGER_LOG_LEVEL', flag: '--log-level <level>', option: 'logLevel', default: 'info', doc: 'log level' },
  ...ANCHOR_SETTINGS,
]

const path = z.string().trim().min(1, 'must not be empty')
const seconds = (min: number, max: number) => z.coerce.number().finite().min(min).max(max)

const RawSchema = z
  .object({
    dataDir: path,
    http: z.object({ host: z.string().trim().min(1, 'must not be empty'), port: z.coerce.number().int().min(0).max(65535) }),
    tls: z.object({ certFile: path.optional(), keyFile: path.optional() }),
    chameleonPublicKeyFile: path.optional(),
    database: z.string().trim().regex(/^postgres(ql)?:\/\/\S+$/i, 'must be a postgres:// or postgresql:// URL').optional(),
    blocksDir: path.optional(),
    stopTimeoutS: seconds(1, 3600),
    chain: z.object({
      blockIntervalS: seconds(0.05, 3600),
      verifyIntervalS: seconds(0, 7 * 24 * 3600).refine((s) => s === 0 || s >= 1, 'must be 0 (disabled) or at least 1'),
      verifyWorkers: z.coerce.number().int().min(0).max(256),
      scrubIntervalS: seconds(0, 30 * 24 * 3600).refine((s) => s === 0 || s >= 1, 'must be 0 (disabled) or at least 1'),
    }),
    limits: z.object({
      batchBytes: z.coerce.number().int().min(1024).max(BULK_MAX_BYTES),
      inflightBytes: z.coerce.number().int().min(BULK_MAX_BYTES, 'must be at least 16777216 (one bulk upload)').max(2 ** 40),
      inflightGatewayBytes: z.coerce.number().int().min(BULK_MAX_BYTES, 'must be at least 16777216 (one bulk upload)').max(2 ** 40),
      maxConnections: z.coerce.number().int().min(1).max(1_000_000),
      maxConnectionsPerAddress: z.coerce.number().int().min(0).max(1_000_000),
    }),
    retrieval: z.object({
      publicIpfs: z.enum(['yes', 'no', 'true', 'false', '1', '0'], 'must be yes or no').transform((v) => v === 'yes' || v === 'true' || v === '1'),
      transformWorkers: z.coerce.number().int().min(1).max(64),
    }),
    log: z.object({ level: z.enum(LOG_LEVELS) }),
    anchor: AnchorRawSchema,
  })
  .refine((r) => (r.tls.certFile === undefined) === (r.tls.keyFile === undefined), {
    message: 'TLS needs both a certificate and a key',
    path: ['tls', 'certFile'],
  })

export interface LoadedConfig {
  readonly config: CloudConfig
  readonly sources: Readonly<Record<string, Source>>
}

/**
 * Build the cloud configuration. `flags` is what commander parsed (keys as in `Setting.option`);
 * `env` defaults to process.env. Throws CareLedgerError('INVALID_ARGUMENT') naming the source.
 */
export function loadCloudConfig(flags: Readonly<Record<string, unknown>> = {}, env: Env = process.env): LoadedConfig {
  const { raw, sources } = resolveSettings(SETTINGS, flags, env)
  setPath(raw, 'tls', (raw.tls as object | undefined) ?? {})
  const r = parseSettings('cloud', RawSchema, SETTINGS, raw, sources)
  const dataDir = resolve(r.dataDir)
  const config: CloudConfig = {
    dataDir,
    paths: { db: join(dataDir, 'cloud.db'), blocks: r.blocksDir === undefined ? join(dataDir, 'blocks') : resolve(r.blocksDir), keys: join(dataDir, 'keys'), regulator: join(dataDir, 'regulator') },
    database: r.database ?? null,
    http: { host: r.http.host, port: r.http.port },
    tls: r.tls.certFile !== undefined && r.tls.keyFile !== undefined ? { certFile: resolve(r.tls.certFile), keyFile: resolve(r.tls.keyFile) } : null,
    chameleonPublicKeyFile: r.chameleonPublicKeyFile === undefined ? null : resolve(r.chameleonPublicKeyFile),
    chain: {
      blockIntervalMs: Math.round(r.chain.blockIntervalS * 1000),
      verifyIntervalMs: Math.round(r.chain.verifyIntervalS * 1000),
      verifyWorkers: r.chain.verifyWorkers,
      scrubIntervalMs: Math.round(r.chain.scrubIntervalS * 1000),
    },
    limits: {
      batchBytes: r.limits.batchBytes,
      bulkBytes: BULK_MAX_BYTES,
      bulkBatches: BULK_MAX_BATCHES,
      inflight: { totalBytes: r.limits.inflightBytes, gatewayBytes: r.limits.inflightGatewayBytes },
      connections: { max: r.limits.maxConnections, perAddress: r.limits.maxConnectionsPerAddress },
    },
    retrieval: { publicIpfs: r.retrieval.publicIpfs, transformWorkers: r.retrieval.transformWorkers },
    log: { level: r.log.level },
    stopTimeoutMs: Math.round(r.stopTimeoutS * 1000),
    anchor: anchorConfigFrom(r.anchor),
  }
  return { config, sources }
}

/** Only the data directory (flag > CARELEDGER_CLOUD_DATA > default), for the token and gateway commands. */
export const resolveCloudDataDir = (flag: string | undefined, env: Env = process.env): string => resolveDirSetting(SETTINGS[0]!, flag, env)

export const cloudDbPath = (dataDir: string): string => join(dataDir, 'cloud.db')

/** The table above, generated from SETTINGS. */
export const configTable = (): string => settingsTable(SETTINGS)
