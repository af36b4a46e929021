/**
 * npm run bench:crypto — the cryptographic core on this machine, median of several runs.
 * Targets (issue #2, noble on a 2-core VM): Encaps (10 rows) ≤ 25 ms, Decaps ≤ 30 ms at every
 * policy size, client Finish ≤ 12 ms, chameleon Adapt and Verify ≤ 2 ms each.
 *
 * Policies: "AND of n attributes" is the worst case for Decaps with unit coefficients (all n rows
 * are used); "⌈n/2⌉ of n" exercises Shamir columns, where Decaps needs G1 multiplications by the
 * Lagrange coefficients.  "cold" Encaps clears the attribute-point cache first (every attribute is
 * hashed to G1 and gets a fresh window table); "warm" is the gateway's steady state, sealing under
 * the same stream policy every few seconds.
 *
 * This VM's CPU is shared and jittery (the same pairing takes 15 ms or 26 ms minutes apart), so the
 * table shows the median, the best run (min) and p90, and the reference rows at the top say how
 * fast this machine was during this run: the targets assume a pairing of ~12 ms.
 */
import os from 'node:os'
import { bls12_381 } from '@noble/curves/bls12-381.js'
import { decaps, encaps, keyGen, setup } from '../shared/crypto/abe/fabeo.ts'
import { finish, makeTransformKey, transform } from '../shared/crypto/abe/outsource.ts'
import { clearAttributeCache, G1Point } from '../shared/crypto/abe/groups.ts'
import { checkInGT, gtPow } from '../shared/crypto/abe/gt.ts'
import { mulAddUnsafe } from '@noble/curves/abstract/curve.js'
import { decodeTransformed, encodeTransformed, digestHeader, encodeCiphertext } from '../shared/crypto/abe/codec.ts'
import { finishEnvelope, sealEnvelope, transformEnvelope } from '../shared/crypto/envelope.ts'
import { chameleonAdapt, chameleonHash, chameleonKeyGen, chameleonVerify } from '../shared/crypto/chameleon.ts'
import { MerkleTree, verifyInclusion } from '../shared/crypto/merkle.ts'
import { fmt, measure, table, type Timing } from './lib/measure.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 15)
const attrs = (n: number, prefix = 'a') => Array.from({ length: n }, (_, i) => `${prefix}:${i}`)
const andPolicy = (n: number) => attrs(n).join(' AND ')
const thresholdPolicy = (n: number) => `${Math.ceil(n / 2)} of (${attrs(n).join(', ')})`

type Row = { op: string; t: Timing; target?: number; note?: string }
const rows: Row[] = []
const record = (op: string, t: Timing, target?: number, note?: string) => {
  rows.push({ op, t, target, note })
  process.stderr.write(`  ${op}: ${fmt(t.median)} ms\n`)
}

process.stderr.write(`bench:crypto on ${os.cpus().length}× ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}, ${RUNS} runs per row\n`)

// Reference primitives, so the figures below can be read against this machine's speed.
const P = bls12_381.G1.Point.BASE.multiply(123456789n)
const Q = bls12_381.G2.Point.BASE.multiply(987654321n)
record('ref: pairing (noble)', measure(() => bls12_381.pairing(P, Q), { runs: RUNS }))
record('ref: 3 pairings, one batch', measure(() => bls12_381.pairingBatch([{ g1: P, g2: Q }, { g1: P, g2: Q }, { g1: P, g2: Q }]), { runs: RUNS }))
record('ref: G1 variable-base mul', measure(() => P.multiply(0x1234567890abcdef1234567890abcdef1234567890abcdefn), { runs: RUNS }))

const msk = setup()
record('Setup', measure(() => setup(), { runs: 3, warmup: 1 }))

for (const n of [5, 10, 20]) {
  record(`KeyGen, ${n} attributes`, measure(() => keyGen(msk, attrs(n, 'k')), { runs: RUNS }))
}

