/**
 * The cloud's envelope blockstore: `<data>/blocks/`, one file per block, named by CID
 * (blockstore-fs, the store Helia uses — so the directory can back a Helia node later).
 * Envelopes are written before their record is appended to the chain: an orphan block left by a
 * crash between the two is harmless (the gateway resends the batch, the put is idempotent).
 *
 * Durability: blockstore-fs writes a temporary file and renames it, without fsync. The chain's
 * commit is fsynced (synchronous=FULL), so a power cut could leave a committed record whose
 * envelope file is empty or missing. `put` therefore fsyncs the block file and its directory
 * before it returns (the same layout blockstore-fs uses: its default NextToLast sharding).
 *
 * interface-blockstore 7: `get` yields the block in chunks; we join them.
 */
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { FsBlockstore } from 'blockstore-fs'
import { NextToLast } from 'blockstore-fs/sharding'
import type { CID } from 'multiformats/cid'

async function fsyncPath(path: string, flags: string): Promise<void> {
  const fh = await open(path, flags)
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

export class EnvelopeStore {
  readonly #fs: FsBlockstore
  readonly #dir: string
  readonly #sharding: NextToLast

  private constructor(fs: FsBlockstore, dir: string, sharding: NextToLast) {
    this.#fs = fs
    this.#dir = dir
    this.#sharding = sharding
  }

  static async open(dir: string): Promise<EnvelopeStore> {
    const sharding = new NextToLast()
    const fs = new FsBlockstore(dir, { shardingStrategy: sharding })
    await fs.open()
    return new EnvelopeStore(fs, dir, sharding)
  }

  /** Store a block durably (fsynced); a block already present is left alone. */
  async put(cid: CID, bytes: Uint8Array): Promise<void> {
    if (await this.#fs.has(cid)) return
    await this.#fs.put(cid, bytes)
    const { dir, file } = this.#sharding.encode(cid)
    await fsyncPath(join(this.#dir, dir, file), 'r')
    await fsyncPath(join(this.#dir, dir), 'r')
  }

  has(cid: CID): Promise<boolean> {
    return this.#fs.has(cid)
  }

  /** The block's bytes, or null if this store does not hold it. */
  async get(cid: CID): Promise<Uint8Array | null> {
    if (!(await this.#fs.has(cid))) return null
    const chunks: Uint8Array[] = []
    for await (const c of this.#fs.get(cid)) chunks.push(c)
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
  }

  close(): Promise<void> {
    return this.#fs.close()
  }
}
