/**
 * Anchoring on a chain shared through PostgreSQL (migration `ops/006-anchors`): the anchors table
 * and the chain's blocks as the anchorer (cloud/anchor/anchorer.ts) reads them, in the database
 * every cloud process shares. The process holding the sealer lease anchors (cloud/runtime.ts);
 * every process answers GET /v1/anchors, /healthz and its metrics from these rows.
 *
 * Each write is one statement, conditional on the row still being pending (as in cloud.db); an
 * attempt is appended to the JSONB array in place, never read, changed and written back, so no
 * signed transaction of an anchor is ever lost from its row.
 */
import type pg from 'pg'
import { toAnchorRow, type AnchorRecords, type AnchorRow, type AnchorTarget, type Mined, type NewAnchor, type RawAnchor, type TxAttempt } from '../../anchor/store.ts'
import { toBlock, type BlockRead, type BlockRow, type BlockSource } from '../../anchor/blocks.ts'

const WHERE = 'chain_id = $1 AND contract = $2'

export class PgAnchorStore implements AnchorRecords {
  readonly #pool: pg.Pool
  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  async #one(sql: string, args: unknown[]): Promise<AnchorRow | null> {
    const r = (await this.#pool.query<RawAnchor>(sql, args)).rows[0]
    return r ? toAnchorRow(r) : null
  }

  pending(t: AnchorTarget): Promise<AnchorRow | null> {
    return this.#one(`SELECT * FROM anchors WHERE ${WHERE} AND status = 'pending'`, [t.chainId, t.contract])
  }

  latestConfirmed(t: AnchorTarget): Promise<AnchorRow | null> {
    return this.#one(`SELECT * FROM anchors WHERE ${WHERE} AND status = 'confirmed' ORDER BY height DESC LIMIT 1`, [t.chainId, t.contract])
  }

  highest(t: AnchorTarget): Promise<AnchorRow | null> {
    return this.#one(`SELECT * FROM anchors WHERE ${WHERE} AND status <> 'failed' ORDER BY height DESC LIMIT 1`, [t.chainId, t.contract])
  }

  at(t: AnchorTarget, height: number): Promise<AnchorRow | null> {
    return this.#one(`SELECT * FROM anchors WHERE ${WHERE} AND height = $3 AND status <> 'failed'`, [t.chainId, t.contract, height])
  }

  get(id: number): Promise<AnchorRow | null> {
    return this.#one('SELECT * FROM anchors WHERE id = $1', [id])
  }

  async insertPending(a: NewAnchor): Promise<AnchorRow | null> {
    // ON CONFLICT DO NOTHING covers both partial unique indexes: another anchor in flight, or this height taken.
    return this.#one(
      `INSERT INTO anchors (chain_id, contract, account, height, block_hash, records_root, nonce, status, attempts, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8::jsonb, $9) ON CONFLICT DO NOTHING RETURNING *`,
      [a.chainId, a.contract, a.account, a.height, a.blockHash, a.recordsRoot, a.nonce, JSON.stringify([a.attempt]), a.createdAt],
    )
  }

  async addAttempt(id: number, attempt: TxAttempt): Promise<void> {
    await this.#pool.query(`UPDATE anchors SET attempts = attempts || $2::jsonb WHERE id = $1 AND status = 'pending'`, [id, JSON.stringify([attempt])])
  }

  async countResend(id: number): Promise<void> {
    await this.#pool.query(`UPDATE anchors SET resends = resends + 1 WHERE id = $1 AND status = 'pending'`, [id])
  }

  async setMined(id: number, m: Mined): Promise<void> {
    await this.#pool.query(
      `UPDATE anchors SET tx_hash = $2, evm_block = $3, evm_block_hash = $4, confirmations = $5, gas_used = $6, effective_gas_price = $7,
       mined_at = coalesce(mined_at, $8) WHERE id = $1 AND status = 'pending'`,
      [id, m.txHash, m.evmBlock, m.evmBlockHash, m.confirmations, m.gasUsed, m.effectiveGasPrice, m.at],
    )
  }

  async setUnmined(id: number): Promise<void> {
    await this.#pool.query(`UPDATE anchors SET tx_hash = NULL, evm_block = NULL, evm_block_hash = NULL, confirmations = 0, mined_at = NULL WHERE id = $1 AND status = 'pending'`, [id])
  }

  async confirm(id: number, at: number): Promise<void> {
    await this.#pool.query(`UPDATE anchors SET status = 'confirmed', confirmed_at = $2 WHERE id = $1 AND status = 'pending'`, [id, at])
  }

  async fail(id: number, error: string): Promise<void> {
    await this.#pool.query(`UPDATE anchors SET status = 'failed', error = $2 WHERE id = $1 AND status = 'pending'`, [id, error])
  }

  async list(q: { before?: number; limit: number }): Promise<AnchorRow[]> {
    const r = await this.#pool.query<RawAnchor>('SELECT * FROM anchors WHERE id < $1 ORDER BY id DESC LIMIT $2', [q.before ?? Number.MAX_SAFE_INTEGER, q.limit])
    return r.rows.map(toAnchorRow)
  }
}

/** The shared chain's blocks, as anchoring reads them (the hash recomputed from the header, cloud/anchor/blocks.ts). */
export class PgChainBlocks implements BlockSource {
  readonly #pool: pg.Pool
  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  async head(): Promise<BlockRead | null> {
    const r = (await this.#pool.query<BlockRow>('SELECT height, header FROM blocks ORDER BY height DESC LIMIT 1')).rows[0]
    return r ? toBlock(r) : null
  }

  async at(height: number): Promise<BlockRead | null> {
    const r = (await this.#pool.query<BlockRow>('SELECT height, header FROM blocks WHERE height = $1', [height])).rows[0]
    return r ? toBlock(r) : null
  }
}
