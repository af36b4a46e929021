/**
 * Two `careledger cloud start --database postgres://…` processes on one real PostgreSQL and one
 * shared envelope blockstore directory (--blocks), two gateways uploading bulks over HTTP, one to
 * each. The cloud holding the sealer lease is SIGKILLed mid-load; its gateway fails over to the
 * other cloud and re-sends the bulk it got no answer for. The other cloud takes the lease over and
 * seals on. At the end `careledger chain verify --database … --blocks <shared>` passes (records,
 * blocks, stream links and every envelope re-hashed), and the records on the chain are exactly the
 * batches the gateways were told are stored: none lost, none doubled.
 *
 * Second test: two processes serve the API as one deployment (issue 14, "several cloud processes
 * may serve the API"): the access stores live in the shared database (cloud/store/pg/access.ts), so
 *
 *   - a token made with `careledger cloud token create --database …` works on A and on B, and once
 *     revoked is refused by both on their next request;
 *   - a gateway invited with `careledger cloud gateway invite --database …` and enrolled on A
 *     uploads to B, and its batch, uploaded again to A, is the same record (it lands once);
 *   - a signed request's nonce used on A is refused on B (401 REPLAYED_REQUEST), and one request
 *     sent to both at once is accepted by exactly one;
 *   - a gateway revoked through the CLI is refused by both;
 *   - the supervision routes answer from the shared database (test/cloud/pg-supervision.test.ts
 *     runs the workflow across the two processes), and so do the evidence routes (pg-read.test.ts).
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { bytesToHex } from '@noble/hashes/utils.js'
import { usePostgres } from '../helpers/postgres.ts'
import { careledger, cli, getAs, json, type CloudProcess } from '../helpers/cloud-process.ts'
import { usePgClouds } from '../helpers/pg-clouds.ts'
import { batchBody, bulkBody, replay, sealTestBatch, signedPost, testGateway, testStream, type TestGateway } from '../helpers/cloud-batches.ts'
import type { SealedBatch } from '../../gateway/seal/seal.ts'
import { signRequest } from '../../shared/protocol/request-signing.ts'

const postgres = usePostgres()
const { startPair } = usePgClouds(postgres.server)

async function register(cloud: CloudProcess, database: string, gw: TestGateway, name: string): Promise<void> {
  const invited = await careledger(['cloud', 'gateway', 'invite', '--name', name, '--json', '--database', database])
  const res = await fetch(`${cloud.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: JSON.parse(invited.stdout).token, publicKey: bytesToHex(gw.publicKey), name }) })
  expect(res.status).toBe(201)
}

const STREAMS = 4
const SEQS = 24

/** One gateway's batches: `STREAMS` beds, `SEQS` batches each, in bulks of one seq of every bed. */
async function gatewayLoad(gw: TestGateway, tag: string): Promise<SealedBatch[][]> {
  const streams = Array.from({ length: STREAMS }, (_, i) => testStream(gw, `bed-${tag}${i}`, `P-${tag}${i}`))
  const last: (SealedBatch | null)[] = streams.map(() => null)
  const bulks: SealedBatch[][] = []
  for (let seq = 0; seq < SEQS; seq++) {
    const bulk: SealedBatch[] = []
    for (let i = 0; i < STREAMS; i++) {
      const b = await sealTestBatch(streams[i]!, seq, last[i]?.commitment ?? null, last[i] ? { kem: last[i]!.kem } : {})
      last[i] = b
      bulk.push(b)
    }
    bulks.push(bulk)
  }
  return bulks
}

