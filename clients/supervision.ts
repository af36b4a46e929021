/**
 * The requester's and the regulator's side of supervision (docs/security.md §Supervision): the
 * requester decrypts the batch, re-seals the corrected readings with the same stream, seq, prev,
 * pseudonym and policy, and seals the evidence so only regulators open it; regulators open the
 * evidence, sign their decision (EIP-712) and run the FROST rounds. The cloud never sees a reading.
 *
 * Evidence = sealEnvelope(authority, "role:regulator", canonical CBOR { v: 1, record, action,
 * reason, requester, manifest, old, new }, AAD = canonical CBOR { record, action }): CP-ABE under
 * the same authority as the batches, so any key the authority issued with `role:regulator` opens it.
 */
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../shared/errors.ts'
import { decodeCanonical, encodeCanonical } from '../shared/encoding/canonical.ts'
import { decaps, type MasterPublicKey, type UserKey } from '../shared/crypto/abe/fabeo.ts'
import { decodeEnvelope, envelopeCiphertext, openWithKey, sealEnvelope } from '../shared/crypto/envelope.ts'
import { systemRng, type Rng } from '../shared/crypto/random.ts'
import { decodeBatchBody, sealBody, type SealedReading } from '../shared/protocol/batch.ts'
import { rawCid } from '../shared/protocol/car.ts'
import { manifestAad, type BatchManifest } from '../shared/protocol/manifest.ts'
import { LocalOpener } from './decrypt.ts'

export const EVIDENCE_POLICY = 'role:regulator'

export interface Evidence {
  readonly v: 1
  readonly record: number
  readonly action: 'correct' | 'delete'
  readonly reason: string
  readonly requester: string
  readonly manifest: BatchManifest
  readonly old: readonly SealedReading[]
  readonly new: readonly SealedReading[] | null
}

/** The requester opens the record's batch with its attribute key (checks CID, policy, body against the manifest). */
export function openBatch(key: UserKey, envelope: Uint8Array, manifest: BatchManifest): SealedReading[] {
  return [...new LocalOpener(key).open(envelope, manifest).readings]
}

/**
 * Re-seal corrected readings as the same batch: stream, seq, prev, gateway, device, patient,
 * policy (with its epoch), authority and sealedAt kept; from, to, count, types, Merkle root, CID
 * and size follow from the new readings.
 */
export async function resealCorrection(mpk: MasterPublicKey, old: BatchManifest, readings: readonly unknown[], rng: Rng = systemRng): Promise<{ manifest: BatchManifest; envelope: Uint8Array }> {
  if (!Array.isArray(readings) || readings.length === 0) throw new CareLedgerError('INVALID_ARGUMENT', 'the corrected readings: expected a non-empty JSON array of readings', { field: 'readings' })
  if (bytesToHex(mpk.id) !== old.authority) throw new CareLedgerError('INVALID_ARGUMENT', `the authority key ${bytesToHex(mpk.id)} is not the one this batch was sealed under (${old.authority})`, { field: 'authority' })
  // Validate every reading as the devices' schema says (decodeBatchBody re-checks each one).
  let body: ReturnType<typeof decodeBatchBody>
  try {
    body = decodeBatchBody(sealBody(old.stream, old.seq, readings as SealedReading[]).body)
  } catch (e) {
    throw new CareLedgerError('INVALID_ARGUMENT', `the corrected readings: ${(e as Error).message}`, { field: 'readings' })
  }
  const { body: bytes, root } = sealBody(old.stream, old.seq, body.readings)
  let from = Infinity
  let to = -Infinity
  const types = new Set<string>()
  for (const r of body.readings) {
    from = Math.min(from, r.ts)
    to = Math.max(to, r.ts)
    types.add(r.type)
  }
  const sealed = { ...old, from, to, count: body.readings.length, types: [...types].sort(), merkleRoot: bytesToHex(root) }
  const { cid: _c, size: _s, ...aadFields } = sealed
  const envelope = sealEnvelope(mpk, old.policy, bytes, manifestAad(aadFields), rng)
  const cid = await rawCid(envelope)
  return { manifest: { ...aadFields, cid: cid.toString(), size: envelope.length } as BatchManifest, envelope }
}

const evidenceAad = (record: number, action: string): Uint8Array => encodeCanonical({ record, action })

export function sealEvidence(mpk: MasterPublicKey, e: Evidence, rng: Rng = systemRng): Uint8Array {
  return sealEnvelope(mpk, EVIDENCE_POLICY, encodeCanonical(JSON.parse(JSON.stringify(e))), evidenceAad(e.record, e.action), rng)
}

/** A regulator opens the evidence of a request for (record, action) with its `role:regulator` key. */
export function openEvidence(key: UserKey, bytes: Uint8Array, record: number, action: string): Evidence {
  const env = decodeEnvelope(bytes)
  let plain: Uint8Array
  try {
    plain = openWithKey(env, decaps(key, envelopeCiphertext(env)), evidenceAad(record, action))
  } catch (e) {
    throw new CareLedgerError('DECRYPTION_FAILED', `the evidence of this request does not open with this key (it needs role:regulator, and must be for record ${record}, ${action}): ${(e as Error).message}`, { reason: 'EVIDENCE' })
  }
  const ev = decodeCanonical(plain) as unknown as Evidence
  if (ev?.record !== record || ev?.action !== action) throw new CareLedgerError('VERIFICATION_FAILED', `the evidence is for record ${ev?.record} (${ev?.action}), not this request`, { reason: 'EVIDENCE' })
  return ev
}
