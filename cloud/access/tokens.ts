/**
 * API tokens of people (docs/api.md §People): `careledger cloud token create --role … --name …`
 * prints `clt_…` once; the cloud keeps SHA-256 of it, the role and the name. Requests carry
 * `Authorization: Bearer clt_…` (RFC 6750 §2.1). Revocation takes effect on the next request.
 */
import type { CloudDb } from '../store/db.ts'
import { CareLedgerError } from '../../shared/errors.ts'
import './schema.ts'
import { assertName, looksLikeSecret, newSecret, secretHash } from './secrets.ts'
import { isRole, ROLES, type Role } from './roles.ts'

export interface TokenInfo {
  readonly id: number
  readonly name: string
  readonly role: Role
  readonly createdAt: number
  readonly lastUsedAt: number | null
  readonly revokedAt: number | null
}

export interface Principal {
  readonly tokenId: number
  readonly name: string
  readonly role: Role
}

export interface TokenRow {
  id: number
  name: string
  role: Role
  created_at: number
  last_used_at: number | null
  revoked_at: number | null
}

export const tokenInfo = (r: TokenRow): TokenInfo => ({ id: r.id, name: r.name, role: r.role, createdAt: r.created_at, lastUsedAt: r.last_used_at, revokedAt: r.revoked_at })

/** `last_used_at` is refreshed at most this often, so reads do not turn into a write each. */
export const TOUCH_EVERY_MS = 60_000

export class TokenStore {
  readonly #q

  constructor(db: CloudDb) {
    this.#q = {
      insert: db.prepare('INSERT INTO api_tokens (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)'),
      byHash: db.prepare<[Buffer], TokenRow>('SELECT * FROM api_tokens WHERE token_hash = ?'),
      live: db.prepare<[string], TokenRow>('SELECT * FROM api_tokens WHERE name = ? AND revoked_at IS NULL'),
      list: db.prepare<[], TokenRow>('SELECT * FROM api_tokens ORDER BY id'),
      revoke: db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ?'),
      touch: db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE id = ?'),
    }
  }

  /** Create a token; the returned `token` is the only time the secret exists outside the caller. */
  create(role: string, name: string, now = Date.now()): { token: string; info: TokenInfo } {
    if (!isRole(role)) throw new CareLedgerError('INVALID_ARGUMENT', `role ${JSON.stringify(role)} is not one of ${ROLES.join(', ')}`, { role })
    assertName('token', name)
    if (this.#q.live.get(name)) throw new CareLedgerError('INVALID_ARGUMENT', `a live token named ${name} exists; revoke it first or choose another name`, { name })
    const token = newSecret('clt_')
    const id = Number(this.#q.insert.run(name, role, secretHash(token), now).lastInsertRowid)
    return { token, info: { id, name, role, createdAt: now, lastUsedAt: null, revokedAt: null } }
  }

  list(): TokenInfo[] {
    return this.#q.list.all().map(tokenInfo)
  }

  /** Revoke the live token called `name`. */
  revoke(name: string, now = Date.now()): TokenInfo {
    const row = this.#q.live.get(name)
    if (!row) throw new CareLedgerError('INVALID_ARGUMENT', `no live token named ${JSON.stringify(name)}`, { name })
    this.#q.revoke.run(now, row.id)
    return tokenInfo({ ...row, revoked_at: now })
  }

  /** The principal behind a bearer token, or null (unknown, malformed or revoked). */
  authenticate(token: string, now = Date.now()): Principal | null {
    if (!looksLikeSecret(token, 'clt_')) return null
    const row = this.#q.byHash.get(secretHash(token))
    if (!row || row.revoked_at !== null || !isRole(row.role)) return null
    if (row.last_used_at === null || now - row.last_used_at >= TOUCH_EVERY_MS) {
      try {
        this.#q.touch.run(now, row.id)
      } catch {
        // A busy database must not turn a read into a failure; the timestamp is informational.
      }
    }
    return { tokenId: row.id, name: row.name, role: row.role }
  }
}
