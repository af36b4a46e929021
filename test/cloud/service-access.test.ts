/**
 * Who reaches what (docs/api.md): every endpoint tried with every role, with no token, with a
 * revoked and a malformed token; gateway enrolment (one use, 24 h expiry, name and key checks);
 * the token and gateway commands of the real CLI. Real HTTP against a cloud listening on a port,
 * real SQLite files.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bytesToHex } from '@noble/hashes/utils.js'
import Database from 'better-sqlite3'
import { join } from 'node:path'
import type { Cloud } from '../../cloud/runtime.ts'
import { openCloudDb } from '../../cloud/store/db.ts'
import { Enrolment } from '../../cloud/access/enrolment.ts'
import { GatewayRegistry } from '../../cloud/access/gateways.ts'
import { batchBody, sealTestBatch, signedPost, testGateway, testStream } from '../helpers/cloud-batches.ts'
import { careledger, getAs, json, startTestCloud, storedState, tempDataDir } from '../helpers/cloud-process.ts'

type Role = 'admin' | 'regulator' | 'researcher' | 'doctor'
const ROLES: Role[] = ['admin', 'regulator', 'researcher', 'doctor']

/**
 * docs/api.md, transcribed independently of cloud/access/roles.ts: the roles that may call each
 * endpoint. GET /v1/openapi.json needs any valid token ("every endpoint except GET /healthz needs a
 * credential"); GET /metrics is admin-only (an addition to the document).
 */
const PEOPLE_ENDPOINTS: ReadonlyArray<readonly [string, Role[]]> = [
  ['/v1/gateways', ['admin']],
  ['/v1/streams', ['admin', 'regulator', 'researcher']],
  ['/v1/records', ['admin', 'regulator', 'researcher', 'doctor']],
  ['/v1/records/1', ['admin', 'regulator', 'researcher', 'doctor']],
  ['/v1/records/1/proof', ['admin', 'regulator', 'researcher', 'doctor']],
  ['/v1/records/1/envelope', ['doctor', 'researcher']],
  ['/v1/blocks', ['admin', 'regulator', 'researcher']],
  ['/v1/blocks/0', ['admin', 'regulator', 'researcher']],
  ['/v1/chain/verification', ['admin', 'regulator']],
  ['/v1/envelopes/damaged', ['admin', 'regulator']],
  ['/v1/stats', ['admin']],
  ['/v1/openapi.json', ['admin', 'regulator', 'researcher', 'doctor']],
  ['/metrics', ['admin']],
  ['/v1/evidence?from=0&to=9999999999999', ['admin', 'regulator', 'researcher', 'doctor']],
  ['/v1/evidence/headers?from=0&to=0', ['admin', 'regulator', 'researcher', 'doctor']],
  [`/v1/evidence/records?stream=${'0'.repeat(32)}&fromSeq=0&toSeq=0&head=0`, ['admin', 'regulator', 'researcher', 'doctor']],
  ['/ipfs/bafkqaaa?format=raw', ['doctor', 'researcher']],
]

let data: ReturnType<typeof tempDataDir>
let cloud: Cloud
const tokens = {} as Record<Role, string>
let revoked: string

