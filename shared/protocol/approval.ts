/**
 * A regulator's decision on a correction or deletion request: EIP-712 typed data signed by the
 * regulator's Ethereum wallet (ethers Wallet.signTypedData, a hardware wallet, or a browser wallet's
 * eth_signTypedData_v4), verified with ethers' verifyTypedData. docs/crypto.md §Approvals is normative.
 *
 *   domain   { name: "CareLedger Supervision", version: "1", salt: policy id }
 *   Approval(bytes32 requestId, uint64 record, string action, bytes32 oldContent, bytes32 newContent,
 *            string decision, string comment)
 *
 * The salt is the supervisory policy's id (shared/protocol/supervisory-policy.ts), which commits to
 * the cloud id and the regulator set, so an approval counts on one chain under one policy only.
 * oldContent/newContent are contentDigest() of the record's content before and after, so an
 * approval covers exactly the change the regulator reviewed.
 *
 * Every refusal is VERIFICATION_FAILED with `info.reason` naming what was wrong:
 *   WRONG_POLICY      signed for another policy (or chain)
 *   BAD_SIGNATURE     not a 65-byte secp256k1 signature with a low s
 *   FORGED            the signature is not the named regulator's over this approval
 *   NOT_A_REGULATOR   signed by someone the policy does not list
 *   REPLAYED          an approval of another request
 *   WRONG_RECORD / WRONG_ACTION / WRONG_CONTENT   for this request, but not what it asks
 *   DUPLICATE_APPROVAL  a regulator counted twice      INSUFFICIENT_APPROVALS  fewer than k
 *   REQUEST_REJECTED    so many rejections that k approvals can no longer be reached
 */
import { z } from 'zod'
import { concat, keccak256, Signature, TypedDataEncoder, type TypedDataDomain, type TypedDataField } from 'ethers'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../errors.ts'
import { domainSeparated } from '../encoding/canonical.ts'
import { ethSigner } from '../crypto/eth-signer.ts'
import { structHasher, typedDataDigest, type StructHasher, type StructValue } from './eip712-struct.ts'
import { evmAddress, hex, regulatorByAddress, schemaError, supervisoryPolicyId, type Regulator, type SupervisoryPolicy } from './supervisory-policy.ts'

export const SUPERVISION_DOMAIN_NAME = 'CareLedger Supervision'
export const SUPERVISION_DOMAIN_VERSION = '1'
export const MAX_COMMENT = 2000

/** The EIP-712 struct (field order is part of the type hash: never reorder). */
export const APPROVAL_TYPES: Record<string, TypedDataField[]> = {
  Approval: [
    { name: 'requestId', type: 'bytes32' },
    { name: 'record', type: 'uint64' },
    { name: 'action', type: 'string' },
    { name: 'oldContent', type: 'bytes32' },
    { name: 'newContent', type: 'bytes32' },
    { name: 'decision', type: 'string' },
    { name: 'comment', type: 'string' },
  ],
}

export const REDACTION_ACTIONS = ['correct', 'delete'] as const
export const DECISIONS = ['approve', 'reject'] as const
export type RedactionAction = (typeof REDACTION_ACTIONS)[number]
export type Decision = (typeof DECISIONS)[number]

/** What a request asks for: the part of an approval that must match the request it is counted for. */
export const RedactionSubjectSchema = z.strictObject({
  /** hex SHA-256 id of the (signed) request. */
  requestId: hex(32),
  /** The record's id (its position in the chain). */
  record: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  action: z.enum(REDACTION_ACTIONS),
  /** contentDigest of the record's content now, and of what it becomes (the tombstone for a deletion). */
  oldContent: hex(32),
  newContent: hex(32),
})
export type RedactionSubject = z.infer<typeof RedactionSubjectSchema>

