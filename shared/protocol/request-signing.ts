/**
 * Signed gateway → cloud requests (docs/api.md §Gateways: one-time enrolment, then signed requests).
 * Pure: the gateway's sync client signs with it, the cloud verifies with it.
 *
 *   payload   = canonical CBOR [METHOD, pathWithQuery, hex(SHA-256(body)), timestamp, nonce]   (RFC 8949 §4.2.1)
 *   signature = Ed25519(gateway key, domain "api-request", payload)                            (RFC 8032 §5.1.6, sign.ts)
 *
 *   CareLedger-Gateway    16 hex: signingKeyId(gateway public key)
 *   CareLedger-Timestamp  epoch milliseconds at the gateway, decimal
 *   CareLedger-Nonce      32 lower-case hex digits, fresh per request
 *   CareLedger-Signature  base64 (RFC 4648 §4, padded) of the 64-byte signature
 *
 * `pathWithQuery` is the request target exactly as it appears on the request line (RFC 9112 §3.2,
 * origin-form: "/v1/batches", "/v1/records?after=5"), so a client must sign the very string it sends.
 * The body hash covers the exact bytes sent; a request without a body hashes the empty string.
 * The cloud refuses a timestamp more than REQUEST_WINDOW_MS from its clock and remembers nonces
 * for that long, so a captured request cannot be replayed.
 */
import { randomBytes } from 'node:crypto'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../errors.ts'
import { encodeCanonical } from '../encoding/canonical.ts'
import { sign, signingKeyId, signingPublicKey, verify, SIGNATURE_BYTES } from '../crypto/sign.ts'

export const REQUEST_SIGNING_DOMAIN = 'api-request'
/** ±5 minutes between the gateway's timestamp and the cloud's clock. */
export const REQUEST_WINDOW_MS = 5 * 60_000

/** Header names as sent; HTTP field names are case-insensitive (RFC 9110 §5.1), Node lower-cases them. */
export const REQUEST_HEADERS = {
  gateway: 'CareLedger-Gateway',
  timestamp: 'CareLedger-Timestamp',
  nonce: 'CareLedger-Nonce',
  signature: 'CareLedger-Signature',
} as const

export interface RequestToSign {
  /** HTTP method; upper-cased before signing. */
  readonly method: string
  /** Request target as sent: path plus query string, starting with "/". */
  readonly path: string
  /** Exact body bytes; omit (or empty) for a request without a body. */
  readonly body?: Uint8Array
  /** Epoch ms; defaults to Date.now(). */
  readonly timestamp?: number
  /** 32 lower-case hex digits; defaults to 16 fresh random bytes. */
  readonly nonce?: string
}

export type SignedRequestHeaders = { readonly [K in (typeof REQUEST_HEADERS)[keyof typeof REQUEST_HEADERS]]: string }

/** What a signed request carries in its headers, parsed. */
export interface RequestCredentials {
  readonly gatewayId: string
  readonly timestamp: number
  readonly nonce: string
  readonly signature: Uint8Array
}

const GATEWAY_ID = /^[0-9a-f]{16}$/
const NONCE = /^[0-9a-f]{32}$/
const TIMESTAMP = /^(0|[1-9][0-9]{0,15})$/
/** 64 bytes in padded base64: 86 characters and "==". */
const SIGNATURE_B64 = /^[A-Za-z0-9+/]{86}==$/
const EMPTY = new Uint8Array(0)

function bad(problem: string, info: Record<string, unknown>): never {
  throw new CareLedgerError('INVALID_ARGUMENT', `signed request: ${problem}`, info)
}

/** The bytes that are signed: canonical CBOR [METHOD, pathWithQuery, hex(SHA-256(body)), timestamp, nonce]. */
export function requestSigningPayload(r: { method: string; path: string; body?: Uint8Array; timestamp: number; nonce: string }): Uint8Array {
  if (typeof r.method !== 'string' || !/^[A-Za-z]{1,16}$/.test(r.method)) bad(`method ${JSON.stringify(r.method)} is not an HTTP method`, { field: 'method' })
  if (typeof r.path !== 'string' || !r.path.startsWith('/')) bad(`path ${JSON.stringify(r.path)} must be the request target, starting with "/"`, { field: 'path' })
  if (!Number.isSafeInteger(r.timestamp) || r.timestamp < 0) bad(`timestamp ${String(r.timestamp)} must be epoch milliseconds`, { field: 'timestamp' })
  if (typeof r.nonce !== 'string' || !NONCE.test(r.nonce)) bad('nonce must be 32 lower-case hex digits', { field: 'nonce' })
  const body = r.body ?? EMPTY
  if (!(body instanceof Uint8Array)) bad('body must be bytes', { field: 'body' })
  return encodeCanonical([r.method.toUpperCase(), r.path, bytesToHex(sha256(body)), r.timestamp, r.nonce])
}

