/**
 * Opening verified batches (pure): the block must hash to the CID in its signed manifest, the key
 * must satisfy the manifest's policy (checked first: a batch the key cannot open is reported, not
 * attempted), the envelope opens under the manifest's associated data — locally (3 pairings) or
 * by finishing what a proxy transformed (one GT exponentiation, Green–Hohenberger–Waters) — and
 * the body must be the batch the manifest describes (stream, seq, count, Merkle root).
 */
import { bytesToHex } from '@noble/hashes/utils.js'
import { decaps, type UserKey } from '../shared/crypto/abe/fabeo.ts'
import { decodeTransformed, digestHeader } from '../shared/crypto/abe/codec.ts'
import { finish } from '../shared/crypto/abe/outsource.ts'
import { timingSafeEqual } from 'node:crypto'
import type { GT } from '../shared/crypto/abe/gt.ts'
import type { RetrievalKey } from '../shared/crypto/abe/outsource.ts'
import { decodeEnvelope, envelopeCiphertext, finishEnvelope, openWithKey } from '../shared/crypto/envelope.ts'
import { evaluatePolicy, parsePolicy } from '../shared/crypto/policy/parse.ts'
import { CareLedgerError } from '../shared/errors.ts'
import { bodyTree, decodeBatchBody, type BatchBody, type SealedReading } from '../shared/protocol/batch.ts'
import { rawCid } from '../shared/protocol/car.ts'
import { manifestAad, type BatchManifest } from '../shared/protocol/manifest.ts'
import type { EvidenceQuery } from '../shared/protocol/evidence.ts'
import type { RetrievalFailure } from './verify.ts'

/** Null when the block is the one the manifest names; a SUBSTITUTED failure otherwise. */
export async function checkBlock(bytes: Uint8Array, manifest: BatchManifest, recordId: number): Promise<RetrievalFailure | null> {
  const cid = (await rawCid(bytes)).toString()
  if (cid === manifest.cid && bytes.length === manifest.size) return null
  return {
    kind: 'SUBSTITUTED',
    stream: manifest.stream,
    seq: manifest.seq,
    recordId,
    message: `record ${recordId} (${manifest.stream}#${manifest.seq}): the block served for ${manifest.cid} hashes to ${cid} (${bytes.length} bytes, the manifest says ${manifest.size})`,
  }
}

/** Can these attributes open a batch under `policy`? (Plain evaluation; no pairing.) */
export const authorises = (attributes: readonly string[], policy: string): boolean => evaluatePolicy(parsePolicy(policy), new Set(attributes))

/** The body must be exactly the batch the signed manifest describes. */
export function checkBody(body: BatchBody, m: BatchManifest): BatchBody {
  const fail = (what: string): never => {
    throw new CareLedgerError('VERIFICATION_FAILED', `${m.stream}#${m.seq}: ${what}`, { reason: 'BODY', stream: m.stream, seq: m.seq })
  }
  if (body.stream !== m.stream || body.seq !== m.seq) fail(`the envelope holds batch ${body.stream}#${body.seq}`)
  if (body.readings.length !== m.count) fail(`${body.readings.length} readings, the manifest says ${m.count}`)
  if (bytesToHex(bodyTree(body).root) !== m.merkleRoot) fail('the Merkle root of the readings is not the manifest\'s')
  return body
}

/**
 * Opens with a user key. Keeps the decapsulated key per ciphertext header, so batches that share
 * one encapsulation (one per stream and epoch, when gateways seal that way) cost one Decaps.
 */
export class LocalOpener {
  readonly key: UserKey
  readonly #kem = new Map<string, GT>()

  constructor(key: UserKey) {
    this.key = key
  }

  open(envelope: Uint8Array, manifest: BatchManifest): BatchBody {
    const env = decodeEnvelope(envelope)
    const id = bytesToHex(digestHeader(env.header))
    let k = this.#kem.get(id)
    if (!k) {
      k = decaps(this.key, envelopeCiphertext(env))
      if (this.#kem.size >= 256) this.#kem.delete(this.#kem.keys().next().value!)
      this.#kem.set(id, k)
    }
    return checkBody(decodeBatchBody(openWithKey(env, k, manifestAad(manifest))), manifest)
  }
}

/** Finishes what a proxy transformed with the holder's transformation key: one GT exponentiation here. */
export function finishBatch(rk: RetrievalKey, envelope: Uint8Array, transformed: Uint8Array, manifest: BatchManifest): BatchBody {
  return checkBody(decodeBatchBody(finishEnvelope(rk, envelope, transformed, manifestAad(manifest))), manifest)
}

/**
 * finishBatch for many batches: keeps K per transformed ciphertext, so the batches of a stream that
 * share one encapsulation (envelope format 2) cost one Finish. The transformed bytes name their
 * header's digest, which `openWithKey`'s key commitment checks against each envelope.
 */
export class OutsourcedFinisher {
  readonly #rk: RetrievalKey
  /** Per transformed ciphertext (bytes, hex): the header digest it names and K. A hit skips decoding T (its GT membership check, ~2 ms) and the Finish. */
  readonly #kem = new Map<string, { headerDigest: Uint8Array; k: GT }>()

  constructor(rk: RetrievalKey) {
    this.#rk = rk
  }

  open(envelope: Uint8Array, transformed: Uint8Array, manifest: BatchManifest): BatchBody {
    const env = decodeEnvelope(envelope)
    const id = bytesToHex(transformed)
    let hit = this.#kem.get(id)
    if (!hit) {
      const tc = decodeTransformed(transformed)
      sameHeader(tc.headerDigest, env.header)
      hit = { headerDigest: tc.headerDigest, k: finish(this.#rk, tc.t) }
      if (this.#kem.size >= 256) this.#kem.delete(this.#kem.keys().next().value!)
      this.#kem.set(id, hit)
    } else sameHeader(hit.headerDigest, env.header)
    return checkBody(decodeBatchBody(openWithKey(env, hit.k, manifestAad(manifest))), manifest)
  }
}

function sameHeader(headerDigest: Uint8Array, header: Uint8Array): void {
  if (!timingSafeEqual(headerDigest, digestHeader(header))) {
    throw new CareLedgerError('DECRYPTION_FAILED', 'the transformed ciphertext was computed for a different envelope', { reason: 'HEADER_MISMATCH' })
  }
}

/** The readings of a batch the query asks for: time range and types. */
export const selectReadings = (body: BatchBody, q: Pick<EvidenceQuery, 'from' | 'to' | 'types'>): SealedReading[] =>
  body.readings.filter((r) => r.ts >= q.from && r.ts <= q.to && (q.types === null || q.types.includes(r.type)))
