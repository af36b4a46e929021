/**
 * npm run bench:access — getting data out (issue #9).
 *
 *   1. Epoch encodings: what folding key validity into policies costs (Encaps on the gateway,
 *      Decaps, ciphertext and key sizes): monthly epoch attributes (what CareLedger does) against
 *      a comparison encoding over the bits of a month number (BSW 2007 §4.3).
 *   2. Research export: verified-and-decrypted readings per second through the real pipeline
 *      (a `careledger cloud start` process; the client here: evidence API, record proofs, header
 *      chain, stream spans, blocks by CID through Helia, Decaps, AEAD, body checks), at the
 *      default batch size and at the size of the batches an outage leaves. Client CPU per reading
 *      (process.cpuUsage: the cloud is another process) and the time per stage.
 *   3. Doctor-side time per batch: local decryption (Decaps, 3 pairings) against finishing an
 *      outsourced transformation (one GT exponentiation + GT check), CPU ms per batch.
 *
 * Targets on this machine: ≥ 20,000 verified readings/s for an export; outsourced finish ≤ 12 ms
 * per batch. The machine is a shared 2-core VM: read CPU per unit of work beside the rates.
 */
import os from 'node:os'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { bytesToHex } from '@noble/hashes/utils.js'
import { decaps, encaps, keyGen } from '../shared/crypto/abe/fabeo.ts'
import { encodeCiphertext, encodeUserKey } from '../shared/crypto/abe/codec.ts'
import { makeTransformKey } from '../shared/crypto/abe/outsource.ts'
import { decodeEnvelope, envelopeCiphertext, transformEnvelope, type StreamKem } from '../shared/crypto/envelope.ts'
import { epochOf, keyAttributes, withEpoch, type Epoch } from '../shared/protocol/epoch.ts'
import { DEFAULT_LATENESS_MS, DEFAULT_SKEW_MS } from '../shared/protocol/evidence.ts'
import { VITALS, type VitalType } from '../shared/schema/vitals.ts'
import type { SealedReading } from '../shared/protocol/batch.ts'
import { CloudApi } from '../clients/cloud-api.ts'
import { finishBatch, LocalOpener, OutsourcedFinisher } from '../clients/decrypt.ts'
import { heliaBlockSource } from '../clients/ipfs.ts'
import { cloudFirst } from '../clients/bulk-blocks.ts'
import { defaultWorkers, WorkPool } from '../clients/work-pool.ts'
import { retrieve, type TrustStore } from '../clients/retrieve.ts'
import { currentKey } from '../test/helpers/authority.ts'
import { batchBody, sealTestBatch, signedPost, testAuthoritySecret, testGateway, testStream, type TestStream } from '../test/helpers/cloud-batches.ts'
import { CloudProcess } from '../test/helpers/cloud-process.ts'
import { careledger } from '../test/helpers/gateway-process.ts'
import { fmt, measure, table } from './lib/measure.ts'
import { cpuSeconds } from './lib/backlog.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 9)
/** Exports per batch size (after a warm-up); the one with the least CPU is reported. */
const EXPORT_RUNS = Number(process.env.BENCH_EXPORT_RUNS ?? 3)
/** BENCH_FRESH_KEM=1: one encapsulation per batch, as gateways sealed before issue 11 (for comparison). */
const BENCH_FRESH_KEM = process.env.BENCH_FRESH_KEM === '1'
/** Worker threads of the export client (`--workers`; 0: verify and decrypt in the client's own thread, as before). */
const WORKERS = Number(process.env.BENCH_WORKERS ?? defaultWorkers())
const out: string[] = []
const say = (s: string) => {
  out.push(s)
  process.stderr.write(`${s}\n`)
}
const cpuMs = (f: () => void): number => {
  const c0 = process.cpuUsage()
  f()
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / 1000
}

say(`bench:access on ${os.cpus().length}× ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} (shared machine)`)

