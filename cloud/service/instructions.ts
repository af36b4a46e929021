/**
 * The cloud's side of the instruction channel to gateways (docs/api.md §Instructions to gateways;
 * the format and its signature: shared/protocol/instructions.ts). Instructions wait in the cloud's
 * store until their gateway fetches them (GET /v1/gateways/self/instructions) and acknowledges each
 * one: in cloud.db (SqliteInstructionStore, here), or in the PostgreSQL every process of a
 * deployment shares (cloud/store/pg/instructions.ts), so that a gateway polling any process gets
 * what any other issued.
 *
 *   pending ──ack done──► done        ──ack failed──► failed      ──ack unsupported──► unsupported
 *      └── cancel (no longer needed, e.g. the block was restored from a backup) ──► cancelled
 *
 * Issuing is idempotent: while an instruction of a kind with the same key (e.g. the CID) is pending
 * for a gateway, issuing it again returns that one. An acknowledgement is applied once; a repeated
 * one is answered with the state the first set.
 */
import type { CloudDb } from '../store/db.ts'
import { registerMigrations } from '../store/db.ts'
import { INSTRUCTION_VERSION, signInstruction, type Ack, type InstructionKind, type SignedInstruction } from '../../shared/protocol/instructions.ts'

registerMigrations([
  {
    name: 'service/002-gateway-instructions',
    sql: `
      CREATE TABLE gateway_instructions (
        id            INTEGER PRIMARY KEY,
        gateway_id    TEXT    NOT NULL,
        kind          TEXT    NOT NULL,
        key           TEXT    NOT NULL,
        args          TEXT    NOT NULL,
        issued_at     INTEGER NOT NULL,
        deliveries    INTEGER NOT NULL DEFAULT 0,
        delivered_at  INTEGER,
        state         TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed', 'unsupported', 'cancelled')),
        acked_at      INTEGER,
        detail        TEXT
      );
      CREATE UNIQUE INDEX gateway_instructions_open ON gateway_instructions (gateway_id, kind, key) WHERE state = 'pending';
      CREATE INDEX gateway_instructions_by_gateway ON gateway_instructions (gateway_id, state, id);
    `,
  },
])

export type InstructionState = 'pending' | 'done' | 'failed' | 'unsupported' | 'cancelled'

export interface InstructionRow {
  readonly id: number
  readonly gatewayId: string
  readonly kind: string
  readonly key: string
  readonly args: Record<string, unknown>
  readonly issuedAt: number
  readonly deliveries: number
  readonly state: InstructionState
  readonly ackedAt: number | null
  readonly detail: string | null
}

/** A row as both stores return it (PostgreSQL's BIGINTs are read as numbers, cloud/store/pg/pool.ts). */
export interface Raw {
  id: number
  gateway_id: string
  kind: string
  key: string
  args: string
  issued_at: number
  deliveries: number
  state: InstructionState
  acked_at: number | null
  detail: string | null
}

export const toRow = (r: Raw): InstructionRow => ({
  id: r.id,
  gatewayId: r.gateway_id,
  kind: r.kind,
  key: r.key,
  args: JSON.parse(r.args) as Record<string, unknown>,
  issuedAt: r.issued_at,
  deliveries: r.deliveries,
  state: r.state,
  ackedAt: r.acked_at,
  detail: r.detail,
})

/** At most this many instructions per fetch; the rest come with the next one. */
export const INSTRUCTIONS_PER_FETCH = 100

/** What the routes, the scrub and supervision use: one contract, two stores. */
export interface InstructionStore {
  /** Leave an instruction for a gateway (or find the pending one of the same kind and key). */
  issue(gatewayId: string, kind: InstructionKind, key: string, args: Record<string, unknown>, now: number): Promise<InstructionRow>
  /** The gateway's pending instructions, oldest first, signed; each counted as delivered. */
  deliver(gatewayId: string, now: number, limit?: number): Promise<SignedInstruction[]>
  pendingCount(gatewayId: string): Promise<number>
  get(id: number): Promise<InstructionRow | null>
  /** The newest instruction of a kind and key, whatever its gateway and state (for the damage report). */
  latest(kind: InstructionKind, key: string): Promise<InstructionRow | null>
  /**
   * Apply a gateway's acknowledgement. null if the gateway has no such instruction; `repeated`
   * when it was acknowledged (or cancelled) before — the state then stays what it was.
   */
  acknowledge(gatewayId: string, id: number, ack: Ack, now: number): Promise<{ row: InstructionRow; repeated: boolean } | null>
  /** Withdraw a pending instruction that is no longer needed. */
  cancel(gatewayId: string, kind: InstructionKind, key: string, reason: string, now: number): Promise<boolean>
}

