import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { Signature, TypedDataEncoder, Wallet } from 'ethers'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { decodeCanonical, encodeCanonical } from '../../shared/encoding/canonical.ts'
import { chameleonKeyGen } from '../../shared/crypto/chameleon.ts'
import { frostDeal, type FrostGroup } from '../../shared/crypto/frost.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import {
  APPROVAL_TYPES,
  approvalDigest,
  approvalTypedData,
  contentDigest,
  requireApproval,
  tallyApprovals,
  verifyApproval,
  type ApprovalMessage,
  type RedactionSubject,
  type SignedApproval,
} from '../../shared/protocol/approval.ts'
import {
  buildRedactionLogEntry,
  decodeRedactionLogEntry,
  decodeRedactionLogEntryWithHash,
  encodeRedactionLogEntry,
  redactionLogEntryHash,
  verifyRedactionLogEntry,
  type RedactionLogEntry,
} from '../../shared/protocol/redaction-log.ts'
import {
  buildSupervisoryPolicy,
  decodeSupervisoryPolicy,
  encodeSupervisoryPolicy,
  parseSupervisoryPolicy,
  policyGroup,
  singleRegulatorPolicy,
  supervisoryPolicyId,
  type SupervisoryPolicy,
} from '../../shared/protocol/supervisory-policy.ts'
import { computeSupervisionVectors, testWallet } from '../vectors/supervision.ts'
import { errorOf } from '../helpers/frost.ts'

const utf8 = new TextEncoder()
const rng = deterministicRng('careledger supervision tests')
const wallets = [1, 2, 3].map(testWallet)
const outsider = testWallet(99)

function committee(cloud = 'careledger-test', group: FrostGroup = frostDeal(2, 3, rng).group): SupervisoryPolicy {
  return buildSupervisoryPolicy({ cloud, group, regulators: wallets.map((w, i) => ({ name: `Regulator ${i + 1}`, address: w.address.toLowerCase() })), keyGeneration: 'dkg', createdAt: 1_767_225_600_000 })
}

const subjectFor = (request: string, record = 7): RedactionSubject => ({
  requestId: bytesToHex(sha256(utf8.encode(request))),
  record,
  action: 'correct',
  oldContent: contentDigest(utf8.encode(`${request}: old`)),
  newContent: contentDigest(utf8.encode(`${request}: new`)),
})

/** What a regulator's wallet (ethers Wallet.signTypedData, like a browser or hardware wallet) produces. */
async function approve(policy: SupervisoryPolicy, wallet: Wallet, subject: RedactionSubject, decision: 'approve' | 'reject' = 'approve', comment = ''): Promise<SignedApproval> {
  const message: ApprovalMessage = { ...subject, decision, comment }
  const t = approvalTypedData(policy, message)
  const signature = await wallet.signTypedData(t.domain, t.types, t.message)
  return { ...message, policy: bytesToHex(supervisoryPolicyId(policy)), regulator: wallet.address, signature }
}

