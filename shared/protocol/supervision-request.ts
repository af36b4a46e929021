/**
 * The requester's signature over a correction or deletion request: EIP-712 typed data signed by
 * the requester's Ethereum wallet, in the same domain as the regulators' approvals
 * (shared/protocol/approval.ts: name "CareLedger Supervision", version "1", salt = policy id), so
 * the same wallets — software, hardware or a browser wallet's eth_signTypedData_v4 — sign both.
 * docs/crypto.md §Requests is normative.
 *
 *   Request(uint64 record, string action, bytes32 oldContent, bytes32 newManifest, string reason,
 *           bytes32 nonce, uint64 issuedAt)
 *
 *   oldContent   contentDigest of the record's content as the requester read it
 *   newManifest  correction: manifestCommitment of the re-sealed manifest (it fixes the new
 *                content: record content v2 = the old content with this manifest); deletion: zero
 *                (the tombstone names the request id, so it cannot be signed before the id exists)
 *   nonce        32 random bytes of the requester's; issuedAt: ms since the epoch, UTC
 *
 *   request id = the EIP-712 digest of the signed Request (hex, 32 bytes)
 *
 * so the signature is over the request id itself: a request cannot be re-filed (the id is taken),
 * and a regulator or auditor holding the policy re-derives the id and recovers the requester.
 *
 * Why an EVM wallet and not the requester's attribute key: CP-ABE keys decrypt, they do not sign;
 * and a requester (a hospital) is accountable by a key it controls, which the cloud's token is not.
 *
 * Refusals are VERIFICATION_FAILED with `info.reason`:
 *   BAD_REQUEST_SIGNATURE  not a 65-byte signature that recovers to a key
 *   FORGED_REQUEST         recovers to another address than the one named (or altered after signing)
 *   REQUEST_MISMATCH       genuine, but for another record, action, content or reason than filed
 */
import { z } from 'zod'
import { Signature, TypedDataEncoder, type TypedDataField } from 'ethers'
import { bytesToHex } from '@noble/hashes/utils.js'
import { ethSigner } from '../crypto/eth-signer.ts'
import { CareLedgerError } from '../errors.ts'
import { REDACTION_ACTIONS, supervisionDigest, supervisionDomain, type RedactionAction } from './approval.ts'
import { structHasher } from './eip712-struct.ts'
import { epochMs, evmAddress, hex, schemaError, type SupervisoryPolicy } from './supervisory-policy.ts'

/** The EIP-712 struct (field order is part of the type hash: never reorder). */
export const REQUEST_TYPES: Record<string, TypedDataField[]> = {
  Request: [
    { name: 'record', type: 'uint64' },
    { name: 'action', type: 'string' },
    { name: 'oldContent', type: 'bytes32' },
    { name: 'newManifest', type: 'bytes32' },
    { name: 'reason', type: 'string' },
    { name: 'nonce', type: 'bytes32' },
    { name: 'issuedAt', type: 'uint64' },
  ],
}

/** The longest reason (as the redaction log's). */
export const MAX_REQUEST_REASON = 2000

/** newManifest of a deletion. */
export const NO_MANIFEST = '0'.repeat(64)

export const RequestMessageSchema = z.strictObject({
  record: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  action: z.enum(REDACTION_ACTIONS),
  oldContent: hex(32),
  newManifest: hex(32),
  reason: z.string().min(1).max(MAX_REQUEST_REASON),
  nonce: hex(32),
  issuedAt: epochMs,
})
export type RequestMessage = z.infer<typeof RequestMessageSchema>

/** What travels with a request and into its redaction log entry: the signed fields the entry does not already hold, the signer and the signature. */
export const RequesterSignatureSchema = z.strictObject({
  newManifest: hex(32),
  nonce: hex(32),
  issuedAt: epochMs,
  requester: evmAddress,
  signature: z.string().regex(/^0x[0-9a-f]{130}$/, 'must be a 0x-prefixed lower-case 65-byte signature'),
})
export type RequesterSignature = z.infer<typeof RequesterSignatureSchema>

export function parseRequesterSignature(value: unknown): RequesterSignature {
  const r = RequesterSignatureSchema.safeParse(value)
  if (!r.success) schemaError('requester signature', r.error)
  return r.data
}

function parseMessage(value: unknown): RequestMessage {
  const r = RequestMessageSchema.safeParse(value)
  if (!r.success) schemaError('request', r.error)
  return r.data
}