beforeAll(async () => {
  data = tempDataDir('cloud-access')
  // Blocks only when the test seals (a periodic seal between the upload and sealNow would leave it nothing to seal).
  cloud = await startTestCloud(data.dir, { blockIntervalS: '3600' })
  for (const role of ROLES) tokens[role] = (await cloud.tokens.create(role, `${role}-1`)).token
  revoked = (await cloud.tokens.create('admin', 'former-admin')).token
  await cloud.tokens.revoke('former-admin')
  // One record in one block, and a verification result, so every allowed GET can answer 200.
  const gw = testGateway()
  const { token } = await cloud.enrolment.invite('ward-1')
  const reg = await fetch(`${cloud.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, publicKey: bytesToHex(gw.publicKey), name: 'ward-1' }) })
  expect(reg.status).toBe(201)
  const { res } = await signedPost(cloud.url, gw, '/v1/batches', await batchBody(await sealTestBatch(testStream(gw), 0, null)))
  expect(res.status).toBe(201)
  expect(cloud.sealNow()?.height).toBe(0)
  expect((await cloud.verifyNow())?.ok).toBe(true)
})

afterAll(async () => {
  await cloud?.stop()
  data?.cleanup()
})

describe('role table: every endpoint × every role', () => {
  for (const [path, allowed] of PEOPLE_ENDPOINTS) {
    it(`GET ${path}: ${allowed.join(', ')}`, async () => {
      const none = await getAs(cloud.url, null, path)
      expect(none.status).toBe(401)
      expect((await json(none)).error.code).toBe('UNAUTHENTICATED')
      for (const role of ROLES) {
        const res = await getAs(cloud.url, tokens[role], path)
        if (allowed.includes(role)) {
          expect(res.status, `${role} on ${path}`).toBe(200)
          await res.arrayBuffer()
        } else {
          expect(res.status, `${role} on ${path}`).toBe(403)
          const body = await json(res)
          expect(body.error.code).toBe('FORBIDDEN')
          expect(body.error.message).toContain(role)
        }
      }
      for (const bad of [revoked, 'clt_' + 'A'.repeat(43), 'not-a-token']) {
        const res = await getAs(cloud.url, bad, path)
        expect(res.status).toBe(401)
        expect((await json(res)).error.code).toBe('UNAUTHENTICATED')
      }
      const basic = await getAs(cloud.url, null, path, { headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } })
      expect(basic.status).toBe(401)
    })
  }

  it('GET /healthz needs no credential', async () => {
    const res = await getAs(cloud.url, null, '/healthz')
    expect(res.status).toBe(200)
    expect(await json(res)).toMatchObject({ status: 'ok', db: true, height: 0, records: 1 })
  })

  it('the console page needs no credential (it holds no data); its API calls do', async () => {
    const res = await getAs(cloud.url, null, '/')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('text/html')
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'")
  })

  it('gateway endpoints refuse every role: they need a gateway signature, not a token', async () => {
    for (const path of ['/v1/batches', '/v1/batches/bulk']) {
      for (const token of [...Object.values(tokens), null]) {
        const res = await fetch(`${cloud.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/cbor', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: new Uint8Array([0xa0]) })
        expect(res.status).toBe(401)
        const body = await json(res)
        expect(body.error.code).toBe('UNAUTHENTICATED')
        expect(body.error.message).toMatch(/unsigned request: header CareLedger-Gateway is missing/)
      }
    }
  })

  it('POST /v1/gateways/register takes no token of any role: only an enrolment token', async () => {
    for (const token of Object.values(tokens)) {
      const res = await fetch(`${cloud.url}/v1/gateways/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ token, publicKey: bytesToHex(testGateway().publicKey), name: 'ward-9' }),
      })
      expect(res.status).toBe(401)
      expect((await json(res)).error.code).toBe('UNAUTHENTICATED')
    }
  })

  it('an unknown path answers 404 NOT_FOUND in the error model', async () => {
    const res = await getAs(cloud.url, tokens.admin, '/v1/nope')
    expect(res.status).toBe(404)
    expect((await json(res)).error.code).toBe('NOT_FOUND')
  })

  it('revoking a token takes effect on its next request', async () => {
    const { token } = await cloud.tokens.create('regulator', 'temp-regulator')
    expect((await getAs(cloud.url, token, '/v1/streams')).status).toBe(200)
    await cloud.tokens.revoke('temp-regulator')
    expect((await getAs(cloud.url, token, '/v1/streams')).status).toBe(401)
  })
})

describe('gateway registration', () => {
  const register = (body: unknown) => fetch(`${cloud.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

  it('answers 201 with the gateway id and the cloud keys, and the token is single-use', async () => {
    const gw = testGateway()
    const { token } = await cloud.enrolment.invite('ward-2')
    const res = await register({ token, publicKey: bytesToHex(gw.publicKey), name: 'ward-2' })
    expect(res.status).toBe(201)
    expect(await json(res)).toEqual({
      gatewayId: gw.gatewayId,
      name: 'ward-2',
      cloud: { signingKey: bytesToHex(cloud.keys.signingPublicKey), chameleonKey: bytesToHex(cloud.keys.chameleonPublicKey) },
    })
    const before = storedState(data.dir)
    const again = await register({ token, publicKey: bytesToHex(testGateway().publicKey), name: 'ward-2' })
    expect(again.status).toBe(401)
    const body = await json(again)
    expect(body.error).toMatchObject({ code: 'UNAUTHENTICATED', details: { field: 'token' } })
    expect(body.error.message).toMatch(/already been used/)
    expect(storedState(data.dir)).toEqual(before)
  })

  it('refuses an expired token (24 h) and stores nothing', async () => {
    // An invite issued 25 h ago, through the cloud's own registry on the same database file.
    const db = openCloudDb(join(data.dir, 'cloud.db'))
    const { token } = new Enrolment(db, new GatewayRegistry(db)).invite('ward-old', Date.now() - 25 * 3600_000)
    db.close()
    const before = storedState(data.dir)
    const res = await register({ token, publicKey: bytesToHex(testGateway().publicKey), name: 'ward-old' })
    expect(res.status).toBe(401)
    expect((await json(res)).error.message).toMatch(/expired at/)
    expect(storedState(data.dir)).toEqual(before)
  })

  it('an invite just under 24 h old still works', async () => {
    const db = openCloudDb(join(data.dir, 'cloud.db'))
    const { token } = new Enrolment(db, new GatewayRegistry(db)).invite('ward-late', Date.now() - 23.9 * 3600_000)
    db.close()
    expect((await register({ token, publicKey: bytesToHex(testGateway().publicKey), name: 'ward-late' })).status).toBe(201)
  })

  it('refuses bad requests without consuming the token, naming the field', async () => {
    const { token } = await cloud.enrolment.invite('ward-5')
    const gw = testGateway()
    const cases: Array<[unknown, number, string, string]> = [
      [{ token, publicKey: bytesToHex(gw.publicKey), name: 'ward-6' }, 400, 'INVALID_REQUEST', 'name'],
      [{ token, publicKey: 'zz', name: 'ward-5' }, 400, 'INVALID_REQUEST', 'publicKey'],
      [{ token, publicKey: '00'.repeat(32), name: 'ward-5' }, 400, 'INVALID_REQUEST', 'publicKey'], // a small-order point
      [{ token, name: 'ward-5' }, 400, 'INVALID_REQUEST', 'publicKey'],
      [{ token, publicKey: bytesToHex(gw.publicKey), name: 'ward-5', extra: 1 }, 400, 'INVALID_REQUEST', 'body'],
      [{ token: 'cle_nope', publicKey: bytesToHex(gw.publicKey), name: 'ward-5' }, 401, 'UNAUTHENTICATED', 'token'],
    ]
    const before = storedState(data.dir)
    for (const [body, status, code, field] of cases) {
      const res = await register(body)
      const answer = await json(res)
      expect(res.status, JSON.stringify(body)).toBe(status)
      expect(answer.error.code).toBe(code)
      if (field !== 'body') expect(answer.error.details.field).toBe(field)
    }
    const notJson = await fetch(`${cloud.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"token":' })
    expect(notJson.status).toBe(400)
    expect((await json(notJson)).error.code).toBe('INVALID_REQUEST')
    expect(storedState(data.dir)).toEqual(before)
    // The token still works.
    expect((await register({ token, publicKey: bytesToHex(gw.publicKey), name: 'ward-5' })).status).toBe(201)
  })

  it('a key already registered is a 409 CONFLICT and the token survives', async () => {
    const gw = testGateway()
    expect((await register({ token: (await cloud.enrolment.invite('ward-7')).token, publicKey: bytesToHex(gw.publicKey), name: 'ward-7' })).status).toBe(201)
    const { token } = await cloud.enrolment.invite('ward-8')
    const res = await register({ token, publicKey: bytesToHex(gw.publicKey), name: 'ward-8' })
    expect(res.status).toBe(409)
    expect((await json(res)).error.code).toBe('CONFLICT')
    expect((await register({ token, publicKey: bytesToHex(testGateway().publicKey), name: 'ward-8' })).status).toBe(201)
  })

  it('a newer invite for the same name withdraws the older one', async () => {
    const first = (await cloud.enrolment.invite('ward-10')).token
    const second = (await cloud.enrolment.invite('ward-10')).token
    const res = await register({ token: first, publicKey: bytesToHex(testGateway().publicKey), name: 'ward-10' })
    expect(res.status).toBe(401)
    expect((await json(res)).error.message).toMatch(/withdrawn/)
    expect((await register({ token: second, publicKey: bytesToHex(testGateway().publicKey), name: 'ward-10' })).status).toBe(201)
  })

  it('GET /v1/gateways lists gateways with their last sync and batch count', async () => {
    const { gateways } = await json(getAs(cloud.url, tokens.admin, '/v1/gateways'))
    const ward1 = gateways.find((g: { name: string }) => g.name === 'ward-1')
    expect(ward1).toMatchObject({ revoked: false, batches: 1 })
    expect(ward1.lastSyncAt).toBeGreaterThan(ward1.registeredAt)
    expect(ward1.publicKey).toMatch(/^[0-9a-f]{64}$/)
    expect(gateways.find((g: { name: string }) => g.name === 'ward-2')).toMatchObject({ lastSyncAt: null, batches: 0 })
  })
})

describe('the CLI (a real subprocess on the same data directory)', () => {
  it('token create prints the token once, stores only its SHA-256, and list/revoke work', async () => {
    const created = await careledger(['cloud', 'token', 'create', '--role', 'researcher', '--name', 'dr-r', '--json', '--data', data.dir])
    expect(created.code).toBe(0)
    const { token, role, name } = JSON.parse(created.stdout)
    expect(token).toMatch(/^clt_[A-Za-z0-9_-]{43}$/)
    expect({ role, name }).toEqual({ role: 'researcher', name: 'dr-r' })
    expect((await getAs(cloud.url, token, '/v1/blocks')).status).toBe(200)

    const db = new Database(join(data.dir, 'cloud.db'), { readonly: true })
    const row = db.prepare("SELECT * FROM api_tokens WHERE name = 'dr-r'").get() as Record<string, unknown>
    db.close()
    expect(Buffer.from(row.token_hash as Buffer).toString('hex')).toMatch(/^[0-9a-f]{64}$/)
    expect(JSON.stringify(row)).not.toContain(token.slice(4))

    const list = await careledger(['cloud', 'token', 'list', '--data', data.dir])
    expect(list.stdout).toMatch(/dr-r\s+researcher\s+live/)
    expect(list.stdout).not.toContain(token)

    expect((await careledger(['cloud', 'token', 'revoke', 'dr-r', '--data', data.dir])).code).toBe(0)
    expect((await getAs(cloud.url, token, '/v1/blocks')).status).toBe(401)

    const badRole = await careledger(['cloud', 'token', 'create', '--role', 'janitor', '--name', 'x', '--data', data.dir])
    expect(badRole.code).not.toBe(0)
    expect(badRole.stderr).toMatch(/admin, regulator, researcher, doctor/)
  })

  it('gateway invite prints a one-time cle_ token a gateway can redeem; list and revoke', async () => {
    const invited = await careledger(['cloud', 'gateway', 'invite', '--name', 'ward-cli', '--json', '--data', data.dir])
    expect(invited.code).toBe(0)
    const { token, expiresAt } = JSON.parse(invited.stdout)
    expect(token).toMatch(/^cle_[A-Za-z0-9_-]{43}$/)
    expect(expiresAt - Date.now()).toBeGreaterThan(23.9 * 3600_000)
    const gw = testGateway()
    const res = await fetch(`${cloud.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, publicKey: bytesToHex(gw.publicKey), name: 'ward-cli' }) })
    expect(res.status).toBe(201)

    const list = await careledger(['cloud', 'gateway', 'list', '--data', data.dir])
    expect(list.stdout).toMatch(new RegExp(`ward-cli\\s+${gw.gatewayId}\\s+live`))

    expect((await careledger(['cloud', 'gateway', 'revoke', 'ward-cli', '--data', data.dir])).code).toBe(0)
    const { res: refused } = await signedPost(cloud.url, gw, '/v1/batches', await batchBody(await sealTestBatch(testStream(gw), 0, null)))
    expect(refused.status).toBe(401)
    expect((await json(refused)).error).toMatchObject({ code: 'UNKNOWN_GATEWAY' })
    expect((await careledger(['cloud', 'gateway', 'invite', '--name', '<script>', '--data', data.dir])).stderr).toMatch(/INVALID_ARGUMENT/)
  })
})
