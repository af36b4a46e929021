/**
 * Gateway enrolment (docs/api.md §Gateways, steps 1–2): an admin invites a gateway by name and
 * gets a one-time `cle_…` token, valid 24 h, stored hashed; the gateway redeems it once with its
 * Ed25519 public key at `POST /v1/gateways/register`.
 *
 * Redeeming is one transaction: the invite is consumed only if the gateway is registered, and a
 * token can be consumed only once even by concurrent requests (UPDATE … WHERE used_at IS NULL).
 * A refusal says why, as a `reason` the HTTP layer maps to a status; nothing is stored then.
 */
import type { CloudDb } from '../store/db.ts'
import { CareLedgerError } from '../../shared/errors.ts'
import { checkSigningPublicKey, signingKeyId } from '../../shared/crypto/sign.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import './schema.ts'
import { assertName, looksLikeSecret, newSecret, secretHash } from './secrets.ts'
import type { GatewayInfo, GatewayRegistry } from './gateways.ts'

export const INVITE_TTL_MS = 24 * 3600_000

export interface InviteInfo {
  readonly id: number
  readonly name: string
  readonly createdAt: number
  readonly expiresAt: number
  readonly usedAt: number | null
  readonly gatewayId: string | null
  readonly revokedAt: number | null
}

export type RedeemRefusal =
  /** 401: no such token, already used, expired or withdrawn. */
  | { readonly ok: false; readonly reason: 'BAD_TOKEN'; readonly message: string }
  /** 400: the request itself is wrong (field named in `field`). */
  | { readonly ok: false; readonly reason: 'BAD_REQUEST'; readonly field: 'name' | 'publicKey'; readonly message: string }
  /** 409: the key or the name is already registered. */
  | { readonly ok: false; readonly reason: 'ALREADY_REGISTERED'; readonly message: string }

export type RedeemResult = { readonly ok: true; readonly gateway: GatewayInfo } | RedeemRefusal

export interface InviteRow {
  id: number
  name: string
  created_at: number
  expires_at: number
  used_at: number | null
  gateway_id: string | null
  revoked_at: number | null
}

export const inviteInfo = (r: InviteRow): InviteInfo => ({ id: r.id, name: r.name, createdAt: r.created_at, expiresAt: r.expires_at, usedAt: r.used_at, gatewayId: r.gateway_id, revokedAt: r.revoked_at })

export class Enrolment {
  readonly #db: CloudDb
  readonly #gateways: GatewayRegistry
  readonly #q