// ── 1. epoch encodings ───────────────────────────────────────────────────────────────────────
{
  const msk = testAuthoritySecret()
  const base = '(role:doctor AND hospital:h1) OR patient:p-0123456789abcdef01234567'
  const epoch = epochOf(Date.now())
  const month = (e: Epoch) => (Number(e.slice(0, 4)) - 2020) * 12 + Number(e.slice(5, 7)) - 1 // 8 bits: 2020-01 … 2041-04
  const BITS = 8
  const bit = (n: number, i: number) => (n >> i) & 1
  /** until ≥ c, over the key's bits vu_b<i>, MSB first; each attribute at most once (FABEO). */
  const ge = (c: number): string => {
    let rest: string | null = null // null = TRUE
    for (let i = 0; i < BITS; i++) {
      const a = `vu_b${i}:1`
      rest = bit(c, i) ? (rest === null ? a : `${a} AND (${rest})`) : rest === null ? null : `${a} OR (${rest})`
    }
    return rest ?? 'TRUE'
  }
  /** from ≤ c, over the key's bits vf_b<i>. */
  const le = (c: number): string => {
    let rest: string | null = null
    for (let i = 0; i < BITS; i++) {
      const a = `vf_b${i}:0`
      rest = bit(c, i) ? (rest === null ? null : `${a} OR (${rest})`) : rest === null ? a : `${a} AND (${rest})`
    }
    return rest ?? 'TRUE'
  }
  const c = month(epoch) % 256
  const comparison = `(${base}) AND (${ge(c)}) AND (${le(c)})`.replaceAll(' AND (TRUE)', '')
  const cmpKeyAttrs = (from: number, until: number) => [...Array.from({ length: BITS }, (_, i) => `vu_b${i}:${bit(until, i)}`), ...Array.from({ length: BITS }, (_, i) => `vf_b${i}:${bit(from, i)}`)]
  const own = ['role:doctor', 'hospital:h1']
  const monthly12 = keyGen(msk, keyAttributes(own, { from: epoch, until: epochOf(Date.now() + 334 * 86_400_000) }))
  const monthly60 = keyGen(msk, keyAttributes(own, { from: epoch, until: epochOf(Date.now() + 59 * 30.5 * 86_400_000) }))
  const cmpKey = keyGen(msk, [...own, ...cmpKeyAttrs(Math.max(0, c - 3), Math.min(255, c + 8))])
  const plainKey = keyGen(msk, own)
  const rows: string[][] = []
  for (const [name, policy, key] of [
    ['no validity (before epochs)', base, plainKey],
    ['monthly epoch attribute (CareLedger)', withEpoch(base, epoch), monthly12],
    ['comparison over 8 month bits', comparison, cmpKey],
  ] as const) {
    encaps(msk.mpk, policy) // warm the attribute tables, as a gateway sealing all day is
    const e = measure(() => encaps(msk.mpk, policy), { runs: RUNS })
    const eCpu = cpuMs(() => { for (let i = 0; i < RUNS; i++) encaps(msk.mpk, policy) }) / RUNS
    const ct = encaps(msk.mpk, policy).ciphertext
    const d = measure(() => decaps(key, ct), { runs: RUNS })
    const dCpu = cpuMs(() => { for (let i = 0; i < RUNS; i++) decaps(key, ct) }) / RUNS
    rows.push([name, String(ct.rows.length), fmt(eCpu), fmt(e.median), fmt(dCpu), fmt(d.median), String(encodeCiphertext(ct).length), String(encodeUserKey(key).length)])
  }
  rows.push(['  key valid 60 months (monthly)', '', '', '', '', '', '', String(encodeUserKey(monthly60).length)])
  say('\n1. Epoch encodings (Encaps warm, as the gateway seals; CPU ms per operation, and wall median)')
  say(table(['encoding', 'rows', 'Encaps CPU', 'Encaps wall', 'Decaps CPU', 'Decaps wall', 'header B', 'key B'], rows))
}

// ── 2. research export and 3. doctor-side time ───────────────────────────────────────────────
const T = Date.now() - 6 * 3600_000
const TYPES: VitalType[] = ['heart_rate', 'spo2', 'resp_rate', 'bp_systolic', 'bp_diastolic', 'body_temp']
const sample: Record<VitalType, number> = { heart_rate: 72, spo2: 97, resp_rate: 14, bp_systolic: 120, bp_diastolic: 80, body_temp: 36.8, ecg: 0 }
/** One batch of `seconds` one-second ticks of six vitals (a monitor at its default rate: 6 readings/s). */
const batchOf = (k: number, seconds: number, t0: number): SealedReading[] =>
  Array.from({ length: seconds }, (_, s) => s).flatMap((s) => TYPES.map((type, j) => ({ seq: (k * seconds + s) * 6 + j, ts: t0 + s * 1000, rx: t0 + s * 1000 + 25, type, unit: VITALS[type].unit, value: sample[type] })))

