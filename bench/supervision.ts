/**
 * npm run bench:supervision — the supervision workflow on a real chain in a SQLite file:
 *
 *   apply      time from the k-th regulator's signature share to the redaction applied and
 *              committed (share check, aggregate, opening check under the unchanged hash, content
 *              swap, redaction log entry, fsync) — SupervisionStore.share of the last signer — and
 *              then the blockstore work the cloud does right after (afterApplied: the corrected
 *              envelope put, the old ciphertext deleted, each fsynced); the EIP-712 decisions and
 *              round one before it are human time and not counted. Each stage is shown apart.
 *   adapt      one threshold Adapt per regulator (round one + round two) and for the coordinator
 *              (verify k shares + aggregate), 2 of 3
 *   verify     `verifyChain` on the same chain with none and with 1 % of records redacted
 *              (corrections and deletions alternating), on the calling thread and with workers,
 *              runs alternating, each with no signer remembered (as a fresh `chain verify`);
 *              and the redaction checks alone (checkRedactions, cold), whose
 *              CPU per redacted record against a plain record's gives what 1 % adds
 *
 * Wall-clock median and CPU ms per operation (process.cpuUsage): the machine is shared.
 *   BENCH_RECORDS (default 4000), BENCH_VERIFY_RUNS (default 3)
 */
import os from 'node:os'
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { openCloudDb } from '../cloud/store/db.ts'
import { ChainStore } from '../cloud/chain/store.ts'
import { decodeRecordContent } from '../cloud/chain/record.ts'
import { verifyChain } from '../cloud/chain/verify.ts'
import { checkRedactions } from '../cloud/supervision/verify-redactions.ts'
import { forgetKnownSigners } from '../shared/crypto/eth-signer.ts'
import { sqliteSupervision, type ApplyStage, type RequestView } from '../cloud/supervision/store.ts'
import { FileEnvelopeStore } from '../cloud/service/blockstore.ts'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { thresholdAdaptAggregate, thresholdAdaptVerifyShare } from '../shared/crypto/chameleon-threshold.ts'
import { policyGroup } from '../shared/protocol/supervisory-policy.ts'
import { systemRng } from '../shared/crypto/random.ts'
import { chainTestKeys, testFleet } from '../test/cloud/chain-helpers.ts'
import { committee, commitmentsOf, roundOne, roundTwo, signDecision, subjectOf, targetOf } from '../test/helpers/supervision.ts'
import { contentDigest } from '../shared/protocol/approval.ts'
import { manifestCommitment, type BatchManifest } from '../shared/protocol/manifest.ts'
import { NO_MANIFEST, signRequest } from '../shared/protocol/supervision-request.ts'
import { testWallet } from '../test/vectors/supervision.ts'
import { fmt, percentile, table } from './lib/measure.ts'

const RECORDS = Number(process.env.BENCH_RECORDS ?? 4000)
const VERIFY_RUNS = Number(process.env.BENCH_VERIFY_RUNS ?? 3)
const STREAMS = 40
const SEQS = Math.ceil(RECORDS / STREAMS)
const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000
const cidOf = (bytes: Uint8Array): CID => CID.create(1, 0x55, Digest.create(0x12, sha256(bytes)))
const STAGE_LABELS: Record<ApplyStage | 'blockstore put' | 'blockstore delete', string> = {
  'share-check': 'k-th share checked (RFC 9591 §5.4)',
  aggregate: 'aggregate + new opening checked',
  approvals: 'k EIP-712 approvals re-verified',
  'opening-check': 'opening checked (1 of 1)',
  'log-entry': 'log entry built (approvals again) + hashed',
  commit: 'swap + log append + block v2 sealed + WAL fsync (one tx)',
  'blockstore put': 'blockstore put new envelope + fsync',
  'blockstore delete': 'blockstore delete old + dir fsync',
}

process.stderr.write(`bench:supervision on ${os.cpus().length}× ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}, ${STREAMS * SEQS} records (shared machine)\n`)

