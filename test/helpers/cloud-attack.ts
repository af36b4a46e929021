/**
 * A resource-exhaustion attack on a running cloud while a real gateway keeps uploading — shared by
 * the regression test (test/system/cloud-exhaustion.test.ts, short) and the benchmark
 * (bench/cloud-attack.ts, `npm run bench:cloud-attack`, longer). Every attacker connects from its
 * own loopback address (127.0.0.2 …), as strangers on other hosts would; the gateway is on 127.0.0.1.
 *
 *   flood         idle TCP connections, more than one address may hold
 *   slowloris     sockets that dribble header bytes, one every 500 ms
 *   held body     requests naming the registered gateway, declaring 16 MiB, with a forged
 *                 signature, sending 64 KiB and holding the rest (the attack of issue 8 item 6)
 *   oversized     requests declaring a 1 GiB body
 *   concurrent    many signed-looking (forged) bulk uploads of 1 MiB sent in full, at once
 *   greedy        a genuine second gateway holding several 16 MiB uploads open (its own caps)
 *
 * Measured: the real gateway's batches accepted meanwhile and its uploads' latency (from the
 * cloud's request log), a probe's /healthz latency, the cloud's RSS (sampled and peak) and CPU
 * seconds, and what each attack got back.
 */
import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import { bytesToHex } from '@noble/hashes/utils.js'
import { generateSigningKey, signingKeyId } from '../../shared/crypto/sign.ts'
import { cli, sleep, type TestSystem } from './system.ts'
import { connectionFlood, cpuSeconds, peakRssBytes, percentiles, rawRequest, rssBytes, signedHead, slowloris, type RawAnswer } from './http-attacks.ts'

export interface AttackOptions {
  readonly durationMs: number
  readonly floodConnections: number
  readonly slowlorisSockets: number
  /** Held-body requests in flight at any time. */
  readonly heldBodies: number
  readonly oversized: number
  readonly concurrentUploads: number
  readonly greedyUploads: number
}

export const SHORT_ATTACK: AttackOptions = { durationMs: 15_000, floodConnections: 300, slowlorisSockets: 60, heldBodies: 40, oversized: 50, concurrentUploads: 60, greedyUploads: 4 }
export const LONG_ATTACK: AttackOptions = { durationMs: 60_000, floodConnections: 900, slowlorisSockets: 200, heldBodies: 100, oversized: 200, concurrentUploads: 200, greedyUploads: 8 }

export interface AttackReport {
  readonly durationS: number
  readonly gateway: { readonly recordsBefore: number; readonly recordsAfter: number; readonly uploads: ReturnType<typeof percentiles>; readonly uploadStatuses: Record<string, number> }
  readonly probe: ReturnType<typeof percentiles> & { readonly failures: number }
  readonly cloud: { readonly rssBeforeMiB: number; readonly rssMaxSampledMiB: number; readonly peakRssMiB: number; readonly cpuSeconds: number }
  readonly attacks: Record<string, Record<string, number>>
}

