/**
 * The access stores (cloud/access/store.ts) in PostgreSQL: tokens, gateways, enrolment invites and
 * request nonces in the tables of migration `access/001-tokens-gateways-nonces`, shared by every
 * cloud process of one deployment. The rules are those of the SQLite classes in cloud/access/
 * (the redemption checks are the same functions); what several processes need is left to the
 * database's constraints, never to a read-then-write:
 *
 *   nonce claim     INSERT … ON CONFLICT (gateway_id, nonce) DO UPDATE … WHERE the row expired:
 *                   of two processes claiming one nonce, exactly one gets a row back
 *   invite redeem   one transaction: insert the gateway, then UPDATE the invite WHERE used_at IS
 *                   NULL; a concurrent redemption (or the same key or name registered meanwhile,
 *                   a unique violation) rolls it back
 *   names           unique among live rows (partial unique indexes): a concurrent create of the
 *                   same name fails with a clear error
 *
 * Nothing is cached per process: a revocation through one process holds on the next request to
 * any other.
 */
import type pg from 'pg'
import { CareLedgerError } from '../../../shared/errors.ts'
import { alreadyRegistered, checkRedemption, inviteInfo, INVITE_TTL_MS, usedRefusal, type InviteInfo, type InviteRow, type RedeemResult } from '../../access/enrolment.ts'
import { gatewayInfo, type GatewayInfo, type GatewayRow } from '../../access/gateways.ts'
import { isRole, ROLES } from '../../access/roles.ts'
import { assertName, looksLikeSecret, newSecret, secretHash } from '../../access/secrets.ts'
import { tokenInfo, TOUCH_EVERY_MS, type Principal, type TokenInfo, type TokenRow } from '../../access/tokens.ts'
import { inTransaction, openMigratedPool } from './pool.ts'
import type { AccessStores, EnrolmentApi, GatewayRegistryApi, NonceStoreApi, TokenStoreApi } from '../../access/store.ts'

/** PostgreSQL's unique_violation (SQLSTATE 23505). */
const isUniqueViolation = (e: unknown): boolean => (e as { code?: string } | null)?.code === '23505'

export class PgTokenStore implements TokenStoreApi {
  readonly pool: pg.Pool
  constructor(pool: pg.Pool) {
    this.pool = pool
  }

  async create(role: string, name: string, now = Date.now()): Promise<{ token: string; info: TokenInfo }> {
    if (!isRole(role)) throw new CareLedgerError('INVALID_ARGUMENT', `role ${JSON.stringify(role)} is not one of ${ROLES.join(', ')}`, { role })
    assertName('token', name)
    const token = newSecret('clt_')
    try {
      const r = await this.pool.query<{ id: number }>('INSERT INTO api_tokens (name, role, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id', [name, role, secretHash(token), now])
      return { token, info: { id: r.rows[0]!.id, name, role, createdAt: now, lastUsedAt: null, revokedAt: null } }
    } catch (e) {
      if (isUniqueViolation(e)) throw new CareLedgerError('INVALID_ARGUMENT', `a live token named ${name} exists; revoke it first or choose another name`, { name })
      throw e
    }
  }

  async list(): Promise<TokenInfo[]> {
    return (await this.pool.query<TokenRow>('SELECT * FROM api_tokens ORDER BY id')).rows.map(tokenInfo)
  }

  async revoke(name: string, now = Date.now()): Promise<TokenInfo> {
    const r = await this.pool.query<TokenRow>('UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL RETURNING *', [now, name])
    if (!r.rows[0]) throw new CareLedgerError('INVALID_ARGUMENT', `no live token named ${JSON.stringify(name)}`, { name })
    return tokenInfo(r.rows[0])
  }

  async authenticate(token: string, now = Date.now()): Promise<Principal | null> {
    if (!looksLikeSecret(token, 'clt_')) return null
    const row = (await this.pool.query<TokenRow>('SELECT * FROM api_tokens WHERE token_hash = $1', [secretHash(token)])).rows[0]
    if (!row || row.revoked_at !== null || !isRole(row.role)) return null
    if (row.last_used_at === null || now - row.last_used_at >= TOUCH_EVERY_MS) {
      // Informational: never waited for, never a failure of the request.
      this.pool.query('UPDATE api_tokens SET last_used_at = GREATEST(coalesce(last_used_at, 0), $1) WHERE id = $2', [now, row.id]).catch(() => {})
    }
    return { tokenId: row.id, name: row.name, role: row.role }
  }
}

