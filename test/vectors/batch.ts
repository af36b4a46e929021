/**
 * Known-answer vectors of the batch body (shared/protocol/batch.ts): the canonical CBOR body and
 * the RFC 9162 Merkle root over its leaves, for a fixed stream of readings.
 *
 * Version 2 (current) holds each number exactly as the device sent it (IEEE 754 binary64, the value
 * JSON.parse reads); version 1 bodies, sealed by gateways before issue 8, hold ECG samples rounded
 * to binary32. The v1 vector was computed once by the v1 sealer and is frozen in batch.json:
 * `npm run kat:regenerate` rewrites v2 and keeps v1 as it is, and v1 bodies must stay readable.
 */
import { sealBody, type SealedReading } from '../../shared/protocol/batch.ts'

export const BATCH_KAT_STREAM = '0123456789abcdef0123456789abcdef'
export const BATCH_KAT_SEQ = 7
/** As a device would send them: ECG samples that binary32 cannot hold, a negative zero, a scalar. */
export const BATCH_KAT_READINGS: readonly SealedReading[] = [
  { seq: 41, ts: 1795600800000, rx: 1795600800123, type: 'heart_rate', unit: '/min', value: 72 },
  { seq: 42, ts: 1795600800000, rx: 1795600800123, type: 'body_temp', unit: 'Cel', value: 36.9 },
  { seq: 43, ts: 1795600799000, rx: 1795600800124, type: 'ecg', unit: 'mV', hz: 250, samples: [-0.58918, 0.012, 0.1, -0, 1.5, 19.999999999999996, -20] },
]

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

export function computeBatchVectors(): Record<string, string> {
  const { body, root } = sealBody(BATCH_KAT_STREAM, BATCH_KAT_SEQ, BATCH_KAT_READINGS)
  return { body: hex(body), merkleRoot: hex(root) }
}