describe('supervisory policy', () => {
  const policy = committee()

  it('is a versioned canonical structure with a stable id; JSON and CBOR round-trip to the same id', () => {
    expect(policy.v).toBe(1)
    expect(policy.regulators.map((r) => r.address)).toEqual(wallets.map((w) => w.address)) // EIP-55 whatever the input case
    const id = bytesToHex(supervisoryPolicyId(policy))
    expect(bytesToHex(supervisoryPolicyId(decodeSupervisoryPolicy(encodeSupervisoryPolicy(policy))))).toBe(id)
    expect(bytesToHex(supervisoryPolicyId(parseSupervisoryPolicy(JSON.parse(JSON.stringify(policy)))))).toBe(id)
    expect(bytesToHex(supervisoryPolicyId(committee()))).not.toBe(id) // another key: another policy
    expect(bytesToHex(supervisoryPolicyId({ ...policy, cloud: 'another-cloud' }))).not.toBe(id)
  })

  it('the group key is the chameleon public key and k shares of the listed verification shares sign for it', () => {
    const deal = frostDeal(2, 3, rng)
    const p = committee('c', deal.group)
    expect(p.groupKey).toBe(bytesToHex(deal.group.groupKey))
    expect(policyGroup(p).verificationShares.map(bytesToHex)).toEqual(deal.group.verificationShares.map(bytesToHex))
  })

  it('refuses inconsistent or malformed policies, naming the problem', () => {
    const bad = (mutate: (p: Record<string, unknown>) => void) => {
      const p = JSON.parse(JSON.stringify(policy)) as Record<string, unknown>
      mutate(p)
      return errorOf(() => parseSupervisoryPolicy(p))
    }
    const regs = (p: Record<string, unknown>) => p.regulators as Record<string, unknown>[]
    expect(bad((p) => ([regs(p)[1]!.verificationShare, regs(p)[2]!.verificationShare] = [regs(p)[2]!.verificationShare, regs(p)[1]!.verificationShare]))).toMatchObject({ reason: 'INCONSISTENT_GROUP' })
    expect(bad((p) => (p.threshold = 1))).toMatchObject({ reason: 'SCHEMA' })
    expect(bad((p) => (p.threshold = 4))?.message).toContain('threshold exceeds')
    expect(bad((p) => (regs(p)[0]!.address = wallets[0]!.address.toLowerCase()))?.message).toContain('EIP-55')
    expect(bad((p) => (regs(p)[1]!.address = regs(p)[0]!.address))?.message).toContain('appears twice')
    expect(bad((p) => (regs(p)[0]!.index = 2))?.message).toContain('index order')
    expect(bad((p) => (p.extra = 1))).toMatchObject({ code: 'INVALID_ENCODING', reason: 'SCHEMA' })
    expect(bad((p) => (p.v = 2))).toMatchObject({ reason: 'SCHEMA' })
    expect(bad((p) => (p.keyGeneration = 'single'))?.message).toContain('single')
    expect(bad((p) => (regs(p)[0]!.name = 'a\u0000b'))?.message).toContain('control characters')
    expect(bad((p) => (p.groupKey = 'ff'.repeat(32)))?.reason).toBe('BAD_POINT')
  })

  it('k = n = 1: one regulator holding the whole trapdoor', () => {
    const keys = chameleonKeyGen(rng)
    const single = singleRegulatorPolicy({ cloud: 'c', publicKey: keys.publicKey, regulator: { name: 'The regulator', address: wallets[0]!.address }, createdAt: 0 })
    expect(single).toMatchObject({ threshold: 1, keyGeneration: 'single', groupKey: bytesToHex(keys.publicKey) })
    expect(errorOf(() => parseSupervisoryPolicy({ ...single, regulators: [{ ...single.regulators[0]!, verificationShare: committee().groupKey }] }))?.reason).toBe('INCONSISTENT_GROUP')
    expect(errorOf(() => singleRegulatorPolicy({ cloud: 'c', publicKey: keys.publicKey, regulator: { name: 'x', address: 'not an address' }, createdAt: 0 }))?.reason).toBe('BAD_ADDRESS')
  })
})

