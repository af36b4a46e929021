/**
 * The gateway registry: every gateway that enrolled (enrolment.ts), its Ed25519 public key and id
 * (`signingKeyId(publicKey)`, what its manifests and signed requests name), and when it last synced.
 * A revoked gateway stays listed (its batches remain on the chain) but its requests are refused.
 */
import { bytesToHex } from '@noble/hashes/utils.js'
import { ridingCommit } from '../store/riding-commit.ts'
import type { CloudDb } from '../store/db.ts'
import { CareLedgerError } from '../../shared/errors.ts'
import './schema.ts'

export interface GatewayInfo {
  readonly gatewayId: string
  readonly name: string
  readonly publicKey: Uint8Array
  readonly registeredAt: number
  readonly revokedAt: number | null
  readonly lastSyncAt: number | null
}

export interface GatewayRow {
  gateway_id: string
  name: string
  public_key: Buffer
  registered_at: number
  revoked_at: number | null
  last_sync_at: number | null
}

export const gatewayInfo = (r: GatewayRow): GatewayInfo => ({
  gatewayId: r.gateway_id,
  name: r.name,
  publicKey: new Uint8Array(r.public_key),
  registeredAt: r.registered_at,
  revokedAt: r.revoked_at,
  lastSyncAt: r.last_sync_at,
})

/** For JSON: the public key as hex. */
export const gatewayJson = (g: GatewayInfo) => ({
  gatewayId: g.gatewayId,
  name: g.name,
  publicKey: bytesToHex(g.publicKey),
  registeredAt: g.registeredAt,
  lastSyncAt: g.lastSyncAt,
  revoked: g.revokedAt !== null,
})

export class GatewayRegistry {
  readonly #q
  readonly #db: CloudDb
  /** The last-sync time last written per gateway: a bulk upload's batches all carry one time. */
  readonly #noted = new Map<string, number>()

  constructor(db: CloudDb) {
    this.#db = db
    this.#q = {
      insert: db.prepare('INSERT INTO gateways (gateway_id, name, public_key, registered_at) VALUES (?, ?, ?, ?)'),
      get: db.prepare<[string], GatewayRow>('SELECT * FROM gateways WHERE gateway_id = ?'),
      liveByName: db.prepare<[string], GatewayRow>('SELECT * FROM gateways WHERE name = ? AND revoked_at IS NULL'),
      list: db.prepare<[], GatewayRow>('SELECT * FROM gateways ORDER BY registered_at, gateway_id'),
      revoke: db.prepare('UPDATE gateways SET revoked_at = ? WHERE gateway_id = ? AND revoked_at IS NULL'),
      sync: db.prepare('UPDATE gateways SET last_sync_at = max(coalesce(last_sync_at, 0), ?) WHERE gateway_id = ?'),
      count: db.prepare<[], { total: number; live: number }>('SELECT count(*) AS total, count(*) FILTER (WHERE revoked_at IS NULL) AS live FROM gateways'),
    }
  }

  /** Insert a gateway (enrolment.ts calls this inside its transaction). */
  insert(gatewayId: string, name: string, publicKey: Uint8Array, now: number): GatewayInfo {
    this.#q.insert.run(gatewayId, name, publicKey, now)
    return { gatewayId, name, publicKey, registeredAt: now, revokedAt: null, lastSyncAt: null }
  }

  get(gatewayId: string): GatewayInfo | null {
    const r = this.#q.get.get(gatewayId)
    return r ? gatewayInfo(r) : null
  }

  /** A gateway that may make requests: registered and not revoked. */
  live(gatewayId: string): GatewayInfo | null {
    const g = this.get(gatewayId)
    return g && g.revokedAt === null ? g : null
  }

  liveByName(name: string): GatewayInfo | null {
    const r = this.#q.liveByName.get(name)
    return r ? gatewayInfo(r) : null
  }

  list(): GatewayInfo[] {
    return this.#q.list.all().map(gatewayInfo)
  }

  counts(): { total: number; live: number } {
    return this.#q.count.get()!
  }

  /** Revoke by name or by id. Its batches stay on the chain; its requests are refused from now on. */
  revoke(nameOrId: string, now = Date.now()): GatewayInfo {
    const g = this.liveByName(nameOrId) ?? this.live(nameOrId)
    if (!g) throw new CareLedgerError('INVALID_ARGUMENT', `no live gateway named or with id ${JSON.stringify(nameOrId)}`, { gateway: nameOrId })
    this.#q.revoke.run(now, g.gatewayId)
    return { ...g, revokedAt: now }
  }

  /** An authenticated upload arrived (accepted or duplicate). */
  noteSync(gatewayId: string, now: number): void {
    // The column only grows (max): a time not above the last one written changes nothing.
    if ((this.#noted.get(gatewayId) ?? -Infinity) >= now) return
    this.#noted.set(gatewayId, now)
    ridingCommit(this.#db, () => this.#q.sync.run(now, gatewayId))
  }
}
