/**
 * The cloud's envelope blockstore, and its first form: one file per block under `<data>/blocks/`, named by CID
 * (blockstore-fs, the store Helia uses — so the directory can back a Helia node later).
 * Envelopes are written before their record is appended to the chain: an orphan block left by a
 * crash between the two is harmless (the gateway resends the batch, the put is idempotent).
 *
 * Durability: blockstore-fs writes a temporary file and renames it, without fsync, and the chain's
 * commit is fsynced (synchronous=FULL), so a power cut could leave a committed record whose
 * envelope file is empty or missing. `put` therefore writes the block itself, in the layout
 * blockstore-fs reads (its default NextToLast sharding): a temporary file, written and fsynced,
 * renamed into place, then the shard directory fsynced (and the blocks directory, when the shard
 * is new) — the directory fsyncs through a GroupSync (group-sync.ts), so the uploads of one
 * moment share them. `put` returns only when all of it is on disk. A block file already present
 * is not trusted (a crash before its fsync may have left it empty or short): `put` writes the
 * block again over it, the same way.
 *
 * interface-blockstore 7: `get` yields the block in chunks; we join them.
 *
 * Integrity: a block file can rot or be damaged on disk, and after the gateways' retention it is
 * the only copy. `checkBlockFile` re-hashes one file against its CID (the blockstore scrub and
 * `chain verify`), and `replace` puts a good copy over a damaged one (a repair).
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { GroupSync } from './group-sync.ts'
import { join } from 'node:path'
import { FsBlockstore } from 'blockstore-fs'
import { NextToLast } from 'blockstore-fs/sharding'
import type { CID } from 'multiformats/cid'

const sharding = new NextToLast()
const SHA2_256 = 0x12

/** Where blockstore-fs (NextToLast sharding, its default) keeps a block under `dir`. */
export function blockFilePath(dir: string, cid: CID): string {
  const { dir: shard, file } = sharding.encode(cid)
  return join(dir, shard, file)
}

export type BlockCheck = { readonly state: 'ok'; readonly bytes: number } | { readonly state: 'missing' | 'corrupt'; readonly detail: string }

/** Re-hash the block file of `cid` under `dir`: ok, missing, or corrupt (its bytes do not hash to the CID). */
export async function checkBlockFile(dir: string, cid: CID): Promise<BlockCheck> {
  let bytes: Buffer
  try {
    bytes = await readFile(blockFilePath(dir, cid))
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing', detail: 'no block file' }
    return { state: 'corrupt', detail: `unreadable: ${(e as Error).message}` }
  }
  return checkBlockBytes(cid, bytes)
}

/** Whether a block's stored bytes (a file's, a row's) hash to its CID: ok, or corrupt saying why. */
export function checkBlockBytes(cid: CID, bytes: Uint8Array): BlockCheck {
  if (cid.multihash.code !== SHA2_256) return { state: 'corrupt', detail: `multihash 0x${cid.multihash.code.toString(16)} cannot be checked (only sha2-256 is stored)` }
  if (!isBlockOf(cid, bytes)) return { state: 'corrupt', detail: `its ${bytes.length} bytes hash to SHA-256 ${createHash('sha256').update(bytes).digest('hex')}, not the CID's digest` }
  return { state: 'ok', bytes: bytes.length }
}

/** Whether `bytes` are the block `cid` names (sha2-256 only). */
export const isBlockOf = (cid: CID, bytes: Uint8Array): boolean =>
  cid.multihash.code === SHA2_256 && createHash('sha256').update(bytes).digest().equals(cid.multihash.digest)

let tmpNo = 0
/** A temporary name beside `path`, unique in this process; not a block name (blockstore-fs lists `*.data`). */
const tmpPath = (path: string): string => join(dirname(path), `.${basename(path)}.${process.pid}-${++tmpNo}.tmp`)

/**
 * Where the cloud keeps envelope blocks: a table of cloud.db (envelope-table.ts, migration
 * "envelopes/001"), a table of the shared PostgreSQL database (store/pg/envelopes.ts, "ops/005"),
 * or one file per block (this file: what both wrote before their tables, still read through it).
 */
