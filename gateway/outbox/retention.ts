/**
 * Retention: readings and ciphertext of batches the cloud has held for longer than the configured
 * retention are deleted from the gateway (the batch row — manifest, commitment, cloud record id —
 * stays as the local audit trail). Unsynced data is never pruned, whatever its age.
 */
import type Database from 'better-sqlite3'
import type { Blockstore } from 'interface-blockstore'
import type { Logger } from 'pino'
import { existsSync } from 'node:fs'
import { readdir, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import * as Digest from 'multiformats/hashes/digest'
import { base32upper } from 'multiformats/bases/base32'
import { NextToLast } from 'blockstore-fs/sharding'

/** Batches pruned per query (each in its own short transaction, so ingest is never held up for long). */
const PRUNE_CHUNK = 1000

/**
 * Prune every synced batch past retention (in chunks of PRUNE_CHUNK; returns how many). It runs
 * hourly, so it must clear everything due: a gateway sealing a few batches per second per stream
 * makes far more than one chunk's worth an hour.
 */
export async function pruneSynced(db: Database.Database, blocks: Blockstore, retentionMs: number, logger: Logger, now = Date.now()): Promise<number> {
  const dueQuery = db.prepare<[number, number], { batch_id: number; cid: string }>(
    'SELECT batch_id, cid FROM batches WHERE synced_at IS NOT NULL AND pruned_at IS NULL AND synced_at <= ? ORDER BY batch_id LIMIT ?',
  )
  const deleteReadings = db.prepare('DELETE FROM readings WHERE batch_id = ?')
  const markPruned = db.prepare('UPDATE batches SET pruned_at = ? WHERE batch_id = ? AND pruned_at IS NULL')
  const deleteEnvelope = db.prepare('DELETE FROM envelope_blocks WHERE cid = ?')
  let pruned = 0
  for (;;) {
    const due = dueQuery.all(now - retentionMs, PRUNE_CHUNK)
    for (const { batch_id, cid } of due) {
      db.transaction(() => {
        deleteReadings.run(batch_id)
        markPruned.run(now, batch_id)
        deleteEnvelope.run(cid) // in the same transaction: one fsync, not a second one per block
      }).immediate()
      await blocks.delete(CID.parse(cid)) // a pre-v3 block's file (gateway/blocks.ts)
    }
    pruned += due.length
    if (due.length < PRUNE_CHUNK) break
  }
  if (pruned > 0) {
    db.pragma('incremental_vacuum')
    logger.info({ event: 'pruned', batches: pruned }, `pruned ${pruned} synced batches past retention`)
  }
  return pruned
}

/**
 * Envelope block files no batch names: before gateway schema v3 the sealer wrote a batch's block
 * file before the transaction that committed the batch, so a crash between the two left the file
 * behind (the readings were sealed again into a new block). Since v3 blocks are committed with
 * their batches (gateway/blocks.ts) and none can be orphaned; this sweeps what older builds left (nothing else
 * would ever delete those files, and they count against the disk budget).
 * Run once when the back office starts, before the first seal (so no block of a batch being
 * sealed can be mistaken for one): deletes every block that is not the envelope of an unpruned
 * batch, and the temporary files of block writes a crash cut short.
 */
export async function deleteOrphanBlocks(db: Database.Database, blocks: Blockstore, dataDir: string, logger: Logger): Promise<number> {
  const dir = join(dataDir, 'blocks')
  if (!existsSync(dir)) return 0
  const sharding = new NextToLast() // blockstore-fs's default layout, as in gateway/blocks.ts
  const named = new Set<string>()
  for (const cid of db.prepare<[], string>('SELECT cid FROM batches WHERE pruned_at IS NULL').pluck().iterate()) named.add(sharding.encode(CID.parse(cid)).file)
  let deleted = 0
  for (const shard of await readdir(dir, { withFileTypes: true })) {
    if (!shard.isDirectory()) continue
    for (const file of await readdir(join(dir, shard.name))) {
      if (file.startsWith('.') && file.endsWith('.tmp')) {
        await unlink(join(dir, shard.name, file)).catch(() => {})
        continue
      }
      if (!file.endsWith('.data') || named.has(file)) continue
      let cid: CID
      try {
        cid = CID.createV1(raw.code, Digest.decode(base32upper.decode(file.slice(0, -'.data'.length))))
      } catch {
        continue // not a block file of ours: leave it alone
      }
      await blocks.delete(cid)
      deleted++
    }
  }
  if (deleted > 0) logger.info({ event: 'orphan_blocks_deleted', blocks: deleted }, `deleted ${deleted} envelope blocks that no batch names (left by an interrupted seal)`)
  return deleted
}