describe('EIP-712 approvals', () => {
  const policy = committee()
  const subject = subjectFor('request A')

  it('a wallet signature over the typed data verifies, names the regulator and its decision', async () => {
    const a = await approve(policy, wallets[1]!, subject, 'approve', 'matches the ward log')
    const v = verifyApproval(policy, subject, a)
    expect(v).toMatchObject({ regulator: { index: 2, address: wallets[1]!.address }, decision: 'approve', comment: 'matches the ward log' })
    // the digest is EIP-712's, and signing it directly gives the same signature (RFC 6979)
    const t = approvalTypedData(policy, a)
    expect('0x' + bytesToHex(approvalDigest(policy, a))).toBe(TypedDataEncoder.hash(t.domain, t.types, t.message))
    expect(wallets[1]!.signingKey.sign(approvalDigest(policy, a)).serialized).toBe(a.signature)
    expect(TypedDataEncoder.getPayload(t.domain, t.types, t.message)).toMatchObject({ primaryType: 'Approval', domain: { name: 'CareLedger Supervision', version: '1' } })
    expect(APPROVAL_TYPES.Approval!.map((f) => `${f.type} ${f.name}`).join(', ')).toBe(
      'bytes32 requestId, uint64 record, string action, bytes32 oldContent, bytes32 newContent, string decision, string comment',
    )
  })

  it('refuses an approval by someone who is not a regulator of the policy', async () => {
    const a = await approve(policy, outsider, subject)
    expect(errorOf(() => verifyApproval(policy, subject, a))).toMatchObject({ code: 'VERIFICATION_FAILED', reason: 'NOT_A_REGULATOR', info: { signer: outsider.address } })
  })

  it('refuses a forged approval: signed by someone else in a regulator’s name, or altered after signing', async () => {
    const byOutsider = await approve(policy, outsider, subject)
    expect(errorOf(() => verifyApproval(policy, subject, { ...byOutsider, regulator: wallets[0]!.address }))).toMatchObject({ reason: 'FORGED', info: { regulator: wallets[0]!.address } })
    const genuine = await approve(policy, wallets[0]!, subject, 'reject', 'no')
    expect(errorOf(() => verifyApproval(policy, subject, { ...genuine, decision: 'approve' }))?.reason).toBe('FORGED')
    expect(errorOf(() => verifyApproval(policy, subject, { ...genuine, comment: 'yes' }))?.reason).toBe('FORGED')
    expect(errorOf(() => verifyApproval(policy, subject, { ...genuine, signature: '0x' + '00'.repeat(65) }))?.reason).toBe('BAD_SIGNATURE')
    // the same signature with a high s (a second encoding) is refused (EIP-2)
    const sig = Signature.from(genuine.signature)
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
    const highS = genuine.signature.slice(0, 66) + (n - BigInt(sig.s)).toString(16).padStart(64, '0') + (sig.v === 27 ? '1c' : '1b')
    expect(errorOf(() => verifyApproval(policy, subject, { ...genuine, signature: highS }))?.reason).toBe('BAD_SIGNATURE')
    expect(errorOf(() => verifyApproval(policy, subject, { ...genuine, signature: 'zz' }))).toMatchObject({ code: 'INVALID_ENCODING', reason: 'SCHEMA' })
  })

  it('refuses a replayed approval: a genuine approval of request A offered for request B', async () => {
    const a = await approve(policy, wallets[0]!, subject)
    const other = subjectFor('request B')
    expect(errorOf(() => verifyApproval(policy, other, a))).toMatchObject({ reason: 'REPLAYED', info: { requestId: subject.requestId } })
    // rewriting its request id to B's breaks the signature: a forgery
    expect(errorOf(() => verifyApproval(policy, other, { ...a, requestId: other.requestId }))?.reason).toBe('FORGED')
  })

  it('refuses an approval for other content, another record or another action than the request', async () => {
    const a = await approve(policy, wallets[2]!, subject)
    expect(errorOf(() => verifyApproval(policy, { ...subject, newContent: contentDigest(utf8.encode('something else')) }, a))).toMatchObject({ reason: 'WRONG_CONTENT', info: { field: 'newContent' } })
    expect(errorOf(() => verifyApproval(policy, { ...subject, oldContent: contentDigest(utf8.encode('x')) }, a))).toMatchObject({ reason: 'WRONG_CONTENT', info: { field: 'oldContent' } })
    expect(errorOf(() => verifyApproval(policy, { ...subject, record: 8 }, a))).toMatchObject({ reason: 'WRONG_RECORD' })
    expect(errorOf(() => verifyApproval(policy, { ...subject, action: 'delete' }, a))).toMatchObject({ reason: 'WRONG_ACTION' })
  })

  it('refuses an approval made under another policy or for another chain (the domain binds both)', async () => {
    const otherChain = committee('another-cloud', policyGroup(policy))
    const a = await approve(otherChain, wallets[0]!, subject)
    expect(errorOf(() => verifyApproval(policy, subject, a))).toMatchObject({ reason: 'WRONG_POLICY' })
    // relabelled with this policy's id, the signature no longer matches the regulator (it was made under the other domain)
    expect(errorOf(() => verifyApproval(policy, subject, { ...a, policy: bytesToHex(supervisoryPolicyId(policy)) }))?.reason).toBe('FORGED')
  })

  it('counts k distinct regulators; a reused approval or a second decision by the same regulator is refused', async () => {
    const a1 = await approve(policy, wallets[0]!, subject)
    const a2 = await approve(policy, wallets[1]!, subject)
    expect(tallyApprovals(policy, subject, [a1]).status).toBe('pending')
    expect(errorOf(() => requireApproval(policy, subject, [a1]))).toMatchObject({ reason: 'INSUFFICIENT_APPROVALS', info: { approvals: 1, threshold: 2 } })
    expect(requireApproval(policy, subject, [a1, a2]).map((v) => v.regulator.index)).toEqual([1, 2])
    expect(errorOf(() => requireApproval(policy, subject, [a1, a1]))).toMatchObject({ reason: 'DUPLICATE_APPROVAL', info: { regulator: wallets[0]!.address } })
    const change = await approve(policy, wallets[0]!, subject, 'reject')
    expect(errorOf(() => tallyApprovals(policy, subject, [a1, change]))?.reason).toBe('DUPLICATE_APPROVAL')
  })

  it('n − k + 1 rejections reject the request; one bad approval among good ones fails the whole set', async () => {
    const r1 = await approve(policy, wallets[0]!, subject, 'reject', 'no evidence')
    const r2 = await approve(policy, wallets[1]!, subject, 'reject')
    expect(tallyApprovals(policy, subject, [r1]).status).toBe('pending')
    expect(errorOf(() => requireApproval(policy, subject, [r1, r2]))).toMatchObject({ reason: 'REQUEST_REJECTED' })
    const good = await approve(policy, wallets[2]!, subject)
    const stranger = await approve(policy, outsider, subject)
    expect(errorOf(() => requireApproval(policy, subject, [good, stranger]))?.reason).toBe('NOT_A_REGULATOR')
  })

  it('malformed approvals and subjects are typed errors (property: garbage never escapes untyped)', () => {
    fc.assert(
      fc.property(fc.anything(), (junk) => {
        const e = errorOf(() => verifyApproval(policy, subject, junk))
        expect(e?.code).toBe('INVALID_ENCODING')
        errorOf(() => verifyApproval(policy, junk as never, junk))
      }),
      { numRuns: 200 },
    )
  })
})

