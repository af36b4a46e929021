/**
 * The gateway's IPFS blockstore in `<data>/blocks`: blockstore-fs, the file-system blockstore of
 * the Helia project (the one a Helia node is built on), holding each sealed envelope as one raw
 * block under its CIDv1. No IPFS node is started: the gateway ships its blocks to the cloud as CARs
 * and never serves them over IPFS, so nothing here dials out or listens. (A Helia light node over
 * the same store works offline too, but importing `helia` alone costs ~95 MB of RSS, measured on
 * this project's test machine, which a Raspberry Pi gateway with a 250 MB budget cannot spare.)
 *
 * Durability: blockstore-fs writes a temporary file and renames it, without fsync, while the
 * sealer's commit of the batch that names the block is fsynced (synchronous=FULL). A power cut
 * could then leave a committed batch whose envelope file is empty or missing — a batch the outbox
 * can never ship. So `put` here writes blockstore-fs's layout itself (same paths, same temporary
 * name) and fsyncs the block file and its directory before it returns (as the cloud's
 * EnvelopeStore does), and the commit only follows a block that is on disk. `get` reads the whole
 * file at once; `delete`, `has` and the rest are blockstore-fs's.
 */
import { closeSync, fsync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs'
import { promisify } from 'node:util'
import { basename, dirname, join } from 'node:path'
import { FsBlockstore } from 'blockstore-fs'
import { NextToLast } from 'blockstore-fs/sharding'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'

export interface BlockNode {
  readonly blockstore: Blockstore
  /** Bytes of the files under `<data>/blocks`: measured by `measure()`, then kept by put and delete. */
  readonly usage: BlockUsage
  stop(): Promise<void>
}

/**
 * What the blockstore occupies, for the disk budget. Walking the directory costs per file (a day's
 * backlog of a 20-bed ward is 345,600 blocks at 5-s batches), so it is walked once at start and
 * after each retention pass, and put/delete keep the total in between.
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

const sizeOf = (path: string): number => {
  try {
    return statSync(path).size
  } catch {
    return 0
  }
}

const fsyncFd = promisify(fsync)

/** fsync `fd` on the libuv pool (the one wait worth moving off the calling thread), then close it. */
async function syncAndClose(fd: number): Promise<void> {
  try {
    await fsyncFd(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * Write one block file atomically and durably: `.<file>.tmp` (blockstore-fs's temporary name, which
 * retention.ts cleans up after a crash), rename, fsync the file and the shard directory. The cheap calls
 * (mkdir, open, write, rename: page-cache work, microseconds) run synchronously; only the two fsyncs
 * go to the libuv pool. blockstore-fs's own put made ~13 pool round trips a block (mkdir, open,
 * write, close, rename, then our stat, open, fsync, close twice and stat): at a ward's 4 blocks a
 * second the promise and thread hand-offs cost more CPU than the writes (issue 11).
 */
async function writeBlockFile(path: string, bytes: Uint8Array, knownDirs: Set<string>): Promise<void> {
  const dir = dirname(path)
  if (!knownDirs.has(dir)) {
    mkdirSync(dir, { recursive: true })
    knownDirs.add(dir)
  }
  const tmp = join(dir, `.${basename(path)}.tmp`)
  let fd: number
  try {
    fd = openSync(tmp, 'w', 0o644)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
    mkdirSync(dir, { recursive: true }) // the shard directory was removed since we made it
    fd = openSync(tmp, 'w', 0o644)
  }
  try {
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off)
    renameSync(tmp, path)
  } catch (e) {
    closeSync(fd)
    throw e
  }
  // Rename first, then fsync the file (through the descriptor still open) and the directory: the
  // file's fsync commits the journal transaction that holds the rename too, so the directory's is
  // nearly free. fsync before the rename took two journal commits a block (3× the wall time of
  // test/gateway/backoffice.test.ts's 2,500 puts). A crash before both fsyncs returned leaves at
  // worst a block no committed batch names: an orphan, deleted at the next start (retention.ts).
  await syncAndClose(fd)
  await syncAndClose(openSync(dir, 'r'))
}

export async function openBlockNode(dataDir: string): Promise<BlockNode> {
  const dir = join(dataDir, 'blocks')
  const sharding = new NextToLast()
  const store = new FsBlockstore(dir, { shardingStrategy: sharding })
  await store.open()
  const inner = store as unknown as Blockstore
  const usage = new BlockUsage(dir)
  const pathOf = (cid: CID): string => {
    const { dir: shard, file } = sharding.encode(cid)
    return join(dir, shard, file)
  }
  const knownDirs = new Set<string>()
  const put: Blockstore['put'] = async (cid, bytes) => {
    const path = pathOf(cid)
    const before = sizeOf(path) // a block stored again replaces itself
    let whole: Uint8Array
    if (bytes instanceof Uint8Array) whole = bytes
    else {
      const chunks: Uint8Array[] = []
      for await (const c of bytes) chunks.push(c)
      whole = Buffer.concat(chunks)
    }
    await writeBlockFile(path, whole, knownDirs)
    usage.add(whole.length - before)
    return cid
  }
  /** One read of the whole file: blockstore-fs streams it through a FileHandle (several pool round trips a block). */
  const get = (cid: CID): Uint8Array => readFileSync(pathOf(cid))
  const del: Blockstore['delete'] = async (cid, options) => {
    const before = sizeOf(pathOf(cid))
    await inner.delete(cid, options)
    usage.add(-before)
  }
  const blockstore = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'put') return put
      if (prop === 'get') return get
      if (prop === 'delete') return del
      const v = Reflect.get(target, prop, target) as unknown
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
  return { blockstore, usage, stop: () => store.close() }
}

/** A whole block; `offline` so a missing block fails at once instead of waiting forever. */
export async function readBlock(blocks: Blockstore, cid: CID): Promise<Uint8Array> {
  const out = blocks.get(cid, { offline: true } as never) as unknown
  if (out instanceof Uint8Array) return out
  const chunks: Uint8Array[] = []
  for await (const c of out as AsyncIterable<Uint8Array>) chunks.push(c)
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
}
