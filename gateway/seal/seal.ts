/**
 * Sealing one batch of a stream — the work the monitors are too small for. Pure: readings and
 * keys in, the sealed artefacts out; storing them is the caller's job (sealer.ts).
 *
 *   sealStages = [encodeBody, merkleRoot, encryptEnvelope, contentAddress, signManifest]
 *
 * encryptEnvelope seals with the stream's encapsulation (envelope format 2, docs/crypto.md §Stream
 * keys): the caller passes the one it keeps for the stream, and a new one is made only when the
 * policy — epoch included — differs; the one used comes back for the caller to keep.
 *
 * The envelope is one raw IPFS block (CIDv1, raw codec, sha2-256), so its CID is a pure function
 * of its bytes; batches are capped well below the 1 MiB block size IPFS peers exchange.
 */
import type { CID } from 'multiformats/cid'
import { rawCid } from '../../shared/protocol/car.ts'
import { bytesToHex } from '@noble/hashes/utils.js'
import { encapsulate, sealWithKem, type StreamKem } from '../../shared/crypto/envelope.ts'
import type { MasterPublicKey } from '../../shared/crypto/abe/fabeo.ts'
import { compilePolicy } from '../../shared/crypto/abe/fabeo.ts'
import { systemRng, type Rng } from '../../shared/crypto/random.ts'
import { sealBody, type SealedReading } from '../../shared/protocol/batch.ts'
import { manifestAad, manifestCommitment, signManifest, type BatchManifest } from '../../shared/protocol/manifest.ts'
import { epochOf, withEpoch } from '../../shared/protocol/epoch.ts'

/** Keep each envelope a single IPFS block. */
export const MAX_ENVELOPE_BYTES = 1024 * 1024

export interface StreamPosition {
  readonly streamId: string
  readonly deviceId: string
  readonly pseudonym: string
  /** Sequence number the next batch of this stream gets (0 for a new stream). */
  readonly nextSeq: number
  /** Commitment of the stream's previous batch; null before the first. */
  readonly prevCommitment: string | null
}

export interface SealInput {
  readonly gatewayId: string
  readonly gatewaySecretKey: Uint8Array
  readonly mpk: MasterPublicKey
  /** The stream's policy with `{patient}` already substituted; sealBatch adds the epoch of `now` (shared/protocol/epoch.ts). */
  readonly policy: string
  readonly stream: StreamPosition
  readonly readings: readonly SealedReading[]
  readonly now: number
  /** The stream's current encapsulation, if the caller keeps one; used when its policy is this batch's. */
  readonly kem?: StreamKem | null
  readonly rng?: Rng
}

export interface SealedBatch {
  readonly manifest: BatchManifest
  readonly signature: Uint8Array
  readonly commitment: string
  readonly envelope: Uint8Array
  readonly cid: CID
  /** The encapsulation this batch was sealed with (the caller keeps it for the stream's next batches). */
  readonly kem: StreamKem
}

export { rawCid } from '../../shared/protocol/car.ts'

/** Substitute the stream's pseudonym into a policy template such as "role:doctor OR patient:{patient}". */
export const policyFor = (template: string, pseudonym: string): string => compilePolicy(template.replaceAll('{patient}', pseudonym)).text

export async function sealBatch(input: SealInput): Promise<SealedBatch> {
  const { stream, readings } = input
  if (readings.length === 0) throw new RangeError('sealBatch: no readings')
  // The batch is readable only by keys valid in the month it is sealed (docs/security.md §Key expiry).
  const policy = withEpoch(input.policy, epochOf(input.now))
  // encodeBody + merkleRoot, each reading encoded once
  const { body, root } = sealBody(stream.streamId, stream.nextSeq, readings)
  let from = Infinity
  let to = -Infinity
  const types = new Set<string>()
  for (const r of readings) {
    if (r.ts < from) from = r.ts
    if (r.ts > to) to = r.ts
    types.add(r.type)
  }
  const sealedFields = {
    v: 1 as const,
    gateway: input.gatewayId,
    stream: stream.streamId,
    device: stream.deviceId,
    patient: stream.pseudonym,
    seq: stream.nextSeq,
    prev: stream.prevCommitment,
    from,
    to,
    count: readings.length,
    types: [...types].sort(),
    merkleRoot: bytesToHex(root),
    authority: bytesToHex(input.mpk.id),
    policy,
    sealedAt: input.now,
  }
  // encryptEnvelope: the manifest's sealed fields are the AEAD's associated data
  const rng = input.rng ?? systemRng
  const kem = input.kem?.policy === policy ? input.kem : encapsulate(input.mpk, policy, rng)
  const envelope = sealWithKem(kem, { stream: stream.streamId, seq: stream.nextSeq, digest: root }, body, manifestAad(sealedFields), rng)
  if (envelope.length > MAX_ENVELOPE_BYTES) throw new RangeError(`sealed batch of ${envelope.length} bytes exceeds one block; seal fewer readings`)
  // contentAddress
  const cid = await rawCid(envelope)
  const manifest: BatchManifest = { ...sealedFields, cid: cid.toString(), size: envelope.length }
  // signManifest
  const signature = signManifest(input.gatewaySecretKey, manifest)
  return { manifest, signature, commitment: manifestCommitment(manifest), envelope, cid, kem }
}
