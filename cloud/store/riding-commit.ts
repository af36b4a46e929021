/**
 * A small write whose commit need not pay its own fsync: it rides on the next synchronous=FULL
 * commit. In WAL mode a commit appends frames to the WAL; with synchronous=NORMAL the WAL is not
 * fsynced at that commit, and the next FULL commit's fsync of the WAL makes every earlier frame
 * durable with it (recovery replays the WAL in order up to the last complete commit; SQLite, "WAL
 * mode": "transactions … are durable … after the next checkpoint or FULL commit"). So such a
 * write is durable no later than the next acknowledged batch, and a power cut loses it only if
 * nothing after it was acknowledged.
 *
 * For the request nonce a gateway upload claims and the gateway's last-sync time: before issue 14
 * each was its own fsynced transaction, on the event loop — two fsyncs per request beside the
 * batch's own. A replay of a request whose nonce a power cut lost can only be a request none of
 * whose effects was acknowledged (any acknowledgement would have made the nonce durable), so it
 * is then judged as if it were the first.
 */
import type { CloudDb } from './db.ts'

export function ridingCommit<T>(db: CloudDb, write: () => T): T {
  if (db.inTransaction) return write() // part of an enclosing transaction: its commit decides
  db.pragma('synchronous = NORMAL')
  try {
    return write()
  } finally {
    db.pragma('synchronous = FULL')
  }
}
