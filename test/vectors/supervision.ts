/**
 * Known-answer vectors for the supervision formats: a supervisory policy (2 of 3, trusted dealer,
 * deterministic RNG), its id, an EIP-712 approval (digest and the signature of a fixed key: ECDSA
 * is deterministic, RFC 6979), a redaction log entry with its plain hash (version 1), and a
 * requester-signed request (its EIP-712 digest = the request id, the requester's signature) with the
 * version-2 entry that carries it. Independent clients
 * (a browser wallet, a Solidity verifier, an auditor's script) check their encoders against
 * supervision.json; test/supervision/approval.test.ts checks this code against it byte for byte.
 *
 *   node test/vectors/supervision.ts --write        (or npm run kat:regenerate)
 */
import { writeFileSync } from 'node:fs'
import { SigningKey, Wallet } from 'ethers'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { encodeCanonical } from '../../shared/encoding/canonical.ts'
import { frostDeal } from '../../shared/crypto/frost.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { approvalDigest, contentDigest, verifyApproval, type ApprovalMessage } from '../../shared/protocol/approval.ts'
import { buildRedactionLogEntry, redactionLogEntryHash } from '../../shared/protocol/redaction-log.ts'
import { buildSupervisoryPolicy, encodeSupervisoryPolicy, supervisoryPolicyId } from '../../shared/protocol/supervisory-policy.ts'
import { requestIdOf, type RequestMessage } from '../../shared/protocol/supervision-request.ts'

export const SUPERVISION_KAT_SEED = 'careledger supervision kat v1'
const utf8 = new TextEncoder()

/** The test regulators' wallets: private key = SHA-256("careledger test regulator <i>"). Never use outside tests. */
export const testWallet = (i: number): Wallet => new Wallet('0x' + bytesToHex(sha256(utf8.encode(`careledger test regulator ${i}`))))

export function computeSupervisionVectors(): Record<string, string> {
  const rng = deterministicRng(SUPERVISION_KAT_SEED)
  const { group } = frostDeal(2, 3, rng)
  const wallets = [1, 2, 3].map(testWallet)
  const policy = buildSupervisoryPolicy({
    cloud: 'careledger-kat-cloud',
    group,
    regulators: wallets.map((w, i) => ({ name: `Regulator ${i + 1}`, address: w.address })),
    keyGeneration: 'dealer',
    createdAt: Date.UTC(2026, 10, 25, 8, 0, 0),
  })
  const subject = {
    requestId: bytesToHex(sha256(utf8.encode('request 0001'))),
    record: 7,
    action: 'correct' as const,
    oldContent: contentDigest(utf8.encode('old content')),
    newContent: contentDigest(utf8.encode('new content')),
  }
  const message: ApprovalMessage = { ...subject, decision: 'approve', comment: 'checked against the ward log' }
  const digest = approvalDigest(policy, message)
  const approvals = [0, 2].map((i) => ({
    ...message,
    policy: bytesToHex(supervisoryPolicyId(policy)),
    regulator: wallets[i]!.address,
    signature: (wallets[i]!.signingKey as SigningKey).sign(digest).serialized,
  }))
  const verified = approvals.map((a) => verifyApproval(policy, subject, a))
  const entry = buildRedactionLogEntry({
    policy,
    subject,
    reason: 'wrong patient attached to the monitor',
    requester: 'doctor:alice@hospital-a',
    approvals: verified,
    signers: [1, 3],
    opening: new Uint8Array(64).fill(0x5a),
    time: Date.UTC(2026, 10, 25, 9, 30, 0),
  })
  // Version 2: the request signed by the requester (wallet 9); its digest is the request id.
  const requester = testWallet(9)
  const request: RequestMessage = { record: 7, action: 'correct', oldContent: subject.oldContent, newManifest: bytesToHex(sha256(utf8.encode('new manifest'))), reason: 'wrong patient attached to the monitor', nonce: bytesToHex(sha256(utf8.encode('nonce 0001'))), issuedAt: Date.UTC(2026, 10, 25, 8, 30, 0) }
  const requestId = requestIdOf(policy, request)
  const requesterSignature = (requester.signingKey as SigningKey).sign('0x' + requestId).serialized
  const subject2 = { ...subject, requestId }
  const message2: ApprovalMessage = { ...subject2, decision: 'approve', comment: 'checked against the ward log' }
  const digest2 = approvalDigest(policy, message2)
  const verified2 = [0, 2].map((i) =>
    verifyApproval(policy, subject2, { ...message2, policy: bytesToHex(supervisoryPolicyId(policy)), regulator: wallets[i]!.address, signature: (wallets[i]!.signingKey as SigningKey).sign(digest2).serialized }),
  )
  const entry2 = buildRedactionLogEntry({
    policy,
    subject: subject2,
    reason: request.reason,
    requester: 'doctor:alice@hospital-a',
    approvals: verified2,
    signers: [1, 3],
    opening: new Uint8Array(64).fill(0x5a),
    time: Date.UTC(2026, 10, 25, 9, 30, 0),
    request: { newManifest: request.newManifest, nonce: request.nonce, issuedAt: request.issuedAt, requester: requester.address, signature: requesterSignature.toLowerCase() },
  })
  return {
    seed: SUPERVISION_KAT_SEED,
    policy: bytesToHex(encodeSupervisoryPolicy(policy)),
    policyId: bytesToHex(supervisoryPolicyId(policy)),
    approvalDigest: bytesToHex(digest),
    approval1: approvals[0]!.signature,
    approval3: approvals[1]!.signature,
    logEntry: bytesToHex(encodeCanonical(entry)),
    logEntryHash: bytesToHex(redactionLogEntryHash(entry)),
    requestId,
    requesterSignature,
    logEntryV2: bytesToHex(encodeCanonical(entry2)),
    logEntryV2Hash: bytesToHex(redactionLogEntryHash(entry2)),
  }
}

if (import.meta.main && process.argv.includes('--write')) {
  writeFileSync(new URL('supervision.json', import.meta.url), JSON.stringify(computeSupervisionVectors(), null, 2) + '\n')
  console.log('wrote test/vectors/supervision.json')
} else if (import.meta.main) {
  console.log(JSON.stringify(computeSupervisionVectors(), null, 2))
}
