/**
 * The access stores (cloud/access/store.ts) through their one interface, run against both backends:
 * SQLite (the embedded default) and a real PostgreSQL server this file starts (test/helpers/postgres.ts;
 * skipped with a printed reason where PostgreSQL is not installed). On PostgreSQL, two separate
 * connection pools on one database stand for two cloud processes: what one writes, the other sees
 * on its next call, and a nonce or an invite claimed concurrently through both is won exactly once.
 */
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openAccessStores, type AccessStores } from '../../cloud/access/store.ts'
import { testGateway } from '../helpers/cloud-batches.ts'
import { tempDataDir } from '../helpers/cloud-process.ts'
import { usePostgres } from '../helpers/postgres.ts'

const tmp = tempDataDir('access-stores')
afterAll(() => tmp.cleanup())
const postgres = usePostgres()
let n = 0

type Opened = AccessStores & { close(): Promise<void> }
interface Backend {
  readonly name: 'sqlite' | 'postgres'
  readonly skip: string | null
  /** Two handles on one fresh database: two processes on PostgreSQL, one process (the same file) on SQLite. */
  open(): Promise<[Opened, Opened]>
}

const backends: Backend[] = [
  {
    name: 'sqlite',
    skip: null,
    open: async () => {
      const file = join(tmp.dir, `access-${++n}.db`)
      const a = await openAccessStores(null, file)
      return [a, a]
    },
  },
  {
    name: 'postgres',
    skip: postgres.skip,
    open: async () => {
      const url = await postgres.server().createDatabase(`access_${++n}`)
      return [await openAccessStores(url, ''), await openAccessStores(url, '')]
    },
  },
]

const errorOf = async (f: () => unknown): Promise<{ code?: string; message: string }> => {
  try {
    await f()
  } catch (e) {
    return e as never
  }
  throw new Error('expected an error')
}

