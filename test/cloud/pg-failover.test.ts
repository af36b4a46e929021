/**
 * Two cloud processes on one real PostgreSQL, both appending under load, exactly one sealing (the
 * sealer lease). The sealing one is SIGKILLed: the other takes the lease over and seals on; at the
 * end `chain verify` passes on the PostgreSQL chain, every record either process was told is
 * stored is on the chain exactly once with the hash it was told, and the chain holds nothing else
 * but what was in flight in the killed process's last transaction (committed or not: both are
 * allowed, it never got its answer). No height was sealed twice, no block forked.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { usePostgres } from '../helpers/postgres.ts'
import { openPgChainStore } from '../../cloud/store/pg/chain-store.ts'
import { verifyPgChain } from '../../cloud/store/pg/snapshot.ts'
import { chainTestKeys } from './chain-helpers.ts'

const CHILD = join(import.meta.dirname, 'pg-node-child.ts')
const postgres = usePostgres()
const children: ChildProcess[] = []
afterAll(() => children.forEach((c) => c.kill('SIGKILL')))

class Node {
  readonly child: ChildProcess
  readonly name: string
  readonly records = new Map<number, { stream: string; seq: number; hash: string }>()
  readonly blocks: { height: number; hash: string; at: number }[] = []
  readonly lease: { event: string; at: number }[] = []
  readonly exited: Promise<void>
  #buf = ''
  #waiters: (() => void)[] = []

  constructor(url: string, name: string) {
    this.name = name
    this.child = spawn(process.execPath, [CHILD, url, name, '300', '40'], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(this.child)
    this.exited = new Promise((ok) => this.child.once('exit', () => ok()))
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.#buf += chunk
      let nl: number
      while ((nl = this.#buf.indexOf('\n')) >= 0) {
        const [kind, ...f] = this.#buf.slice(0, nl).split(' ')
        this.#buf = this.#buf.slice(nl + 1)
        if (kind === 'R') this.records.set(Number(f[0]), { stream: f[1]!, seq: Number(f[2]), hash: f[3]! })
        else if (kind === 'B') this.blocks.push({ height: Number(f[0]), hash: f[1]!, at: Date.now() })
        else if (kind === 'L') this.lease.push({ event: f[0]!, at: Date.now() })
      }
      this.#waiters.splice(0).forEach((w) => w())
    })
  }

  async until(what: () => boolean, label: string, ms = 60_000): Promise<void> {
    const end = Date.now() + ms
    while (!what()) {
      if (Date.now() > end) throw new Error(`${this.name}: timed out waiting for ${label}`)
      await new Promise<void>((ok) => {
        this.#waiters.push(ok)
        setTimeout(ok, 200)
      })
    }
  }
}

describe('two cloud processes on one PostgreSQL', () => {
  it('the sealing process is SIGKILLed under load: the other takes over, the chain verifies, nothing lost or doubled', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const url = await postgres.server().createDatabase('failover')
    const a = new Node(url, 'cloud-a')
    await a.until(() => a.lease.some((l) => l.event === 'acquired'), 'the lease')
    const b = new Node(url, 'cloud-b')
    // Both under load; only A seals meanwhile.
    await a.until(() => a.records.size >= 400 && b.records.size >= 400 && a.blocks.length >= 3, 'records from both and blocks from A', 120_000)
    expect(b.lease).toEqual([])
    expect(b.blocks).toEqual([])

    const killedAt = Date.now()
    a.child.kill('SIGKILL')
    await a.exited
    const aRecords = a.records.size
    await b.until(() => b.lease.some((l) => l.event === 'acquired'), 'the lease after the kill', 30_000)
    const takeover = b.lease[0]!.at - killedAt
    await b.until(() => b.blocks.length >= 2 && b.records.size >= 800, 'blocks sealed by B', 120_000)
    b.child.kill('SIGTERM') // gives the lease up; what is still pending is sealed below
    await b.exited
    console.log(`[pg-failover] A stored ${aRecords} records and sealed ${a.blocks.length} blocks before SIGKILL; B took the lease ${takeover} ms after the kill, stored ${b.records.size} records, sealed ${b.blocks.length} blocks`)

    // Seal what is still pending (as the next lease holder would), then check everything.
    const keys = chainTestKeys('pg failover')
    const store = await openPgChainStore(url, keys.store, { workers: 0 })
    while (await store.sealBlock(Date.now())) {}
    await store.close()
    const report = await verifyPgChain(url, { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey })
    expect(report.failures).toEqual([])
    expect(report.ok).toBe(true)

    const c = new pg.Client({ connectionString: url })
    await c.connect()
    try {
      const rows = (await c.query<{ id: string; stream: string; seq: string; hash: Buffer; block_height: string | null }>('SELECT id, stream, seq, hash, block_height FROM records ORDER BY id')).rows
      const told = new Map([...a.records, ...b.records])
      expect(told.size).toBe(a.records.size + b.records.size) // no id told to both
      const onChain = new Map(rows.map((r) => [Number(r.id), r]))
      // Records in = records on chain: each one told is there, same position and hash, in a block.
      for (const [id, t] of told) {
        const r = onChain.get(id)
        expect(r, `record ${id}`).toBeDefined()
        expect({ stream: r!.stream, seq: Number(r!.seq), hash: r!.hash.toString('hex') }).toEqual(t)
        expect(r!.block_height).not.toBeNull()
      }
      // Untold records: only A's last bulk, in flight at the kill (at most 40, all A's streams).
      const untold = rows.filter((r) => !told.has(Number(r.id)))
      expect(untold.length).toBeLessThanOrEqual(40)
      expect(rows.every((r) => r.block_height !== null)).toBe(true)
      expect(report.records).toBe(rows.length)
      expect(report.sealedRecords).toBe(rows.length)
      // One block per height, a linear chain: A's blocks first, then B's (and the final seal's).
      const blocks = (await c.query<{ height: string; sealed_by: string }>('SELECT height, sealed_by FROM blocks ORDER BY height')).rows
      expect(blocks.map((x) => Number(x.height))).toEqual(blocks.map((_, i) => i))
      const firstB = blocks.findIndex((x) => x.sealed_by === 'cloud-b')
      expect(firstB).toBeGreaterThan(0)
      expect(blocks.slice(0, firstB).every((x) => x.sealed_by === 'cloud-a')).toBe(true)
      expect(blocks.slice(firstB).some((x) => x.sealed_by === 'cloud-a')).toBe(false)
      for (const blk of a.blocks) expect(blocks[blk.height]!.sealed_by).toBe('cloud-a')
    } finally {
      await c.end()
    }
  }, 300_000)

  it('the schema refuses a second block at a height and a second child of one parent', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const url = await postgres.server().createDatabase('nofork')
    const keys = chainTestKeys('pg failover')
    const store = await openPgChainStore(url, keys.store, { workers: 0 })
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    try {
      const { TestGatewayKey, TestStream } = await import('./chain-helpers.ts')
      const s = new TestStream(new TestGatewayKey('nofork'), 'bed-01', 'p')
      await store.appendBatch(s.batch(0))
      const b0 = (await store.sealBlock(1))!
      await store.appendBatch(s.batch(1))
      await store.sealBlock(2)
      const row = (await c.query('SELECT header, hash, signature, prev_hash FROM blocks WHERE height = 1')).rows[0]
      // Same height again.
      await expect(c.query("INSERT INTO blocks (height, header, hash, signature, prev_hash, sealed_by) VALUES (1, $1, $2, $3, $4, 'rogue')", [row.header, Buffer.alloc(32, 7), row.signature, Buffer.from(b0.hash, 'hex')])).rejects.toThrow(/duplicate key/)
      // A fork: another child of block 0 at a new height.
      await expect(c.query("INSERT INTO blocks (height, header, hash, signature, prev_hash, sealed_by) VALUES (2, $1, $2, $3, $4, 'rogue')", [row.header, Buffer.alloc(32, 8), row.signature, Buffer.from(b0.hash, 'hex')])).rejects.toThrow(/duplicate key/)
      // A parent that does not exist.
      await expect(c.query("INSERT INTO blocks (height, header, hash, signature, prev_hash, sealed_by) VALUES (2, $1, $2, $3, $4, 'rogue')", [row.header, Buffer.alloc(32, 9), row.signature, Buffer.alloc(32, 1)])).rejects.toThrow(/foreign key/)
      // A seal under a lease this session does not hold is refused.
      await store.appendBatch(s.batch(2))
      await expect(store.sealBlock(3, { lease: 999_999 })).rejects.toMatchObject({ info: { reason: 'LEASE_LOST' } })
    } finally {
      await c.end()
      await store.close()
    }
  })
})
