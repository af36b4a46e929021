/**
 * The supervisory policy: who may approve a correction or deletion of a chain record, how many of
 * them must, and the threshold key they hold. docs/crypto.md §Supervisory policy is normative.
 *
 *   { v: 1, cloud, threshold: k, regulators: [{ index, name, address, verificationShare }],
 *     groupKey, keyGeneration, previous, createdAt }
 *
 *   - `groupKey` IS the chain's chameleon public key Y; regulator i holds the FROST signing share
 *     s_i with s_i·G = verificationShare (hex ristretto255), and k of them adapt an opening together.
 *     k = n = 1 is the single regulator holding the whole trapdoor (verificationShare = groupKey).
 *   - `address` is the regulator's EVM address (EIP-55 checksummed): its wallet signs approvals
 *     (EIP-712, shared/protocol/approval.ts).
 *   - `keyGeneration` records the trust model of the trapdoor: 'dkg' (nobody ever held it whole),
 *     'dealer' (a trusted dealer split it and destroyed its copy), 'single' (1 of 1).
 *   - `previous` is the id of the policy this one replaces (rotation), null for the first.
 *
 * The policy id, SHA-256("careledger/v1/supervisory-policy" ‖ 0 ‖ canonical CBOR), is the EIP-712
 * domain salt of every approval: an approval binds the chain (cloud id) and the exact regulator set.
 */
import { z } from 'zod'
import { getAddress } from 'ethers'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../errors.ts'
import { canonicalDigest, decodeCanonical, encodeCanonical } from '../encoding/canonical.ts'
import { checkFrostGroup, parsePoint, type FrostGroup } from '../crypto/frost.ts'

export const SUPERVISORY_POLICY_VERSION = 1
export const SUPERVISORY_POLICY_DOMAIN = 'supervisory-policy'
export const MAX_REGULATORS = 255
/** A cloud id: what names this chain in approvals (letters, digits, . _ : -). */
export const CLOUD_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

export const hex = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `must be ${bytes * 2} lower-case hex digits`)
export const epochMs = z.number().int().min(0).max(8.64e15)
/** An EVM address exactly as EIP-55 writes it (so one address has one encoding). */
export const evmAddress = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x-prefixed 20-byte EVM address')
  .refine((a) => isChecksummed(a), { message: 'must be EIP-55 checksummed (use ethers.getAddress)' })

// The check costs a Keccak-256 per address and every entry of a log names the same few
// regulators: the addresses found well-formed are remembered (bounded; a fact this process computed).
const checksummedSeen = new Set<string>()
function isChecksummed(a: string): boolean {
  if (checksummedSeen.has(a)) return true
  if (getAddress(a) !== a) return false
  if (checksummedSeen.size >= 4096) checksummedSeen.clear()
  checksummedSeen.add(a)
  return true
}
/** A person's display name: 1–100 characters, no control characters. */
export const displayName = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[^\p{Cc}]+$/u, 'must not contain control characters')

const RegulatorSchema = z.strictObject({
  index: z.number().int().min(1).max(MAX_REGULATORS),
  name: displayName,
  address: evmAddress,
  verificationShare: hex(32),
})

const PolicySchema = z
  .strictObject({
    v: z.literal(SUPERVISORY_POLICY_VERSION),
    cloud: z.string().regex(CLOUD_ID, 'must be 1–128 characters of [A-Za-z0-9._:-]'),
    threshold: z.number().int().min(1).max(MAX_REGULATORS),
    regulators: z.array(RegulatorSchema).min(1).max(MAX_REGULATORS),
    groupKey: hex(32),
    keyGeneration: z.enum(['dkg', 'dealer', 'single']),
    previous: hex(32).nullable(),
    createdAt: epochMs,
  })
  .refine((p) => p.regulators.every((r, i) => r.index === i + 1), { message: 'regulators must be listed in index order 1..n', path: ['regulators'] })
  .refine((p) => new Set(p.regulators.map((r) => r.address.toLowerCase())).size === p.regulators.length, { message: 'a regulator address appears twice', path: ['regulators'] })
  .refine((p) => p.threshold <= p.regulators.length, { message: 'threshold exceeds the number of regulators', path: ['threshold'] })
  .refine((p) => (p.regulators.length === 1) === (p.keyGeneration === 'single'), { message: "keyGeneration is 'single' exactly when there is one regulator", path: ['keyGeneration'] })
  .refine((p) => p.regulators.length === 1 || p.threshold >= 2, { message: 'a threshold of 1 among several regulators would give each the whole trapdoor', path: ['threshold'] })

export type SupervisoryPolicy = z.infer<typeof PolicySchema>
export type Regulator = SupervisoryPolicy['regulators'][number]

/** Problems zod found, as a typed INVALID_ENCODING naming the first few. */
export function schemaError(what: string, error: z.ZodError): never {
  const problems = error.issues.slice(0, 4).map((i) => `${i.path.join('.') || what}: ${i.message}`)
  throw new CareLedgerError('INVALID_ENCODING', `${what}: ${problems.join('; ')}`, { what, reason: 'SCHEMA', problems })
}

/**
 * Validate an untrusted policy: the schema, then the keys: the group key and every verification
 * share are canonical ristretto255 points, and (k ≥ 2) the shares lie on one polynomial of degree
 * k − 1 through the group key (checkFrostGroup), so k of these regulators really sign for groupKey.
 */