describe.each(backends)('access stores on $name', (backend) => {
  let a: Opened
  let b: Opened
  beforeEach(async ({ skip }) => {
    if (backend.skip) skip(backend.skip)
    ;[a, b] = await backend.open()
  })
  afterEach(async () => {
    await a?.close()
    if (b !== a) await b?.close()
  })

  it('a token created through one handle authenticates through the other; revoked through one, refused by the other', async () => {
    expect(a.kind).toBe(backend.name)
    const { token, info } = await a.tokens.create('doctor', 'dr-house', 1000)
    expect(token).toMatch(/^clt_[A-Za-z0-9_-]{43}$/)
    expect(await b.tokens.authenticate(token, 2000)).toEqual({ tokenId: info.id, name: 'dr-house', role: 'doctor' })
    expect(await b.tokens.authenticate(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'), 2000)).toBeNull()
    expect(await b.tokens.authenticate('not a token', 2000)).toBeNull()
    // A live name is unique across processes.
    expect((await errorOf(() => b.tokens.create('admin', 'dr-house'))).message).toMatch(/a live token named dr-house exists/)
    expect((await errorOf(() => b.tokens.create('nurse', 'x'))).message).toMatch(/role "nurse" is not one of/)
    const revoked = await b.tokens.revoke('dr-house', 3000)
    expect(revoked).toMatchObject({ name: 'dr-house', role: 'doctor', revokedAt: 3000 })
    expect(await a.tokens.authenticate(token, 4000)).toBeNull()
    expect((await errorOf(() => a.tokens.revoke('dr-house'))).message).toMatch(/no live token named "dr-house"/)
    // The name is free again after the revocation.
    await a.tokens.create('admin', 'dr-house', 5000)
    expect((await b.tokens.list()).map((t) => [t.name, t.role, t.revokedAt])).toEqual([['dr-house', 'doctor', 3000], ['dr-house', 'admin', null]])
  })

  it('enrolment: invited through one handle, redeemed through the other; every refusal names why and stores nothing', async () => {
    const gw = testGateway()
    const now = 1_000_000
    const { token } = await a.enrolment.invite('ward-1', now)
    expect(await b.enrolment.redeem({ token: 'cle_' + 'x'.repeat(43), publicKey: gw.publicKey, name: 'ward-1' }, now)).toMatchObject({ ok: false, reason: 'BAD_TOKEN', message: 'the enrolment token is not known' })
    expect(await b.enrolment.redeem({ token, publicKey: gw.publicKey, name: 'ward-2' }, now)).toMatchObject({ ok: false, reason: 'BAD_REQUEST', field: 'name' })
    expect(await b.enrolment.redeem({ token, publicKey: new Uint8Array(31), name: 'ward-1' }, now)).toMatchObject({ ok: false, reason: 'BAD_REQUEST', field: 'publicKey' })
    expect(await b.enrolment.redeem({ token, publicKey: gw.publicKey, name: 'ward-1' }, now + 24 * 3600_000)).toMatchObject({ ok: false, reason: 'BAD_TOKEN', message: expect.stringMatching(/expired/) })
    expect(await b.gateways.list()).toEqual([])
    const ok = await b.enrolment.redeem({ token, publicKey: gw.publicKey, name: 'ward-1' }, now + 1)
    expect(ok).toMatchObject({ ok: true, gateway: { gatewayId: gw.gatewayId, name: 'ward-1', revokedAt: null } })
    expect(await a.gateways.live(gw.gatewayId)).toMatchObject({ gatewayId: gw.gatewayId, name: 'ward-1', publicKey: gw.publicKey })
    expect(await a.enrolment.redeem({ token, publicKey: testGateway().publicKey, name: 'ward-1' }, now + 2)).toMatchObject({ ok: false, reason: 'BAD_TOKEN', message: 'the enrolment token has already been used' })
    expect((await errorOf(() => a.enrolment.invite('ward-1'))).message).toMatch(/a gateway named ward-1 is already registered/)
    // The same key under another invite: 409.
    const second = await a.enrolment.invite('ward-2', now)
    expect(await b.enrolment.redeem({ token: second.token, publicKey: gw.publicKey, name: 'ward-2' }, now)).toMatchObject({ ok: false, reason: 'ALREADY_REGISTERED' })
    // A newer invite for a name withdraws the older one.
    const third = await b.enrolment.invite('ward-2', now + 5)
    expect(await a.enrolment.redeem({ token: second.token, publicKey: testGateway().publicKey, name: 'ward-2' }, now + 6)).toMatchObject({ ok: false, reason: 'BAD_TOKEN', message: expect.stringMatching(/withdrawn/) })
    expect((await a.enrolment.list()).map((i) => [i.name, i.usedAt !== null, i.revokedAt !== null])).toEqual([['ward-1', true, false], ['ward-2', false, true], ['ward-2', false, false]])
    expect(third.invite.name).toBe('ward-2')
    expect(await a.gateways.counts()).toEqual({ total: 1, live: 1 })
    // Revoked through one: refused (not live) through the other; still listed.
    expect(await b.gateways.revoke('ward-1', now + 10)).toMatchObject({ gatewayId: gw.gatewayId, revokedAt: now + 10 })
    expect(await a.gateways.live(gw.gatewayId)).toBeNull()
    expect(await a.gateways.get(gw.gatewayId)).toMatchObject({ revokedAt: now + 10 })
    expect(await a.gateways.counts()).toEqual({ total: 1, live: 0 })
    expect((await errorOf(() => a.gateways.revoke(gw.gatewayId))).message).toMatch(/no live gateway/)
  })

  it('one invite redeemed concurrently through both handles with different keys: exactly one gateway registers', async () => {
    const { token } = await a.enrolment.invite('ward-race', 1000)
    const [x, y] = [testGateway(), testGateway()]
    const results = await Promise.all([a.enrolment.redeem({ token, publicKey: x.publicKey, name: 'ward-race' }, 1001), b.enrolment.redeem({ token, publicKey: y.publicKey, name: 'ward-race' }, 1001)])
    expect(results.filter((r) => r.ok)).toHaveLength(1)
    expect(results.find((r) => !r.ok)).toMatchObject({ ok: false })
    expect(await a.gateways.counts()).toEqual({ total: 1, live: 1 })
  })

  it('nonces: claimed through one handle, a replay through the other is refused; concurrent claims win once; an expired row is taken over; prune', async () => {
    const gw = 'aaaaaaaaaaaaaaaa'
    expect(await a.nonces.claim(gw, 'n-1', 10_000, 1000)).toBe(true)
    expect(await b.nonces.seen(gw, 'n-1', 2000)).toBe(true)
    expect(await b.nonces.claim(gw, 'n-1', 10_000, 2000)).toBe(false)
    // Another gateway's same nonce is its own.
    expect(await b.nonces.claim('bbbbbbbbbbbbbbbb', 'n-1', 10_000, 2000)).toBe(true)
    // 50 nonces each claimed at once through both handles: every one is won exactly once.
    const wins = await Promise.all(Array.from({ length: 50 }, async (_, i) => (await Promise.all([a.nonces.claim(gw, `race-${i}`, 10_000, 1000), b.nonces.claim(gw, `race-${i}`, 10_000, 1000)])).filter(Boolean).length))
    expect(wins).toEqual(Array(50).fill(1))
    // Expired: no longer seen, and a new claim takes the row over.
    expect(await a.nonces.seen(gw, 'n-1', 10_001)).toBe(false)
    expect(await b.nonces.claim(gw, 'n-1', 30_000, 10_001)).toBe(true)
    expect(await a.nonces.count()).toBe(52)
    expect(await a.nonces.prune(20_000)).toBe(51)
    expect(await b.nonces.count()).toBe(1)
  })
})
