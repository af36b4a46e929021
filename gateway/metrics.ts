/**
 * The gateway's Prometheus registry (served at GET /metrics). One registry per gateway instance;
 * the sealer and the outbox add their own metrics to `metrics.registry` (batches sealed, outbox
 * depth/age, last successful sync) with the same `careledger_gateway_` prefix.
 *
 * Hot-path counters are incremented once per group commit, not once per message.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { RejectionCode } from '../shared/schema/reading.ts'
import type { GatewayRejectionCode } from './store/readings.ts'

export const METRIC_PREFIX = 'careledger_gateway_'

/** Every rejection reason, so each label is exported (as 0) before it first happens. */
export const REJECTION_REASONS = [
  'PAYLOAD_TOO_LARGE',
  'MALFORMED_JSON',
  'TOO_MANY_READINGS',
  'SCHEMA',
  'UNKNOWN_TYPE',
  'WRONG_UNIT',
  'IMPLAUSIBLE_VALUE',
  'BAD_TIMESTAMP',
  'FUTURE_TIMESTAMP',
  'SEQ_REUSED',
  'UNPROCESSABLE',
] as const satisfies ReadonlyArray<RejectionCode | GatewayRejectionCode>
// Compile-time check that the list above names every RejectionCode of shared/schema/reading.ts.
const everyRejectionCode: Exclude<RejectionCode, (typeof REJECTION_REASONS)[number]> extends never ? true : false = true
void everyRejectionCode

export const REFUSAL_REASONS = ['FORBIDDEN_TOPIC', 'WILL', 'STORAGE_FULL', 'STORE_FAILED', 'NOT_ENROLLED', 'PAYLOAD_TOO_LARGE'] as const
export const AUTH_FAILURE_REASONS = ['BAD_CREDENTIALS', 'DISABLED', 'CLIENT_ID_MISMATCH', 'BUSY'] as const
/** Connections closed by the broker's own limits (admission.ts, packet-gate.ts, TLS). */
export const CONNECTION_REFUSAL_REASONS = [
  'MAX_CONNECTIONS',
  'MAX_UNAUTHENTICATED',
  'SOURCE_UNAUTHENTICATED',
  'NOT_CONNECT',
  'CONNECT_TOO_LARGE',
  'PACKET_TOO_LARGE',
  'MALFORMED_LENGTH',
  'TLS_HANDSHAKE',
] as const

export function createGatewayMetrics(registry: Registry = new Registry()) {
  const m = build(registry)
  for (const reason of REJECTION_REASONS) m.readingsRejected.labels({ reason }).inc(0)
  for (const reason of REFUSAL_REASONS) m.publishRefused.labels({ reason }).inc(0)
  for (const reason of AUTH_FAILURE_REASONS) m.authFailures.labels({ reason }).inc(0)
  for (const reason of CONNECTION_REFUSAL_REASONS) m.connectionsRefused.labels({ reason }).inc(0)
  return m
}

function build(registry: Registry) {
  const p = METRIC_PREFIX
  const registers = [registry]
  // Event-loop lag sampled every 100 ms, not prom-client's default 10 ms: that timer alone woke an
  // idle gateway 100 times a second (~0.6 % of a core, bench:ward); stalls of 0.2 s (the alert) still show.
  collectDefaultMetrics({ register: registry, prefix: p, eventLoopMonitoringPrecision: 100 })
  return {
    registry,
    readingsAccepted: new Counter({ name: `${p}readings_accepted_total`, help: 'Readings durably stored (first receipt).', registers }),
    readingsRejected: new Counter({
      name: `${p}readings_rejected_total`,
      help: 'Readings that failed validation (acknowledged, quarantined, reported on the errors topic), by rejection code.',
      labelNames: ['reason'] as const,
      registers,
    }),
    readingsDuplicate: new Counter({ name: `${p}readings_duplicate_total`, help: 'Resent readings already stored: acknowledged, stored once.', registers }),
    publishRefused: new Counter({
      name: `${p}publish_refused_total`,
      help: 'PUBLISH packets refused without PUBACK (connection closed), by reason: FORBIDDEN_TOPIC, WILL, STORAGE_FULL, STORE_FAILED, NOT_ENROLLED, PAYLOAD_TOO_LARGE (refused by its header).',
      labelNames: ['reason'] as const,
      registers,
    }),
    subscribeRefused: new Counter({ name: `${p}subscribe_refused_total`, help: 'SUBSCRIBE topic filters refused (SUBACK 0x80).', registers }),
    quarantineRows: new Gauge({ name: `${p}quarantine_rows`, help: 'Rows in the quarantine table.', registers }),
    quarantineDropped: new Counter({ name: `${p}quarantine_dropped_total`, help: 'Oldest quarantine rows deleted to stay within the configured bound.', registers }),
    diskUsedBytes: new Gauge({ name: `${p}disk_used_bytes`, help: 'Disk used by the data directory (live database pages + WAL + other files such as blocks/).', registers }),
    diskBudgetBytes: new Gauge({ name: `${p}disk_budget_bytes`, help: 'Configured disk budget of the data directory.', registers }),
    diskFreeBytes: new Gauge({ name: `${p}filesystem_free_bytes`, help: 'Free space of the file system holding the data directory.', registers }),
    storageFull: new Gauge({ name: `${p}storage_full`, help: 'ALERT: 1 while new readings are refused because the disk budget or free-space floor is reached.', registers }),
    connectedDevices: new Gauge({ name: `${p}connected_devices`, help: 'Devices with an open MQTT connection.', registers }),
    authFailures: new Counter({
      name: `${p}auth_failures_total`,
      help: 'Refused MQTT connections, by reason: BAD_CREDENTIALS, DISABLED, CLIENT_ID_MISMATCH, BUSY (login queue full, CONNACK 3).',
      labelNames: ['reason'] as const,
      registers,
    }),
    connectionsRefused: new Counter({
      name: `${p}connections_refused_total`,
      help: 'Connections closed by the broker limits before or instead of a login: connection caps, packets over their size limit, TLS handshakes that failed or timed out.',
      labelNames: ['reason'] as const,
      registers,
    }),
    unauthenticatedConnections: new Gauge({ name: `${p}unauthenticated_connections`, help: 'Open connections that have not logged in yet (TLS handshake, CONNECT, secret check).', registers }),
    loginQueueWaiting: new Gauge({ name: `${p}login_queue_waiting`, help: 'Logins waiting for their scrypt check.', registers }),
    commitSeconds: new Histogram({
      name: `${p}commit_duration_seconds`,
      help: 'Duration of one group commit (one transaction, one WAL fsync).',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    commitBatchWrites: new Histogram({
      name: `${p}commit_batch_publishes`,
      help: 'PUBLISH packets committed per group commit.',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
      registers,
    }),
    commitFailures: new Counter({ name: `${p}commit_failures_total`, help: 'Group commits that failed (nothing acknowledged).', registers }),
    dbCorruptionRecovered: new Gauge({
      name: `${p}db_corruption_recovered`,
      help: 'ALERT: 1 if this boot found gateway.db corrupt, renamed it aside and started a fresh database.',
      registers,
    }),
    dbCorruptFiles: new Gauge({ name: `${p}db_corrupt_files`, help: 'Corrupt databases set aside in the data directory, awaiting an operator.', registers }),
    serverCertExpiry: new Gauge({ name: `${p}tls_server_cert_expiry_timestamp_seconds`, help: 'notAfter of the MQTTS server certificate.', registers }),
  }
}

export type GatewayMetrics = ReturnType<typeof build>
