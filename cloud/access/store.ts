/**
 * The access stores as the service uses them — people's API tokens (tokens.ts), the gateway
 * registry (gateways.ts), enrolment invites (enrolment.ts) and request nonces (nonces.ts) — behind
 * one interface with two implementations, the way cloud/store/chain-backend.ts does it for the chain:
 *
 * - SQLite: the classes of this folder on the process's own cloud.db (the embedded default);
 *   their methods answer synchronously, which the `Awaitable` results allow.
 * - PostgreSQL (cloud/store/pg/access.ts): the same tables in the database every cloud process of
 *   a `--database postgres://…` deployment shares, so a token issued, a gateway enrolled, a
 *   revocation or a nonce used through one process holds on every other.
 *
 * Callers always `await` the results.
 */
import { openCloudDb, type CloudDb } from '../store/db.ts'
import { isPostgresUrl } from '../store/chain-backend.ts'
import { Enrolment, type InviteInfo, type RedeemResult } from './enrolment.ts'
import { GatewayRegistry, type GatewayInfo } from './gateways.ts'
import { NonceStore } from './nonces.ts'
import { TokenStore, type Principal, type TokenInfo } from './tokens.ts'

export type Awaitable<T> = T | Promise<T>

export interface TokenStoreApi {
  create(role: string, name: string, now?: number): Awaitable<{ token: string; info: TokenInfo }>
  list(): Awaitable<TokenInfo[]>
  revoke(name: string, now?: number): Awaitable<TokenInfo>
  authenticate(token: string, now?: number): Awaitable<Principal | null>
}

export interface GatewayRegistryApi {
  get(gatewayId: string): Awaitable<GatewayInfo | null>
  live(gatewayId: string): Awaitable<GatewayInfo | null>
  liveByName(name: string): Awaitable<GatewayInfo | null>
  list(): Awaitable<GatewayInfo[]>
  counts(): Awaitable<{ total: number; live: number }>
  revoke(nameOrId: string, now?: number): Awaitable<GatewayInfo>
  /** An authenticated upload arrived; informational, never fails the request (errors are swallowed). */
  noteSync(gatewayId: string, now: number): void
}

export interface EnrolmentApi {
  invite(name: string, now?: number, ttlMs?: number): Awaitable<{ token: string; invite: InviteInfo }>
  list(): Awaitable<InviteInfo[]>
  redeem(req: { token: string; publicKey: Uint8Array; name: string }, now?: number): Awaitable<RedeemResult>
}

export interface NonceStoreApi {
  seen(gatewayId: string, nonce: string, now: number): Awaitable<boolean>
  /** Remember the nonce until `expiresAt`; false if a live row holds it already (a replay). Atomic. */
  claim(gatewayId: string, nonce: string, expiresAt: number, now: number): Awaitable<boolean>
  prune(now: number): Awaitable<number>
  count(): Awaitable<number>
}

export interface AccessStores {
  readonly kind: 'sqlite' | 'postgres'
  readonly tokens: TokenStoreApi
  readonly gateways: GatewayRegistryApi
  readonly enrolment: EnrolmentApi
  readonly nonces: NonceStoreApi
}

/** The access stores on a SQLite cloud database (the embedded default). */
export function sqliteAccess(db: CloudDb): AccessStores {
  const gateways = new GatewayRegistry(db)
  return { kind: 'sqlite', tokens: new TokenStore(db), gateways, enrolment: new Enrolment(db, gateways), nonces: new NonceStore(db) }
}

/**
 * The access stores for a command-line tool (`careledger cloud token|gateway …`): PostgreSQL when
 * `database` is a postgres:// URL (migrations applied first), else the SQLite file `sqlitePath`.
 * `close` ends the connection.
 */
export async function openAccessStores(database: string | null, sqlitePath: string): Promise<AccessStores & { close(): Promise<void> }> {
  if (database !== null && isPostgresUrl(database)) {
    const { openPgAccess } = await import('../store/pg/access.ts')
    return openPgAccess(database)
  }
  const db = openCloudDb(sqlitePath)
  return { ...sqliteAccess(db), close: async () => void db.close() }
}
