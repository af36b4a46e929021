/**
 * Setting up a k-of-n regulator committee without anybody holding the trapdoor: the DKG ceremony
 * (shared/crypto/frost-dkg.ts) with the cloud as a relay it need not be trusted with.
 *
 *   1. Ceremony   { v: 1, cloud, threshold, regulators: [{ index, name, address }], nonce, createdAt }
 *                 id Φ = SHA-256("careledger/v1/frost-dkg-ceremony" ‖ 0 ‖ canonical CBOR) — the DKG's
 *                 context string, so proofs of knowledge are bound to this one run.
 *   2. Round 1    each regulator broadcasts its package and signs its digest with its wallet:
 *                 EIP-712 DkgPackage(bytes32 ceremony, uint8 participant, bytes32 package) under
 *                 { name: "CareLedger Supervision Setup", version: "1", salt: Φ }. Without this, the
 *                 relaying cloud could swap a regulator's encryption key and read its round-2 shares.
 *   3. Round 2/3  encrypted shares, checked against the commitments (frost-dkg.ts).
 *   4. Acceptance each regulator signs the resulting policy and its DKG transcript digest:
 *                 EIP-712 PolicyAcceptance(bytes32 policy, bytes32 transcript, bytes32 groupKey) under the
 *                 policy's own supervision domain. The policy takes effect only with all n acceptances,
 *                 so a relay that showed different round-1 packages to different regulators is caught
 *                 (their transcripts, hence their signatures, differ).
 */
import { z } from 'zod'
import { TypedDataEncoder, verifyTypedData, type TypedDataField } from 'ethers'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../errors.ts'
import { canonicalDigest } from '../encoding/canonical.ts'
import { dkgCheckRound1, dkgPackageDigest, type DkgCeremony, type DkgResult, type DkgRound1Package } from '../crypto/frost-dkg.ts'
import { SUPERVISION_DOMAIN_NAME, supervisionDomain } from './approval.ts'
import {
  buildSupervisoryPolicy,
  CLOUD_ID,
  displayName,
  epochMs,
  evmAddress,
  hex,
  MAX_REGULATORS,
  schemaError,
  supervisoryPolicyId,
  type SupervisoryPolicy,
} from './supervisory-policy.ts'

export const CEREMONY_VERSION = 1
export const SETUP_DOMAIN_NAME = `${SUPERVISION_DOMAIN_NAME} Setup`

const CeremonySchema = z
  .strictObject({
    v: z.literal(CEREMONY_VERSION),
    cloud: z.string().regex(CLOUD_ID, 'must be 1–128 characters of [A-Za-z0-9._:-]'),
    threshold: z.number().int().min(2).max(MAX_REGULATORS),
    regulators: z.array(z.strictObject({ index: z.number().int().min(1).max(MAX_REGULATORS), name: displayName, address: evmAddress })).min(2).max(MAX_REGULATORS),
    /** 16 fresh random bytes: two ceremonies with the same people never share an id. */
    nonce: hex(16),
    createdAt: epochMs,
  })
  .refine((c) => c.regulators.every((r, i) => r.index === i + 1), { message: 'regulators must be listed in index order 1..n', path: ['regulators'] })
  .refine((c) => new Set(c.regulators.map((r) => r.address.toLowerCase())).size === c.regulators.length, { message: 'a regulator address appears twice', path: ['regulators'] })
  .refine((c) => c.threshold <= c.regulators.length, { message: 'threshold exceeds the number of regulators', path: ['threshold'] })

export type CeremonyParams = z.infer<typeof CeremonySchema>

export function parseCeremony(value: unknown): CeremonyParams {
  const r = CeremonySchema.safeParse(value)
  if (!r.success) schemaError('DKG ceremony', r.error)
  return r.data
}

/** The DKG's view of a ceremony: its id Φ, k and n. */
export function dkgCeremony(params: CeremonyParams): DkgCeremony {
  const p = parseCeremony(params)
  return { id: canonicalDigest('frost-dkg-ceremony', p), threshold: p.threshold, participants: p.regulators.length }
}

export const DKG_PACKAGE_TYPES: Record<string, TypedDataField[]> = {
  DkgPackage: [
    { name: 'ceremony', type: 'bytes32' },
    { name: 'participant', type: 'uint8' },
    { name: 'package', type: 'bytes32' },
  ],
}

export const POLICY_ACCEPTANCE_TYPES: Record<string, TypedDataField[]> = {
  PolicyAcceptance: [
    { name: 'policy', type: 'bytes32' },
    { name: 'transcript', type: 'bytes32' },
    { name: 'groupKey', type: 'bytes32' },
  ],
}

/** What regulator `pkg.index` signs with its wallet to vouch for its round-1 package. */
export function dkgPackageTypedData(params: CeremonyParams, pkg: DkgRound1Package) {
  const ceremony = dkgCeremony(params)
  return {
    domain: { name: SETUP_DOMAIN_NAME, version: '1', salt: '0x' + bytesToHex(ceremony.id) },
    types: DKG_PACKAGE_TYPES,
    primaryType: 'DkgPackage' as const,
    message: { ceremony: '0x' + bytesToHex(ceremony.id), participant: pkg.index, package: '0x' + bytesToHex(dkgPackageDigest(ceremony, pkg)) },
  }
}