export function parseSupervisoryPolicy(value: unknown): SupervisoryPolicy {
  const r = PolicySchema.safeParse(value)
  if (!r.success) schemaError('supervisory policy', r.error)
  const p = r.data
  if (p.keyGeneration === 'single') {
    parsePoint(hexToBytes(p.groupKey), 'group public key')
    if (p.regulators[0]!.verificationShare !== p.groupKey) {
      throw new CareLedgerError('VERIFICATION_FAILED', 'supervisory policy: with one regulator the verification share is the group key', { reason: 'INCONSISTENT_GROUP' })
    }
  } else {
    checkFrostGroup(policyGroup(p))
  }
  return p
}

/** The FROST public key package of a k ≥ 2 policy. */
export function policyGroup(policy: SupervisoryPolicy): FrostGroup {
  return {
    threshold: policy.threshold,
    participants: policy.regulators.length,
    groupKey: hexToBytes(policy.groupKey),
    verificationShares: policy.regulators.map((r) => hexToBytes(r.verificationShare)),
  }
}

/** Build a policy from a key generation's outcome (dealer or DKG) and the regulators' names and addresses. */
export function buildSupervisoryPolicy(fields: {
  cloud: string
  group: FrostGroup
  regulators: readonly { name: string; address: string }[]
  keyGeneration: 'dkg' | 'dealer'
  previous?: Uint8Array | null
  createdAt: number
}): SupervisoryPolicy {
  const group = checkFrostGroup(fields.group)
  if (!Array.isArray(fields.regulators) || fields.regulators.length !== group.participants) {
    throw new CareLedgerError('INVALID_ARGUMENT', `supervisory policy: ${group.participants} key shares but ${Array.isArray(fields.regulators) ? fields.regulators.length : 0} regulators`, { reason: 'COUNT_MISMATCH' })
  }
  return parseSupervisoryPolicy({
    v: SUPERVISORY_POLICY_VERSION,
    cloud: fields.cloud,
    threshold: group.threshold,
    regulators: fields.regulators.map((r, i) => ({ index: i + 1, name: r.name, address: checksum(r.address), verificationShare: bytesToHex(group.verificationShares[i]!) })),
    groupKey: bytesToHex(group.groupKey),
    keyGeneration: fields.keyGeneration,
    previous: fields.previous ? bytesToHex(fields.previous) : null,
    createdAt: fields.createdAt,
  })
}

/** The 1-of-1 policy: one regulator, the whole trapdoor, its chameleon public key. */
export function singleRegulatorPolicy(fields: { cloud: string; publicKey: Uint8Array; regulator: { name: string; address: string }; previous?: Uint8Array | null; createdAt: number }): SupervisoryPolicy {
  const Y = bytesToHex(fields.publicKey instanceof Uint8Array ? fields.publicKey : new Uint8Array(0))
  return parseSupervisoryPolicy({
    v: SUPERVISORY_POLICY_VERSION,
    cloud: fields.cloud,
    threshold: 1,
    regulators: [{ index: 1, name: fields.regulator?.name, address: checksum(fields.regulator?.address), verificationShare: Y }],
    groupKey: Y,
    keyGeneration: 'single',
    previous: fields.previous ? bytesToHex(fields.previous) : null,
    createdAt: fields.createdAt,
  })
}

/** EIP-55 form of an address; the input's case does not matter, a malformed one is named. */
export function checksum(address: unknown): string {
  try {
    return getAddress(String(address))
  } catch {
    throw new CareLedgerError('INVALID_ARGUMENT', `${JSON.stringify(address)} is not an EVM address`, { reason: 'BAD_ADDRESS', address })
  }
}

export const encodeSupervisoryPolicy = (policy: SupervisoryPolicy): Uint8Array => encodeCanonical(parseSupervisoryPolicy(policy))

/** Strict: canonical CBOR, then the full check. */
export const decodeSupervisoryPolicy = (bytes: Uint8Array): SupervisoryPolicy => parseSupervisoryPolicy(decodeCanonical(bytes))

/** The policy id: 32 bytes, the EIP-712 domain salt of its approvals. */
export function supervisoryPolicyId(policy: SupervisoryPolicy): Uint8Array {
  // Every approval and log entry asks for its policy's id: remembered per policy object, and
  // recomputed if the object has changed since (its JSON is compared, far cheaper than the schema).
  const json = typeof policy === 'object' && policy !== null ? JSON.stringify(policy) : undefined
  const seen = json === undefined ? undefined : policyIds.get(policy)
  if (seen && seen.json === json) return seen.id.slice()
  // The schema only (cheap): the id commits to a well-formed policy, never to stray fields.
  const r = PolicySchema.safeParse(policy)
  if (!r.success) schemaError('supervisory policy', r.error)
  const id = canonicalDigest(SUPERVISORY_POLICY_DOMAIN, r.data)
  if (json !== undefined) policyIds.set(policy, { json, id: id.slice() })
  return id
}
const policyIds = new WeakMap<object, { json: string; id: Uint8Array }>()

/** The regulator with this address (any case), or undefined. */
export function regulatorByAddress(policy: SupervisoryPolicy, address: string): Regulator | undefined {
  const a = typeof address === 'string' ? address.toLowerCase() : ''
  return policy.regulators.find((r) => r.address.toLowerCase() === a)
}
