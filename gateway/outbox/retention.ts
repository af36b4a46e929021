/**
 * Retention: readings and ciphertext of batches the cloud has held for longer than the configured
 * retention are deleted from the gateway (the batch row — manifest, commitment, cloud record id —
 * stays as the local audit trail). Unsynced data is never pruned, whatever its age.
 */
import type Database from 'better-sqlite3'
import type { Blockstore } from 'interface-blockstore'
import type { Logger } from 'pino'
import { CID } from 'multiformats/cid'

export async function pruneSynced(db: Database.Database, blocks: Blockstore, retentionMs: number, logger: Logger, now = Date.now()): Promise<number> {
  const due = db
    .prepare<[number], { batch_id: number; cid: string }>(
      'SELECT batch_id, cid FROM batches WHERE synced_at IS NOT NULL AND pruned_at IS NULL AND synced_at <= ? ORDER BY batch_id LIMIT 1000',
    )
    .all(now - retentionMs)
  const deleteReadings = db.prepare('DELETE FROM readings WHERE batch_id = ?')
  const markPruned = db.prepare('UPDATE batches SET pruned_at = ? WHERE batch_id = ?')
  for (const { batch_id, cid } of due) {
    db.transaction(() => {
      deleteReadings.run(batch_id)
      markPruned.run(now, batch_id)
    }).immediate()
    await blocks.delete(CID.parse(cid))
  }
  if (due.length > 0) {
    db.pragma('incremental_vacuum')
    logger.info({ event: 'pruned', batches: due.length }, `pruned ${due.length} synced batches past retention`)
  }
  return due.length
}
