/**
 * bench:cloud §5 — sustained append over HTTP from several gateways into a real `careledger cloud
 * start` (target, issue 14: ≥ 4,000 records/s on the 2-core VM, so that the service's periodic
 * verification and the API keep room while a region's backlog drains).
 *
 *   prepare   BENCH_APPEND_GATEWAYS (8) gateways × 25 streams, registered with the cloud through its
 *             enrolment API; BENCH_APPEND_RECORDS (24,000) batches, each a gateway-signed manifest
 *             whose envelope is 2 KB of random bytes under its real CIDv1 (the cloud never decrypts:
 *             it checks the CAR, the size and the signature), packed as the one-block CAR a gateway
 *             uploads, and the request bodies encoded. All of it before the clock starts; request
 *             signatures (timestamp, nonce) at send time, as a gateway does.
 *   bulk      every gateway sends POST /v1/batches/bulk of BENCH_APPEND_BULK (200, the gateway's
 *             MAX_UPLOAD_BATCHES) at once, one request in flight per gateway, until all are in; the
 *             clock stops when the last answer is back (every batch 201). CPU of the cloud process
 *             (all threads) from /proc, so CPU per 1,000 records does not depend on what else ran.
 *             Two rows: each gateway's first bulk ("cold": the fresh process starts its append
 *             worker thread and its JIT warms up), then the rest ("sustained", what the target is about).
 *   single    the same run, the same cloud: BENCH_APPEND_SINGLE (1,000) batches more as single
 *             POST /v1/batches, one in flight per gateway — the single-record cost beside the bulk rate.
 *
 * The load generator runs in this process, on the same two cores: its own CPU is reported too.
 */
import os from 'node:os'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { CID } from 'multiformats/cid'
import { sha256 as sha256Hasher } from 'multiformats/hashes/sha2'
import { bytesToHex } from '@noble/hashes/utils.js'
import { encodeCanonical } from '../../shared/encoding/canonical.ts'
import { manifestCommitment, type BatchManifest } from '../../shared/protocol/manifest.ts'
import { signRequest } from '../../shared/protocol/request-signing.ts'
import { testFleet, type TestStream } from '../../test/cloud/chain-helpers.ts'
import { carOf, testAuthority } from '../../test/helpers/cloud-batches.ts'
import { CloudProcess } from '../../test/helpers/cloud-process.ts'
import { cli } from '../../test/helpers/system.ts'
import { sealEnvelope } from '../../shared/crypto/envelope.ts'
import { formatPolicy, parsePolicy } from '../../shared/crypto/policy/parse.ts'
import { envelopePolicy } from '../../cloud/service/policy-check.ts'
import { cpuSeconds } from './backlog.ts'
import { table } from './measure.ts'

export interface AppendHttpOptions {
  readonly gateways: number
  readonly records: number
  readonly bulk: number
  readonly single: number
  readonly log: (s: string) => void
}

export function appendHttpOptions(log: (s: string) => void): AppendHttpOptions {
  return {
    gateways: Number(process.env.BENCH_APPEND_GATEWAYS ?? 8),
    records: Number(process.env.BENCH_APPEND_RECORDS ?? 24_000),
    bulk: Number(process.env.BENCH_APPEND_BULK ?? 200),
    single: Number(process.env.BENCH_APPEND_SINGLE ?? 1_000),
    log,
  }
}

export interface Item {
  readonly stream: TestStream
  readonly body: { manifest: BatchManifest; signature: Uint8Array; car: Uint8Array }
}

const templates = new Map<TestStream, { template: Uint8Array; authority: string; policy: string }>()
/** One real FABEO envelope per stream (≈ 2 KB sealed) under the test authority, and its header's authority and policy. */
function templateOf(stream: TestStream): { template: Uint8Array; authority: string; policy: string } {
  let t = templates.get(stream)
  if (!t) {
    const policy = formatPolicy(parsePolicy(stream.manifest(0, { variant: 1 }).policy))
    const template = sealEnvelope(testAuthority(), policy, randomBytes(2048), new Uint8Array(0))
    t = { template, ...envelopePolicy(template) }
    templates.set(stream, t)
  }
  return t
}

