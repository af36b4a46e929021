/**
 * `verifyAnchors`: a chain checked against its anchors on an EVM chain (Hardhat 3's EDR, in this
 * process). What verification from the database alone cannot see — a block rewritten and
 * re-signed with the cloud's own key, a chain rolled back behind its latest anchor, a fork after it
 * — is caught; an approved redaction (new content, the regulator's adapted chameleon opening) is
 * not, because no block hash or records root moves.
 */
import { copyFileSync, cpSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bytesToHex } from '@noble/hashes/utils.js'
import { verifyAnchors, type AnchorFailure } from '../../cloud/anchor/verify.ts'
import { verifyChain } from '../../cloud/chain/verify.ts'
import { blockHash, decodeBlockHeader, makeBlock } from '../../cloud/chain/block.ts'
import { decodeRecordContent, encodeRecordContent } from '../../cloud/chain/record.ts'
import { chameleonAdapt, chameleonVerify, decodeChameleonSecretKey } from '../../shared/crypto/chameleon.ts'
import { readTestSecret } from '../helpers/test-keys.ts'
import type { CloudKeys } from '../../cloud/keys.ts'
import { getAs, json, startTestCloud } from '../helpers/cloud-process.ts'
import { anchorEvents, anchoredCloud, until, type AnchoredCloud } from './anchor-helpers.ts'
import { TestGatewayKey, TestStream } from './chain-helpers.ts'

let env: AnchoredCloud
let keys: CloudKeys
let pristine: string
let dataDir: string
const ANCHORED = [1, 3, 5]
const HEAD = 7
let copies = 0

/** Anchor the newest block and wait until it counts. */
async function anchorAndConfirm(): Promise<void> {
  const a = env.cloud.anchor!
  await a.anchorNow()
  await until(async () => (await a.anchorer.follow()).kind === 'confirmed' || (await a.status()).pending === null, 'the anchor confirmed')
}

beforeAll(async () => {
  env = await anchoredCloud({ flags: { anchorSchedule: '0 0 1 1 *', anchorConfirmations: '1' }, intervalMs: 0 })
  const { cloud } = env
  keys = cloud.keys
  dataDir = cloud.config.dataDir
  for (let h = 0; h <= HEAD; h++) {
    for (let i = 0; i < 3; i++) env.grow()
    expect(cloud.sealNow()?.height).toBe(h)
    if (ANCHORED.includes(h)) await anchorAndConfirm()
  }
  expect((await anchorEvents(env.evm, env.contract)).map((e) => e.height)).toEqual(ANCHORED)
  await cloud.stop()
  pristine = join(env.dir, 'pristine.db')
  copyFileSync(cloud.config.paths.db, pristine)
})
afterAll(() => env.close())

function copy(): { path: string; sql: Database.Database } {
  const path = join(env.dir, `copy-${++copies}.db`)
  copyFileSync(pristine, path)
  return { path, sql: new Database(path) }
}

const check = (path: string) => verifyAnchors(path, { rpcUrl: env.evm.url, contract: env.contract, account: env.wallet.address, chainId: env.evm.chainId })
const checkChain = (path: string) => verifyChain(path, { chameleonPublicKey: keys.chameleonPublicKey, signingPublicKey: keys.signingPublicKey, workers: 0 })
/** Drop blocks `from`.. and leave their records pending: the chain cut back to height from − 1. */
function rollBack(sql: Database.Database, from: number): void {
  sql.pragma('foreign_keys = OFF')
  sql.prepare('UPDATE records SET block_height = NULL WHERE block_height >= ?').run(from)
  sql.prepare('DELETE FROM blocks WHERE height >= ?').run(from)
}

const kinds = (fs: readonly AnchorFailure[]) => fs.map((f) => [f.kind, f.height ?? null])