describe('redaction log entry', () => {
  const policy = committee()
  const subject = subjectFor('request L', 42)
  const make = async (signers = [1, 3], who = [0, 2]) =>
    buildRedactionLogEntry({
      policy,
      subject,
      reason: 'monitor was attached to the wrong patient',
      requester: 'doctor:alice@hospital-a',
      approvals: await Promise.all(who.map(async (i) => verifyApproval(policy, subject, await approve(policy, wallets[i]!, subject)))),
      signers,
      opening: new Uint8Array(64).fill(7),
      time: 1_767_225_600_123,
    })

  it('holds the request, the content hashes, the reason, the requester, the approvers and their signatures, the time; committed by a plain hash', async () => {
    const entry = await make()
    expect(entry).toMatchObject({ v: 1, requestId: subject.requestId, record: 42, oldContent: subject.oldContent, newContent: subject.newContent, requester: 'doctor:alice@hospital-a', signers: [1, 3] })
    expect(entry.approvals.map((a) => a.regulator)).toEqual([wallets[0]!.address, wallets[2]!.address])
    expect(verifyRedactionLogEntry(policy, entry).map((a) => a.regulator.index)).toEqual([1, 3])
    const bytes = encodeRedactionLogEntry(entry)
    expect(decodeRedactionLogEntry(bytes)).toEqual(entry)
    const h = bytesToHex(redactionLogEntryHash(entry))
    expect(h).toBe(bytesToHex(sha256(Uint8Array.from([...utf8.encode('careledger/v1/redaction-log-entry'), 0, ...bytes]))))
    // chain verify hashes the stored bytes as they are (no re-encoding): the same hash, and a non-canonical encoding does not decode
    const decoded = decodeRedactionLogEntryWithHash(bytes)
    expect([decoded.entry, bytesToHex(decoded.hash)]).toEqual([entry, h])
    const longer = Uint8Array.from([...bytes.subarray(0, bytes.length), 0]) // trailing byte
    expect(() => decodeRedactionLogEntryWithHash(longer)).toThrow()
    // every field is covered by the hash
    for (const [k, v] of Object.entries({ reason: 'other', requester: 'x', time: 1, opening: '00'.repeat(64), record: 43 })) {
      expect(bytesToHex(redactionLogEntryHash({ ...entry, [k]: v } as RedactionLogEntry))).not.toBe(h)
    }
  })

  it('an auditor refuses an entry whose approvals do not cover it, too few approvals, or a signer who did not approve', async () => {
    const entry = await make()
    expect(errorOf(() => verifyRedactionLogEntry(policy, { ...entry, newContent: contentDigest(utf8.encode('other')) }))?.reason).toBe('FORGED')
    expect(errorOf(() => verifyRedactionLogEntry(policy, { ...entry, approvals: entry.approvals.slice(0, 1) }))?.reason).toBe('INSUFFICIENT_APPROVALS')
    expect(errorOf(() => verifyRedactionLogEntry(policy, { ...entry, signers: [1, 2] }))).toMatchObject({ reason: 'SIGNER_DID_NOT_APPROVE', info: { signers: [2] } })
    expect(errorOf(() => verifyRedactionLogEntry(policy, { ...entry, signers: [1] }))?.reason).toBe('TOO_FEW_SIGNERS')
    expect(errorOf(() => verifyRedactionLogEntry(committee('elsewhere', policyGroup(policy)), entry))?.reason).toBe('WRONG_POLICY')
    expect(errorOf(() => verifyRedactionLogEntry(policy, { ...entry, signers: [3, 1] }))?.message).toContain('sorted')
    await expect(make([1, 2], [0, 2])).rejects.toMatchObject({ info: { reason: 'SIGNER_DID_NOT_APPROVE' } })
  })

  it('decoding refuses non-canonical bytes and unknown fields', async () => {
    const entry = await make()
    const value = decodeCanonical(encodeRedactionLogEntry(entry)) as Record<string, unknown>
    expect(errorOf(() => decodeRedactionLogEntry(encodeCanonical({ ...value, extra: true })))?.reason).toBe('SCHEMA')
    const bytes = encodeRedactionLogEntry(entry)
    expect(errorOf(() => decodeRedactionLogEntry(bytes.subarray(0, bytes.length - 1)))?.code).toBe('INVALID_ENCODING')
  })

  it('a decoded entry is frozen and not checked twice; a changed copy is checked afresh', async () => {
    const entry = decodeRedactionLogEntry(encodeRedactionLogEntry(await make()))
    expect(Object.isFrozen(entry) && Object.isFrozen(entry.approvals) && Object.isFrozen(entry.approvals[0])).toBe(true)
    expect(() => {
      ;(entry as { reason: string }).reason = 'edited after decoding'
    }).toThrow(TypeError)
    expect(verifyRedactionLogEntry(policy, entry)).toHaveLength(2)
    // A copy with a malformed field is not the remembered object: the schema refuses it.
    expect(errorOf(() => redactionLogEntryHash({ ...entry, signers: [3, 1] }))?.message).toContain('sorted')
    expect(errorOf(() => verifyRedactionLogEntry(policy, { ...entry, approvals: [{ ...entry.approvals[0]!, signature: '0x00' }] }))?.reason).toBe('SCHEMA')
  })

  it('1 of 1: the single regulator approves and is the one signer', async () => {
    const keys = chameleonKeyGen(rng)
    const single = singleRegulatorPolicy({ cloud: 'c', publicKey: keys.publicKey, regulator: { name: 'The regulator', address: wallets[0]!.address }, createdAt: 0 })
    const a = await approve(single, wallets[0]!, subject)
    const entry = buildRedactionLogEntry({ policy: single, subject, reason: 'r', requester: 'admin:bob', approvals: [verifyApproval(single, subject, a)], signers: [1], opening: new Uint8Array(64), time: 0 })
    expect(verifyRedactionLogEntry(single, entry)).toHaveLength(1)
  })
})

describe('known-answer vectors (test/vectors/supervision.json)', () => {
  const committed = JSON.parse(readFileSync(new URL('../vectors/supervision.json', import.meta.url), 'utf8')) as Record<string, string>
  const fresh = computeSupervisionVectors()
  it.each(Object.keys(committed))('%s matches the committed vector byte for byte', (name) => {
    expect(fresh[name]).toBe(committed[name])
  })
  it('the committed log entry re-verifies under the committed policy', () => {
    const policy = decodeSupervisoryPolicy(Buffer.from(committed.policy!, 'hex'))
    const entry = decodeRedactionLogEntry(Buffer.from(committed.logEntry!, 'hex'))
    expect(verifyRedactionLogEntry(policy, entry)).toHaveLength(2)
    expect(Buffer.from(redactionLogEntryHash(entry)).toString('hex')).toBe(committed.logEntryHash)
  })
})
