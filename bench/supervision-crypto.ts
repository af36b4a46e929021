/**
 * npm run bench:supervision-crypto — the cryptographic cost of supervision, per party:
 * a threshold chameleon Adapt per regulator (round one, round two) and for the coordinator (verify
 * every share, aggregate, check the opening), the 1-of-1 Adapt, a DKG per participant, and the
 * EIP-712 / redaction-log checks the cloud and auditors run. Wall-clock median AND CPU time per
 * operation (process.cpuUsage over all runs / runs): the machine is shared, CPU time is the steadier figure.
 */
import os from 'node:os'
import { Wallet } from 'ethers'
import { bytesToHex } from '@noble/hashes/utils.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { chameleonHash, chameleonKeyGen } from '../shared/crypto/chameleon.ts'
import { adaptAlone, thresholdAdaptAggregate, thresholdAdaptCommit, thresholdAdaptSign, thresholdAdaptVerifyShare } from '../shared/crypto/chameleon-threshold.ts'
import { frostDeal, type FrostCommitment, type FrostSignatureShare } from '../shared/crypto/frost.ts'
import { dkgRound1, dkgRound2, dkgRound3 } from '../shared/crypto/frost-dkg.ts'
import { systemRng } from '../shared/crypto/random.ts'
import { approvalDigest, contentDigest, verifyApproval } from '../shared/protocol/approval.ts'
import { buildRedactionLogEntry, verifyRedactionLogEntry } from '../shared/protocol/redaction-log.ts'
import { buildSupervisoryPolicy, parseSupervisoryPolicy, supervisoryPolicyId } from '../shared/protocol/supervisory-policy.ts'
import { fmt, percentile, table } from './lib/measure.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 20)
const utf8 = new TextEncoder()
const rows: string[][] = []

/** Median wall time and CPU time per call (user + system), `setup` outside both. */
function bench<T>(op: string, fn: (input: T) => unknown, setup: () => T = () => undefined as T, runs = RUNS): void {
  for (let i = 0; i < 2; i++) fn(setup())
  const inputs = Array.from({ length: runs }, setup)
  const samples: number[] = []
  const cpu0 = process.cpuUsage()
  for (const input of inputs) {
    const t0 = performance.now()
    fn(input)
    samples.push(performance.now() - t0)
  }
  const cpu = process.cpuUsage(cpu0)
  samples.sort((a, b) => a - b)
  rows.push([op, fmt(percentile(samples, 50)), fmt(percentile(samples, 90)), fmt((cpu.user + cpu.system) / 1000 / runs), String(runs)])
  process.stderr.write(`  ${op}: ${fmt(percentile(samples, 50))} ms\n`)
}

process.stderr.write(`bench:supervision-crypto on ${os.cpus().length}× ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}, ${RUNS} runs per row (shared machine)\n`)

const record = utf8.encode('record content: canonical CBOR of the manifest … '.repeat(6))
const corrected = utf8.encode('record content, corrected … '.repeat(10))

for (const [k, n] of [
  [2, 3],
  [3, 5],
] as const) {
  const deal = frostDeal(k, n, systemRng)
  const { hash } = chameleonHash(deal.group.groupKey, record)
  const target = { hash, message: corrected }
  const signers = deal.shares.slice(0, k)
  /** A full round one, so round-two and coordinator rows get fresh inputs. */
  const session = () => {
    const c = signers.map((s) => thresholdAdaptCommit(s, systemRng))
    return { nonces: c.map((x) => x.nonces), commitments: c.map((x) => x.commitment) as FrostCommitment[] }
  }
  const signed = () => {
    const s = session()
    return { commitments: s.commitments, shares: signers.map((sh, j) => thresholdAdaptSign(sh, deal.group, s.nonces[j]!, s.commitments, target)) as FrostSignatureShare[] }
  }
  bench(`${k} of ${n}: regulator, round one (nonces + commitment)`, () => thresholdAdaptCommit(signers[0]!, systemRng))
  bench(`${k} of ${n}: regulator, round two (signature share)`, (s) => thresholdAdaptSign(signers[0]!, deal.group, s.nonces[0]!, s.commitments, target), session)
  bench(`${k} of ${n}: coordinator, verify one share`, (s) => thresholdAdaptVerifyShare(deal.group, s.commitments, target, s.shares[0]!), signed)
  bench(`${k} of ${n}: coordinator, verify all + aggregate + check opening`, (s) => thresholdAdaptAggregate(deal.group, s.commitments, target, s.shares), signed)
}

{
  const keys = chameleonKeyGen()
  const { hash } = chameleonHash(keys.publicKey, record)
  bench('1 of 1: adaptAlone (hedged Adapt + R)', () => adaptAlone(keys.secretKey, { hash, message: corrected }, systemRng))
}

for (const [k, n] of [
  [2, 3],
  [3, 5],
] as const) {
  const ceremony = { id: sha256(utf8.encode(`bench ${k} of ${n}`)), threshold: k, participants: n }
  const r1 = () => Array.from({ length: n }, (_, i) => dkgRound1(ceremony, i + 1, systemRng))
  bench(`DKG ${k} of ${n}: round 1, per participant`, () => dkgRound1(ceremony, 1, systemRng), undefined, 10)
  bench(`DKG ${k} of ${n}: round 2, per participant`, (r) => dkgRound2(ceremony, r[0]!.state, r.map((x) => x.package), systemRng), r1, 5)
  bench(
    `DKG ${k} of ${n}: round 3, per participant`,
    (x) => dkgRound3(ceremony, x.r[0]!.state, x.pk, x.r2),
    () => {
      const r = r1()
      const pk = r.map((x) => x.package)
      return { r, pk, r2: r.slice(1).map((x) => dkgRound2(ceremony, x.state, pk, systemRng).find((m) => m.to === 1)!) }
    },
    5,
  )
}

{
  const wallets = [1, 2, 3].map((i) => new Wallet('0x' + bytesToHex(sha256(utf8.encode(`bench regulator ${i}`)))))
  const policy = buildSupervisoryPolicy({ cloud: 'bench', group: frostDeal(2, 3, systemRng).group, regulators: wallets.map((w, i) => ({ name: `R${i + 1}`, address: w.address })), keyGeneration: 'dkg', createdAt: 0 })
  const subject = { requestId: bytesToHex(sha256(utf8.encode('r'))), record: 1, action: 'correct' as const, oldContent: contentDigest(record), newContent: contentDigest(corrected) }
  const message = { ...subject, decision: 'approve' as const, comment: '' }
  const digest = approvalDigest(policy, message)
  const approvals = wallets.slice(0, 2).map((w) => ({ ...message, policy: bytesToHex(supervisoryPolicyId(policy)), regulator: w.address, signature: w.signingKey.sign(digest).serialized }))
  bench('policy: parse + group consistency (2 of 3)', () => parseSupervisoryPolicy(policy))
  bench('approval: verify one (EIP-712 + ecrecover)', () => verifyApproval(policy, subject, approvals[0]))
  const entry = buildRedactionLogEntry({ policy, subject, reason: 'r', requester: 'doctor:a', approvals: approvals.map((a) => verifyApproval(policy, subject, a)), signers: [1, 2], opening: new Uint8Array(64), time: 0 })
  bench('redaction log entry: verify (2 approvals)', () => verifyRedactionLogEntry(policy, entry))
}

console.log(table(['operation', 'median ms', 'p90 ms', 'CPU ms/op', 'runs'], rows))
