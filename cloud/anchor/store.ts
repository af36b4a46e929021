/**
 * The anchors the cloud has made, in cloud.db (on PostgreSQL, the same table in the shared
 * database: cloud/store/pg/anchors.ts): one row per anchor of a chain block, with every
 * signed transaction sent for it (the first, and replacements with higher fees at the same
 * nonce). A row is written, with its signed transaction, BEFORE the transaction is broadcast:
 * after a crash, an RPC outage or a lost answer the same bytes are broadcast again, so an anchor
 * is never sent twice under two nonces. A partial unique index allows one pending anchor per
 * (EVM chain, contract), which is what keeps the service and `careledger chain anchor` from
 * doubling an anchor when both run.
 *
 *   pending    signed, maybe mined (evm_block set) but not yet `confirmations` deep
 *   confirmed  mined and at least `confirmations` deep: it counts
 *   failed     refused by the contract, or its nonce consumed by another transaction
 */
import { applyMigrations, registerMigrations, type CloudDb, type Migration } from '../store/db.ts'
import type { Awaitable } from '../access/store.ts'

export const ANCHOR_MIGRATIONS: readonly Migration[] = [
  {
    name: 'anchor/001-anchors',
    sql: `
      CREATE TABLE anchors (
        id INTEGER PRIMARY KEY,
        chain_id INTEGER NOT NULL,
        contract TEXT NOT NULL,
        account TEXT NOT NULL,
        height INTEGER NOT NULL CHECK (height >= 0),
        block_hash TEXT NOT NULL CHECK (length(block_hash) = 64),
        records_root TEXT NOT NULL CHECK (length(records_root) = 64),
        nonce INTEGER NOT NULL CHECK (nonce >= 0),
        status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed')),
        -- JSON [{hash, raw, maxFeePerGas, maxPriorityFeePerGas, gasPrice, sentAt}], oldest first
        attempts TEXT NOT NULL,
        tx_hash TEXT,
        evm_block INTEGER,
        evm_block_hash TEXT,
        confirmations INTEGER NOT NULL DEFAULT 0,
        gas_used INTEGER,
        effective_gas_price TEXT,
        resends INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created_at INTEGER NOT NULL,
        mined_at INTEGER,
        confirmed_at INTEGER
      ) STRICT;
      CREATE UNIQUE INDEX anchors_one_pending ON anchors (chain_id, contract) WHERE status = 'pending';
      CREATE UNIQUE INDEX anchors_height ON anchors (chain_id, contract, height) WHERE status <> 'failed';
    `,
  },
]

registerMigrations(ANCHOR_MIGRATIONS)

export type AnchorStatus = 'pending' | 'confirmed' | 'failed'

/** One signed transaction sent for an anchor. Fees in wei, as decimal strings. */
export interface TxAttempt {
  readonly hash: string
  readonly raw: string
  readonly maxFeePerGas: string | null
  readonly maxPriorityFeePerGas: string | null
  readonly gasPrice: string | null
  readonly sentAt: number
}

export interface AnchorRow {
  readonly id: number
  readonly chainId: number
  readonly contract: string
  readonly account: string
  readonly height: number
  readonly blockHash: string
  readonly recordsRoot: string
  readonly nonce: number
  readonly status: AnchorStatus
  readonly attempts: readonly TxAttempt[]
  /** The transaction that was mined (one of the attempts). */
  readonly txHash: string | null
  readonly evmBlock: number | null
  readonly evmBlockHash: string | null
  readonly confirmations: number
  readonly gasUsed: number | null
  readonly effectiveGasPrice: string | null
  readonly resends: number
  readonly error: string | null
  readonly createdAt: number
  readonly minedAt: number | null
  readonly confirmedAt: number | null
}

/** A row as the database returns it (attempts: JSON text in SQLite, already parsed from JSONB in PostgreSQL). */
export interface RawAnchor {
  id: number
  chain_id: number
  contract: string
  account: string
  height: number
  block_hash: string
  records_root: string
  nonce: number
  status: AnchorStatus
  attempts: string | TxAttempt[]
  tx_hash: string | null
  evm_block: number | null
  evm_block_hash: string | null
  confirmations: number
  gas_used: number | null
  effective_gas_price: string | null
  resends: number
  error: string | null
  created_at: number
  mined_at: number | null
  confirmed_at: number | null
}