const SignedApprovalSchema = z.strictObject({
  ...RedactionSubjectSchema.shape,
  /** hex id of the supervisory policy it was signed under (the domain salt). */
  policy: hex(32),
  /** The regulator who signed (EIP-55). */
  regulator: evmAddress,
  decision: z.enum(DECISIONS),
  comment: z.string().max(MAX_COMMENT),
  /** 0x ‖ r ‖ s ‖ v: 65 bytes hex, as wallets return it. */
  signature: z.string().regex(/^0x[0-9a-fA-F]{130}$/, 'must be a 0x-prefixed 65-byte signature'),
})
export type SignedApproval = z.infer<typeof SignedApprovalSchema>

/** The fields a regulator signs (a SignedApproval without policy, regulator and signature). */
export type ApprovalMessage = RedactionSubject & { readonly decision: Decision; readonly comment: string }

/** The record content digest that approvals and the redaction log name: SHA-256("careledger/v1/record-content" ‖ 0 ‖ content). */
export const contentDigest = (content: Uint8Array): string => bytesToHex(sha256(domainSeparated('record-content', content)))

export function parseRedactionSubject(value: unknown): RedactionSubject {
  const r = RedactionSubjectSchema.safeParse(value)
  if (!r.success) schemaError('redaction subject', r.error)
  return r.data
}

export function parseSignedApproval(value: unknown): SignedApproval {
  const r = SignedApprovalSchema.safeParse(value)
  if (!r.success) schemaError('approval', r.error)
  return r.data
}

/** The EIP-712 domain of a policy's approvals. */
export function supervisionDomain(policy: SupervisoryPolicy): TypedDataDomain {
  return { name: SUPERVISION_DOMAIN_NAME, version: SUPERVISION_DOMAIN_VERSION, salt: '0x' + bytesToHex(supervisoryPolicyId(policy)) }
}

const typedMessage = (m: ApprovalMessage) => ({
  requestId: '0x' + m.requestId,
  record: BigInt(m.record),
  action: m.action,
  oldContent: '0x' + m.oldContent,
  newContent: '0x' + m.newContent,
  decision: m.decision,
  comment: m.comment,
})

// Built once: zod compiles an object schema on first use (a fresh one per call cost more than the check).
const DecisionSchema = z.strictObject({ decision: z.enum(DECISIONS), comment: z.string().max(MAX_COMMENT) })

function checkMessage(message: ApprovalMessage): ApprovalMessage {
  const subject = parseRedactionSubject({ requestId: message?.requestId, record: message?.record, action: message?.action, oldContent: message?.oldContent, newContent: message?.newContent })
  const rest = DecisionSchema.safeParse({ decision: message.decision, comment: message.comment })
  if (!rest.success) schemaError('approval', rest.error)
  return { ...subject, ...rest.data }
}

/**
 * What a wallet signs: `{ domain, types, primaryType, message }` — pass domain, types and message
 * to ethers' signer.signTypedData, or the JSON of the whole to eth_signTypedData_v4 (the types then
 * also need EIP712Domain, which TypedDataEncoder.getPayload adds).
 */
export function approvalTypedData(policy: SupervisoryPolicy, message: ApprovalMessage) {
  return { domain: supervisionDomain(policy), types: APPROVAL_TYPES, primaryType: 'Approval' as const, message: typedMessage(checkMessage(message)) }
}

// EIP-712 §"Specification of the eth_signTypedData": digest = keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖
// hashStruct(message)). typedDigest is exactly TypedDataEncoder.hash (each domain separator computed
// once): the reference, and the path of a string only ethers can judge. The two fixed structs are
// hashed by eip712-struct.ts (type hash computed once, @noble/hashes Keccak-256): same bytes, a
// fraction of the cost, which `chain verify` pays three times per redaction log entry.
const APPROVAL_ENCODER = TypedDataEncoder.from(APPROVAL_TYPES)
const APPROVAL_STRUCT = structHasher('Approval', APPROVAL_TYPES.Approval!)
const domainSeparators = new Map<string, string>()
function domainSeparator(domain: TypedDataDomain): string {
  const salt = String(domain.salt)
  let separator = domainSeparators.get(salt)
  if (separator === undefined) {
    separator = TypedDataEncoder.hashDomain(domain)
    if (domainSeparators.size >= 256) domainSeparators.clear()
    domainSeparators.set(salt, separator)
  }
  return separator
}
/** The EIP-712 digest of `message` under `domain`, with an encoder built once per struct (default: Approval). */
export function typedDigest(domain: TypedDataDomain, message: Record<string, unknown>, encoder: TypedDataEncoder = APPROVAL_ENCODER): Uint8Array {
  return hexToBytes(keccak256(concat(['0x1901', domainSeparator(domain), encoder.hash(message)])).slice(2))
}