/** Re-sign blocks from `from` to the head with the cloud's key, `change` applied to block `from`'s header fields: a self-consistent rewrite. */
function rewrite(sql: Database.Database, from: number, change: { time?: number; prevHash?: Uint8Array }): void {
  const rows = sql.prepare('SELECT height, header FROM blocks WHERE height >= ? ORDER BY height').all(from) as { height: number; header: Buffer }[]
  let prev: Uint8Array | null = change.prevHash ?? null
  for (const r of rows) {
    const h = decodeBlockHeader(new Uint8Array(r.header))
    const records = (sql.prepare('SELECT id, hash FROM records WHERE block_height = ? ORDER BY id').all(r.height) as { id: number; hash: Buffer }[]).map((x) => ({ id: x.id, hash: new Uint8Array(x.hash) }))
    const b = makeBlock({
      height: r.height,
      prevHash: prev ?? (h.prev === null ? null : Buffer.from(h.prev, 'hex')),
      time: r.height === from && change.time !== undefined ? change.time : h.time,
      records,
      chameleonKeyId: h.chameleonKey,
      signerKeyId: h.signer,
      signingSecretKey: keys.signingSecretKey,
    })
    sql.prepare('UPDATE blocks SET header = ?, hash = ?, signature = ? WHERE height = ?').run(b.bytes, b.hash, b.signature, r.height)
    prev = b.hash
  }
}

