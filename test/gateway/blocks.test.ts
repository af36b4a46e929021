/**
 * The gateway's blockstore (gateway/blocks.ts): blocks in gateway.db since schema v3, older ones in
 * files; and the files' size as the disk budget sees it: kept by delete in the back office,
 * reported to the ingest thread, never walked there (gateway/broker/disk-budget.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { NextToLast } from 'blockstore-fs/sharding'
import { openBlockNode, readBlock } from '../../gateway/blocks.ts'
import { DiskBudget } from '../../gateway/broker/disk-budget.ts'
import { openGatewayDb } from '../../gateway/store/db.ts'
import { tempDataDir } from '../helpers/gateway-process.ts'

const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length) cleanups.pop()!()
})
const fresh = () => {
  const t = tempDataDir('blocks')
  cleanups.push(t.cleanup)
  return t.dir
}
const block = async (n: number, fill: number) => {
  const bytes = new Uint8Array(n).fill(fill)
  return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
}

describe('blockstore', () => {
  it('new blocks go to gateway.db; blocks sealed before schema v3 are read and deleted from their files, which the usage counts', async () => {
    const dir = fresh()
    const { db } = openGatewayDb(dir)
    const node = await openBlockNode(dir, db)
    expect(node.usage.measure()).toBe(0)
    const a = await block(1000, 1)
    const b = await block(2500, 2)
    await node.blockstore.put(a.cid, a.bytes)
    await node.blockstore.put(a.cid, a.bytes) // stored again: replaces itself
    expect(db.prepare('SELECT count(*) FROM envelope_blocks').pluck().get()).toBe(1)
    expect(node.usage.measure()).toBe(0) // the table is the database's, which the disk budget measures itself
    // A pre-v3 block: a file in blockstore-fs's layout.
    const { dir: shard, file } = new NextToLast().encode(b.cid)
    mkdirSync(join(dir, 'blocks', shard), { recursive: true })
    writeFileSync(join(dir, 'blocks', shard, file), b.bytes)
    expect(node.usage.measure()).toBe(2500)
    for (const x of [a, b]) {
      expect(await node.blockstore.has(x.cid)).toBe(true)
      expect(new Uint8Array(await readBlock(node.blockstore, x.cid))).toEqual(x.bytes)
    }
    await node.blockstore.delete(b.cid)
    await node.blockstore.delete(b.cid) // already gone: nothing to subtract
    expect(node.usage.bytes).toBe(0)
    await node.blockstore.delete(a.cid)
    expect(await node.blockstore.has(a.cid)).toBe(false)
    expect(await node.blockstore.has(b.cid)).toBe(false)
    await expect(readBlock(node.blockstore, a.cid)).rejects.toThrow(/ENOENT/)
    expect(node.usage.measure()).toBe(0)
    await node.stop()
    db.close()
  })

  it('the disk budget counts a reported directory and stops walking it', async () => {
    const dir = fresh()
    const { db } = openGatewayDb(dir)
    const budget = new DiskBudget({ dataDir: dir, db, budgetBytes: 10 * 2 ** 20, minFreeBytes: 0, checkIntervalMs: 3_600_000 })
    mkdirSync(join(dir, 'blocks', 'AB'), { recursive: true })
    writeFileSync(join(dir, 'blocks', 'AB', 'x.data'), Buffer.alloc(4 * 2 ** 20))
    writeFileSync(join(dir, 'other'), Buffer.alloc(2 ** 20))
    await budget.check()
    const dbOnly = budget.usedBytes - 5 * 2 ** 20
    expect(dbOnly).toBeGreaterThan(0) // the database's pages
    expect(dbOnly).toBeLessThan(2 ** 20)
    // The back office reports 12 MB of blocks: over budget at once, whatever is on disk.
    budget.reportDirectory('blocks', 12 * 2 ** 20)
    expect(budget.full).toBe(true)
    expect(budget.status.reason).toMatch(/budget/)
    await budget.check()
    expect(budget.usedBytes).toBe(dbOnly + 13 * 2 ** 20) // the 4 MB file under blocks/ is not walked any more
    budget.reportDirectory('blocks', 0)
    expect(budget.full).toBe(false)
    db.close()
  })
})