/** A fresh nonce: 128 random bits as 32 hex digits. */
export const newRequestNonce = (): string => randomBytes(16).toString('hex')

/**
 * Sign a request with the gateway's Ed25519 secret key; returns the four headers to send with it.
 * Sign each attempt anew: a retried request needs a fresh nonce (and timestamp), or the cloud
 * refuses it as REPLAYED_REQUEST.
 */
export function signRequest(secretKey: Uint8Array, req: RequestToSign): SignedRequestHeaders {
  const timestamp = req.timestamp ?? Date.now()
  const nonce = req.nonce ?? newRequestNonce()
  const payload = requestSigningPayload({ method: req.method, path: req.path, body: req.body ?? EMPTY, timestamp, nonce })
  const signature = sign(secretKey, REQUEST_SIGNING_DOMAIN, payload)
  return {
    [REQUEST_HEADERS.gateway]: signingKeyId(signingPublicKey(secretKey)),
    [REQUEST_HEADERS.timestamp]: String(timestamp),
    [REQUEST_HEADERS.nonce]: nonce,
    [REQUEST_HEADERS.signature]: Buffer.from(signature).toString('base64'),
  } as SignedRequestHeaders
}

type HeaderBag = Readonly<Record<string, string | readonly string[] | undefined>>

/**
 * Parse the four headers (names matched case-insensitively). INVALID_ARGUMENT with
 * `info.header` naming the first one that is missing, repeated or malformed, and
 * `info.reason` MISSING or MALFORMED — a request without any of them is simply unsigned.
 */
export function readRequestCredentials(headers: HeaderBag): RequestCredentials {
  const lower = new Map<string, string | readonly string[] | undefined>()
  for (const [k, v] of Object.entries(headers)) lower.set(k.toLowerCase(), v)
  const one = (name: string, pattern: RegExp, shape: string): string => {
    const v = lower.get(name.toLowerCase())
    if (v === undefined || v === '') bad(`header ${name} is missing`, { header: name, reason: 'MISSING' })
    if (typeof v !== 'string') bad(`header ${name} is given more than once`, { header: name, reason: 'MALFORMED' })
    if (!pattern.test(v)) bad(`header ${name} must be ${shape}`, { header: name, reason: 'MALFORMED' })
    return v
  }
  const gatewayId = one(REQUEST_HEADERS.gateway, GATEWAY_ID, '16 lower-case hex digits (the gateway id)')
  const timestamp = Number(one(REQUEST_HEADERS.timestamp, TIMESTAMP, 'epoch milliseconds (decimal digits)'))
  if (!Number.isSafeInteger(timestamp)) bad(`header ${REQUEST_HEADERS.timestamp} is out of range`, { header: REQUEST_HEADERS.timestamp, reason: 'MALFORMED' })
  const nonce = one(REQUEST_HEADERS.nonce, NONCE, '32 lower-case hex digits')
  const signature = new Uint8Array(Buffer.from(one(REQUEST_HEADERS.signature, SIGNATURE_B64, `base64 of a ${SIGNATURE_BYTES}-byte Ed25519 signature`), 'base64'))
  return { gatewayId, timestamp, nonce, signature }
}

/** Whether `timestamp` is within ±windowMs of `now` (the cloud's clock). */
export const isFreshRequest = (timestamp: number, now: number, windowMs: number = REQUEST_WINDOW_MS): boolean => Math.abs(now - timestamp) <= windowMs

/**
 * Strict Ed25519 verification (RFC 8032 §5.1.7) of a request signature under the gateway's
 * registered public key. False for anything that does not verify.
 */
export function verifyRequestSignature(
  publicKey: Uint8Array,
  req: { method: string; path: string; body?: Uint8Array; timestamp: number; nonce: string },
  signature: Uint8Array,
): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) return false
  return verify(publicKey, REQUEST_SIGNING_DOMAIN, requestSigningPayload(req), signature)
}