describe('a chain against its anchors', () => {
  it('an intact chain matches every anchor and extends the latest', async () => {
    const r = await check(pristine)
    expect(r).toMatchObject({ ok: true, anchors: 3, chainId: env.evm.chainId, contract: env.contract, account: env.wallet.address })
    expect(r.latest!.height).toBe(5)
    expect(r.chainHead!.height).toBe(HEAD)
  })

  it('a block rewritten and re-signed by the cloud passes verification from the database alone, but not against its anchors', async () => {
    const { path, sql } = copy()
    const t = decodeBlockHeader(new Uint8Array((sql.prepare('SELECT header FROM blocks WHERE height = 3').get() as { header: Buffer }).header)).time
    rewrite(sql, 3, { time: t + 1 })
    sql.close()
    expect((await checkChain(path)).failures).toEqual([]) // self-consistent under the cloud's own key
    const r = await check(path)
    expect(r.ok).toBe(false)
    expect(kinds(r.failures)).toEqual([
      ['ANCHOR_MISMATCH', 3],
      ['ANCHOR_MISMATCH', 5],
    ])
    expect(r.failures[0]!.message).toMatch(/block 3 hashes to [0-9a-f]{64}, but 0x[0-9a-f]{64} anchored [0-9a-f]{64}: the block was rewritten/)
  })

  it('a chain rolled back behind its latest anchor is detected', async () => {
    const { path, sql } = copy()
    rollBack(sql, 4)
    sql.close()
    expect((await checkChain(path)).ok).toBe(true) // blocks 0..3 with the rest pending: consistent in itself
    const r = await check(path)
    expect(kinds(r.failures)).toEqual([['ANCHOR_BEHIND', 5]])
    expect(r.failures[0]!.message).toMatch(/the chain ends at height 3, behind its latest anchor at height 5/)
  })

  it('blocks after the latest anchor that do not extend it are detected', async () => {
    const { path, sql } = copy()
    rewrite(sql, 6, { prevHash: new Uint8Array(32).fill(7) })
    sql.close()
    expect(kinds((await check(path)).failures)).toEqual([['ANCHOR_FORK', 6]])
    expect((await checkChain(path)).failureCounts.PREV_LINK).toBe(1)
  })

  it('an anchored block deleted from the middle, or whose header no longer decodes, is detected', async () => {
    const { path, sql } = copy()
    sql.pragma('foreign_keys = OFF')
    sql.prepare('DELETE FROM blocks WHERE height = 1').run()
    sql.prepare('UPDATE blocks SET header = substr(header, 1, length(header) - 1) WHERE height = 3').run()
    sql.close()
    expect(kinds((await check(path)).failures)).toEqual([
      ['ANCHOR_MISSING', 1],
      ['ANCHOR_MISMATCH', 3],
    ])
  })

  it('an approved redaction — new content, the regulator\'s adapted opening — leaves every anchored block hash and records root matching', async () => {
    const { path, sql } = copy()
    const trapdoor = decodeChameleonSecretKey(readTestSecret(keys.files.regulatorSecretKey!)) // development mode: the trapdoor is in <data>/regulator/, sealed under the tests' passphrase
    const before = (sql.prepare('SELECT height, hash FROM blocks ORDER BY height').all() as { height: number; hash: Buffer }[]).map((b) => bytesToHex(b.hash))
    // Redact one record of every anchored block: the cloud's receive time corrected by an hour.
    for (const height of ANCHORED) {
      const row = sql.prepare('SELECT id, content, hash, opening FROM records WHERE block_height = ? ORDER BY id LIMIT 1').get(height) as { id: number; content: Buffer; hash: Buffer; opening: Buffer }
      const rec = decodeRecordContent(new Uint8Array(row.content))
      const corrected = encodeRecordContent({ ...rec, receivedAt: rec.receivedAt - 3_600_000 })
      const opening = chameleonAdapt(trapdoor, corrected, new Uint8Array(row.hash))
      expect(chameleonVerify(keys.chameleonPublicKey, corrected, new Uint8Array(row.hash), opening)).toBe(true)
      expect(Buffer.from(opening).equals(row.opening)).toBe(false)
      sql.prepare('UPDATE records SET content = ?, opening = ?, received_at = ? WHERE id = ?').run(corrected, opening, rec.receivedAt - 3_600_000, row.id)
    }
    const after = (sql.prepare('SELECT height, header, hash FROM blocks ORDER BY height').all() as { height: number; header: Buffer; hash: Buffer }[]).map((b) => {
      expect(bytesToHex(blockHash(new Uint8Array(b.header)))).toBe(bytesToHex(b.hash))
      return bytesToHex(b.hash)
    })
    sql.close()
    expect(after).toEqual(before)
    const r = await check(path)
    expect(r.failures).toEqual([])
    expect(r.anchors).toBe(3)
    // This correction touches no gateway-signed field, so the whole chain verifies too.
    expect((await checkChain(path)).failures).toEqual([])
  })

  it('the running cloud notices that its chain is behind its latest anchor and says so on /healthz, /metrics and GET /v1/anchors', async () => {
    const dir = join(env.dir, 'rolled-back')
    cpSync(dataDir, dir, { recursive: true })
    const sql = new Database(join(dir, 'cloud.db'))
    rollBack(sql, 4)
    sql.prepare('DELETE FROM anchors').run() // as if restored from a backup older than the anchors
    sql.close()
    const cloud = await startTestCloud(dir, { ...env.flags, blockIntervalS: '3600' }, env.env)
    try {
      const outcome = await cloud.anchor!.anchorNow()
      expect(outcome.kind).toBe('behind')
      expect(outcome.message).toMatch(/the contract's latest anchor is height 5, above this chain's head 3/)
      const health = await json(fetch(`${cloud.url}/healthz`))
      expect(health.anchor.state).toBe('behind')
      const admin = (await cloud.tokens.create('admin', 'behind-admin')).token
      expect(await (await getAs(cloud.url, admin, '/metrics')).text()).toMatch(/careledger_cloud_anchor_behind 1/)
      expect((await json(getAs(cloud.url, admin, '/v1/anchors'))).status.state).toBe('behind')
      expect((await anchorEvents(env.evm, env.contract)).map((e) => e.height)).toEqual(ANCHORED) // nothing sent
      // Grown again past the anchor, its block 5 is not the anchored one: still refused, never anchored over.
      const stream = new TestStream(new TestGatewayKey('regrowth'), 'bed-02', 'another patient')
      for (let i = 0; i < 4; i++) {
        cloud.chain.appendBatch(stream.batch(i))
        cloud.sealNow()
      }
      expect(cloud.chain.head()!.height).toBe(7)
      const regrown = await cloud.anchor!.anchorNow()
      expect(regrown.kind).toBe('behind')
      expect(regrown.message).toMatch(/the contract anchors block 5 as [0-9a-f]{64}, but this chain's block 5 is [0-9a-f]{64}: the chain no longer extends its latest anchor/)
      expect((await anchorEvents(env.evm, env.contract)).map((e) => e.height)).toEqual(ANCHORED)
    } finally {
      await cloud.stop()
    }
  })
})
