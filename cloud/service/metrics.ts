/**
 * The cloud's Prometheus registry, served at GET /metrics (admin token). One registry per cloud
 * instance, prefix `careledger_cloud_`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export const METRIC_PREFIX = 'careledger_cloud_'

export function createCloudMetrics(registry: Registry = new Registry()) {
  const p = METRIC_PREFIX
  const registers = [registry]
  collectDefaultMetrics({ register: registry, prefix: p })
  return {
    registry,
    httpRequests: new Counter({ name: `${p}http_requests_total`, help: 'HTTP requests answered, by route and status.', labelNames: ['route', 'status'] as const, registers }),
    httpSeconds: new Histogram({
      name: `${p}http_request_duration_seconds`,
      help: 'Time to answer an HTTP request, by route.',
      labelNames: ['route'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    batches: new Counter({
      name: `${p}batches_total`,
      help: 'Uploaded batches judged, by outcome: created, duplicate, or the error code (INVALID_MANIFEST, INVALID_CAR, CONFLICT, …).',
      labelNames: ['outcome'] as const,
      registers,
    }),
    authFailures: new Counter({ name: `${p}auth_failures_total`, help: 'Refused credentials, by error code.', labelNames: ['code'] as const, registers }),
    equivocations: new Counter({ name: `${p}equivocations_total`, help: 'ALERT: a gateway sent a different batch for an occupied (stream, seq).', registers }),
    blocksSealed: new Counter({ name: `${p}blocks_sealed_total`, help: 'Blocks sealed by this process.', registers }),
    sealFailures: new Counter({ name: `${p}seal_failures_total`, help: 'Block sealing attempts that threw.', registers }),
    height: new Gauge({ name: `${p}chain_height`, help: 'Height of the newest block (-1: none yet).', registers }),
    records: new Gauge({ name: `${p}chain_records`, help: 'Records on the chain.', registers }),
    connectionsRefused: new Counter({ name: `${p}connections_refused_total`, help: 'Connections closed at once by a cap: total (CARELEDGER_CLOUD_MAX_CONNECTIONS) or per-address.', labelNames: ['reason'] as const, registers }),
    inflightBytes: new Gauge({ name: `${p}inflight_body_bytes`, help: 'Signed request body bytes admitted and not yet answered (capped by CARELEDGER_CLOUD_MAX_INFLIGHT_BYTES).', registers }),
    envelopesDamaged: new Gauge({ name: `${p}envelopes_damaged`, help: 'ALERT when > 0: envelope blocks missing or not hashing to their CID, found by the blockstore scrub and not yet repaired.', registers }),
    envelopesRepaired: new Counter({ name: `${p}envelopes_repaired_total`, help: 'Damaged envelope blocks replaced by a good copy a gateway resent.', registers }),
    scrubTime: new Gauge({ name: `${p}scrub_timestamp_seconds`, help: 'When the latest blockstore scrub finished.', registers }),
    scrubSeconds: new Histogram({ name: `${p}scrub_duration_seconds`, help: 'Duration of a blockstore scrub.', buckets: [0.1, 1, 10, 60, 300, 1800, 3600, 14400], registers }),
    verificationOk: new Gauge({ name: `${p}verification_ok`, help: 'ALERT when 0: 1 if the latest full chain verification passed.', registers }),
    verificationTime: new Gauge({ name: `${p}verification_timestamp_seconds`, help: 'When the latest chain verification finished.', registers }),
    verificationSeconds: new Histogram({
      name: `${p}verification_duration_seconds`,
      help: 'Duration of a full chain verification.',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
      registers,
    }),
  }
}

export type CloudMetrics = ReturnType<typeof createCloudMetrics>