/** Batches `from`..`to`−1 of each stream in round-robin order, with real envelopes and CIDs; prev links kept per stream. */
export async function makeItems(fleet: TestStream[], prev: Map<TestStream, string | null>, count: number, seqOf: Map<TestStream, number>): Promise<Item[]> {
  const items: Item[] = []
  for (let i = 0; i < count; i++) {
    const stream = fleet[i % fleet.length]!
    const seq = seqOf.get(stream) ?? 0
    const base = stream.manifest(seq, { prev: prev.get(stream) ?? null })
    const { template, authority, policy } = templateOf(stream)
    // The cloud reads the envelope's header (policy, authority) but never decrypts: fresh random
    // bytes in the sealed part give every batch its own CID at the cost of one seal per stream.
    const envelope = template.slice()
    envelope.set(randomBytes(64), envelope.length - 64)
    const cid = CID.createV1(0x55, await sha256Hasher.digest(envelope))
    const manifest: BatchManifest = { ...base, authority, policy, cid: cid.toString(), size: envelope.length }
    prev.set(stream, manifestCommitment(manifest))
    seqOf.set(stream, seq + 1)
    items.push({ stream, body: { manifest, signature: stream.gateway.sign(manifest), car: await carOf([cid], [{ cid, bytes: envelope }]) } })
  }
  return items
}

export async function post(url: string, gw: TestStream['gateway'], path: string, body: Uint8Array): Promise<unknown> {
  const headers: Record<string, string> = { ...signRequest(gw.secretKey, { method: 'POST', path, body }), 'CareLedger-Gateway': gw.id, 'content-type': 'application/cbor' }
  const res = await fetch(new URL(path, url), { method: 'POST', headers, body })
  const text = await res.text()
  if (res.status >= 300 && !(res.status === 207)) throw new Error(`${path}: HTTP ${res.status}: ${text.slice(0, 300)}`)
  return JSON.parse(text)
}

interface Phase {
  readonly records: number
  readonly ms: number
  readonly cloudCpuS: number
  /** Of cloudCpuS, in the kernel (file creation, fsync, sockets). */
  readonly cloudSysS: number
  readonly clientCpuS: number
}

/** Kernel CPU seconds of a process (stime, field 15 of stat(5)). */
function sysSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[12]) / 100 // USER_HZ: 100 on Linux
}

async function timed(pid: number, records: number, run: () => Promise<void>): Promise<Phase> {
  const c0 = cpuSeconds(pid)
  const k0 = sysSeconds(pid)
  const u0 = process.cpuUsage()
  const t0 = performance.now()
  await run()
  const ms = performance.now() - t0
  const u = process.cpuUsage(u0)
  return { records, ms, cloudCpuS: cpuSeconds(pid) - c0, cloudSysS: sysSeconds(pid) - k0, clientCpuS: (u.user + u.system) / 1e6 }
}

export interface AppendHttpFigure {
  readonly label: string
  readonly perSecond: number
  /** CPU of the cloud process (all threads) per record, ms. */
  readonly cloudCpuMsPerRecord: number
}

