/**
 * The envelope blocks of a PostgreSQL deployment, in PostgreSQL (migration `ops/005-envelope-blocks`):
 * every cloud process reads and writes the same table, on any machine, so the ciphertext needs no
 * shared filesystem. The puts of one turn of the event loop (a bulk upload's items) go in as one
 * multi-row INSERT, committed (and flushed: synchronous_commit on) before the record's append, so
 * an acknowledged record never points at a missing envelope; a crash in between leaves an orphan
 * row, harmless (the resend stores it again). Two processes storing the same block write the same
 * bytes (ON CONFLICT … DO UPDATE).
 *
 * Blocks stored as files before this table (the shared `--blocks` directory of earlier versions)
 * stay readable: get, has and check fall back to them, delete removes both.
 */
import type pg from 'pg'
import type { CID } from 'multiformats/cid'
import { checkEnvelopeRow } from '../../service/envelope-table.ts'
import { TurnGroup } from '../../service/turn-group.ts'
import type { BlockCheck, EnvelopeStore, FileEnvelopeStore } from '../../service/blockstore.ts'

const UPSERT_MANY = `INSERT INTO envelope_blocks (cid, bytes) SELECT * FROM unnest($1::bytea[], $2::bytea[])
  ON CONFLICT (cid) DO UPDATE SET bytes = excluded.bytes`

const buf = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength)

export class PgEnvelopeStore implements EnvelopeStore {
  readonly #pool: pg.Pool
  readonly #legacy: FileEnvelopeStore | null
  /** A turn's puts as one multi-row INSERT; one row a CID (a bulk may carry a block twice: the last copy wins). */
  readonly #puts = new TurnGroup<{ cid: CID; bytes: Uint8Array }>(async (items) => {
    const byCid = [...new Map(items.map((p) => [buf(p.cid.bytes).toString('hex'), p])).values()]
    await this.#pool.query(UPSERT_MANY, [byCid.map((p) => buf(p.cid.bytes)), byCid.map((p) => buf(p.bytes))])
  })

  constructor(pool: pg.Pool, legacy: FileEnvelopeStore | null) {
    this.#pool = pool
    this.#legacy = legacy
  }

  put(cid: CID, bytes: Uint8Array): Promise<void> {
    return this.#puts.add({ cid, bytes })
  }

  async replace(cid: CID, bytes: Uint8Array): Promise<void> {
    await this.#pool.query(UPSERT_MANY, [[buf(cid.bytes)], [buf(bytes)]])
  }

  async delete(cid: CID): Promise<void> {
    await this.#pool.query('DELETE FROM envelope_blocks WHERE cid = $1', [buf(cid.bytes)])
    await this.#legacy?.delete(cid)
  }

  async #row(cid: CID): Promise<Buffer | undefined> {
    return (await this.#pool.query<{ bytes: Buffer }>('SELECT bytes FROM envelope_blocks WHERE cid = $1', [buf(cid.bytes)])).rows[0]?.bytes
  }

  async check(cid: CID): Promise<BlockCheck> {
    return checkEnvelopeRow(cid, await this.#row(cid)) ?? (this.#legacy ? this.#legacy.check(cid) : { state: 'missing', detail: 'no block' })
  }

  async has(cid: CID): Promise<boolean> {
    return (await this.#pool.query('SELECT 1 FROM envelope_blocks WHERE cid = $1', [buf(cid.bytes)])).rowCount! > 0 || (this.#legacy !== null && (await this.#legacy.has(cid)))
  }

  async get(cid: CID): Promise<Uint8Array | null> {
    return (await this.#row(cid)) ?? (this.#legacy ? this.#legacy.get(cid) : null)
  }

  async close(): Promise<void> {
    await this.#puts.flush()
    await this.#legacy?.close()
  }
}
