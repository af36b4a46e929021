/**
 * The gateway's IPFS blockstore: each sealed envelope is one raw block under its CIDv1. No IPFS
 * node is started: the gateway ships its blocks to the cloud as CARs and never serves them over
 * IPFS, so nothing here dials out or listens. (A Helia light node works offline too, but importing
 * `helia` alone costs ~95 MB of RSS, measured on this project's test machine, which a Raspberry Pi
 * gateway with a 250 MB budget cannot spare.)
 *
 * Where blocks live (gateway schema v3, gateway/seal/schema.ts):
 *   - in gateway.db's `envelope_blocks`, written by the sealer in the very transaction that commits
 *     the batch naming the block (gateway/seal/sealer.ts). So a committed batch always has its
 *     envelope, no block outlives a rolled-back pass, and a pass costs the one fsync of its commit;
 *     before v3 every block was a file with two fsyncs of its own, 17 % of the ingest thread's CPU at
 *     a ward's load (issue 11). `put` (no caller in the gateway itself) inserts there too, as its
 *     own fsynced transaction.
 *   - blocks sealed before v3: files in blockstore-fs's layout under `<data>/blocks` (NextToLast
 *     sharding), read and deleted from there until retention has removed them all; the orphan
 *     sweep (outbox/retention.ts) still cleans that directory.
 * `get`, `has` and `delete` look in the table first, then in the directory. `usage` counts the
 * directory only: the table is part of the database, which the disk budget measures itself.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type Database from 'better-sqlite3'
import { FsBlockstore } from 'blockstore-fs'
import { NextToLast } from 'blockstore-fs/sharding'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'

export interface BlockNode {
  readonly blockstore: Blockstore
  /** Bytes of the files under `<data>/blocks`: measured by `measure()`, then kept by delete (new blocks go to gateway.db). */
  readonly usage: BlockUsage
  stop(): Promise<void>
}

/**
 * What the blockstore occupies, for the disk budget. Walking the directory costs per file (a day's
 * backlog of a 20-bed ward is 345,600 blocks at 5-s batches), so it is walked once at start and
 * after each retention pass, and delete keeps the total in between.
 */
export class BlockUsage {
  #bytes = 0
  readonly #dir: string
  constructor(dir: string) {
    this.#dir = dir
  }
  get bytes(): number {
    return this.#bytes
  }
  /** Walk the blockstore (synchronous stats: ~10× cheaper per file than fs/promises; call it off the ingest thread). */
  measure(): number {
    let total = 0
    let shards: string[]
    try {
      shards = readdirSync(this.#dir)
    } catch {
      shards = []
    }
    for (const shard of shards) {
      let files: string[]
      try {
        files = readdirSync(join(this.#dir, shard))
      } catch {
        continue // a file, or deleted meanwhile
      }
      for (const f of files) {
        try {
          total += statSync(join(this.#dir, shard, f)).size
        } catch {
          // deleted meanwhile
        }
      }
    }
    this.#bytes = total
    return total
  }
  add(delta: number): void {
    this.#bytes = Math.max(0, this.#bytes + delta)
  }
}


/** The blockstore of the gateway whose database is `db` and data directory `dataDir`. */
export async function openBlockNode(dataDir: string, db: Database.Database): Promise<BlockNode> {
  const dir = join(dataDir, 'blocks')
  const sharding = new NextToLast()
  const files = new FsBlockstore(dir, { shardingStrategy: sharding })
  await files.open()
  const inner = files as unknown as Blockstore
  const usage = new BlockUsage(dir)
  const pathOf = (cid: CID): string => {
    const { dir: shard, file } = sharding.encode(cid)
    return join(dir, shard, file)
  }
  const q = {
    get: db.prepare<[string], Buffer>('SELECT bytes FROM envelope_blocks WHERE cid = ?').pluck(),
    has: db.prepare<[string], number>('SELECT 1 FROM envelope_blocks WHERE cid = ?').pluck(),
    put: db.prepare('INSERT OR REPLACE INTO envelope_blocks (cid, bytes) VALUES (?, ?)'),
    delete: db.prepare('DELETE FROM envelope_blocks WHERE cid = ?'),
  }
  const put: Blockstore['put'] = async (cid, bytes) => {
    let whole: Uint8Array
    if (bytes instanceof Uint8Array) whole = bytes
    else {
      const chunks: Uint8Array[] = []
      for await (const c of bytes) chunks.push(c)
      whole = Buffer.concat(chunks)
    }
    q.put.run(cid.toString(), whole)
    return cid
  }
  /** From the table, else one read of the whole pre-v3 file (blockstore-fs streams it through a FileHandle). */
  const get = (cid: CID): Uint8Array => {
    const row = q.get.get(cid.toString())
    return row === undefined ? readFileSync(pathOf(cid)) : new Uint8Array(row.buffer, row.byteOffset, row.byteLength)
  }
  const has: Blockstore['has'] = async (cid, options) => q.has.get(cid.toString()) !== undefined || (await inner.has(cid, options))
  const del: Blockstore['delete'] = async (cid, options) => {
    q.delete.run(cid.toString())
    let before: number
    try {
      before = statSync(pathOf(cid)).size
    } catch {
      return // no pre-v3 file
    }
    await inner.delete(cid, options)
    usage.add(-before)
  }
  const blockstore = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'put') return put
      if (prop === 'get') return get
      if (prop === 'has') return has
      if (prop === 'delete') return del
      const v = Reflect.get(target, prop, target) as unknown
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
  return { blockstore, usage, stop: () => files.close() }
}

/** A whole block; `offline` so a missing block fails at once instead of waiting forever. */
export async function readBlock(blocks: Blockstore, cid: CID): Promise<Uint8Array> {
  const out = blocks.get(cid, { offline: true } as never) as unknown
  if (out instanceof Uint8Array) return out
  const chunks: Uint8Array[] = []
  for await (const c of out as AsyncIterable<Uint8Array>) chunks.push(c)
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
}