export async function appendHttpSection(o: AppendHttpOptions): Promise<{ report: string; bulkRate: number; bulk: AppendHttpFigure; single: AppendHttpFigure }> {
  const dir = mkdtempSync(join(os.tmpdir(), 'careledger-bench-append-'))
  const fleet = testFleet(o.gateways, 25, 'bench append http')
  const gateways = [...new Set(fleet.map((s) => s.gateway))]
  const prev = new Map<TestStream, string | null>()
  const seqOf = new Map<TestStream, number>()
  o.log(`append over HTTP (§5): ${o.gateways} gateways, ${o.records.toLocaleString('en-US')} batches in bulks of ${o.bulk}, then ${o.single} single uploads`)
  const bulkItems = await makeItems(fleet, prev, o.records, seqOf)
  const singleItems = await makeItems(fleet, prev, o.single, seqOf)
  let cloud: CloudProcess | null = null
  try {
    cloud = await CloudProcess.start({ dataDir: dir, env: { CARELEDGER_LOG_LEVEL: 'info', ...(process.env.BENCH_UV ? { UV_THREADPOOL_SIZE: process.env.BENCH_UV } : {}), ...(process.env.BENCH_CLOUD_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_CLOUD_NODE_OPTIONS } : {}) }, args: ['--block-interval-s', '2'] })
    for (const [i, gw] of gateways.entries()) {
      const { token } = JSON.parse(await cli(['cloud', 'gateway', 'invite', '--name', `ward-${i}`, '--json', '--data', dir])) as { token: string }
      const res = await fetch(`${cloud.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, publicKey: bytesToHex(gw.publicKey), name: `ward-${i}` }) })
      if (!res.ok) throw new Error(`registering ward-${i}: HTTP ${res.status} ${await res.text()}`)
    }
    const pid = cloud.pid
    const url = cloud.url
    const byGateway = (items: Item[]) => gateways.map((gw) => items.filter((it) => it.stream.gateway === gw))
    let created = 0
    // Each gateway's bulk bodies encoded before the clock starts, like the batches themselves.
    const bulkBodies = byGateway(bulkItems).map((mine) => {
      const bodies: Uint8Array[] = []
      for (let i = 0; i < mine.length; i += o.bulk) bodies.push(encodeCanonical({ batches: mine.slice(i, i + o.bulk).map((it) => it.body) }))
      return { gateway: mine[0]!.stream.gateway, bodies, first: Math.min(o.bulk, mine.length) }
    })
    const sendBulks = (which: (bodies: Uint8Array[]) => Uint8Array[]) =>
      Promise.all(
        bulkBodies.map(async ({ gateway, bodies }) => {
          for (const body of which(bodies)) {
            const answer = (await post(url, gateway, '/v1/batches/bulk', body)) as { results: { status: number }[] }
            created += answer.results.filter((r) => r.status === 201).length
          }
        }),
      ).then(() => undefined)
    const cold = await timed(pid, bulkBodies.reduce((n, g) => n + g.first, 0), () => sendBulks((b) => b.slice(0, 1)))
    const bulk = await timed(pid, bulkItems.length - cold.records, () => sendBulks((b) => b.slice(1)))
    if (created !== bulkItems.length) throw new Error(`bulk: ${created} of ${bulkItems.length} batches created`)
    let singles = 0
    const singleBodies = byGateway(singleItems).map((mine) => mine.map((it) => ({ gateway: it.stream.gateway, body: encodeCanonical(it.body) })))
    const single = await timed(pid, singleItems.length, async () => {
      await Promise.all(
        singleBodies.map(async (mine) => {
          for (const { gateway, body } of mine) {
            await post(url, gateway, '/v1/batches', body)
            singles++
          }
        }),
      )
    })
    if (singles !== singleItems.length) throw new Error(`single: ${singles} of ${singleItems.length} batches created`)
    const row = (label: string, p: Phase): string[] => [
      label,
      p.records.toLocaleString('en-US'),
      Math.round((p.records / p.ms) * 1000).toLocaleString('en-US'),
      `${(p.cloudCpuS / p.records * 1000).toFixed(2)} (kernel ${(p.cloudSysS / p.records * 1000).toFixed(2)})`,
      (p.cloudCpuS / (p.ms / 1000)).toFixed(2),
      (p.clientCpuS / p.records * 1000).toFixed(2),
    ]
    const bulkRate = Math.round((bulk.records / bulk.ms) * 1000)
    const lines = [
      `Append over HTTP: ${o.gateways} gateways at once into one \`careledger cloud start\` (blocks every 2 s), each with one request in flight:`,
      table(
        ['case', 'records', 'records/s', 'cloud CPU-s per 1,000', 'cloud cores used', 'load generator CPU-s per 1,000'],
        [
          row(`POST /v1/batches/bulk, each gateway's first (cold process)`, cold),
          row(`POST /v1/batches/bulk (${o.bulk} a request), sustained`, bulk),
          ...(o.single > 0 ? [row('POST /v1/batches (one a request)', single)] : []),
        ],
      ),
      `target ≥ 4,000 records/s (bulk, sustained): ${bulkRate >= 4000 ? 'met' : `not met (${Math.round((bulkRate / 4000) * 100)} %)`}; the load generator shares the two cores with the cloud.`,
    ]
    const figure = (label: string, p: Phase): AppendHttpFigure => ({ label, perSecond: Math.round((p.records / p.ms) * 1000), cloudCpuMsPerRecord: (p.cloudCpuS / p.records) * 1000 })
    return { report: lines.join('\n'), bulkRate, bulk: figure(`${o.bulk} a request, ${o.gateways} gateways`, bulk), single: figure(`one a request, ${o.gateways} gateways`, single) }
  } finally {
    await cloud?.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}