/**
 * The EIP-712 digest of a struct of supervision under a policy's domain: by `struct` (eip712-struct.ts),
 * or by ethers when that declines. `values` in the struct's field order, already validated;
 * `message` builds ethers' form of them, only when needed.
 */
export function supervisionDigest(policy: SupervisoryPolicy, struct: StructHasher, values: readonly StructValue[], encoder: TypedDataEncoder, message: () => Record<string, unknown>): Uint8Array {
  const domain = supervisionDomain(policy)
  const hash = struct.hash(values)
  if (hash === null) return typedDigest(domain, message(), encoder)
  return typedDataDigest(hexToBytes(domainSeparator(domain).slice(2)), hash)
}

/** Approval's digest of an already validated message. */
const digestOf = (policy: SupervisoryPolicy, m: ApprovalMessage): Uint8Array =>
  supervisionDigest(policy, APPROVAL_STRUCT, [m.requestId, m.record, m.action, m.oldContent, m.newContent, m.decision, m.comment], APPROVAL_ENCODER, () => typedMessage(m))

/** The 32-byte EIP-712 digest a wallet signs for this approval. */
export function approvalDigest(policy: SupervisoryPolicy, message: ApprovalMessage): Uint8Array {
  return digestOf(policy, checkMessage(message))
}

function refuse(reason: string, message: string, info: Record<string, unknown> = {}): never {
  throw new CareLedgerError('VERIFICATION_FAILED', message, { reason, ...info })
}

export interface VerifiedApproval {
  readonly regulator: Regulator
  readonly decision: Decision
  readonly comment: string
  /** The signature in canonical form (v = 27/28). */
  readonly signature: string
}

/**
 * Check one approval against the policy and the request it is offered for. The signature is
 * checked over the approval's OWN fields first (so a forgery is called a forgery), then those
 * fields are compared with the request (so a genuine approval of something else is named for what it is).
 */
export function verifyApproval(policy: SupervisoryPolicy, subject: RedactionSubject, approval: unknown): VerifiedApproval {
  return verifyApprovalOf(policy, parseRedactionSubject(subject), approval)
}

/** verifyApproval against a subject that passed parseRedactionSubject (a tally checks it once for all its approvals). */
function verifyApprovalOf(policy: SupervisoryPolicy, want: RedactionSubject, approval: unknown): VerifiedApproval {
  const a = parseSignedApproval(approval)
  const policyId = bytesToHex(supervisoryPolicyId(policy))
  if (a.policy !== policyId) refuse('WRONG_POLICY', `approval by ${a.regulator} was signed under policy ${a.policy}, not this chain's policy ${policyId}`, { regulator: a.regulator, policy: a.policy })
  let sig: Signature
  try {
    sig = Signature.from(a.signature)
  } catch (e) {
    return refuse('BAD_SIGNATURE', `approval by ${a.regulator}: the signature is malformed (${(e as Error).message.split(' (')[0]})`, { regulator: a.regulator })
  }
  let signer: string
  try {
    // = ethers' verifyTypedData, through libsecp256k1 when it names the claimed regulator (eth-signer.ts);
    // `a` passed the approval schema, which holds every check of approvalTypedData's
    signer = ethSigner(digestOf(policy, a), sig, a.regulator)
  } catch {
    return refuse('BAD_SIGNATURE', `approval by ${a.regulator}: the signature does not recover to any key`, { regulator: a.regulator })
  }
  if (signer !== a.regulator) refuse('FORGED', `approval claims to be by ${a.regulator} but was signed by ${signer} (or altered after signing)`, { regulator: a.regulator, signer })
  const regulator = regulatorByAddress(policy, signer)
  if (!regulator) refuse('NOT_A_REGULATOR', `approval signed by ${signer}, who is not a regulator of this policy`, { signer })
  if (a.requestId !== want.requestId) refuse('REPLAYED', `approval by ${regulator.name} (${signer}) is for request ${a.requestId}, not ${want.requestId}`, { regulator: signer, requestId: a.requestId })
  if (a.record !== want.record) refuse('WRONG_RECORD', `approval by ${regulator.name} names record ${a.record}, the request is for record ${want.record}`, { regulator: signer, record: a.record })
  if (a.action !== want.action) refuse('WRONG_ACTION', `approval by ${regulator.name} is for a ${a.action}, the request asks for a ${want.action}`, { regulator: signer, action: a.action })
  if (a.oldContent !== want.oldContent || a.newContent !== want.newContent) {
    const which = a.oldContent !== want.oldContent ? 'old' : 'new'
    refuse('WRONG_CONTENT', `approval by ${regulator.name} covers other ${which} content than the request (${which}Content ${which === 'old' ? a.oldContent : a.newContent})`, { regulator: signer, field: `${which}Content` })
  }
  return { regulator, decision: a.decision, comment: a.comment, signature: sig.serialized }
}

