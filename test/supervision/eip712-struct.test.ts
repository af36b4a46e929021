/**
 * The EIP-712 digests of supervision's two structs (shared/protocol/eip712-struct.ts, used by
 * approvalDigest and the request id) are byte-identical to ethers' TypedDataEncoder.hash for any
 * values: a property test over random ids, records, times, actions and Unicode text; and a
 * signature made over ethers' digest still verifies through the fast path.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { id as ethersId, TypedDataEncoder } from 'ethers'
import { bytesToHex } from '@noble/hashes/utils.js'
import { APPROVAL_TYPES, approvalDigest, approvalTypedData, DECISIONS, REDACTION_ACTIONS, verifyApproval, type ApprovalMessage } from '../../shared/protocol/approval.ts'
import { REQUEST_TYPES, requestIdOf, requestTypedData, type RequestMessage } from '../../shared/protocol/supervision-request.ts'
import { structHasher } from '../../shared/protocol/eip712-struct.ts'
import { supervisoryPolicyId } from '../../shared/protocol/supervisory-policy.ts'
import { committee } from '../helpers/supervision.ts'
import { chameleonKeyGen } from '../../shared/crypto/chameleon.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'

const runs = Number(process.env.CARELEDGER_PROPERTY_RUNS ?? 300)
const policy = committee(2, 3, chameleonKeyGen(deterministicRng('eip712 struct test')).secretKey).policy
const hex32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map(bytesToHex)
// Any well-formed Unicode (astral planes included), and ASCII edge cases.
const text = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 60 }).filter((s) => s.isWellFormed()), fc.constantFrom('', '\u0000', 'é', '👩‍⚕️', 'x'.repeat(2000)))
const id = fc.oneof(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(0, 1, 255, 256, 2 ** 32, Number.MAX_SAFE_INTEGER))

describe('EIP-712 struct hashing (eip712-struct.ts) against ethers TypedDataEncoder', () => {
  it("the type hashes are keccak256 of ethers' type encodings", () => {
    for (const [name, types] of [['Approval', APPROVAL_TYPES], ['Request', REQUEST_TYPES]] as const) {
      expect('0x' + bytesToHex(structHasher(name, types[name]!).typeHash)).toBe(ethersId(TypedDataEncoder.from(types).encodeType(name)))
    }
  })

  it('Approval digests are byte-identical for random values', () => {
    fc.assert(
      fc.property(hex32, id, fc.constantFrom(...REDACTION_ACTIONS), hex32, hex32, fc.constantFrom(...DECISIONS), text, (requestId, record, action, oldContent, newContent, decision, comment) => {
        const m: ApprovalMessage = { requestId, record, action, oldContent, newContent, decision, comment: comment.slice(0, 2000) }
        const t = approvalTypedData(policy, m)
        expect('0x' + bytesToHex(approvalDigest(policy, m))).toBe(TypedDataEncoder.hash(t.domain, t.types, t.message))
      }),
      { numRuns: runs },
    )
  })

  it('Request digests (the request id) are byte-identical for random values', () => {
    const positive = id.filter((n) => n >= 1)
    const time = fc.integer({ min: 0, max: 8.64e15 })
    fc.assert(
      fc.property(positive, fc.constantFrom(...REDACTION_ACTIONS), hex32, hex32, text.filter((s) => s.length >= 1), hex32, time, (record, action, oldContent, newManifest, reason, nonce, issuedAt) => {
        const m: RequestMessage = { record, action, oldContent, newManifest, reason: reason.slice(0, 2000), nonce, issuedAt }
        const t = requestTypedData(policy, m)
        expect('0x' + requestIdOf(policy, m)).toBe(TypedDataEncoder.hash(t.domain, t.types, t.message))
      }),
      { numRuns: runs },
    )
  })

  it('a string that is not well-formed UTF-16 is left to ethers (same answer as before)', () => {
    const m: ApprovalMessage = { requestId: 'ab'.repeat(32), record: 3, action: 'delete', oldContent: 'cd'.repeat(32), newContent: 'ef'.repeat(32), decision: 'reject', comment: 'lone \ud800 surrogate' }
    expect(structHasher('Approval', APPROVAL_TYPES.Approval!).hash([m.requestId, m.record, m.action, m.oldContent, m.newContent, m.decision, m.comment])).toBeNull()
    const t = approvalTypedData(policy, m)
    let reference: string | Error
    try {
      reference = TypedDataEncoder.hash(t.domain, t.types, t.message)
    } catch (e) {
      reference = e as Error
    }
    if (reference instanceof Error) expect(() => approvalDigest(policy, m)).toThrow()
    else expect('0x' + bytesToHex(approvalDigest(policy, m))).toBe(reference)
  })

  it('refuses a struct with a field type it does not encode, and values out of range', () => {
    expect(() => structHasher('X', [{ name: 'a', type: 'address' }])).toThrow(/not bytes32, uint64 or string/)
    const h = structHasher('Request', REQUEST_TYPES.Request!)
    expect(() => h.hash([-1, 'correct', '00'.repeat(32), '00'.repeat(32), 'r', '00'.repeat(32), 0])).toThrow(/uint64/)
    expect(() => h.hash([1, 'correct', 'AB'.repeat(32), '00'.repeat(32), 'r', '00'.repeat(32), 0])).toThrow(/hex/)
    expect(() => h.hash([1n << 64n, 'correct', '00'.repeat(32), '00'.repeat(32), 'r', '00'.repeat(32), 0])).toThrow(/uint64/)
    expect(() => h.hash([1.5, 'correct', '00'.repeat(32), '00'.repeat(32), 'r', '00'.repeat(32), 0])).toThrow(/uint64/)
  })

  it('a wallet signature over the typed data still verifies and names its regulator', async () => {
    const c = committee(2, 3, chameleonKeyGen(deterministicRng('eip712 struct wallet')).secretKey)
    const m: ApprovalMessage = { requestId: '11'.repeat(32), record: 42, action: 'correct', oldContent: '22'.repeat(32), newContent: '33'.repeat(32), decision: 'approve', comment: 'Überprüft ✓ 👩‍⚕️' }
    const t = approvalTypedData(c.policy, m)
    const signature = await c.regulators[0]!.wallet.signTypedData(t.domain, t.types, t.message)
    const { decision: _d, comment: _c, ...subject } = m
    const v = verifyApproval(c.policy, subject, { ...m, policy: bytesToHex(supervisoryPolicyId(c.policy)), regulator: c.regulators[0]!.wallet.address, signature })
    expect(v.regulator.index).toBe(1)
  })
})