export const toAnchorRow = (r: RawAnchor): AnchorRow => ({
  id: r.id,
  chainId: r.chain_id,
  contract: r.contract,
  account: r.account,
  height: r.height,
  blockHash: r.block_hash,
  recordsRoot: r.records_root,
  nonce: r.nonce,
  status: r.status,
  attempts: typeof r.attempts === 'string' ? (JSON.parse(r.attempts) as TxAttempt[]) : r.attempts,
  txHash: r.tx_hash,
  evmBlock: r.evm_block,
  evmBlockHash: r.evm_block_hash,
  confirmations: r.confirmations,
  gasUsed: r.gas_used,
  effectiveGasPrice: r.effective_gas_price,
  resends: r.resends,
  error: r.error,
  createdAt: r.created_at,
  minedAt: r.mined_at,
  confirmedAt: r.confirmed_at,
})

/** What a new anchor is stored with: its first signed transaction. */
export type NewAnchor = Pick<AnchorRow, 'chainId' | 'contract' | 'account' | 'height' | 'blockHash' | 'recordsRoot' | 'nonce' | 'createdAt'> & { readonly attempt: TxAttempt }

export interface Mined {
  readonly txHash: string
  readonly evmBlock: number
  readonly evmBlockHash: string
  readonly confirmations: number
  readonly gasUsed: number
  readonly effectiveGasPrice: string
  readonly at: number
}

/** Which EVM chain and contract the rows are about. */
export interface AnchorTarget {
  readonly chainId: number
  readonly contract: string
}

/**
 * Where the anchors are kept: cloud.db (AnchorStore, synchronous) or the shared PostgreSQL
 * (PgAnchorStore). Every write is conditional on the row still being pending, so two writers
 * never undo each other's confirmation or failure.
 */
export interface AnchorRecords {
  pending(t: AnchorTarget): Awaitable<AnchorRow | null>
  latestConfirmed(t: AnchorTarget): Awaitable<AnchorRow | null>
  /** The highest anchor that is pending or confirmed. */
  highest(t: AnchorTarget): Awaitable<AnchorRow | null>
  /** The anchor (pending or confirmed) of block `height`. */
  at(t: AnchorTarget, height: number): Awaitable<AnchorRow | null>
  get(id: number): Awaitable<AnchorRow | null>
  /** Insert a pending anchor; null if another one is pending for the same target or holds that height (nothing written). */
  insertPending(a: NewAnchor): Awaitable<AnchorRow | null>
  addAttempt(id: number, attempt: TxAttempt): Awaitable<void>
  countResend(id: number): Awaitable<void>
  setMined(id: number, m: Mined): Awaitable<void>
  /** A reorganisation took its transaction out of the EVM chain. */
  setUnmined(id: number): Awaitable<void>
  confirm(id: number, at: number): Awaitable<void>
  fail(id: number, error: string): Awaitable<void>
  /** Newest first; `before` is an id cursor. */
  list(q: { before?: number; limit: number }): Awaitable<AnchorRow[]>
}

export class AnchorStore implements AnchorRecords {
  readonly #q