export class PgGatewayRegistry implements GatewayRegistryApi {
  /** The last-sync time last written per gateway by this process (a bulk's batches all carry one time). */
  readonly #noted = new Map<string, number>()

  readonly pool: pg.Pool
  constructor(pool: pg.Pool) {
    this.pool = pool
  }

  async get(gatewayId: string): Promise<GatewayInfo | null> {
    const r = (await this.pool.query<GatewayRow>('SELECT * FROM gateways WHERE gateway_id = $1', [gatewayId])).rows[0]
    return r ? gatewayInfo(r) : null
  }

  async live(gatewayId: string): Promise<GatewayInfo | null> {
    const g = await this.get(gatewayId)
    return g && g.revokedAt === null ? g : null
  }

  async liveByName(name: string): Promise<GatewayInfo | null> {
    const r = (await this.pool.query<GatewayRow>('SELECT * FROM gateways WHERE name = $1 AND revoked_at IS NULL', [name])).rows[0]
    return r ? gatewayInfo(r) : null
  }

  async list(): Promise<GatewayInfo[]> {
    return (await this.pool.query<GatewayRow>('SELECT * FROM gateways ORDER BY registered_at, gateway_id')).rows.map(gatewayInfo)
  }

  async counts(): Promise<{ total: number; live: number }> {
    return (await this.pool.query<{ total: number; live: number }>('SELECT count(*)::int AS total, (count(*) FILTER (WHERE revoked_at IS NULL))::int AS live FROM gateways')).rows[0]!
  }

  async revoke(nameOrId: string, now = Date.now()): Promise<GatewayInfo> {
    const r = await this.pool.query<GatewayRow>(
      `UPDATE gateways SET revoked_at = $1 WHERE gateway_id = (
         SELECT gateway_id FROM gateways WHERE revoked_at IS NULL AND (name = $2 OR gateway_id = $2) ORDER BY (name = $2) DESC LIMIT 1
       ) RETURNING *`,
      [now, nameOrId],
    )
    if (!r.rows[0]) throw new CareLedgerError('INVALID_ARGUMENT', `no live gateway named or with id ${JSON.stringify(nameOrId)}`, { gateway: nameOrId })
    return gatewayInfo(r.rows[0])
  }

