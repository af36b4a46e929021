/**
 * Signed gateway requests against a real cloud process (docs/api.md §Gateways): a forged signature,
 * a tampered body or path, a replayed request (also after the process was killed and restarted),
 * a stale timestamp, an unsigned request, an unknown or revoked gateway — each refused with its
 * documented code, and nothing stored: every table's row count and the blockstore's files are the
 * same before and after. Run on both backends: SQLite (the default) and `--database postgres://…`
 * on a real PostgreSQL this file starts (there the nonces, gateways and chain are in PostgreSQL, and
 * "nothing stored" counts its tables too).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { usePostgres } from '../helpers/postgres.ts'
import { bytesToHex } from '@noble/hashes/utils.js'
import { generateSigningKey } from '../../shared/crypto/sign.ts'
import { signRequest } from '../../shared/protocol/request-signing.ts'
import type { SealedBatch } from '../../gateway/seal/seal.ts'
import { batchBody, replay, sealChain, signedPost, testGateway, testStream, type TestGateway } from '../helpers/cloud-batches.ts'
import { CloudProcess, careledger, json, storedState, tempDataDir } from '../helpers/cloud-process.ts'

let data: ReturnType<typeof tempDataDir>
let cloud: CloudProcess
let gw: TestGateway
let batches: SealedBatch[]
let next = 0
/** The shared PostgreSQL of the cloud under test, or null on SQLite. */
let database: string | null = null
const postgres = usePostgres()
/** Where the CLI finds the cloud's access stores. */
const storeArgs = (): string[] => (database ? ['--database', database] : ['--data', data.dir])

/** Row counts of every table, in cloud.db and (on PostgreSQL) in the shared database, and the blockstore's files. */
async function stored(): Promise<Record<string, number>> {
  const out = storedState(data.dir)
  if (!database) return out
  const c = new pg.Client({ connectionString: database })
  await c.connect()
  try {
    const tables = (await c.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")).rows.map((r) => r.t)
    for (const t of tables) out[`pg:${t}`] = Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM "${t}"`)).rows[0]!.n)
  } finally {
    await c.end()
  }
  return out
}

async function invite(name: string): Promise<string> {
  const r = await careledger(['cloud', 'gateway', 'invite', '--name', name, '--json', ...storeArgs()])
  expect(r.code).toBe(0)
  return JSON.parse(r.stdout).token
}

async function register(g: TestGateway, name: string): Promise<void> {
  const res = await fetch(`${cloud.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: await invite(name), publicKey: bytesToHex(g.publicKey), name }) })
  expect(res.status).toBe(201)
}

/** Wait until every record is sealed, so the background sealer cannot change the counts under a test. */
async function settled(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const h = await json(fetch(`${cloud.url}/healthz`))
    if (h.pendingRecords === 0) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('records stayed pending')
}

/** Run `f` and check that it stored nothing at all. */
async function storesNothing(f: () => Promise<void>): Promise<void> {
  await settled()
  const before = await stored()
  await f()
  await new Promise((r) => setTimeout(r, 300)) // longer than a block interval: a record would be sealed by now
  expect(await stored()).toEqual(before)
}

async function refused(res: Response, status: number, code: string): Promise<{ code: string; message: string; details: Record<string, unknown> }> {
  const body = await json(res)
  expect(res.status, JSON.stringify(body)).toBe(status)
  expect(body.error.code).toBe(code)
  return body.error
}

const backends = [
  { name: 'sqlite', skip: null as string | null },
  { name: 'postgres', skip: postgres.skip },
] as const