for (const n of [5, 10, 20, 50]) {
  const policy = andPolicy(n)
  record(
    `Encaps, ${n} rows (cold cache)`,
    measure(() => encaps(msk.mpk, policy), { runs: Math.max(3, Math.floor(RUNS / 2)), warmup: 1, setup: clearAttributeCache }),
  )
  record(`Encaps, ${n} rows (warm)`, measure(() => encaps(msk.mpk, policy), { runs: RUNS }), n === 10 ? 25 : undefined)
}

for (const n of [5, 10, 20, 50]) {
  const user = keyGen(msk, attrs(n))
  const and = encaps(msk.mpk, andPolicy(n)).ciphertext
  record(`Decaps, ${n} rows AND (all ${n} used)`, measure(() => decaps(user, and), { runs: RUNS }), 30)
  const thr = encaps(msk.mpk, thresholdPolicy(n)).ciphertext
  record(`Decaps, ${n} rows ${Math.ceil(n / 2)}-of-${n}`, measure(() => decaps(user, thr), { runs: RUNS }), 30)
}

const doctor = keyGen(msk, ['role:doctor', 'hospital:h1', 'dept:cardiology'])
const { transformKey, retrievalKey } = makeTransformKey(doctor)
const stream = '(role:doctor AND hospital:h1) OR patient:p-7f3a OR (role:researcher AND consent:research)'
const ct = encaps(msk.mpk, stream).ciphertext
record('Transform (proxy), stream policy', measure(() => transform(transformKey, ct), { runs: RUNS }), 30)
const tBytes = encodeTransformed({ headerDigest: digestHeader(encodeCiphertext(ct)), t: transform(transformKey, ct) })
record('Finish (client): decode+GT check+T^z', measure(() => finish(retrievalKey, decodeTransformed(tBytes).t), { runs: RUNS }), 12)
const payload = new Uint8Array(16 * 1024)
const aad = new Uint8Array(64)
const envelope = sealEnvelope(msk.mpk, stream, payload, aad)
const transformed = transformEnvelope(transformKey, envelope)
record('Finish (client) + AES-GCM, 16 KiB batch', measure(() => finishEnvelope(retrievalKey, envelope, transformed, aad), { runs: RUNS }), 12)
record('Seal envelope, 16 KiB, stream policy (warm)', measure(() => sealEnvelope(msk.mpk, stream, payload, aad), { runs: RUNS }))

const ch = chameleonKeyGen()
const message = new TextEncoder().encode('record: manifest canonical bytes …'.repeat(8))
const hashed = chameleonHash(ch.publicKey, message)
record('Chameleon Hash', measure(() => chameleonHash(ch.publicKey, message), { runs: RUNS * 4 }))
record('Chameleon Verify', measure(() => chameleonVerify(ch.publicKey, message, hashed.hash, hashed.opening), { runs: RUNS * 4 }), 2)
const edited = new TextEncoder().encode('record: corrected manifest bytes …')
record('Chameleon Adapt', measure(() => chameleonAdapt(ch.secretKey, edited, hashed.hash), { runs: RUNS * 4 }), 2)

const leaves = Array.from({ length: 4096 }, (_, i) => new TextEncoder().encode(`record ${i}`))
record('Merkle build, 4,096 leaves', measure(() => MerkleTree.fromLeaves(leaves), { runs: RUNS }))
const tree = MerkleTree.fromLeaves(leaves)
record('Merkle inclusion proof, 4,096 leaves', measure(() => tree.inclusionProof(1234), { runs: RUNS * 10 }))
const proof = tree.inclusionProof(1234)
const leafHash = tree.leafHash(1234)
record('Merkle verify proof, 4,096 leaves', measure(() => verifyInclusion(leafHash, 1234, 4096, proof, tree.root), { runs: RUNS * 10 }))