const dir = mkdtempSync(join(tmpdir(), 'careledger-bench-supervision-'))
try {
  const keys = chainTestKeys('bench supervision')
  const path = join(dir, 'chain.db')
  const db = openCloudDb(path)
  const chain = new ChainStore(db, keys.store)
  const fleet = testFleet(4, STREAMS / 4, 'bench-supervision')
  for (let seq = 0; seq < SEQS; seq++) {
    chain.appendBatches(fleet.map((s) => s.batch(seq)))
    chain.sealBlock(1_760_000_000_000 + seq * 5000)
  }
  await chain.close()
  db.pragma('wal_checkpoint(TRUNCATE)')
  const pristine = join(dir, 'pristine.db')
  copyFileSync(path, pristine)
  const total = STREAMS * SEQS

  const c = committee(2, 3, keys.chameleon.secretKey)
  const stageMs = new Map<ApplyStage | 'blockstore put' | 'blockstore delete', number[]>()
  let lastStages: [ApplyStage, number][] = []
  // As the service does (cloud/runtime.ts): each apply seals the block committing its log entry in its transaction.
  const sealer = new ChainStore(db, keys.store, { workers: 0 })
  const sup = sqliteSupervision(db, { chameleonPublicKey: keys.chameleon.publicKey, onStage: (stage, ms) => void lastStages.push([stage, ms]), seal: (t) => sealer.sealBlock(t) })
  const blocks = await FileEnvelopeStore.open(join(dir, 'blocks'))
  const addStage = (stage: ApplyStage | 'blockstore put' | 'blockstore delete', ms: number): void => void stageMs.set(stage, [...(stageMs.get(stage) ?? []), ms])
  await sup.setPolicy(c.policy)
  const group = policyGroup(c.policy)
  const requester = testWallet(9)

  // ---- apply after the k-th approval, and the adapt costs -------------------------------------------
  const redactions = Math.max(1, Math.round(total / 100))
  const apply: number[] = []
  let applyCpu = 0
  const perRegulator: number[] = []
  let perRegulatorCpu = 0
  const coordinator: number[] = []
  let coordinatorCpu = 0
  for (let i = 0; i < redactions; i++) {
    const record = 1 + Math.floor(((i + 0.5) * total) / redactions)
    let r: RequestView
    // Signed by the requester's wallet, as the HTTP API requires: log entries of version 2.
    const content = new Uint8Array(db.prepare('SELECT content FROM records WHERE id = ?').pluck().get(record) as Buffer)
    const sign = async (action: 'correct' | 'delete', reason: string, manifest?: BatchManifest) =>
      (
        await signRequest(c.policy, requester, {
          record,
          action,
          oldContent: contentDigest(content),
          newManifest: manifest ? manifestCommitment(manifest) : NO_MANIFEST,
          reason,
          nonce: bytesToHex(sha256(new TextEncoder().encode(`bench nonce ${record}`))),
          issuedAt: 1_767_300_000_000,
        })
      ).signed
    if (i % 2 === 0) {
      const old = decodeRecordContent(content).manifest
      const envelope = sha256(new TextEncoder().encode(`bench envelope ${record}`))
      const cid = cidOf(envelope).toString()
      const manifest = { ...old, cid, size: envelope.length, merkleRoot: bytesToHex(envelope) }
      r = await sup.createRequest({ record, action: 'correct', reason: 'bench correction', requester: 'bench', manifest, envelope, signed: await sign('correct', 'bench correction', manifest) })
    } else {
      r = await sup.createRequest({ record, action: 'delete', reason: 'bench deletion', requester: 'bench', signed: await sign('delete', 'bench deletion') })
    }
    for (const k of [1, 2]) r = await sup.decide(r.id, await signDecision(c.policy, c.regulators[k - 1]!.wallet, subjectOf(r)))
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    const n1 = roundOne(c.regulators[0]!, systemRng)
    const n2 = roundOne(c.regulators[1]!, systemRng)
    perRegulatorCpu += cpuMs(process.cpuUsage(cpu0)) / 2
    perRegulator.push((performance.now() - t0) / 2)
    r = await sup.commit(r.id, n1.commitment)
    r = await sup.commit(r.id, n2.commitment)
    const t1 = performance.now()
    const cpu1 = process.cpuUsage()
    const z1 = roundTwo(c, c.regulators[0]!, n1.nonces, r)
    const z2 = roundTwo(c, c.regulators[1]!, n2.nonces, r)
    perRegulatorCpu += cpuMs(process.cpuUsage(cpu1)) / 2
    perRegulator[perRegulator.length - 1]! += (performance.now() - t1) / 2
    // The coordinator's share: verify both, aggregate (what the last share() call also does).
    const t2 = performance.now()
    const cpu2 = process.cpuUsage()
    const commitments = commitmentsOf(r)
    const target = targetOf(r)
    for (const z of [z1, z2]) thresholdAdaptVerifyShare(group, commitments, target, z)
    thresholdAdaptAggregate(group, commitments, target, [z1, z2])
    coordinatorCpu += cpuMs(process.cpuUsage(cpu2))
    coordinator.push(performance.now() - t2)
    await sup.share(r.id, z1)
    // The chain's test batches name made-up CIDs: the old ciphertext stands in under a real one.
    const oldEnvelope = sha256(new TextEncoder().encode(`old envelope ${record}`))
    const oldCid = cidOf(oldEnvelope)
    await blocks.put(oldCid, oldEnvelope)
    lastStages = []
    const t3 = performance.now()
    const cpu3 = process.cpuUsage()
    const out = await sup.share(r.id, z2) // the k-th share: verify, aggregate, check, swap, log, commit
    if (!out.applied) throw new Error('not applied')
    // afterApplied's blockstore work (cloud/supervision/routes.ts)
    const t4 = performance.now()
    if (out.applied.newCid && out.applied.newEnvelope) await blocks.put(CID.parse(out.applied.newCid), out.applied.newEnvelope)
    const t5 = performance.now()
    await blocks.delete(oldCid)
    const t6 = performance.now()
    applyCpu += cpuMs(process.cpuUsage(cpu3))
    apply.push(t6 - t3)
    for (const [stage, ms] of lastStages) addStage(stage, ms)
    if (out.applied.newCid) addStage('blockstore put', t5 - t4)
    addStage('blockstore delete', t6 - t5)
  }
  await blocks.close()
  await sealer.close()
  db.close()
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b)
  const rows: string[][] = [
    ['apply after the k-th share (2 of 3), all stages', fmt(percentile(sorted(apply), 50)), fmt(percentile(sorted(apply), 90)), fmt(applyCpu / redactions), String(redactions)],
    ...[...stageMs].map(([stage, ms]) => [`  stage: ${STAGE_LABELS[stage]}`, fmt(percentile(sorted(ms), 50)), fmt(percentile(sorted(ms), 90)), '', String(ms.length)]),
    ['threshold adapt, per regulator (rounds 1+2)', fmt(percentile(sorted(perRegulator), 50)), fmt(percentile(sorted(perRegulator), 90)), fmt(perRegulatorCpu / redactions), String(redactions * 2)],
    ['threshold adapt, coordinator (verify 2 + aggregate)', fmt(percentile(sorted(coordinator), 50)), fmt(percentile(sorted(coordinator), 90)), fmt(coordinatorCpu / redactions), String(redactions)],
  ]

  // ---- chain verify: none vs 1 % redacted ---------------------------------------------------------
  // Runs alternate (none, 1 %, none, 1 % …) so the machine's drifting load hits both alike.
  const verifyPair = async (workers: number): Promise<{ plain: { wall: number; cpu: number }; red: { wall: number; cpu: number } }> => {
    const runs = { plain: { wall: [] as number[], cpu: [] as number[] }, red: { wall: [] as number[], cpu: [] as number[] } }
    for (let i = 0; i < VERIFY_RUNS; i++) {
      for (const [which, file] of [['plain', pristine], ['red', path]] as const) {
        forgetKnownSigners() // as a fresh `careledger chain verify` process: no signer this thread recovered before (the applies above, earlier runs)
        const cpu0 = process.cpuUsage() // the whole process: the worker threads included
        const r = await verifyChain(file, { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey, workers })
        runs[which].cpu.push(cpuMs(process.cpuUsage(cpu0)))
        if (!r.ok) throw new Error(`${which}: ${JSON.stringify(r.failures.slice(0, 3))}`)
        runs[which].wall.push(r.durationMs)
      }
    }
    const med = (xs: number[]) => percentile(sorted(xs), 50)
    const where = workers === 0 ? 'calling thread' : `${workers} workers`
    for (const [which, label] of [['plain', 'none redacted'], ['red', `${redactions} redacted (1 %)`]] as const) {
      const w = med(runs[which].wall)
      const c = med(runs[which].cpu)
      rows.push([`chain verify, ${total} records, ${label}, ${where} (${fmt((total / w) * 1000)} records/s, ${fmt((c / total) * 1000)} µs CPU/record)`, fmt(w), fmt(percentile(sorted(runs[which].wall), 90)), fmt(c), String(VERIFY_RUNS)])
    }
    return { plain: { wall: med(runs.plain.wall), cpu: med(runs.plain.cpu) }, red: { wall: med(runs.red.wall), cpu: med(runs.red.cpu) } }
  }
  const onThread = await verifyPair(0)
  const onWorkers = await verifyPair(2)
  // The redaction checks alone (walk the log + every job), on this thread: what 1 % adds, without the noise of two whole runs.
  const conn = openCloudDb(path)
  const jobCpu: number[] = []
  for (let i = 0; i < VERIFY_RUNS; i++) {
    forgetKnownSigners()
    const cpu0 = process.cpuUsage()
    const r = checkRedactions(conn, keys.chameleon.publicKey)
    jobCpu.push(cpuMs(process.cpuUsage(cpu0)))
    if (r.failures.length > 0) throw new Error(JSON.stringify(r.failures.slice(0, 3)))
  }
  conn.close()
  const redactionCpu = percentile(sorted(jobCpu), 50)
  const perRecord = onThread.plain.cpu / total
  const added = redactionCpu - redactions * perRecord // the redacted rows leave the plain checks
  rows.push([`redaction checks alone: ${redactions} entries + rows (cold: keys learnt afresh)`, '', '', fmt(redactionCpu), String(VERIFY_RUNS)])
  process.stdout.write(table(['operation', 'median ms', 'p90 ms', 'CPU ms/op', 'runs'], rows) + '\n')
  const pct = (a: number, b: number): string => `${(((a - b) / b) * 100).toFixed(1)} %`
  process.stdout.write(`\nverify with 1 % redacted vs none (medians of alternating runs): calling thread CPU ${pct(onThread.red.cpu, onThread.plain.cpu)}, wall ${pct(onThread.red.wall, onThread.plain.wall)}; 2 workers wall ${pct(onWorkers.red.wall, onWorkers.plain.wall)}, CPU ${pct(onWorkers.red.cpu, onWorkers.plain.cpu)}\n`)
  process.stdout.write(`redaction checks: ${fmt(redactionCpu / redactions)} ms CPU per redacted record against ${fmt(perRecord)} ms for a plain one: 1 % redacted adds ${((added / onThread.plain.cpu) * 100).toFixed(1)} % CPU; target within 10 %\n`)
  process.stdout.write(`apply target ≤ 100 ms: median ${fmt(percentile(sorted(apply), 50))} ms, CPU ${fmt(applyCpu / redactions)} ms\n`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