export interface Tally {
  readonly approvedBy: readonly VerifiedApproval[]
  readonly rejectedBy: readonly VerifiedApproval[]
  /** approved: ≥ k approvals; rejected: more than n − k rejections (k approvals are out of reach); else pending. */
  readonly status: 'approved' | 'rejected' | 'pending'
}

/** Verify every approval (the first bad one throws) and count each regulator once (a second decision by the same regulator is refused). */
export function tallyApprovals(policy: SupervisoryPolicy, subject: RedactionSubject, approvals: readonly unknown[]): Tally {
  if (!Array.isArray(approvals)) throw new CareLedgerError('INVALID_ARGUMENT', 'approvals: expected an array', { reason: 'NOT_AN_ARRAY' })
  const want = parseRedactionSubject(subject)
  const seen = new Set<number>()
  const approvedBy: VerifiedApproval[] = []
  const rejectedBy: VerifiedApproval[] = []
  for (const approval of approvals) {
    const v = verifyApprovalOf(policy, want, approval)
    if (seen.has(v.regulator.index)) {
      refuse('DUPLICATE_APPROVAL', `${v.regulator.name} (${v.regulator.address}) has already decided on request ${subject.requestId}; one regulator counts once`, { regulator: v.regulator.address })
    }
    seen.add(v.regulator.index)
    ;(v.decision === 'approve' ? approvedBy : rejectedBy).push(v)
  }
  const n = policy.regulators.length
  const status = approvedBy.length >= policy.threshold ? 'approved' : rejectedBy.length > n - policy.threshold ? 'rejected' : 'pending'
  return { approvedBy, rejectedBy, status }
}

/** The approvals that authorise the change; throws INSUFFICIENT_APPROVALS or REQUEST_REJECTED otherwise. */
export function requireApproval(policy: SupervisoryPolicy, subject: RedactionSubject, approvals: readonly unknown[]): readonly VerifiedApproval[] {
  const t = tallyApprovals(policy, subject, approvals)
  if (t.status === 'rejected') refuse('REQUEST_REJECTED', `request ${subject.requestId} was rejected by ${t.rejectedBy.map((v) => v.regulator.name).join(', ')}`, { rejectedBy: t.rejectedBy.map((v) => v.regulator.address) })
  if (t.status !== 'approved') {
    refuse('INSUFFICIENT_APPROVALS', `request ${subject.requestId} has ${t.approvedBy.length} approval${t.approvedBy.length === 1 ? '' : 's'}, the policy needs ${policy.threshold}`, {
      approvals: t.approvedBy.length,
      threshold: policy.threshold,
    })
  }
  return t.approvedBy
}
