/**
 * The instruction store (cloud/service/instructions.ts) on both backends: SQLite (cloud.db) and the
 * PostgreSQL every cloud process of a deployment shares (cloud/store/pg/instructions.ts). The same
 * contract: issuing is idempotent while pending, delivery signs and counts, an acknowledgement is
 * applied once (a repeat answers the first state), another gateway's id is unknown, a cancel
 * withdraws only what is pending. On PostgreSQL, two pools stand for two processes: the same
 * instruction issued by both at once is one row, and of two acknowledgements racing one applies.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { openCloudDb } from '../../cloud/store/db.ts'
import { SqliteInstructionStore, type InstructionStore } from '../../cloud/service/instructions.ts'
import { PgInstructionStore } from '../../cloud/store/pg/instructions.ts'
import { openMigratedPool } from '../../cloud/store/pg/pool.ts'
import { generateSigningKey } from '../../shared/crypto/sign.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { checkInstruction } from '../../shared/protocol/instructions.ts'
import { usePostgres } from '../helpers/postgres.ts'

const cloudKey = generateSigningKey(deterministicRng('instruction store test'))
const gw = '0123456789abcdef'
const other = 'fedcba9876543210'
const cid = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const postgres = usePostgres()
const cleanups: (() => Promise<void> | void)[] = []
afterAll(async () => {
  for (const c of cleanups.reverse()) await c()
})

async function sqliteStore(): Promise<InstructionStore> {
  const dir = mkdtempSync(join(tmpdir(), 'careledger-instructions-'))
  const db = openCloudDb(join(dir, 'cloud.db'))
  cleanups.push(() => {
    db.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return new SqliteInstructionStore(db, cloudKey.secretKey)
}

let dbNo = 0
async function pgPools(n: number): Promise<pg.Pool[]> {
  const url = await postgres.server().createDatabase(`instructions_${++dbNo}`)
  const pools = await Promise.all(Array.from({ length: n }, () => openMigratedPool(url, 4)))
  cleanups.push(async () => void (await Promise.all(pools.map((p) => p.end()))))
  return pools
}

const stores: [string, () => Promise<InstructionStore>, string | null][] = [
  ['SQLite', sqliteStore, null],
  ['PostgreSQL', async () => new PgInstructionStore((await pgPools(1))[0]!, cloudKey.secretKey), postgres.skip],
]

describe.each(stores)('gateway instructions on %s', (_name, open, skipReason) => {
  it('issue is idempotent while pending; deliver signs and counts; ack once; another gateway cannot ack; cancel; latest', async ({ skip }) => {
    if (skipReason) skip(skipReason)
    const s = await open()
    const a = await s.issue(gw, 'resend-block', cid, { cid, record: 4 }, 1000)
    expect(a).toMatchObject({ gatewayId: gw, kind: 'resend-block', key: cid, args: { cid, record: 4 }, issuedAt: 1000, deliveries: 0, state: 'pending' })
    expect((await s.issue(gw, 'resend-block', cid, { cid, record: 4 }, 2000)).id).toBe(a.id)
    const b = await s.issue(gw, 'delete-batch', cid, { cid, record: 4, stream: 'ab'.repeat(16), seq: 1, expiresAt: 9e12 }, 3000)
    expect(b.id).toBeGreaterThan(a.id)
    expect(await s.pendingCount(gw)).toBe(2)
    expect(await s.pendingCount(other)).toBe(0)

    const got = await s.deliver(gw, 4000)
    expect(got.map((x) => [x.id, x.kind])).toEqual([
      [a.id, 'resend-block'],
      [b.id, 'delete-batch'],
    ])
    for (const x of got) expect(checkInstruction(JSON.parse(JSON.stringify(x)), gw, cloudKey.publicKey)).toMatchObject({ ok: true })
    expect(await s.deliver(gw, 4500, 1)).toHaveLength(1)
    expect((await s.get(a.id))!.deliveries).toBe(2)
    expect(await s.deliver(other, 4000)).toEqual([])

    expect(await s.acknowledge(other, a.id, { status: 'done' }, 5000)).toBeNull()
    expect(await s.acknowledge(gw, 999_999, { status: 'done' }, 5000)).toBeNull()
    const first = await s.acknowledge(gw, a.id, { status: 'failed', detail: 'NOT_HELD' }, 5000)
    expect(first).toMatchObject({ repeated: false, row: { state: 'failed', detail: 'NOT_HELD', ackedAt: 5000 } })
    const again = await s.acknowledge(gw, a.id, { status: 'done' }, 6000)
    expect(again).toMatchObject({ repeated: true, row: { state: 'failed', ackedAt: 5000 } })

    // Acknowledged: issuing again makes a new one; latest names it.
    const c = await s.issue(gw, 'resend-block', cid, { cid, record: 4 }, 7000)
    expect(c.id).not.toBe(a.id)
    expect((await s.latest('resend-block', cid))!.id).toBe(c.id)
    expect(await s.cancel(gw, 'resend-block', cid, 'intact at scrub', 8000)).toBe(true)
    expect(await s.cancel(gw, 'resend-block', cid, 'intact at scrub', 8000)).toBe(false)
    expect(await s.get(c.id)).toMatchObject({ state: 'cancelled', detail: 'intact at scrub' })
    expect(await s.acknowledge(gw, c.id, { status: 'done' }, 9000)).toMatchObject({ repeated: true, row: { state: 'cancelled' } })
    expect(await s.pendingCount(gw)).toBe(1)
    expect(await s.latest('resend-block', 'bafy-none')).toBeNull()
  })
})

describe('gateway instructions shared by two processes on one PostgreSQL', () => {
  it('the same instruction issued by both at once is one row; two racing acknowledgements apply once', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const [p1, p2] = await pgPools(2)
    const [one, two] = [new PgInstructionStore(p1!, cloudKey.secretKey), new PgInstructionStore(p2!, cloudKey.secretKey)]
    for (let round = 0; round < 20; round++) {
      const key = `${cid}-${round}`
      const [x, y] = await Promise.all([one.issue(gw, 'delete-batch', key, { cid: key }, round), two.issue(gw, 'delete-batch', key, { cid: key }, round)])
      expect(x.id).toBe(y.id)
      const acks = await Promise.all([one.acknowledge(gw, x.id, { status: 'done' }, 100 + round), two.acknowledge(gw, x.id, { status: 'failed', detail: 'raced' }, 100 + round)])
      expect(acks.filter((r) => r && !r.repeated)).toHaveLength(1)
      expect(new Set(acks.map((r) => r!.row.state)).size).toBe(1)
    }
    expect(await one.pendingCount(gw)).toBe(0)
    const rows = await p1!.query<{ n: number }>('SELECT count(*)::int AS n FROM gateway_instructions')
    expect(rows.rows[0]!.n).toBe(20)
  })
})