// Where the missed targets' time goes (see the notes under the table).
const lagrange = [1n, 2n, 3n, 4n, 5n].map((x) => (x * 0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001n) / 7n)
const rowsG1 = lagrange.map((_, i) => G1Point.BASE.multiply(BigInt(i + 7)))
record('  part: 5-point Straus MSM in G1 (threshold rows, done twice)', measure(() => mulAddUnsafe(G1Point, rowsG1, lagrange), { runs: RUNS }))
const tGT = decodeTransformed(tBytes).t
record('  part of Finish: decode T (576 B, includes the GT check)', measure(() => decodeTransformed(tBytes), { runs: RUNS }))
record('  part of Finish: GT membership (Scott)', measure(() => checkInGT(tGT), { runs: RUNS }))
record('  part of Finish: T^z (Frobenius-split, cyclotomic squaring)', measure(() => gtPow(tGT, retrievalKey.z), { runs: RUNS }))

const verdict = (r: Row): string => {
  if (r.target === undefined) return ''
  return r.t.median <= r.target ? `≤ ${r.target} ✓` : `≤ ${r.target} ✗ (+${fmt(r.t.median - r.target)} ms, ${(r.t.median / r.target).toFixed(2)}×)`
}
console.log(
  table(
    ['operation', 'median ms', 'min ms', 'p90 ms', 'runs', 'target (on the median)'],
    rows.map((r) => [r.op, fmt(r.t.median), fmt(r.t.min), fmt(r.t.p90), String(r.t.runs), verdict(r)]),
  ),
)

// What the misses mean and what would close them, from this run's own figures.
const get = (op: string): number => rows.find((r) => r.op === op)?.t.median ?? Number.NaN
const pairing = get('ref: pairing (noble)')
const three = get('ref: 3 pairings, one batch')
const speed = pairing / 12
const notes: string[] = []
notes.push(`This run's machine speed: one pairing ${fmt(pairing)} ms against the ~12 ms the targets assume (${speed.toFixed(2)}× slower); three batched pairings ${fmt(three)} ms.`)
const missed = rows.filter((r) => r.target !== undefined && r.t.median > r.target)
if (missed.some((r) => r.op.startsWith('Decaps') || r.op.startsWith('Transform'))) {
  const and = rows.filter((r) => /^Decaps, \d+ rows AND/.test(r.op)).map((r) => r.t.median)
  notes.push(
    `Decaps / Transform: three pairings in one Miller-loop batch (the key's K0 lines precomputed) are the floor; AND policies took ${fmt(Math.min(...and))} – ${fmt(Math.max(...and))} ms, ` +
      `≈ ${fmt(Math.min(...and) / speed)} – ${fmt(Math.max(...and) / speed)} ms at a 12-ms pairing. ` +
      `Thresholds add two Straus MSMs over the used rows (5 points with full-size scalars: ${fmt(get('  part: 5-point Straus MSM in G1 (threshold rows, done twice)'))} ms each); ` +
      `Decaps takes each Lagrange coefficient as its signed least residue, short when the key holds rows 1..k of a gate (±C(k, i)), full-size for other subsets. ` +
      `To close for every subset: coefficients scaled by their common denominator to short integers (then one full multiplication), or window tables for the user's own key rows (fixed per key).`,
  )
}
if (missed.some((r) => r.op.startsWith('Finish'))) {
  notes.push(
    `Finish: decode with the GT membership check ${fmt(get('  part of Finish: decode T (576 B, includes the GT check)'))} (the check alone ${fmt(get('  part of Finish: GT membership (Scott)'))}) + T^z ${fmt(get('  part of Finish: T^z (Frobenius-split, cyclotomic squaring)'))} ms; ` +
      `both the check and the exponentiation are 64 cyclotomic squarings plus multiplications already (Frobenius split of z). At a 12-ms pairing this is ≈ ${fmt(get('Finish (client): decode+GT check+T^z') / speed)} ms. ` +
      `To close further: Karabina's compressed cyclotomic squaring (fewer Fp2 multiplications per squaring), or a native BLS12-381 (blst) with GT arithmetic exposed to Node.`,
  )
}
if (missed.some((r) => r.op.startsWith('Encaps'))) notes.push('Encaps: warm Encaps is dominated by the G2 and G1 multiplications with window tables; what remains is pairing-free curve arithmetic in noble.')
console.log(`\n${notes.map((n) => `- ${n}`).join('\n')}`)