describe('two cloud processes on one PostgreSQL, over HTTP', () => {
  it('the sealing cloud is SIGKILLed under load: the other takes over; chain verify passes; records in = records on chain', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const { url, shared, dirA, a, b } = await startPair('two_clouds')
    await a.waitForLog((l) => l.event === 'sealer_lease_acquired', 10_000).catch(() => null)
    expect(a.logs.some((l) => l.event === 'sealer_lease_acquired')).toBe(true)
    expect(b.logs.some((l) => l.event === 'sealer_lease_acquired')).toBe(false)

    // Gateways are enrolled once, in the shared database (one with each process): both serve both.
    const gws = [testGateway(), testGateway()]
    await register(a, url, gws[0]!, 'ward-0')
    await register(b, url, gws[1]!, 'ward-1')
    const loads = await Promise.all(gws.map((gw, i) => gatewayLoad(gw, String(i))))

    const told = new Map<string, number>() // "stream/seq" → record id the gateway was told
    let killed = false
    const killAfter = SEQS / 3
    const upload = async (gw: TestGateway, bulks: SealedBatch[][], prefer: CloudProcess): Promise<void> => {
      let target = prefer
      for (const [k, bulk] of bulks.entries()) {
        if (prefer === a && k === killAfter && !killed) {
          killed = true
          void a.kill('SIGKILL') // mid-load: the next request to A finds it gone
        }
        for (let attempt = 0; ; attempt++) {
          try {
            const { res } = await signedPost(target.url, gw, '/v1/batches/bulk', await bulkBody(bulk))
            expect(res.status).toBe(200)
            const body = await json(res)
            for (const r of body.results) {
              expect([200, 201]).toContain(r.status)
              const key = `${r.record.stream}/${r.record.seq}`
              if (told.has(key)) expect(told.get(key)).toBe(r.record.id) // a re-sent batch is the same record
              told.set(key, r.record.id)
            }
            break
          } catch (e) {
            if (attempt > 3) throw e
            target = target === a ? b : a // the gateway's fail-over (a load balancer in production)
          }
        }
      }
    }
    await Promise.all([upload(gws[0]!, loads[0]!, a), upload(gws[1]!, loads[1]!, b)])
    expect(killed).toBe(true)
    expect((await a.kill('SIGKILL')).signal).toBe('SIGKILL')
    await b.waitForLog((l) => l.event === 'sealer_lease_acquired', 30_000).catch(() => null)
    expect(b.logs.some((l) => l.event === 'sealer_lease_acquired')).toBe(true)

    // B seals what is pending, then stops gracefully.
    const deadline = Date.now() + 60_000
    while ((await json(fetch(`${b.url}/healthz`))).pendingRecords > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 300))
    const health = await json(fetch(`${b.url}/healthz`))
    expect(health.pendingRecords).toBe(0)
    expect(health.records).toBe(2 * STREAMS * SEQS)
    expect(told.size).toBe(2 * STREAMS * SEQS)
    expect(new Set(told.values()).size).toBe(told.size) // no record id told for two batches
    expect(Math.max(...told.values())).toBe(told.size) // ids 1…n: nothing else on the chain
    expect(await b.stop()).toEqual({ code: 0, signal: null })

    const verify = await careledger(['chain', 'verify', '--database', url, '--chameleon-key', join(dirA, 'keys', 'chameleon-public.key'), '--signing-key', join(dirA, 'keys', 'cloud-signing.pub'), '--blocks', shared, '--json'])
    const report = JSON.parse(verify.stdout)
    expect(report.failures).toEqual([])
    expect(report).toMatchObject({ ok: true, records: 2 * STREAMS * SEQS, sealedRecords: 2 * STREAMS * SEQS, pendingRecords: 0, envelopes: { checked: 2 * STREAMS * SEQS } })
    console.log(`[pg-two-clouds] ${told.size} batches over HTTP into two clouds, A (sealer) SIGKILLed after ${killAfter} of its ${SEQS} bulks; ${report.blocks} blocks; chain verify ok with ${report.envelopes.checked} envelopes re-hashed`)
  }, 300_000)
})


