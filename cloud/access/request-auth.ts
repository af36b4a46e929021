/**
 * Authenticating a request (docs/api.md §Credentials):
 *
 *   people   `Authorization: Bearer clt_…` (RFC 6750 §2.1) → a principal with a role, checked
 *            against the endpoint's group in roles.ts (401 UNAUTHENTICATED / 403 FORBIDDEN).
 *   gateways the signed headers (shared/protocol/request-signing.ts, version 2), in two steps so a
 *            stranger's body is never read:
 *              checkGatewayHeaders   before the body: headers present and well-formed, signature
 *                                    version 2, timestamp within ±5 min, gateway registered and
 *                                    not revoked, nonce unseen, Ed25519 signature over method,
 *                                    target, gateway, timestamp, nonce, body length and
 *                                    Content-Digest
 *              checkGatewayBody      after the body: its length and SHA-256 are the signed ones;
 *                                    then the nonce is claimed atomically
 *            A refused request stores nothing — the nonce is claimed only once the signature verifies.
 */
import { isCareLedgerError } from '../../shared/errors.ts'
import { bodyMatches, isFreshRequest, readRequestCredentials, REQUEST_WINDOW_MS, verifyRequestSignature, type RequestCredentials } from '../../shared/protocol/request-signing.ts'
import { ApiError } from '../service/errors.ts'
import type { GatewayInfo } from './gateways.ts'
import { ACCESS, type AccessGroup } from './roles.ts'
import type { GatewayRegistryApi, NonceStoreApi, TokenStoreApi } from './store.ts'
import type { Principal } from './tokens.ts'

/** People: the principal behind the Authorization header, if its role may reach `group`. */
export async function authorizePerson(tokens: TokenStoreApi, authorization: string | undefined, group: AccessGroup, now: number): Promise<Principal> {
  if (authorization === undefined || authorization === '') {
    throw new ApiError('UNAUTHENTICATED', 'this endpoint needs a credential: Authorization: Bearer clt_…', { header: 'Authorization' })
  }
  const m = /^Bearer +(\S+)$/i.exec(authorization)
  if (!m) throw new ApiError('UNAUTHENTICATED', 'the Authorization header must be "Bearer clt_…"', { header: 'Authorization' })
  const principal = await tokens.authenticate(m[1]!, now)
  if (!principal) throw new ApiError('UNAUTHENTICATED', 'the API token is not valid (unknown, malformed or revoked)', { header: 'Authorization' })
  const allowed: readonly string[] = ACCESS[group]
  if (!allowed.includes(principal.role)) {
    throw new ApiError('FORBIDDEN', `role ${principal.role} may not do this (allowed: ${allowed.join(', ')})`, { role: principal.role, allowed })
  }
  return principal
}

export interface GatewayCredentials extends RequestCredentials {
  readonly gateway: GatewayInfo
}

export interface GatewayAuthDeps {
  readonly gateways: GatewayRegistryApi
  readonly nonces: NonceStoreApi
  readonly windowMs?: number
}

type Headers = Readonly<Record<string, string | readonly string[] | undefined>>

/** Step 1, before the body is read: everything but the body itself. */
export async function checkGatewayHeaders(deps: GatewayAuthDeps, req: { method: string; url: string; headers: Headers }, now: number): Promise<GatewayCredentials> {
  let creds: RequestCredentials
  try {
    creds = readRequestCredentials(req.headers)
  } catch (e) {
    if (!isCareLedgerError(e)) throw e
    const header = e.info.header as string | undefined
    if (e.info.reason === 'VERSION') {
      throw new ApiError('UNSUPPORTED_SIGNATURE', e.message.replace(/^signed request: /, ''), { header, version: e.info.version, supported: [2] })
    }
    const unsigned = e.info.reason === 'MISSING' && header === 'CareLedger-Gateway'
    throw new ApiError('UNAUTHENTICATED', unsigned ? `unsigned request: ${e.message.replace(/^signed request: /, '')}; gateway requests must be signed` : e.message, {
      header,
    })
  }
  const windowMs = deps.windowMs ?? REQUEST_WINDOW_MS
  if (!isFreshRequest(creds.timestamp, now, windowMs)) {
    throw new ApiError('STALE_REQUEST', `the request timestamp is ${Math.round((creds.timestamp - now) / 1000)} s from the cloud clock (allowed: ±${windowMs / 1000} s); check the gateway clock (NTP)`, {
      timestamp: creds.timestamp,
      cloudTime: now,
      windowMs,
    })
  }
  const gateway = await deps.gateways.live(creds.gatewayId)
  if (!gateway) {
    const known = await deps.gateways.get(creds.gatewayId)
    throw new ApiError('UNKNOWN_GATEWAY', known ? `gateway ${creds.gatewayId} has been revoked` : `gateway ${creds.gatewayId} is not registered`, { gatewayId: creds.gatewayId })
  }
  if (await deps.nonces.seen(creds.gatewayId, creds.nonce, now)) throw replayed(creds)
  const signed = { method: req.method, path: req.url, gatewayId: creds.gatewayId, timestamp: creds.timestamp, nonce: creds.nonce, contentLength: creds.contentLength, contentDigest: creds.contentDigest }
  if (!verifyRequestSignature(gateway.publicKey, signed, creds.signature)) {
    throw new ApiError(
      'BAD_SIGNATURE',
      `the request signature does not verify under gateway ${creds.gatewayId}'s key (signed, version 2: method, target "${req.url.slice(0, 200)}", gateway, timestamp, nonce, Content-Length ${creds.contentLength}, Content-Digest)`,
      { gatewayId: creds.gatewayId },
    )
  }
  return { ...creds, gateway }
}

/** Step 2, with the exact body bytes: they are what the signed length and Content-Digest describe; then the nonce is claimed. */
export async function checkGatewayBody(deps: GatewayAuthDeps, creds: GatewayCredentials, body: Uint8Array, now: number): Promise<GatewayInfo> {
  if (!bodyMatches(body, creds)) {
    throw new ApiError('BAD_DIGEST', `the body (${body.length} bytes) is not the one signed: it must be ${creds.contentLength} bytes with Content-Digest ${creds.contentDigest}`, {
      gatewayId: creds.gatewayId,
      header: 'Content-Digest',
    })
  }
  // Remember the nonce as long as a replay's timestamp could still pass the clock check. Claimed
  // atomically: of two copies of one request read at the same time, only one passes.
  if (!await deps.nonces.claim(creds.gatewayId, creds.nonce, creds.timestamp + (deps.windowMs ?? REQUEST_WINDOW_MS) + 1000, now)) throw replayed(creds)
  return creds.gateway
}

const replayed = (c: RequestCredentials): ApiError =>
  new ApiError('REPLAYED_REQUEST', `nonce ${c.nonce} was already used by gateway ${c.gatewayId}; sign every request (and every retry) with a fresh nonce`, {
    gatewayId: c.gatewayId,
    nonce: c.nonce,
  })
