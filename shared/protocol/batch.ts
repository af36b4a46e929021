/**
 * The plaintext inside a sealed batch's envelope, and the Merkle tree over its readings.
 *
 *   leaf  = canonical CBOR of one reading { seq, ts, rx, type, unit, value | samples + hz }
 *   body  = canonical CBOR { v: 2, stream, seq, leaves: [leaf as a byte string, …] }
 *   root  = RFC 9162 Merkle tree hash over the leaves, in order        (crypto/merkle.ts)
 *
 * Numbers (docs/protocol.md §Numbers): every value is the IEEE 754 binary64 number JSON.parse read
 * from the device's payload, unchanged; canonical CBOR writes it in the shortest width that keeps
 * it exactly (RFC 8949 §4.2.2), so a device can recompute its own leaves. Versions:
 *   v2 — the numbers as the device sent them;
 *   v1 — gateways before issue 8 stored ECG samples as binary32, so v1 bodies hold samples rounded
 *        to the nearest binary32 (-0.58918 sealed as -0.5891799926757812). Same layout; still read.
 *
 * The body carries each leaf's exact bytes, so the root is recomputed over what was sealed, and
 * each reading is encoded once when sealing (the sealer's main cost).
 *
 * The root is in the signed manifest, so whoever may decrypt a batch (a doctor, a research
 * institution) can check that every reading is there and none was altered, and prove a single
 * reading with an inclusion proof without revealing the others.
 */
import { CareLedgerError } from '../errors.ts'
import { decodeCanonical, encodeCanonical } from '../encoding/canonical.ts'
import { MerkleTree } from '../crypto/merkle.ts'
import { validateReading, isRejection, type Reading } from '../schema/reading.ts'

export const BATCH_BODY_VERSION = 2
/** Body versions this build reads. */
export const BATCH_BODY_VERSIONS = [1, 2] as const
export type BatchBodyVersion = (typeof BATCH_BODY_VERSIONS)[number]

/** A reading as sealed: the device's reading plus the gateway's receive time `rx`. */
export interface SealedReading extends Reading {
  readonly rx: number
}

export interface BatchBody {
  readonly v: BatchBodyVersion
  readonly stream: string
  readonly seq: number
  readonly readings: readonly SealedReading[]
  /** The readings' canonical leaf encodings as decoded (decodeBatchBody), so the Merkle root need not re-encode them. */
  readonly leaves?: readonly Uint8Array[]
}

function leafValue(r: SealedReading): Record<string, unknown> {
  const base = { seq: r.seq, ts: r.ts, rx: r.rx, type: r.type, unit: r.unit }
  return r.type === 'ecg' ? { ...base, samples: r.samples, hz: r.hz } : { ...base, value: r.value }
}

export const readingLeaf = (r: SealedReading): Uint8Array => encodeCanonical(leafValue(r))

export const readingsTree = (readings: readonly SealedReading[]): MerkleTree => MerkleTree.fromLeaves(readings.map(readingLeaf))

/**
 * The Merkle tree of a body's readings: over the decoded leaf bytes when it has them (canonical,
 * so the same bytes readingLeaf gives for what was decoded from them), else re-encoded.
 */
export const bodyTree = (body: BatchBody): MerkleTree => (body.leaves ? MerkleTree.fromLeaves(body.leaves) : readingsTree(body.readings))

export function encodeBatchBody(body: BatchBody): Uint8Array {
  return sealBody(body.stream, body.seq, body.readings).body
}

/** What the sealer needs: the body and the Merkle root, with each reading encoded once. */
export function sealBody(stream: string, seq: number, readings: readonly SealedReading[]): { body: Uint8Array; root: Uint8Array } {
  const leaves = readings.map(readingLeaf)
  return { body: encodeCanonical({ v: BATCH_BODY_VERSION, stream, seq, leaves }), root: MerkleTree.fromLeaves(leaves).root }
}

/** Parse a decrypted body; every reading is re-validated against the device schema. */
export function decodeBatchBody(bytes: Uint8Array): BatchBody {
  const fail = (problem: string): never => {
    throw new CareLedgerError('INVALID_ENCODING', `batch body: ${problem}`, { what: 'batch body', reason: 'SCHEMA' })
  }
  const v = decodeCanonical(bytes) as Record<string, unknown>
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail('not a map')
  const version = v.v as BatchBodyVersion
  if (!BATCH_BODY_VERSIONS.includes(version)) return fail(`version ${String(v.v)} is not supported (this build reads ${BATCH_BODY_VERSIONS.join(', ')})`)
  if (typeof v.stream !== 'string' || typeof v.seq !== 'number' || !Array.isArray(v.leaves)) return fail('missing stream, seq or leaves')
  const readings = v.leaves.map((leaf: unknown, i: number) => {
    if (!(leaf instanceof Uint8Array)) return fail(`leaf ${i} is not a byte string`)
    const { rx, ...reading } = decodeCanonical(leaf) as Record<string, unknown>
    if (typeof rx !== 'number' || !Number.isSafeInteger(rx)) return fail(`reading ${i}: rx must be epoch milliseconds`)
    // Sealed leaves hold ts as a number (leafValue), so the decoded reading re-encodes to the leaf itself (bodyTree).
    if (typeof reading.ts !== 'number') return fail(`reading ${i}: ts must be epoch milliseconds`)
    // The clock check does not apply to sealed history: judge against the receive time.
    const verdict = validateReading(reading, { now: rx, maxFutureMs: Number.MAX_SAFE_INTEGER })
    if (isRejection(verdict)) return fail(`reading ${i}: ${verdict.message}`)
    return { ...verdict, rx }
  })
  return { v: version, stream: v.stream, seq: v.seq, readings, leaves: v.leaves as Uint8Array[] }
}