  constructor(db: CloudDb) {
    applyMigrations(db, ANCHOR_MIGRATIONS)
    const where = 'chain_id = @chainId AND contract = @contract'
    this.#q = {
      pending: db.prepare(`SELECT * FROM anchors WHERE ${where} AND status = 'pending'`),
      latest: db.prepare(`SELECT * FROM anchors WHERE ${where} AND status = @status ORDER BY height DESC LIMIT 1`),
      highest: db.prepare(`SELECT * FROM anchors WHERE ${where} AND status <> 'failed' ORDER BY height DESC LIMIT 1`),
      get: db.prepare('SELECT * FROM anchors WHERE id = ?'),
      at: db.prepare(`SELECT * FROM anchors WHERE ${where} AND height = @height AND status <> 'failed'`),
      insert: db.prepare(
        `INSERT INTO anchors (chain_id, contract, account, height, block_hash, records_root, nonce, status, attempts, created_at)
         VALUES (@chainId, @contract, @account, @height, @blockHash, @recordsRoot, @nonce, 'pending', @attempts, @createdAt)`,
      ),
      attempts: db.prepare(`UPDATE anchors SET attempts = ? WHERE id = ? AND status = 'pending'`),
      resent: db.prepare(`UPDATE anchors SET resends = resends + 1 WHERE id = ? AND status = 'pending'`),
      mined: db.prepare(
        `UPDATE anchors SET tx_hash = @txHash, evm_block = @evmBlock, evm_block_hash = @evmBlockHash, confirmations = @confirmations,
         gas_used = @gasUsed, effective_gas_price = @effectiveGasPrice, mined_at = coalesce(mined_at, @at) WHERE id = @id AND status = 'pending'`,
      ),
      unmined: db.prepare(`UPDATE anchors SET tx_hash = NULL, evm_block = NULL, evm_block_hash = NULL, confirmations = 0, mined_at = NULL WHERE id = ? AND status = 'pending'`),
      confirm: db.prepare(`UPDATE anchors SET status = 'confirmed', confirmed_at = @at WHERE id = @id AND status = 'pending'`),
      fail: db.prepare(`UPDATE anchors SET status = 'failed', error = @error WHERE id = @id AND status = 'pending'`),
      page: db.prepare(`SELECT * FROM anchors WHERE id < @before ORDER BY id DESC LIMIT @limit`),
    }
  }

  pending(t: AnchorTarget): AnchorRow | null {
    const r = this.#q.pending.get(t) as RawAnchor | undefined
    return r ? toAnchorRow(r) : null
  }

  latestConfirmed(t: AnchorTarget): AnchorRow | null {
    const r = this.#q.latest.get({ ...t, status: 'confirmed' }) as RawAnchor | undefined
    return r ? toAnchorRow(r) : null
  }

  /** The highest anchor that is pending or confirmed. */
  highest(t: AnchorTarget): AnchorRow | null {
    const r = this.#q.highest.get(t) as RawAnchor | undefined
    return r ? toAnchorRow(r) : null
  }

  /** The anchor (pending or confirmed) of block `height`. */
  at(t: AnchorTarget, height: number): AnchorRow | null {
    const r = this.#q.at.get({ ...t, height }) as RawAnchor | undefined
    return r ? toAnchorRow(r) : null
  }

  get(id: number): AnchorRow | null {
    const r = this.#q.get.get(id) as RawAnchor | undefined
    return r ? toAnchorRow(r) : null
  }

  /** Insert a pending anchor; null if another one is pending for the same target or holds that height (nothing written). */
  insertPending(a: NewAnchor): AnchorRow | null {
    try {
      const { lastInsertRowid } = this.#q.insert.run({ ...a, attempts: JSON.stringify([a.attempt]) })
      return this.get(Number(lastInsertRowid))
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') return null
      throw e
    }
  }

  addAttempt(id: number, attempt: TxAttempt): void {
    const row = this.get(id)
    if (row) this.#q.attempts.run(JSON.stringify([...row.attempts, attempt]), id)
  }

  countResend(id: number): void {
    this.#q.resent.run(id)
  }

  setMined(id: number, m: Mined): void {
    this.#q.mined.run({ id, ...m })
  }

  /** A reorganisation took its transaction out of the EVM chain. */
  setUnmined(id: number): void {
    this.#q.unmined.run(id)
  }

  confirm(id: number, at: number): void {
    this.#q.confirm.run({ id, at })
  }

  fail(id: number, error: string): void {
    this.#q.fail.run({ id, error })
  }

  /** Newest first; `before` is an id cursor. */
  list(q: { before?: number; limit: number }): AnchorRow[] {
    return (this.#q.page.all({ before: q.before ?? Number.MAX_SAFE_INTEGER, limit: q.limit }) as RawAnchor[]).map(toAnchorRow)
  }
}
