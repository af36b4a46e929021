/**
 * What the blockstore scrub needs of each record (verify-envelopes.ts scans them; ChainBackend
 * pages them from either store): a module of its own, without the blockstore code, so the chain
 * stores can name it without loading that.
 */

/** A record's id, envelope CID, the gateway that uploaded it, its block. */
export interface EnvelopeRef {
  readonly id: number
  readonly cid: string
  readonly gateway_id: string
  readonly block_height: number | null
}

/** Records with an envelope (a tombstone has none), id > ?, oldest first, at most ? — SQLite's placeholders. */
export const ENVELOPE_REFS_SQL = "SELECT id, cid, gateway_id, block_height FROM records WHERE id > ? AND cid <> '' ORDER BY id LIMIT ?"
