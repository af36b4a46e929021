/**
 * Regulators for the supervision tests: EVM wallets that sign approvals (EIP-712), FROST shares
 * (a dealer split of the chain's chameleon trapdoor, so the chain's key is the group key), and the
 * two FROST rounds as a regulator's side runs them.
 */
import { Wallet } from 'ethers'
import { bytesToHex } from '@noble/hashes/utils.js'
import { frostDeal, type FrostCommitment, type FrostShare, type FrostSignatureShare } from '../../shared/crypto/frost.ts'
import { thresholdAdaptCommit, thresholdAdaptSign, type AdaptTarget } from '../../shared/crypto/chameleon-threshold.ts'
import { deterministicRng, type Rng } from '../../shared/crypto/random.ts'
import { approvalTypedData, type Decision, type RedactionSubject } from '../../shared/protocol/approval.ts'
import { buildSupervisoryPolicy, policyGroup, singleRegulatorPolicy, supervisoryPolicyId, type SupervisoryPolicy } from '../../shared/protocol/supervisory-policy.ts'
import { chameleonPublicKey } from '../../shared/crypto/chameleon.ts'
import { testWallet } from '../vectors/supervision.ts'

export interface TestRegulator {
  readonly index: number
  readonly wallet: Wallet
  readonly share: FrostShare | null
}

export interface Committee {
  readonly policy: SupervisoryPolicy
  readonly regulators: readonly TestRegulator[]
}

/** k of n regulators sharing `trapdoor` (k = n = 1: the single regulator holds it whole). */
export function committee(k: number, n: number, trapdoor: Uint8Array, cloud = 'careledger-test', rng: Rng = deterministicRng(`committee ${k}/${n}`)): Committee {
  const wallets = Array.from({ length: n }, (_, i) => testWallet(i + 1))
  if (n === 1) {
    const policy = singleRegulatorPolicy({ cloud, publicKey: chameleonPublicKey(trapdoor), regulator: { name: 'Regulator 1', address: wallets[0]!.address }, createdAt: 1_767_225_600_000 })
    return { policy, regulators: [{ index: 1, wallet: wallets[0]!, share: null }] }
  }
  const deal = frostDeal(k, n, rng, trapdoor)
  const policy = buildSupervisoryPolicy({ cloud, group: deal.group, regulators: wallets.map((w, i) => ({ name: `Regulator ${i + 1}`, address: w.address })), keyGeneration: 'dealer', createdAt: 1_767_225_600_000 })
  return { policy, regulators: wallets.map((wallet, i) => ({ index: i + 1, wallet, share: deal.shares[i]! })) }
}

/** The JSON a regulator's client submits: the subject, the decision and the EIP-712 signature. */
export async function signDecision(policy: SupervisoryPolicy, wallet: Wallet, subject: RedactionSubject, decision: Decision = 'approve', comment = ''): Promise<Record<string, unknown>> {
  const t = approvalTypedData(policy, { ...subject, decision, comment })
  const signature = await wallet.signTypedData(t.domain, t.types, t.message)
  return { ...subject, policy: bytesToHex(supervisoryPolicyId(policy)), regulator: wallet.address, decision, comment, signature }
}

export const subjectOf = (r: { id: string; record: number; action: 'correct' | 'delete'; oldContent: string; newContent: string }): RedactionSubject => ({
  requestId: r.id,
  record: r.record,
  action: r.action,
  oldContent: r.oldContent,
  newContent: r.newContent,
})

export const targetOf = (r: { hash: string; newContentBytes: string }): AdaptTarget => ({ hash: Buffer.from(r.hash, 'hex'), message: Buffer.from(r.newContentBytes, 'hex') })

export function roundOne(reg: TestRegulator, rng: Rng) {
  return thresholdAdaptCommit(reg.share!, rng)
}

export const commitmentsOf = (r: { commitments: readonly { index: number; hiding: string; binding: string }[] }): FrostCommitment[] =>
  r.commitments.map((c) => ({ index: c.index, hiding: Buffer.from(c.hiding, 'hex'), binding: Buffer.from(c.binding, 'hex') }))

export function roundTwo(c: Committee, reg: TestRegulator, nonces: Parameters<typeof thresholdAdaptSign>[2], request: Parameters<typeof targetOf>[0] & Parameters<typeof commitmentsOf>[0]): FrostSignatureShare {
  return thresholdAdaptSign(reg.share!, policyGroup(c.policy), nonces, commitmentsOf(request), targetOf(request))
}
