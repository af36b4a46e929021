/**
 * Gateway instructions (cloud/service/instructions.ts) in the PostgreSQL every cloud process of a
 * deployment shares (migration `ops/002-gateway-instructions`): an instruction issued by one
 * process is delivered by whichever process its gateway polls. The rules are the SQLite store's;
 * what several processes need is left to single statements, never to a read-then-write:
 *
 *   issue        INSERT … ON CONFLICT on the partial unique index (one pending instruction per
 *                gateway, kind and key): of two processes issuing the same one, one row results
 *   deliver      one UPDATE … RETURNING of the gateway's oldest pending rows (deliveries counted)
 *   acknowledge  UPDATE … WHERE state = 'pending' RETURNING: applied once, whichever process the
 *                acknowledgement reaches; a repeat is answered with the state the first one set
 */
import type pg from 'pg'
import { INSTRUCTIONS_PER_FETCH, signedInstruction, toRow, type InstructionRow, type InstructionStore, type Raw } from '../../service/instructions.ts'
import type { Ack, InstructionKind, SignedInstruction } from '../../../shared/protocol/instructions.ts'

export class PgInstructionStore implements InstructionStore {
  readonly #pool: pg.Pool
  readonly #cloudSecretKey: Uint8Array

  constructor(pool: pg.Pool, cloudSecretKey: Uint8Array) {
    this.#pool = pool
    this.#cloudSecretKey = cloudSecretKey
  }

  async #one(sql: string, params: unknown[]): Promise<Raw | undefined> {
    return (await this.#pool.query<Raw>(sql, params)).rows[0]
  }

  async issue(gatewayId: string, kind: InstructionKind, key: string, args: Record<string, unknown>, now: number): Promise<InstructionRow> {
    const sql = `INSERT INTO gateway_instructions (gateway_id, kind, key, args, issued_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (gateway_id, kind, key) WHERE state = 'pending' DO NOTHING RETURNING *`
    const inserted = await this.#one(sql, [gatewayId, kind, key, JSON.stringify(args), now])
    if (inserted) return toRow(inserted)
    const open = await this.#one("SELECT * FROM gateway_instructions WHERE gateway_id = $1 AND kind = $2 AND key = $3 AND state = 'pending'", [gatewayId, kind, key])
    // Acknowledged between the two statements: issue afresh (the same as arriving a moment later).
    return open ? toRow(open) : this.issue(gatewayId, kind, key, args, now)
  }

  async deliver(gatewayId: string, now: number, limit = INSTRUCTIONS_PER_FETCH): Promise<SignedInstruction[]> {
    const { rows } = await this.#pool.query<Raw>(
      `UPDATE gateway_instructions SET deliveries = deliveries + 1, delivered_at = $2
       WHERE id IN (SELECT id FROM gateway_instructions WHERE gateway_id = $1 AND state = 'pending' ORDER BY id LIMIT $3) RETURNING *`,
      [gatewayId, now, limit],
    )
    return rows.sort((a, b) => a.id - b.id).map((r) => signedInstruction(this.#cloudSecretKey, toRow(r)))
  }

  async pendingCount(gatewayId: string): Promise<number> {
    const r = await this.#pool.query<{ n: number }>("SELECT count(*)::int AS n FROM gateway_instructions WHERE gateway_id = $1 AND state = 'pending'", [gatewayId])
    return r.rows[0]!.n
  }

  async get(id: number): Promise<InstructionRow | null> {
    const r = await this.#one('SELECT * FROM gateway_instructions WHERE id = $1', [id])
    return r ? toRow(r) : null
  }

  async latest(kind: InstructionKind, key: string): Promise<InstructionRow | null> {
    const r = await this.#one('SELECT * FROM gateway_instructions WHERE kind = $1 AND key = $2 ORDER BY id DESC LIMIT 1', [kind, key])
    return r ? toRow(r) : null
  }

  async acknowledge(gatewayId: string, id: number, ack: Ack, now: number): Promise<{ row: InstructionRow; repeated: boolean } | null> {
    if (!Number.isSafeInteger(id) || id < 1) return null
    const changed = await this.#one(
      "UPDATE gateway_instructions SET state = $1, acked_at = $2, detail = $3 WHERE id = $4 AND gateway_id = $5 AND state = 'pending' RETURNING *",
      [ack.status, now, ack.detail ?? null, id, gatewayId],
    )
    if (changed) return { row: toRow(changed), repeated: false }
    const before = await this.#one('SELECT * FROM gateway_instructions WHERE id = $1', [id])
    return before && before.gateway_id === gatewayId ? { row: toRow(before), repeated: true } : null
  }

  async cancel(gatewayId: string, kind: InstructionKind, key: string, reason: string, now: number): Promise<boolean> {
    const r = await this.#pool.query("UPDATE gateway_instructions SET state = 'cancelled', acked_at = $1, detail = $2 WHERE gateway_id = $3 AND kind = $4 AND key = $5 AND state = 'pending'", [now, reason, gatewayId, kind, key])
    return (r.rowCount ?? 0) > 0
  }
}

export const pgInstructions = (pool: pg.Pool, cloudSecretKey: Uint8Array): InstructionStore => new PgInstructionStore(pool, cloudSecretKey)