/** The signed form a gateway receives (shared/protocol/instructions.ts). */
export const signedInstruction = (cloudSecretKey: Uint8Array, r: InstructionRow): SignedInstruction =>
  signInstruction(cloudSecretKey, { v: INSTRUCTION_VERSION, id: r.id, gateway: r.gatewayId, kind: r.kind, issuedAt: r.issuedAt, args: r.args })

export class SqliteInstructionStore implements InstructionStore {
  readonly #db: CloudDb
  readonly #cloudSecretKey: Uint8Array
  readonly #q

  constructor(db: CloudDb, cloudSecretKey: Uint8Array) {
    this.#db = db
    this.#cloudSecretKey = cloudSecretKey
    this.#q = {
      insert: db.prepare('INSERT OR IGNORE INTO gateway_instructions (gateway_id, kind, key, args, issued_at) VALUES (?, ?, ?, ?, ?)'),
      openOne: db.prepare<[string, string, string], Raw>("SELECT * FROM gateway_instructions WHERE gateway_id = ? AND kind = ? AND key = ? AND state = 'pending'"),
      pending: db.prepare<[string, number], Raw>("SELECT * FROM gateway_instructions WHERE gateway_id = ? AND state = 'pending' ORDER BY id LIMIT ?"),
      delivered: db.prepare('UPDATE gateway_instructions SET deliveries = deliveries + 1, delivered_at = ? WHERE id = ?'),
      count: db.prepare<[string], number>("SELECT count(*) FROM gateway_instructions WHERE gateway_id = ? AND state = 'pending'").pluck(),
      get: db.prepare<[number], Raw>('SELECT * FROM gateway_instructions WHERE id = ?'),
      ack: db.prepare("UPDATE gateway_instructions SET state = ?, acked_at = ?, detail = ? WHERE id = ? AND state = 'pending'"),
      cancel: db.prepare("UPDATE gateway_instructions SET state = 'cancelled', acked_at = ?, detail = ? WHERE gateway_id = ? AND kind = ? AND key = ? AND state = 'pending'"),
      latestFor: db.prepare<[string, string], Raw>('SELECT * FROM gateway_instructions WHERE kind = ? AND key = ? ORDER BY id DESC LIMIT 1'),
    }
  }

  async issue(gatewayId: string, kind: InstructionKind, key: string, args: Record<string, unknown>, now: number): Promise<InstructionRow> {
    this.#q.insert.run(gatewayId, kind, key, JSON.stringify(args), now)
    return toRow(this.#q.openOne.get(gatewayId, kind, key)!)
  }

  async deliver(gatewayId: string, now: number, limit = INSTRUCTIONS_PER_FETCH): Promise<SignedInstruction[]> {
    const rows = this.#q.pending.all(gatewayId, limit)
    this.#db.transaction(() => {
      for (const r of rows) this.#q.delivered.run(now, r.id)
    })()
    return rows.map((r) => signedInstruction(this.#cloudSecretKey, toRow(r)))
  }

  async pendingCount(gatewayId: string): Promise<number> {
    return this.#q.count.get(gatewayId)!
  }

  async get(id: number): Promise<InstructionRow | null> {
    const r = this.#q.get.get(id)
    return r ? toRow(r) : null
  }

  async latest(kind: InstructionKind, key: string): Promise<InstructionRow | null> {
    const r = this.#q.latestFor.get(kind, key)
    return r ? toRow(r) : null
  }

  async acknowledge(gatewayId: string, id: number, ack: Ack, now: number): Promise<{ row: InstructionRow; repeated: boolean } | null> {
    const before = this.#q.get.get(id)
    if (!before || before.gateway_id !== gatewayId) return null
    const changed = this.#q.ack.run(ack.status, now, ack.detail ?? null, id).changes === 1
    return { row: toRow(this.#q.get.get(id)!), repeated: !changed }
  }

  async cancel(gatewayId: string, kind: InstructionKind, key: string, reason: string, now: number): Promise<boolean> {
    return this.#q.cancel.run(now, reason, gatewayId, kind, key).changes > 0
  }
}
