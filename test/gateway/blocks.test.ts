/**
 * The blockstore's size as the disk budget sees it: kept by put/delete in the back office,
 * reported to the ingest thread, never walked there (gateway/blocks.ts, gateway/broker/disk-budget.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
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

describe('blockstore usage', () => {
  it('put and delete keep the running total equal to a walk of the directory', async () => {
    const dir = fresh()
    const node = await openBlockNode(dir)
    expect(node.usage.measure()).toBe(0)
    const a = await block(1000, 1)
    const b = await block(2500, 2)
    await node.blockstore.put(a.cid, a.bytes)
    await node.blockstore.put(b.cid, b.bytes)
    await node.blockstore.put(a.cid, a.bytes) // stored again: replaces itself, counted once
    expect(node.usage.bytes).toBe(3500)
    expect(new Uint8Array(await readBlock(node.blockstore, b.cid))).toEqual(b.bytes)
    await node.blockstore.delete(a.cid)
    await node.blockstore.delete(a.cid) // already gone: nothing to subtract
    expect(node.usage.bytes).toBe(2500)
    expect(node.usage.measure()).toBe(2500)
    await node.stop()
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