const typedMessage = (m: RequestMessage) => ({
  record: BigInt(m.record),
  action: m.action,
  oldContent: '0x' + m.oldContent,
  newManifest: '0x' + m.newManifest,
  reason: m.reason,
  nonce: '0x' + m.nonce,
  issuedAt: BigInt(m.issuedAt),
})

/** What the requester's wallet signs: pass domain, types and message to ethers' signer.signTypedData. */
export function requestTypedData(policy: SupervisoryPolicy, message: RequestMessage) {
  return { domain: supervisionDomain(policy), types: REQUEST_TYPES, primaryType: 'Request' as const, message: typedMessage(parseMessage(message)) }
}

const REQUEST_ENCODER = TypedDataEncoder.from(REQUEST_TYPES)
const REQUEST_STRUCT = structHasher('Request', REQUEST_TYPES.Request!)

/** The EIP-712 digest of the signed request (= TypedDataEncoder.hash; eip712-struct.ts, see approval.ts's supervisionDigest). */
const requestDigest = (policy: SupervisoryPolicy, message: RequestMessage): Uint8Array => digestOf(policy, parseMessage(message))
/** requestDigest of a message that passed parseMessage. */
const digestOf = (policy: SupervisoryPolicy, m: RequestMessage): Uint8Array =>
  supervisionDigest(policy, REQUEST_STRUCT, [m.record, m.action, m.oldContent, m.newManifest, m.reason, m.nonce, m.issuedAt], REQUEST_ENCODER, () => typedMessage(m))

/** The request id: hex of the EIP-712 digest of the signed request. */
export const requestIdOf = (policy: SupervisoryPolicy, message: RequestMessage): string => bytesToHex(requestDigest(policy, message))

function refuse(reason: string, message: string, info: Record<string, unknown> = {}): never {
  throw new CareLedgerError('VERIFICATION_FAILED', message, { reason, ...info })
}

/** Sign a request (the requester's side): the signature block to send with it, and the request id it will have. */
export async function signRequest(policy: SupervisoryPolicy, wallet: { address: string; signTypedData: (d: never, t: never, m: never) => Promise<string> }, message: RequestMessage): Promise<{ signed: RequesterSignature; requestId: string }> {
  const t = requestTypedData(policy, message)
  const signature = await wallet.signTypedData(t.domain as never, t.types as never, t.message as never)
  const signed = parseRequesterSignature({ newManifest: message.newManifest, nonce: message.nonce, issuedAt: message.issuedAt, requester: wallet.address, signature: Signature.from(signature).serialized.toLowerCase() })
  return { signed, requestId: requestIdOf(policy, message) }
}

/**
 * Check a requester's signature over the request as filed (`filed`: record, action, oldContent,
 * reason — what the cloud or the log entry holds). The signature is checked over its own fields
 * first (a forgery is called a forgery); `expect` then names a mismatch with what was filed.
 * Returns the request id and the requester's address.
 */
export function verifyRequesterSignature(
  policy: SupervisoryPolicy,
  filed: { record: number; action: RedactionAction; oldContent: string; reason: string },
  value: unknown,
  expect: { requestId?: string; newManifest?: string } = {},
): { requestId: string; requester: string } {
  const s = parseRequesterSignature(value)
  const message = parseMessage({ record: filed.record, action: filed.action, oldContent: filed.oldContent, newManifest: s.newManifest, reason: filed.reason, nonce: s.nonce, issuedAt: s.issuedAt })
  const digest = digestOf(policy, message)
  let signer: string
  try {
    // = ethers' verifyTypedData, through libsecp256k1 when it names the claimed requester (eth-signer.ts)
    signer = ethSigner(digest, Signature.from(s.signature), s.requester)
  } catch {
    return refuse('BAD_REQUEST_SIGNATURE', `the requester signature is malformed or recovers to no key`, { requester: s.requester })
  }
  if (signer !== s.requester) {
    refuse('FORGED_REQUEST', `the request claims to be signed by ${s.requester}, but its signature over this record, action, content and reason recovers to ${signer}: forged, or signed for another request`, { requester: s.requester, signer })
  }
  const requestId = bytesToHex(digest)
  if (expect.requestId !== undefined && expect.requestId !== requestId) refuse('REQUEST_MISMATCH', `the requester signed request ${requestId}, not ${expect.requestId}`, { requester: signer })
  if (expect.newManifest !== undefined && expect.newManifest !== s.newManifest) {
    refuse('REQUEST_MISMATCH', `the requester signed for new manifest ${s.newManifest}, the request carries ${expect.newManifest}`, { requester: signer, field: 'newManifest' })
  }
  return { requestId, requester: signer }
}