const root = mkdtempSync(join(tmpdir(), 'careledger-bench-access-'))
let work: WorkPool | undefined // the export client's threads (section 2)
const cloud = await CloudProcess.start({ dataDir: join(root, 'cloud'), args: ['--block-interval-s', '0.5', '--verify-interval-s', '0'], env: { CARELEDGER_LOG_LEVEL: 'info' }, readyTimeoutMs: 60_000 })
try {
  const json = async (args: string[]) => JSON.parse((await careledger([...args, '--json', '--data', join(root, 'cloud')])).stdout) as { token: string }
  const researcher = (await json(['cloud', 'token', 'create', '--role', 'researcher', '--name', 'lab'])).token
  const invite = (await json(['cloud', 'gateway', 'invite', '--name', 'ward-1'])).token
  const gw = testGateway()
  await fetch(`${cloud.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: invite, publicKey: bytesToHex(gw.publicKey), name: 'ward-1' }) })
  const key = currentKey(testAuthoritySecret(), ['role:researcher', 'consent:research'])
  const policy = '(role:researcher AND consent:research) OR patient:{patient}'

  /** Upload `n` batches of `seconds` ticks to a new stream; returns its time span. */
  const fill = async (stream: TestStream, n: number, seconds: number, t0: number): Promise<{ from: number; to: number; envelopes: { e: Uint8Array; m: import('../shared/protocol/manifest.ts').BatchManifest }[] }> => {
    let prev: string | null = null
    let kem: StreamKem | undefined // one encapsulation per stream and epoch, as gateways seal (envelope format 2)
    const envelopes = []
    for (let k = 0; k < n; k++) {
      const start = t0 + k * seconds * 1000
      const b = await sealTestBatch(stream, k, prev, { readings: batchOf(k, seconds, start), now: start + seconds * 1000 + 500, ...(BENCH_FRESH_KEM ? {} : { kem }) })
      prev = b.commitment
      kem = b.kem
      envelopes.push({ e: b.envelope, m: b.manifest })
      const { res } = await signedPost(cloud.url, gw, '/v1/batches', await batchBody(b))
      if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`)
    }
    return { from: t0, to: t0 + n * seconds * 1000 - 1, envelopes }
  }

  const noTrust: TrustStore = { signingKey: () => null, knownHeads: () => [], remember: () => {} }
  const api = new CloudApi({ url: cloud.url, token: researcher })
  let threadStart = 0 // CPU ms to start the threads (once per process, outside the figures)
  const exportOnce = async (from: number, to: number, ipfsOnly = false) => {
    const ipfs = await heliaBlockSource([{ url: cloud.url, token: researcher }], { timeoutMs: 15_000 })
    const blocks = ipfsOnly ? ipfs : cloudFirst(api, cloud.url, ipfs)
    const decryptor = { kind: 'local' as const, attributes: key.attributes, opener: new LocalOpener(key) }
    // One pool for the bench, started before the clock and warmed by the warm-up export as the
    // main thread is; K forgotten before each export (one Decaps a stream and thread, as a new session).
    if (WORKERS > 0 && !work) {
      work = WorkPool.forDecryptor(WORKERS, decryptor)
      const w0 = process.cpuUsage()
      await work.ready()
      const w = process.cpuUsage(w0)
      threadStart = (w.user + w.system) / 1000
    }
    work?.reset()
    try {
      const c0 = process.cpuUsage()
      const cloud0 = cpuSeconds(cloud.pid)
      const t0 = performance.now()
      const r = await retrieve({
        query: { patient: null, types: TYPES, from, to, lateness: DEFAULT_LATENESS_MS, skew: DEFAULT_SKEW_MS },
        evidence: api,
        blocks,
        trust: noTrust,
        decryptor,
        concurrency: 16,
        ...(work ? { work } : {}),
      })
      const wall = performance.now() - t0
      const c = process.cpuUsage(c0)
      const cloudCpu = (cpuSeconds(cloud.pid) - cloud0) * 1000
      const readings = r.batches.reduce((n, b) => n + b.readings.length, 0)
      return { readings, batches: r.batches.length, wall, cpu: (c.user + c.system) / 1000, cloudCpu, timings: r.timings }
    } finally {
      await blocks.stop()
    }
  }

  const cases = [
    { label: 'default batch: 5 s seal interval × 6 readings/s = 30 readings', streams: 2, n: 400, seconds: 5 },
    { label: '  the same, every block through Helia (--ipfs-only)', streams: 0, n: 400, seconds: 5, ipfsOnly: true },
    { label: '10 s batches = 60 readings', streams: 2, n: 200, seconds: 10 },
    { label: '20 s batches = 120 readings', streams: 2, n: 100, seconds: 20 },
    { label: 'outage batch: 60 s offline interval = 360 readings', streams: 2, n: 34, seconds: 60 },
  ]
  const rows: string[][] = []
  let coldNote = ''
  const results: { row: number; readings: number; batches: number; cpu: number }[] = []
  let base = T
  let sample30: { e: Uint8Array; m: import('../shared/protocol/manifest.ts').BatchManifest }[] = []
  let from = Infinity
  let to = -Infinity
  for (const c of cases as { label: string; streams: number; n: number; seconds: number; ipfsOnly?: boolean }[]) {
    // streams 0: the previous case's data again, fetched another way
    if (c.streams > 0) [from, to] = [Infinity, -Infinity]
    for (let s = 0; s < c.streams; s++) {
      const r = await fill(testStream(gw, `bench-${c.seconds}-${s}`, `P-${c.seconds}-${s}`, policy), c.n, c.seconds, base)
      from = Math.min(from, r.from)
      to = Math.max(to, r.to)
      if (c.seconds === 5 && s === 0) sample30 = r.envelopes
    }
    base += 3600_000
    await new Promise((ok) => setTimeout(ok, 1500)) // the cloud seals them into blocks
    const ipfsOnly = c.ipfsOnly ?? false
    const cold = await exportOnce(from, to, ipfsOnly) // warm up (JIT, tables)
    if (rows.length === 0) coldNote = `   the first export of the process (cold JIT${WORKERS > 0 ? ', threads just started' : ''}), default batch: ${Math.round(cold.readings / (cold.wall / 1000)).toLocaleString('en')} readings/s, client ${fmt((cold.cpu * 1000) / cold.readings)} + cloud ${fmt((cold.cloudCpu * 1000) / cold.readings)} µs CPU a reading`
    // The best of a few runs: the machine is shared, and CPU time is what is compared.
    let x = await exportOnce(from, to, ipfsOnly)
    for (let k = 1; k < EXPORT_RUNS; k++) {
      const y = await exportOnce(from, to, ipfsOnly)
      if (y.cpu + y.cloudCpu < x.cpu + x.cloudCpu) x = y
    }
    const t = x.timings
    rows.push([
      c.label,
      String(x.batches),
      String(x.readings),
      Math.round(x.readings / (x.wall / 1000)).toLocaleString('en'),
      fmt((x.cpu * 1000) / x.readings),
      fmt((x.cloudCpu * 1000) / x.readings),
      fmt(((x.cpu + x.cloudCpu) * 1000) / x.readings),
      fmt((x.cpu + x.cloudCpu) / x.batches),
      ['plan', 'records', 'headers', 'verify', 'blocks', 'decrypt'].map((k) => `${k} ${fmt(t[k] ?? 0)}`).join(', '),
    ])
    results.push({ row: rows.length - 1, readings: x.readings, batches: x.batches, cpu: x.cpu })
  }
  // What the export costs without one FABEO Decaps per batch — what one encapsulation per stream and
  // epoch (batch keys derived from it) would leave: the client's CPU minus a Decaps per batch.
  const decapsCpu = cpuMs(() => sample30.slice(0, 20).forEach((x) => decaps(key, envelopeCiphertext(decodeEnvelope(x.e))))) / 20
  // Sealed as gateways do since issue 11 (format 2), an export already needs one Decaps per stream: the estimate is for BENCH_FRESH_KEM=1.
  for (const r of BENCH_FRESH_KEM ? results.reverse() : []) {
    const rest = r.cpu - r.batches * decapsCpu
    rows.splice(r.row + 1, 0, ['  without a Decaps per batch (CPU-bound, one core)', '', '', Math.round(r.readings / (rest / 1000)).toLocaleString('en'), fmt((rest * 1000) / r.readings), '', '', '', `Decaps ${fmt(decapsCpu)} ms CPU a batch (client)`])
  }
  say(`\n2. Research export, verified and decrypted (client in this process with ${WORKERS} worker threads; cloud a separate process); ${BENCH_FRESH_KEM ? 'one encapsulation per batch (as before issue 11)' : 'one encapsulation per stream and epoch (envelope format 2: one Decaps per stream)'}`)
  say('   CPU µs per reading: the client (this process, process.cpuUsage) and the cloud process (/proc/<pid>/stat, 10 ms ticks); the best of EXPORT_RUNS runs')
  if (WORKERS > 0) say(`   starting the ${WORKERS} threads (loading the code; before the clock): ${fmt(threadStart)} ms CPU once per process`)
  say(coldNote)
  say(table(['batch size', 'batches', 'readings', 'readings/s', 'client CPU µs/reading', 'cloud CPU µs/reading', 'total CPU µs/reading', 'total CPU ms/batch', 'wall ms per stage'], rows))

  // ── 3. doctor-side time per batch ──────────────────────────────────────────────────────────
  const { transformKey, retrievalKey } = makeTransformKey(key)
  const transformed = sample30.slice(0, 30).map((x) => transformEnvelope(transformKey, x.e)) // the proxy's work, not timed
  const batches = sample30.slice(0, 30)
  // Fresh openers per run so no KEM key is reused between runs.
  const local = measure((i: number) => new LocalOpener(key).open(batches[i]!.e, batches[i]!.m), { runs: batches.length, setup: (() => { let i = 0; return () => i++ % batches.length })() })
  const outsourced = measure((i: number) => finishBatch(retrievalKey, batches[i]!.e, transformed[i]!, batches[i]!.m), { runs: batches.length, setup: (() => { let i = 0; return () => i++ % batches.length })() })
  const localCpu = cpuMs(() => batches.forEach((b) => new LocalOpener(key).open(b.e, b.m))) / batches.length
  const outCpu = cpuMs(() => batches.forEach((b, i) => finishBatch(retrievalKey, b.e, transformed[i]!, b.m))) / batches.length
  // What a read pays per batch after a stream's first (envelope format 2: one encapsulation per stream and epoch).
  const opener = new LocalOpener(key)
  const finisher = new OutsourcedFinisher(retrievalKey)
  opener.open(batches[0]!.e, batches[0]!.m)
  finisher.open(batches[0]!.e, transformed[0]!, batches[0]!.m)
  const localLaterCpu = cpuMs(() => batches.slice(1).forEach((b) => opener.open(b.e, b.m))) / (batches.length - 1)
  const outLaterCpu = cpuMs(() => batches.slice(1).forEach((b, i) => finisher.open(b.e, transformed[i + 1]!, b.m))) / (batches.length - 1)
  say('\n3. Doctor-side time per batch of 30 readings (envelope open + body checks)')
  say(
    table(
      ['mode', 'median ms', 'p90 ms', 'CPU ms/batch', 'target'],
      [
        ['local (Decaps: 3 pairings)', fmt(local.median), fmt(local.p90), fmt(localCpu), ''],
        ['outsourced (Finish: GT check + one GT exponentiation)', fmt(outsourced.median), fmt(outsourced.p90), fmt(outCpu), '≤ 12 ms'],
        ['local, later batches of the stream and epoch (K kept: LocalOpener)', '', '', fmt(localLaterCpu), ''],
        ['outsourced, later batches of the stream and epoch (K kept: OutsourcedFinisher)', '', '', fmt(outLaterCpu), '≤ 12 ms'],
      ],
    ),
  )
} finally {
  await cloud.kill('SIGKILL')
  await work?.close()
  rmSync(root, { recursive: true, force: true })
}
process.stdout.write(out.join('\n') + '\n')