function recover(what: string, domain: Parameters<typeof verifyTypedData>[0], types: Record<string, TypedDataField[]>, message: Record<string, unknown>, signature: unknown): string | null {
  if (typeof signature !== 'string' || !/^0x[0-9a-fA-F]{130}$/.test(signature)) {
    throw new CareLedgerError('VERIFICATION_FAILED', `${what}: the signature is not a 0x-prefixed 65-byte signature`, { reason: 'BAD_SIGNATURE' })
  }
  try {
    return verifyTypedData(domain, types, message, signature)
  } catch {
    return null
  }
}

/**
 * Check every signed round-1 package of a ceremony: each is signed by the wallet of the regulator
 * at its index (else VERIFICATION_FAILED, reason FORGED, naming the participant), then the DKG's own
 * checks (dkgCheckRound1). Returns the packages sorted by participant.
 */
export function verifyDkgPackages(params: CeremonyParams, signed: readonly { package: DkgRound1Package; signature: string }[]): DkgRound1Package[] {
  const p = parseCeremony(params)
  if (!Array.isArray(signed)) throw new CareLedgerError('INVALID_ARGUMENT', 'DKG round 1: expected an array of signed packages', { reason: 'BAD_PACKAGES' })
  for (const s of signed) {
    const index = s?.package?.index
    const regulator = p.regulators.find((r) => r.index === index)
    if (!regulator) throw new CareLedgerError('INVALID_ARGUMENT', `DKG round 1: participant ${String(index)} is not in the ceremony`, { reason: 'UNKNOWN_PARTICIPANT', participant: index })
    const t = dkgPackageTypedData(p, s.package)
    const signer = recover(`DKG package of participant ${index}`, t.domain, t.types, t.message, s.signature)
    if (signer !== regulator.address) {
      throw new CareLedgerError('VERIFICATION_FAILED', `DKG round 1: the package of participant ${index} is not signed by ${regulator.name} (${regulator.address})`, {
        reason: 'FORGED',
        participant: index,
        signer,
      })
    }
  }
  return dkgCheckRound1(dkgCeremony(p), signed.map((s) => s.package))
}

/** The policy a finished DKG defines (every participant computes the same one, or the relay cheated). */
export function policyFromDkg(params: CeremonyParams, result: DkgResult, options: { createdAt: number; previous?: Uint8Array | null }): SupervisoryPolicy {
  const p = parseCeremony(params)
  return buildSupervisoryPolicy({ cloud: p.cloud, group: result.group, regulators: p.regulators, keyGeneration: 'dkg', previous: options.previous ?? null, createdAt: options.createdAt })
}

/** What each regulator signs to accept a policy (and, after a DKG, the transcript it saw; 32 zero bytes after a dealer). */
export function policyAcceptanceTypedData(policy: SupervisoryPolicy, transcript: Uint8Array) {
  if (!(transcript instanceof Uint8Array) || transcript.length !== 32) throw new CareLedgerError('INVALID_ARGUMENT', 'policy acceptance: the transcript must be 32 bytes', { reason: 'BAD_TRANSCRIPT' })
  return {
    domain: supervisionDomain(policy),
    types: POLICY_ACCEPTANCE_TYPES,
    primaryType: 'PolicyAcceptance' as const,
    message: { policy: '0x' + bytesToHex(supervisoryPolicyId(policy)), transcript: '0x' + bytesToHex(transcript), groupKey: '0x' + policy.groupKey },
  }
}

export const policyAcceptanceDigest = (policy: SupervisoryPolicy, transcript: Uint8Array): Uint8Array => {
  const t = policyAcceptanceTypedData(policy, transcript)
  return hexToBytes(TypedDataEncoder.hash(t.domain, t.types, t.message).slice(2))
}

/**
 * A policy takes effect only when every one of its regulators accepted it over the same transcript.
 * Throws VERIFICATION_FAILED naming the regulator whose acceptance is missing (NOT_ACCEPTED) or wrong (FORGED).
 */
export function verifyPolicyAcceptances(policy: SupervisoryPolicy, transcript: Uint8Array, acceptances: readonly { regulator: string; signature: string }[]): void {
  const t = policyAcceptanceTypedData(policy, transcript)
  if (!Array.isArray(acceptances)) throw new CareLedgerError('INVALID_ARGUMENT', 'policy acceptances: expected an array', { reason: 'NOT_AN_ARRAY' })
  for (const r of policy.regulators) {
    const mine = acceptances.filter((a) => typeof a?.regulator === 'string' && a.regulator.toLowerCase() === r.address.toLowerCase())
    if (mine.length === 0) throw new CareLedgerError('VERIFICATION_FAILED', `policy not accepted by ${r.name} (${r.address})`, { reason: 'NOT_ACCEPTED', regulator: r.address })
    for (const a of mine) {
      if (recover(`acceptance by ${r.name}`, t.domain, t.types, t.message, a.signature) !== r.address) {
        throw new CareLedgerError('VERIFICATION_FAILED', `the acceptance by ${r.name} (${r.address}) does not verify for this policy and transcript`, { reason: 'FORGED', regulator: r.address })
      }
    }
  }
}