describe('two cloud processes on one PostgreSQL share tokens, gateways and nonces', () => {
  it('token, enrolment, upload, replay and revocation across processes', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const { url, a, b } = await startPair('access_two_clouds')

    // A token made once (no --data: the database is the deployment's) works on both processes.
    const { token: admin } = JSON.parse(await cli(['cloud', 'token', 'create', '--role', 'admin', '--name', 'ops', '--json', '--database', url]))
    expect((await getAs(a.url, admin, '/v1/stats')).status).toBe(200)
    expect((await getAs(b.url, admin, '/v1/stats')).status).toBe(200)
    const { token: doctor } = JSON.parse(await cli(['cloud', 'token', 'create', '--role', 'doctor', '--name', 'dr-house', '--json', '--database', url]))
    expect((await getAs(b.url, doctor, '/v1/stats')).status).toBe(403) // known on B, and its role is checked there

    // Enrolled on A, the gateway uploads to B.
    const gw = testGateway()
    const { token: invite } = JSON.parse(await cli(['cloud', 'gateway', 'invite', '--name', 'ward-1', '--json', '--database', url]))
    const reg = await fetch(`${a.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: invite, publicKey: bytesToHex(gw.publicKey), name: 'ward-1' }) })
    expect(reg.status).toBe(201)
    // The invite is spent for both.
    const again = await fetch(`${b.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: invite, publicKey: bytesToHex(testGateway().publicKey), name: 'ward-1' }) })
    expect(again.status).toBe(401)
    const stream = testStream(gw)
    const b0 = await sealTestBatch(stream, 0, null)
    const body0 = await batchBody(b0)
    const onB = await signedPost(b.url, gw, '/v1/batches', body0)
    expect(onB.res.status).toBe(201)
    const record = (await json(onB.res)).record
    // The same batch again, to A (a fail-over re-send): the same record, not a second one.
    const onA = await signedPost(a.url, gw, '/v1/batches', body0)
    expect(onA.res.status).toBe(200)
    expect((await json(onA.res)).record.id).toBe(record.id)

    // A nonce used on A is refused on B, and on A itself.
    const b1 = await sealTestBatch(stream, 1, b0.commitment, { kem: b0.kem })
    const body1 = await batchBody(b1)
    const first = await signedPost(a.url, gw, '/v1/batches', body1)
    expect(first.res.status).toBe(201)
    for (const target of [b, a]) {
      const replayed = await replay(target.url, '/v1/batches', first.headers, body1)
      expect(replayed.status).toBe(401)
      expect((await json(replayed)).error.code).toBe('REPLAYED_REQUEST')
    }

    // One signed request sent to both at the same moment: exactly one accepts it, the other refuses the replay.
    const b2 = await sealTestBatch(stream, 2, b1.commitment, { kem: b0.kem })
    const body2 = await batchBody(b2)
    const headers = { ...signRequest(gw.secretKey, { method: 'POST', path: '/v1/batches', body: body2 }), 'content-type': 'application/cbor' }
    const both = await Promise.all([a, b].map((t) => replay(t.url, '/v1/batches', headers, body2)))
    expect(both.map((r) => r.status).sort()).toEqual([201, 401])
    expect((await json(both.find((r) => r.status === 401)!)).error.code).toBe('REPLAYED_REQUEST')

    // Both processes list the gateway; its last sync is shared.
    const listed = (await json(getAs(b.url, admin, '/v1/gateways'))).gateways
    expect(listed).toMatchObject([{ gatewayId: gw.gatewayId, name: 'ward-1', revoked: false, batches: 3 }])
    expect(listed[0].lastSyncAt).not.toBeNull()
    const cliList = JSON.parse(await cli(['cloud', 'gateway', 'list', '--json', '--database', url]))
    expect(cliList.map((g: { name: string }) => g.name)).toEqual(['ward-1'])

    // Supervision is on PostgreSQL too: no requests yet, for either process.
    const sup = await getAs(a.url, admin, '/v1/supervision/requests')
    expect(sup.status).toBe(200)
    expect((await json(sup)).requests).toEqual([])

    // Reading with evidence is served from the shared database too (test/cloud/pg-read.test.ts reads
    // and exports through it): B's plan names the stream A and B were sent. Strangers are refused.
    const sealedBy = Date.now() + 30_000
    while ((await json(fetch(`${b.url}/healthz`))).pendingRecords > 0 && Date.now() < sealedBy) await new Promise((r) => setTimeout(r, 200))
    const plan = await getAs(b.url, admin, `/v1/evidence?from=0&to=${Date.now() + 3600_000}`)
    expect(plan.status).toBe(200)
    expect((await json(plan)).streams.map((s: { stream: string }) => s.stream)).toEqual([stream.streamId])
    for (const path of ['/v1/evidence?from=0&to=1', '/v1/evidence/headers?from=0&to=0', `/v1/evidence/records?stream=${'0'.repeat(32)}&fromSeq=0&toSeq=1&head=0`]) {
      expect((await fetch(`${b.url}${path}`)).status, path).toBe(401)
    }

    // Revoked once: refused by both processes on their next request.
    await cli(['cloud', 'token', 'revoke', 'ops', '--database', url])
    for (const target of [a, b]) {
      const res = await getAs(target.url, admin, '/v1/stats')
      expect(res.status).toBe(401)
      expect((await json(res)).error.code).toBe('UNAUTHENTICATED')
    }
    await cli(['cloud', 'gateway', 'revoke', 'ward-1', '--database', url])
    const b3 = await sealTestBatch(stream, 3, b2.commitment, { kem: b0.kem })
    for (const target of [a, b]) {
      const { res } = await signedPost(target.url, gw, '/v1/batches', await batchBody(b3))
      expect(res.status).toBe(401)
      expect((await json(res)).error.code).toBe('UNKNOWN_GATEWAY')
    }

    // Three records on the chain, once each.
    const health = await json(fetch(`${b.url}/healthz`))
    expect(health.records).toBe(3)
    expect(await a.stop()).toEqual({ code: 0, signal: null })
    expect(await b.stop()).toEqual({ code: 0, signal: null })
  }, 240_000)
})
