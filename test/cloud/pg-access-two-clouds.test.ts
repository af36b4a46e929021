/**
 * Two `careledger cloud start --database postgres://…` processes on one real PostgreSQL serve the
 * API as one deployment (issue 14, "several cloud processes may serve the API"): the access stores
 * live in the shared database (cloud/store/pg/access.ts), so
 *
 *   - a token made with `careledger cloud token create --database …` works on A and on B, and once
 *     revoked is refused by both on their next request;
 *   - a gateway invited with `careledger cloud gateway invite --database …` and enrolled on A
 *     uploads to B, and its batch, uploaded again to A, is the same record (it lands once);
 *   - a signed request's nonce used on A is refused on B (401 REPLAYED_REQUEST);
 *   - a gateway revoked through the CLI is refused by both.
 */
import { cpSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { bytesToHex } from '@noble/hashes/utils.js'
import { usePostgres } from '../helpers/postgres.ts'
import { CloudProcess, careledger, getAs, json, tempDataDir } from '../helpers/cloud-process.ts'
import { batchBody, replay, sealTestBatch, signedPost, testGateway, testStream } from '../helpers/cloud-batches.ts'

const postgres = usePostgres()
const dirs: Array<ReturnType<typeof tempDataDir>> = []
const procs: CloudProcess[] = []
afterAll(async () => {
  for (const p of procs) await p.kill('SIGKILL')
  for (const d of dirs) d.cleanup()
})
const temp = (label: string): string => {
  const d = tempDataDir(label)
  dirs.push(d)
  return d.dir
}

async function cli(args: string[]): Promise<string> {
  const r = await careledger(args)
  if (r.code !== 0) throw new Error(`careledger ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return r.stdout
}

describe('two cloud processes on one PostgreSQL share tokens, gateways and nonces', () => {
  it('token, enrolment, upload, replay and revocation across processes', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const url = await postgres.server().createDatabase('access_two_clouds')
    const shared = temp('pg-access-blocks')
    const dirA = temp('pg-access-a')
    const dirB = temp('pg-access-b')
    const args = ['--database', url, '--blocks', shared, '--block-interval-s', '0.3', '--verify-interval-s', '0']
    const a = await CloudProcess.start({ dataDir: dirA, args, readyTimeoutMs: 60_000 })
    procs.push(a)
    cpSync(join(dirA, 'keys'), join(dirB, 'keys'), { recursive: true })
    cpSync(join(dirA, 'regulator'), join(dirB, 'regulator'), { recursive: true })
    const b = await CloudProcess.start({ dataDir: dirB, args, readyTimeoutMs: 60_000 })
    procs.push(b)

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

    // Both processes list the gateway; its last sync is shared.
    const listed = (await json(getAs(b.url, admin, '/v1/gateways'))).gateways
    expect(listed).toMatchObject([{ gatewayId: gw.gatewayId, name: 'ward-1', revoked: false, batches: 2 }])
    expect(listed[0].lastSyncAt).not.toBeNull()
    const cliList = JSON.parse(await cli(['cloud', 'gateway', 'list', '--json', '--database', url]))
    expect(cliList.map((g: { name: string }) => g.name)).toEqual(['ward-1'])

    // Revoked once: refused by both processes on their next request.
    await cli(['cloud', 'token', 'revoke', 'ops', '--database', url])
    for (const target of [a, b]) {
      const res = await getAs(target.url, admin, '/v1/stats')
      expect(res.status).toBe(401)
      expect((await json(res)).error.code).toBe('UNAUTHENTICATED')
    }
    await cli(['cloud', 'gateway', 'revoke', 'ward-1', '--database', url])
    const b2 = await sealTestBatch(stream, 2, b1.commitment, { kem: b0.kem })
    for (const target of [a, b]) {
      const { res } = await signedPost(target.url, gw, '/v1/batches', await batchBody(b2))
      expect(res.status).toBe(401)
      expect((await json(res)).error.code).toBe('UNKNOWN_GATEWAY')
    }

    // Two records on the chain, once each.
    const health = await json(fetch(`${b.url}/healthz`))
    expect(health.records).toBe(2)
    expect(await a.stop()).toEqual({ code: 0, signal: null })
    expect(await b.stop()).toEqual({ code: 0, signal: null })
  }, 240_000)
})