const MiB = 2 ** 20
const addr = (i: number): string => `127.0.0.${2 + (Math.floor(i) % 8)}`
const tally = (xs: readonly RawAnswer[]): Record<string, number> => {
  const t: Record<string, number> = {}
  for (const a of xs) {
    const k = a.status === null ? (a.closed ? 'closed without answer' : 'no answer (timeout)') : `${a.status} ${safeCode(a.body)}`
    t[k] = (t[k] ?? 0) + 1
  }
  return t
}
const safeCode = (body: string): string => {
  try {
    return (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? ''
  } catch {
    return ''
  }
}

async function registerGreedy(sys: TestSystem): Promise<{ secretKey: Uint8Array; gatewayId: string }> {
  const key = generateSigningKey()
  const invite = (JSON.parse(await cli(['cloud', 'gateway', 'invite', '--name', 'greedy', '--json', '--data', sys.dirs.cloud])) as { token: string }).token
  const res = await fetch(`${sys.cloud.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: invite, publicKey: bytesToHex(key.publicKey), name: 'greedy' }) })
  if (res.status !== 201) throw new Error(`greedy gateway: ${res.status} ${await res.text()}`)
  return { secretKey: key.secretKey, gatewayId: signingKeyId(key.publicKey) }
}

/** Run every attack at once for `o.durationMs` against `sys.cloud`, with `sys.gateway` uploading; the monitors are the caller's. */
export async function attackCloud(sys: TestSystem, o: AttackOptions): Promise<AttackReport> {
  const port = sys.cloud.port
  const pid = sys.cloud.pid
  const greedy = await registerGreedy(sys)
  const recordsBefore = (await sys.records()).filter((r) => r.gateway === sys.gatewayId).length
  const logFrom = sys.cloud.logs.length
  const rssBefore = rssBytes(pid)
  const cpu0 = cpuSeconds(pid)
  const until = Date.now() + o.durationMs
  const running = (): boolean => Date.now() < until
  let rssMax = rssBefore
  const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssBytes(pid))), 200)

  // A probe: /healthz every 100 ms from the gateway's address.
  const probeMs: number[] = []
  let probeFailures = 0
  const probe = (async () => {
    while (running()) {
      const t0 = performance.now()
      try {
        const r = await fetch(`${sys.cloud.url}/healthz`, { signal: AbortSignal.timeout(10_000) })
        await r.arrayBuffer()
        if (r.status === 200) probeMs.push(performance.now() - t0)
        else probeFailures++
      } catch {
        probeFailures++
      }
      await sleep(100)
    }
  })()

  // flood: idle connections, refreshed as the cloud closes them.
  const floodClosed: number[] = []
  const flood = (async () => {
    const sockets: Socket[] = []
    while (running()) {
      const open = sockets.filter((s) => !s.destroyed).length
      if (open < o.floodConnections) {
        const fresh = await connectionFlood(port, Math.min(100, o.floodConnections - open), addr(sockets.length / 100))
        for (const s of fresh) {
          const t0 = performance.now()
          s.once('close', () => floodClosed.push(performance.now() - t0))
          sockets.push(s)
        }
      }
      await sleep(500)
    }
    for (const s of sockets) s.destroy()
  })()

  // slowloris
  const lorisClosed: number[] = []
  const loris = (async () => {
    const live = new Set<Socket>()
    while (running()) {
      while (live.size < o.slowlorisSockets) {
        const s = slowloris(port, { localAddress: addr(3 + live.size), everyMs: 500 })
        live.add(s.socket)
        void s.closed.then((ms) => {
          lorisClosed.push(ms)
          live.delete(s.socket)
        })
      }
      await sleep(500)
    }
    for (const s of live) s.destroy()
  })()

  // held bodies: forged, naming the registered gateway, 16 MiB declared, 64 KiB sent.
  const heldAnswers: RawAnswer[] = []
  const heldBody = new Uint8Array(16 * MiB - 1)
  const heldHead = signedHead({ path: '/v1/batches/bulk', secretKey: randomBytes(32), body: heldBody, gatewayId: sys.gatewayId })
  const held = Promise.all(
    Array.from({ length: o.heldBodies }, async (_, i) => {
      while (running()) heldAnswers.push(await rawRequest(port, heldHead, { localAddress: addr(5 + i), body: heldBody.subarray(0, 64 * 1024), timeoutMs: 130_000 }))
    }),
  )

  // oversized declared lengths
  const oversizedAnswers: RawAnswer[] = []
  const oversized = (async () => {
    while (running()) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(o.oversized, 50) }, (_, i) =>
          rawRequest(port, ['POST /v1/batches/bulk HTTP/1.1', 'Host: cloud', 'Content-Type: application/cbor', `Content-Length: ${2 ** 30}`], { localAddress: addr(6 + i) }),
        ),
      )
      oversizedAnswers.push(...batch)
      await sleep(1000)
    }
  })()

  // many signed-looking uploads at once, bodies sent in full
  const concurrentAnswers: RawAnswer[] = []
  const uploadBody = randomBytes(MiB)
  const concurrent = (async () => {
    while (running()) {
      const wave = await Promise.all(
        Array.from({ length: o.concurrentUploads }, (_, i) => {
          const head = signedHead({ path: '/v1/batches/bulk', secretKey: randomBytes(32), body: uploadBody, gatewayId: i % 2 ? sys.gatewayId : greedy.gatewayId })
          return rawRequest(port, head, { localAddress: addr(7 + i), body: uploadBody, timeoutMs: 30_000 })
        }),
      )
      concurrentAnswers.push(...wave)
      await sleep(1000)
    }
  })()

  // a genuine gateway holding uploads open: its own cap (16 MiB in flight) stops it.
  const greedyAnswers: RawAnswer[] = []
  const greedyBody = new Uint8Array(15 * MiB)
  const greedyRuns = Promise.all(
    Array.from({ length: o.greedyUploads }, async () => {
      while (running()) {
        const head = signedHead({ path: '/v1/batches/bulk', secretKey: greedy.secretKey, body: greedyBody })
        greedyAnswers.push(await rawRequest(port, head, { localAddress: '127.0.0.10', body: greedyBody.subarray(0, 15 * MiB - 1), timeoutMs: Math.max(1000, until - Date.now()) }))
      }
    }),
  )

  await Promise.all([probe, flood, loris, held, oversized, concurrent, greedyRuns])
  clearInterval(sampler)
  await sleep(2000) // let the gateway's last round settle
  const recordsAfter = (await sys.records()).filter((r) => r.gateway === sys.gatewayId).length
  const uploads = sys.cloud.logs.slice(logFrom).filter((l) => l.event === 'http' && l.route === '/v1/batches/bulk' && l.gateway === sys.gatewayId)
  const uploadStatuses: Record<string, number> = {}
  for (const u of uploads) uploadStatuses[String(u.status)] = (uploadStatuses[String(u.status)] ?? 0) + 1
  return {
    durationS: o.durationMs / 1000,
    gateway: { recordsBefore, recordsAfter, uploads: percentiles(uploads.filter((u) => u.status === 200).map((u) => Number(u.ms))), uploadStatuses },
    probe: { ...percentiles(probeMs), failures: probeFailures },
    cloud: { rssBeforeMiB: Math.round(rssBefore / MiB), rssMaxSampledMiB: Math.round(rssMax / MiB), peakRssMiB: Math.round(peakRssBytes(pid) / MiB), cpuSeconds: Math.round((cpuSeconds(pid) - cpu0) * 100) / 100 },
    attacks: {
      flood: { connectionsClosedByCloud: floodClosed.length, medianSecondsOpen: Math.round(percentiles(floodClosed).p50 / 100) / 10 },
      slowloris: { closedByCloud: lorisClosed.length, medianSecondsOpen: Math.round(percentiles(lorisClosed).p50 / 100) / 10 },
      heldBody: { ...tally(heldAnswers), p99ms: Math.round(percentiles(heldAnswers.map((a) => a.ms)).p99) },
      oversized: tally(oversizedAnswers),
      concurrent: tally(concurrentAnswers),
      greedy: tally(greedyAnswers),
    },
  }
}

/** The report as lines for a person (the lead's closing note). */
export function formatAttackReport(r: AttackReport): string {
  const p = (x: { p50: number; p99: number; max: number; n: number }): string => `p50 ${x.p50.toFixed(1)} ms, p99 ${x.p99.toFixed(1)} ms, max ${x.max.toFixed(1)} ms (n=${x.n})`
  return [
    `attack of ${r.durationS} s on the cloud, all attacks at once (machine shared: wall-clock figures are noisy)`,
    `  real gateway: records ${r.gateway.recordsBefore} → ${r.gateway.recordsAfter}; bulk uploads ${JSON.stringify(r.gateway.uploadStatuses)}; upload latency ${p(r.gateway.uploads)}`,
    `  probe GET /healthz: ${p(r.probe)}; failures ${r.probe.failures}`,
    `  cloud RSS: ${r.cloud.rssBeforeMiB} MiB before, ${r.cloud.rssMaxSampledMiB} MiB max sampled, VmHWM ${r.cloud.peakRssMiB} MiB; CPU ${r.cloud.cpuSeconds} s (${(r.cloud.cpuSeconds / r.durationS).toFixed(2)} cores)`,
    ...Object.entries(r.attacks).map(([k, v]) => `  ${k.padEnd(11)} ${JSON.stringify(v)}`),
  ].join('\n')
}
