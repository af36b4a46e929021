/**
 * Patient pseudonyms and stream ids. The raw patient id never leaves the gateway: manifests,
 * policies (`patient:p-…`) and the cloud only ever see
 *
 *   pseudonym = "p-" ‖ hex(HMAC-SHA256(pseudonymKey, "careledger/v1/patient" ‖ 0x00 ‖ patientId))[0..24]
 *
 * The key is per hospital (configure the same key on all of a hospital's gateways so a patient
 * keeps one pseudonym across wards); without it the pseudonym cannot be linked back to a patient
 * by a dictionary of patient ids. 96 bits keep collisions out of reach for any realistic census.
 */
import { hmac } from '@noble/hashes/hmac.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { domainSeparated, encodeCanonical } from '../encoding/canonical.ts'

const utf8 = new TextEncoder()

export function patientPseudonym(pseudonymKey: Uint8Array, patientId: string): string {
  if (pseudonymKey.length < 32) throw new RangeError('pseudonym key must be at least 32 bytes')
  return `p-${bytesToHex(hmac(sha256, pseudonymKey, domainSeparated('patient', utf8.encode(patientId)))).slice(0, 24)}`
}

/** A stream is one device's readings for one patient at one gateway; its id is public. */
export const streamId = (gatewayId: string, deviceId: string, pseudonym: string): string =>
  bytesToHex(sha256(domainSeparated('stream', encodeCanonical([gatewayId, deviceId, pseudonym])))).slice(0, 32)