for (const backend of backends) describe.skipIf(backend.skip !== null)(`signed gateway requests (${backend.name})`, () => {
  beforeAll(async () => {
    data = tempDataDir('cloud-auth')
    next = 0
    database = backend.name === 'postgres' ? await postgres.server().createDatabase('service_auth') : null
    cloud = await CloudProcess.start({ dataDir: data.dir, args: ['--block-interval-s', '0.1', '--verify-interval-s', '0', ...(database ? ['--database', database] : [])], readyTimeoutMs: 60_000 })
    gw = testGateway()
    await register(gw, 'ward-a')
    batches = await sealChain(testStream(gw), 8)
  }, 120_000)

  afterAll(async () => {
    await cloud?.stop()
    data?.cleanup()
  })

  it('a correctly signed upload is accepted (the baseline for the refusals below)', async () => {
    const { res } = await signedPost(cloud.url, gw, '/v1/batches', await batchBody(batches[next++]!))
    expect(res.status).toBe(201)
  })

  it('a forged signature (another key claiming this gateway) → 401 BAD_SIGNATURE, nothing stored', async () => {
    const body = await batchBody(batches[next]!)
    await storesNothing(async () => {
      const { res } = await signedPost(cloud.url, gw, '/v1/batches', body, { signWith: generateSigningKey().secretKey })
      const err = await refused(res, 401, 'BAD_SIGNATURE')
      expect(err.message).toContain(gw.gatewayId)
    })
  })

  it('a path or method changed after signing → 401 BAD_SIGNATURE; a body changed → 401 BAD_DIGEST; nothing stored', async () => {
    const body = await batchBody(batches[next]!)
    const other = await batchBody(batches[next + 1]!)
    await storesNothing(async () => {
      const headers = { ...signRequest(gw.secretKey, { method: 'POST', path: '/v1/batches', body }), 'content-type': 'application/cbor' }
      // Same length, different bytes: the signature (over the headers) holds, the digest does not.
      const sameLength = new Uint8Array(body)
      sameLength[sameLength.length - 1]! ^= 1
      const err = await refused(await fetch(`${cloud.url}/v1/batches`, { method: 'POST', headers, body: sameLength }), 401, 'BAD_DIGEST')
      expect(err.message).toContain(headers['Content-Digest'])
      // A different length: the signed Content-Length no longer matches the one sent.
      await refused(await fetch(`${cloud.url}/v1/batches`, { method: 'POST', headers: { ...signRequest(gw.secretKey, { method: 'POST', path: '/v1/batches', body }), 'content-type': 'application/cbor' }, body: other }), 401, 'BAD_SIGNATURE')
      const forBulk = { ...signRequest(gw.secretKey, { method: 'POST', path: '/v1/batches/bulk', body }), 'content-type': 'application/cbor' }
      await refused(await fetch(`${cloud.url}/v1/batches`, { method: 'POST', headers: forBulk, body }), 401, 'BAD_SIGNATURE')
      const asPut = { ...signRequest(gw.secretKey, { method: 'PUT', path: '/v1/batches', body }), 'content-type': 'application/cbor' }
      await refused(await fetch(`${cloud.url}/v1/batches`, { method: 'POST', headers: asPut, body }), 401, 'BAD_SIGNATURE')
    })
  })

  it('a forged request does not burn the nonce it carries: the genuine request with that nonce still passes', async () => {
    const body = await batchBody(batches[next]!)
    const nonce = 'ab'.repeat(16)
    const forged = await signedPost(cloud.url, gw, '/v1/batches', body, { nonce, signWith: generateSigningKey().secretKey })
    await refused(forged.res, 401, 'BAD_SIGNATURE')
    const genuine = await signedPost(cloud.url, gw, '/v1/batches', body, { nonce })
    expect(genuine.res.status).toBe(201)
    next++
  })

  it('a replayed request (same nonce) → 401 REPLAYED_REQUEST, also after the cloud was killed and restarted', async () => {
    const body = await batchBody(batches[next++]!)
    const { res, headers } = await signedPost(cloud.url, gw, '/v1/batches', body)
    expect(res.status).toBe(201)
    await storesNothing(async () => {
      await refused(await replay(cloud.url, '/v1/batches', headers, body), 401, 'REPLAYED_REQUEST')
    })

    const oldPid = cloud.pid
    await cloud.restart() // SIGKILL: no graceful shutdown; the nonce must have been durable
    expect(cloud.pid).not.toBe(oldPid)
    await storesNothing(async () => {
      const err = await refused(await replay(cloud.url, '/v1/batches', headers, body), 401, 'REPLAYED_REQUEST')
      expect(err.details).toMatchObject({ gatewayId: gw.gatewayId, nonce: headers['CareLedger-Nonce'] })
    })
    // A fresh signature over the same batch is a retry, not a replay: 200 duplicate.
    const retry = await signedPost(cloud.url, gw, '/v1/batches', body)
    expect(retry.res.status).toBe(200)
    expect((await json(retry.res)).duplicate).toBe(true)
  })

  it('a stale or future timestamp (beyond ±5 min) → 401 STALE_REQUEST, nothing stored; within the window it passes', async () => {
    const body = await batchBody(batches[next]!)
    await storesNothing(async () => {
      for (const skew of [-5 * 60_000 - 5000, 5 * 60_000 + 5000, -3600_000]) {
        const { res } = await signedPost(cloud.url, gw, '/v1/batches', body, { timestamp: Date.now() + skew })
        const err = await refused(res, 401, 'STALE_REQUEST')
        expect(err.message).toMatch(/±300 s/)
      }
    })
    const { res } = await signedPost(cloud.url, gw, '/v1/batches', body, { timestamp: Date.now() - 4 * 60_000 })
    expect(res.status).toBe(201)
    next++
  })

  it('an unsigned or partly signed request → 401 UNAUTHENTICATED naming the header, nothing stored', async () => {
    const body = await batchBody(batches[next]!)
    await storesNothing(async () => {
      const unsigned = await fetch(`${cloud.url}/v1/batches`, { method: 'POST', headers: { 'content-type': 'application/cbor' }, body })
      expect((await refused(unsigned, 401, 'UNAUTHENTICATED')).message).toMatch(/^unsigned request: header CareLedger-Gateway is missing/)
      const noSig = await signedPost(cloud.url, gw, '/v1/batches', body, { headers: { 'CareLedger-Signature': null } })
      expect((await refused(noSig.res, 401, 'UNAUTHENTICATED')).details).toEqual({ header: 'CareLedger-Signature' })
      const badNonce = await signedPost(cloud.url, gw, '/v1/batches', body, { headers: { 'CareLedger-Nonce': 'xyz' } })
      expect((await refused(badNonce.res, 401, 'UNAUTHENTICATED')).details).toEqual({ header: 'CareLedger-Nonce' })
      const badTs = await signedPost(cloud.url, gw, '/v1/batches', body, { headers: { 'CareLedger-Timestamp': '2026-11-25T10:00:00Z' } })
      expect((await refused(badTs.res, 401, 'UNAUTHENTICATED')).details).toEqual({ header: 'CareLedger-Timestamp' })
    })
  })

  it('an unknown gateway → 401 UNKNOWN_GATEWAY, nothing stored', async () => {
    const stranger = testGateway()
    const [b] = await sealChain(testStream(stranger), 1)
    await storesNothing(async () => {
      const { res } = await signedPost(cloud.url, stranger, '/v1/batches', await batchBody(b!))
      expect((await refused(res, 401, 'UNKNOWN_GATEWAY')).message).toMatch(/is not registered/)
    })
  })

  it('a revoked gateway → 401 UNKNOWN_GATEWAY, nothing stored', async () => {
    const g = testGateway()
    await register(g, 'ward-revoked')
    const [b0, b1] = await sealChain(testStream(g), 2)
    expect((await signedPost(cloud.url, g, '/v1/batches', await batchBody(b0!))).res.status).toBe(201)
    expect((await careledger(['cloud', 'gateway', 'revoke', 'ward-revoked', ...storeArgs()])).code).toBe(0)
    await storesNothing(async () => {
      const { res } = await signedPost(cloud.url, g, '/v1/batches', await batchBody(b1!))
      expect((await refused(res, 401, 'UNKNOWN_GATEWAY')).message).toMatch(/revoked/)
    })
  })

  it('the bulk endpoint is signed the same way', async () => {
    const body = new Uint8Array([0xa1, 0x67, ...Buffer.from('batches'), 0x80])
    await storesNothing(async () => {
      const { res } = await signedPost(cloud.url, gw, '/v1/batches/bulk', body, { signWith: generateSigningKey().secretKey })
      await refused(res, 401, 'BAD_SIGNATURE')
      await refused(await fetch(`${cloud.url}/v1/batches/bulk`, { method: 'POST', headers: { 'content-type': 'application/cbor' }, body }), 401, 'UNAUTHENTICATED')
    })
  })

  it('never logs request bodies: no pseudonym, policy or signature in any log line', () => {
    const s = testStream(gw)
    expect(cloud.logs.length).toBeGreaterThan(10)
    expect(cloud.stdout).not.toContain(s.pseudonym)
    expect(cloud.stdout).not.toContain(batches[0]!.manifest.policy)
    expect(cloud.stdout).not.toContain(Buffer.from(batches[0]!.signature).toString('base64'))
    expect(cloud.stdout).not.toContain(bytesToHex(batches[0]!.signature))
    // Refusals are logged (without their bodies), with the route and the code's status.
    expect(cloud.logs.some((l) => l.event === 'http' && l.route === '/v1/batches' && l.status === 401)).toBe(true)
  })
})
