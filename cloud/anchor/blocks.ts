/**
 * What an anchor is about: a block of the cloud's chain, read straight from the `blocks` table
 * (any connection, read-only will do; on PostgreSQL the shared table, cloud/store/pg/anchors.ts),
 * its hash recomputed from the stored header — SHA-256 of the
 * canonical header (cloud/chain/block.ts), never the stored hash column — and its records root.
 */
import type Database from 'better-sqlite3'
import { bytesToHex } from '@noble/hashes/utils.js'
import { blockHash, decodeBlockHeader } from '../chain/block.ts'
import type { AnchorPoint } from './contract.ts'
import type { Awaitable } from '../access/store.ts'

export interface ChainBlock extends AnchorPoint {
  /** The header's link to the previous block's hash (null at height 0). */
  readonly prev: string | null
}

/** A row of `blocks` as either database returns it. */
export type BlockRow = { height: number; header: Buffer }

/** The block as anchoring sees it; a header that no longer decodes yields null fields except the hash. */
export function toBlock(r: BlockRow): ChainBlock | { height: number; blockHash: string; damaged: true } {
  const bytes = new Uint8Array(r.header.buffer, r.header.byteOffset, r.header.byteLength)
  const hash = bytesToHex(blockHash(bytes))
  try {
    const h = decodeBlockHeader(bytes)
    return { height: r.height, blockHash: hash, recordsRoot: h.recordsRoot, prev: h.prev }
  } catch {
    return { height: r.height, blockHash: hash, damaged: true }
  }
}

export type BlockRead = ReturnType<typeof toBlock>

export const isDamaged = (b: BlockRead): b is { height: number; blockHash: string; damaged: true } => 'damaged' in b

/** The blocks anchoring reads: the newest, and one by height. */
export interface BlockSource {
  head(): Awaitable<BlockRead | null>
  at(height: number): Awaitable<BlockRead | null>
}

/** Reads blocks of the chain in `db`. */
export class ChainBlocks implements BlockSource {
  readonly #head
  readonly #at
  readonly #range

  constructor(db: Database.Database) {
    this.#head = db.prepare('SELECT height, header FROM blocks ORDER BY height DESC LIMIT 1')
    this.#at = db.prepare('SELECT height, header FROM blocks WHERE height = ?')
    this.#range = db.prepare('SELECT height, header FROM blocks WHERE height BETWEEN ? AND ? ORDER BY height')
  }

  head(): BlockRead | null {
    const r = this.#head.get() as BlockRow | undefined
    return r ? toBlock(r) : null
  }

  at(height: number): BlockRead | null {
    const r = this.#at.get(height) as BlockRow | undefined
    return r ? toBlock(r) : null
  }

  *range(from: number, to: number): Generator<BlockRead> {
    for (const r of this.#range.iterate(from, to) as IterableIterator<BlockRow>) yield toBlock(r)
  }
}