  constructor(db: CloudDb, gateways: GatewayRegistry) {
    this.#db = db
    this.#gateways = gateways
    this.#q = {
      insert: db.prepare('INSERT INTO gateway_invites (name, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?)'),
      withdrawPending: db.prepare('UPDATE gateway_invites SET revoked_at = ? WHERE name = ? AND used_at IS NULL AND revoked_at IS NULL'),
      byHash: db.prepare<[Buffer], InviteRow>('SELECT * FROM gateway_invites WHERE token_hash = ?'),
      consume: db.prepare('UPDATE gateway_invites SET used_at = ?, gateway_id = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL'),
      list: db.prepare<[], InviteRow>('SELECT * FROM gateway_invites ORDER BY id'),
    }
  }

  /**
   * Invite a gateway called `name`: returns the one-time token (shown once). A newer invite for
   * the same name withdraws older unused ones.
   */
  invite(name: string, now = Date.now(), ttlMs = INVITE_TTL_MS): { token: string; invite: InviteInfo } {
    assertName('gateway', name)
    if (this.#gateways.liveByName(name)) {
      throw new CareLedgerError('INVALID_ARGUMENT', `a gateway named ${name} is already registered; revoke it first or choose another name`, { name })
    }
    const token = newSecret('cle_')
    const id = this.#db.transaction(() => {
      this.#q.withdrawPending.run(now, name)
      return Number(this.#q.insert.run(name, secretHash(token), now, now + ttlMs).lastInsertRowid)
    })()
    return { token, invite: { id, name, createdAt: now, expiresAt: now + ttlMs, usedAt: null, gatewayId: null, revokedAt: null } }
  }

  list(): InviteInfo[] {
    return this.#q.list.all().map(inviteInfo)
  }

  /** `POST /v1/gateways/register`: redeem `token` for the gateway with `publicKey`, called `name`. */
  redeem(req: { token: string; publicKey: Uint8Array; name: string }, now = Date.now()): RedeemResult {
    const row = looksLikeSecret(req.token, 'cle_') ? this.#q.byHash.get(secretHash(req.token)) : undefined
    const checked = checkRedemption(row ? inviteInfo(row) : undefined, req, now)
    if (!checked.ok) return checked
    const { gatewayId } = checked
    const refused = alreadyRegistered(this.#gateways.get(gatewayId), this.#gateways.liveByName(checked.invite.name), gatewayId, checked.invite.name)
    if (refused) return refused
    const used = new Error('already used')
    try {
      return this.#db.transaction((): RedeemResult => {
        const gateway = this.#gateways.insert(gatewayId, checked.invite.name, req.publicKey, now)
        // Consumed by a concurrent request meanwhile: roll the insert back.
        if (this.#q.consume.run(now, gatewayId, checked.invite.id).changes !== 1) throw used
        return { ok: true, gateway }
      }).immediate()
    } catch (e) {
      if (e === used) return usedRefusal
      throw e
    }
  }
}

/**
 * The checks of a redemption that need no write (shared by the SQLite and PostgreSQL stores): the
 * invite exists, is unused, not withdrawn, not expired, for this name; the public key is a valid
 * Ed25519 key. Returns the gateway id the key gives, or the refusal.
 */
export function checkRedemption(invite: InviteInfo | undefined, req: { publicKey: Uint8Array; name: string }, now: number): RedeemRefusal | { ok: true; invite: InviteInfo; gatewayId: string } {
  if (!invite) return { ok: false, reason: 'BAD_TOKEN', message: 'the enrolment token is not known' }
  if (invite.usedAt !== null) return usedRefusal
  if (invite.revokedAt !== null) return { ok: false, reason: 'BAD_TOKEN', message: 'the enrolment token was withdrawn (a newer invite was issued for this name)' }
  if (now >= invite.expiresAt) return { ok: false, reason: 'BAD_TOKEN', message: `the enrolment token expired at ${new Date(invite.expiresAt).toISOString()}` }
  if (req.name !== invite.name) {
    return { ok: false, reason: 'BAD_REQUEST', field: 'name', message: `name ${JSON.stringify(req.name)} is not the name this enrolment token was issued for` }
  }
  try {
    checkSigningPublicKey(req.publicKey)
  } catch (e) {
    if (isCareLedgerError(e)) return { ok: false, reason: 'BAD_REQUEST', field: 'publicKey', message: `publicKey: ${e.message}` }
    throw e
  }
  return { ok: true, invite, gatewayId: signingKeyId(req.publicKey) }
}

export const usedRefusal: RedeemRefusal = { ok: false, reason: 'BAD_TOKEN', message: 'the enrolment token has already been used' }

/** 409 when the key, or a live gateway with the name, is registered already. */
export function alreadyRegistered(existing: GatewayInfo | null, liveWithName: GatewayInfo | null, gatewayId: string, name: string): RedeemRefusal | null {
  if (existing) {
    return {
      ok: false,
      reason: 'ALREADY_REGISTERED',
      message: existing.revokedAt === null
        ? `this public key is already registered as gateway ${gatewayId} (${existing.name})`
        : `this public key belonged to gateway ${gatewayId}, which was revoked; enrol with a new key`,
    }
  }
  return liveWithName ? { ok: false, reason: 'ALREADY_REGISTERED', message: `a gateway named ${name} is already registered` } : null
}