  noteSync(gatewayId: string, now: number): void {
    if ((this.#noted.get(gatewayId) ?? -Infinity) >= now) return
    this.#noted.set(gatewayId, now)
    // The column only grows (GREATEST), whichever process writes last.
    this.pool.query('UPDATE gateways SET last_sync_at = GREATEST(coalesce(last_sync_at, 0), $1) WHERE gateway_id = $2', [now, gatewayId]).catch(() => {})
  }
}

export class PgEnrolment implements EnrolmentApi {
  readonly pool: pg.Pool
  readonly gateways: PgGatewayRegistry
  constructor(pool: pg.Pool, gateways: PgGatewayRegistry) {
    this.pool = pool
    this.gateways = gateways
  }

  async invite(name: string, now = Date.now(), ttlMs = INVITE_TTL_MS): Promise<{ token: string; invite: InviteInfo }> {
    assertName('gateway', name)
    if (await this.gateways.liveByName(name)) {
      throw new CareLedgerError('INVALID_ARGUMENT', `a gateway named ${name} is already registered; revoke it first or choose another name`, { name })
    }
    const token = newSecret('cle_')
    const id = await inTransaction(this.pool, async (c) => {
      // A newer invite for the same name withdraws older unused ones.
      await c.query('UPDATE gateway_invites SET revoked_at = $1 WHERE name = $2 AND used_at IS NULL AND revoked_at IS NULL', [now, name])
      return (await c.query<{ id: number }>('INSERT INTO gateway_invites (name, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4) RETURNING id', [name, secretHash(token), now, now + ttlMs])).rows[0]!.id
    })
    return { token, invite: { id, name, createdAt: now, expiresAt: now + ttlMs, usedAt: null, gatewayId: null, revokedAt: null } }
  }

  async list(): Promise<InviteInfo[]> {
    return (await this.pool.query<InviteRow>('SELECT * FROM gateway_invites ORDER BY id')).rows.map(inviteInfo)
  }

  async redeem(req: { token: string; publicKey: Uint8Array; name: string }, now = Date.now()): Promise<RedeemResult> {
    const row = looksLikeSecret(req.token, 'cle_') ? (await this.pool.query<InviteRow>('SELECT * FROM gateway_invites WHERE token_hash = $1', [secretHash(req.token)])).rows[0] : undefined
    const checked = checkRedemption(row ? inviteInfo(row) : undefined, req, now)
    if (!checked.ok) return checked
    const { gatewayId, invite } = checked
    const refused = alreadyRegistered(await this.gateways.get(gatewayId), await this.gateways.liveByName(invite.name), gatewayId, invite.name)
    if (refused) return refused
    const used = new Error('already used')
    try {
      return await inTransaction(this.pool, async (c): Promise<RedeemResult> => {
        await c.query('INSERT INTO gateways (gateway_id, name, public_key, registered_at) VALUES ($1, $2, $3, $4)', [gatewayId, invite.name, req.publicKey, now])
        // Consumed by a concurrent request meanwhile (on this process or another): roll the insert back.
        const consumed = await c.query('UPDATE gateway_invites SET used_at = $1, gateway_id = $2 WHERE id = $3 AND used_at IS NULL AND revoked_at IS NULL', [now, gatewayId, invite.id])
        if (consumed.rowCount !== 1) throw used
        return { ok: true, gateway: { gatewayId, name: invite.name, publicKey: req.publicKey, registeredAt: now, revokedAt: null, lastSyncAt: null } }
      })
    } catch (e) {
      if (e === used) return usedRefusal
      // The same key or a live gateway of this name registered concurrently.
      if (isUniqueViolation(e)) return alreadyRegistered(await this.gateways.get(gatewayId), await this.gateways.liveByName(invite.name), gatewayId, invite.name) ?? usedRefusal
      throw e
    }
  }
}

export class PgNonceStore implements NonceStoreApi {
  readonly pool: pg.Pool
  constructor(pool: pg.Pool) {
    this.pool = pool
  }

  async seen(gatewayId: string, nonce: string, now: number): Promise<boolean> {
    return (await this.pool.query('SELECT 1 FROM request_nonces WHERE gateway_id = $1 AND nonce = $2 AND expires_at >= $3', [gatewayId, nonce, now])).rowCount === 1
  }

  async claim(gatewayId: string, nonce: string, expiresAt: number, now: number): Promise<boolean> {
    // Insert, or take over an expired row; no row comes back exactly when a live row holds the nonce.
    const r = await this.pool.query(
      `INSERT INTO request_nonces (gateway_id, nonce, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (gateway_id, nonce) DO UPDATE SET expires_at = excluded.expires_at WHERE request_nonces.expires_at < $4`,
      [gatewayId, nonce, expiresAt, now],
    )
    return r.rowCount === 1
  }

  async prune(now: number): Promise<number> {
    return (await this.pool.query('DELETE FROM request_nonces WHERE expires_at < $1', [now])).rowCount ?? 0
  }

  async count(): Promise<number> {
    return (await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM request_nonces')).rows[0]!.n
  }
}

/** The access stores on a PostgreSQL pool whose database has the migrations applied (migrations.ts). */
export function pgAccess(pool: pg.Pool): AccessStores {
  const gateways = new PgGatewayRegistry(pool)
  return { kind: 'postgres', tokens: new PgTokenStore(pool), gateways, enrolment: new PgEnrolment(pool, gateways), nonces: new PgNonceStore(pool) }
}

/** Connect to `url` on a small pool of its own (the command line's token and gateway commands), migrating first. */
export async function openPgAccess(url: string): Promise<AccessStores & { close(): Promise<void> }> {
  const pool = await openMigratedPool(url, 2)
  return { ...pgAccess(pool), close: () => pool.end() }
}