export interface EnvelopeStore {
  /**
   * Store a block an upload is about to append a record for: durable no later than the chain's
   * next commit (the file form: when this resolves). The caller has checked `isBlockOf(cid, bytes)`.
   * A copy already present is replaced by this one.
   */
  put(cid: CID, bytes: Uint8Array): Promise<void>
  /** Put a good copy over whatever the store holds (a repair): durable when this resolves. */
  replace(cid: CID, bytes: Uint8Array): Promise<void>
  /** Remove a block for good (a redacted record's old ciphertext); absent already is fine. */
  delete(cid: CID): Promise<void>
  /** Re-hash this store's copy of a block. */
  check(cid: CID): Promise<BlockCheck>
  has(cid: CID): Promise<boolean>
  /** The block's bytes, or null if this store does not hold it. */
  get(cid: CID): Promise<Uint8Array | null>
  close(): Promise<void>
}

export class FileEnvelopeStore implements EnvelopeStore {
  readonly #fs: FsBlockstore
  readonly #dir: string
  readonly #sharding: NextToLast
  readonly #dirSync = new GroupSync()
  /** Shard directories known to exist (and be durable) in this process. */
  readonly #shards = new Set<string>()

  private constructor(fs: FsBlockstore, dir: string, sharding: NextToLast) {
    this.#fs = fs
    this.#dir = dir
    this.#sharding = sharding
  }

  static async open(dir: string): Promise<FileEnvelopeStore> {
    const sharding = new NextToLast()
    const fs = new FsBlockstore(dir, { shardingStrategy: sharding })
    await fs.open()
    return new FileEnvelopeStore(fs, dir, sharding)
  }

  /**
   * Store a block durably: when this resolves, the file and its directory entry are on disk. The
   * caller has checked `isBlockOf(cid, bytes)`. A copy already present is replaced by this one.
   */
  async put(cid: CID, bytes: Uint8Array): Promise<void> {
    const path = blockFilePath(this.#dir, cid)
    const shard = dirname(path)
    const dirs = [shard]
    if (!this.#shards.has(shard)) {
      // The shard directory is itself an entry of the blocks directory, perhaps made by a process
      // that died before syncing it: its first use here syncs that too.
      await mkdir(shard, { recursive: true })
      dirs.push(this.#dir)
      this.#shards.add(shard)
    }
    // Always a fresh copy, fsynced (flush) before it is renamed into place: a file already there
    // (a resend's, perhaps left short by a crash before its fsync) is replaced by good bytes
    // without being read first — reading it cost an open, and for the usual absent file a thrown
    // ENOENT, on every upload (issue 14's profile).
    const tmp = tmpPath(path)
    await writeFile(tmp, bytes, { mode: 0o644, flush: true })
    await rename(tmp, path)
    await this.#dirSync.sync(dirs)
  }

  /** Directory fsyncs asked for and done (fewer: shared by concurrent puts). */
  get syncStats(): GroupSync['stats'] {
    return this.#dirSync.stats
  }

  /**
   * Put a good copy of a block over whatever the store holds (a damaged file, or none): written to
   * a temporary file, fsynced, renamed over the old one, directory fsynced. The caller has checked
   * `isBlockOf(cid, bytes)`.
   */
  replace(cid: CID, bytes: Uint8Array): Promise<void> {
    return this.put(cid, bytes) // put never trusts a file already there
  }

  /** Remove a block for good (a redacted record's old ciphertext); absent already is fine. */
  async delete(cid: CID): Promise<void> {
    if (!(await this.#fs.has(cid))) return
    await this.#fs.delete(cid)
    await this.#dirSync.sync([join(this.#dir, this.#sharding.encode(cid).dir)])
  }

  /** Re-hash this store's copy of a block. */
  check(cid: CID): Promise<BlockCheck> {
    return checkBlockFile(this.#dir, cid)
  }

  has(cid: CID): Promise<boolean> {
    return this.#fs.has(cid)
  }

  /** The block's bytes, or null if this store does not hold it. */
  async get(cid: CID): Promise<Uint8Array | null> {
    // One readFile of the block's file (the path blockFilePath names, blockstore-fs's layout): an
    // export reads hundreds a request, and access() + a read stream cost several times as much.
    try {
      return await readFile(blockFilePath(this.#dir, cid))
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw e
    }
  }

  close(): Promise<void> {
    return this.#fs.close()
  }
}
