/**
 * Signed gateway → cloud requests, version 2 (docs/api.md §Signed requests). Pure: the gateway's
 * sync client signs with it, the cloud verifies with it.
 *
 * Version 2 makes the signature checkable from the headers alone, before a single body byte is
 * read: the body is bound through its RFC 9530 `Content-Digest` and its length, both signed, and
 * the cloud compares the body with the digest once it has read it (version 1 signed a hash of the
 * body that only the body could give, so the cloud had to read up to 16 MiB from anyone who named
 * a registered gateway before it could refuse them).
 *
 *   payload   = METHOD "\n" target "\n" gateway "\n" timestamp "\n" nonce "\n" length "\n" digest
 *               (UTF-8, no trailing newline; `digest` is the Content-Digest header value as sent)
 *   signature = Ed25519(gateway key, "careledger/v1/api-request/v2" ‖ 0x00 ‖ payload)   (RFC 8032 §5.1.6, sign.ts)
 *
 *   CareLedger-Signature-Version  2
 *   CareLedger-Gateway            16 hex: signingKeyId(gateway public key)
 *   CareLedger-Timestamp          epoch milliseconds at the gateway, decimal
 *   CareLedger-Nonce              32 lower-case hex digits, fresh per request
 *   CareLedger-Signature          base64 (RFC 4648 §4, padded) of the 64-byte signature
 *   Content-Digest                sha-256=:<base64 of SHA-256(body)>:    (RFC 9530 §2; of the empty string without a body)
 *   Content-Length                the body's length (RFC 9110 §8.6); absent = 0; chunked bodies are refused
 *
 * `target` is the request target exactly as on the request line (RFC 9112 §3.2, origin-form:
 * "/v1/batches", "/v1/records?after=5"), so a client must sign the very string it sends. The cloud
 * refuses a timestamp more than REQUEST_WINDOW_MS from its clock and remembers nonces for that
 * long, so a captured request cannot be replayed.
 */
import { createHash, randomBytes } from 'node:crypto'
import { CareLedgerError } from '../errors.ts'
import { sign, signingKeyId, signingPublicKey, verify, SIGNATURE_BYTES } from '../crypto/sign.ts'

/** The one version this build signs and accepts. */
export const REQUEST_SIGNATURE_VERSION = 2
export const REQUEST_SIGNING_DOMAIN = 'api-request/v2'
/** ±5 minutes between the gateway's timestamp and the cloud's clock. */
export const REQUEST_WINDOW_MS = 5 * 60_000

/** Header names as sent; HTTP field names are case-insensitive (RFC 9110 §5.1), Node lower-cases them. */
export const REQUEST_HEADERS = {
  version: 'CareLedger-Signature-Version',
  gateway: 'CareLedger-Gateway',
  timestamp: 'CareLedger-Timestamp',
  nonce: 'CareLedger-Nonce',
  signature: 'CareLedger-Signature',
  digest: 'Content-Digest',
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
  /** The Content-Digest header value as sent ("sha-256=:…:"). */
  readonly contentDigest: string
  /** The declared body length (Content-Length; 0 without one). */
  readonly contentLength: number
}

/** Everything the signature covers. */
export interface SignedFields {
  readonly method: string
  readonly path: string
  readonly gatewayId: string
  readonly timestamp: number
  readonly nonce: string
  readonly contentLength: number
  readonly contentDigest: string
}

const GATEWAY_ID = /^[0-9a-f]{16}$/
const NONCE = /^[0-9a-f]{32}$/
const TIMESTAMP = /^(0|[1-9][0-9]{0,15})$/
const LENGTH = /^(0|[1-9][0-9]{0,14})$/
/** 64 bytes in padded base64: 86 characters and "==". */
const SIGNATURE_B64 = /^[A-Za-z0-9+/]{86}==$/
/** RFC 9530 §2 with the one algorithm we accept: a dictionary of one member, sha-256, a byte sequence of 32 bytes. */
const DIGEST = /^sha-256=:[A-Za-z0-9+/]{43}=:$/
/** The request target: origin-form printable ASCII (RFC 9112 §3.2.1), no line breaks that could forge payload lines. */
const TARGET = /^\/[\x21-\x7e]*$/

function bad(problem: string, info: Record<string, unknown>): never {
  throw new CareLedgerError('INVALID_ARGUMENT', `signed request: ${problem}`, info)
}

/** The RFC 9530 Content-Digest value of a body: "sha-256=:" base64(SHA-256(body)) ":". */
export const contentDigest = (body: Uint8Array): string => `sha-256=:${createHash('sha256').update(body).digest('base64')}:`

/** Whether `body` is what the signed Content-Digest and length describe. */
export const bodyMatches = (body: Uint8Array, creds: Pick<RequestCredentials, 'contentDigest' | 'contentLength'>): boolean =>
  body.length === creds.contentLength && contentDigest(body) === creds.contentDigest

/** The bytes that are signed (after the domain prefix): seven lines, see the header comment. */
export function requestSigningPayload(r: SignedFields): Uint8Array {
  if (typeof r.method !== 'string' || !/^[A-Za-z]{1,16}$/.test(r.method)) bad(`method ${JSON.stringify(r.method)} is not an HTTP method`, { field: 'method' })
  if (typeof r.path !== 'string' || !TARGET.test(r.path)) bad(`target ${JSON.stringify(String(r.path).slice(0, 80))} must be the request target: "/" then printable ASCII`, { field: 'path' })
  if (typeof r.gatewayId !== 'string' || !GATEWAY_ID.test(r.gatewayId)) bad('gateway must be 16 lower-case hex digits', { field: 'gatewayId' })
  if (!Number.isSafeInteger(r.timestamp) || r.timestamp < 0) bad(`timestamp ${String(r.timestamp)} must be epoch milliseconds`, { field: 'timestamp' })
  if (typeof r.nonce !== 'string' || !NONCE.test(r.nonce)) bad('nonce must be 32 lower-case hex digits', { field: 'nonce' })
  if (!Number.isSafeInteger(r.contentLength) || r.contentLength < 0) bad(`length ${String(r.contentLength)} must be a byte count`, { field: 'contentLength' })
  if (typeof r.contentDigest !== 'string' || !DIGEST.test(r.contentDigest)) bad('digest must be "sha-256=:<base64 of 32 bytes>:" (RFC 9530)', { field: 'contentDigest' })
  const lines = [r.method.toUpperCase(), r.path, r.gatewayId, String(r.timestamp), r.nonce, String(r.contentLength), r.contentDigest]
  return new TextEncoder().encode(lines.join('\n'))
}

/** A fresh nonce: 128 random bits as 32 hex digits. */
export const newRequestNonce = (): string => randomBytes(16).toString('hex')

/**
 * Sign a request with the gateway's Ed25519 secret key; returns the six headers to send with it
 * (the caller's HTTP client adds Content-Length for a body). Sign each attempt anew: a retried
 * request needs a fresh nonce (and timestamp), or the cloud refuses it as REPLAYED_REQUEST.
 */
export function signRequest(secretKey: Uint8Array, req: RequestToSign): SignedRequestHeaders {
  const body = req.body ?? new Uint8Array(0)
  if (!(body instanceof Uint8Array)) bad('body must be bytes', { field: 'body' })
  const fields: SignedFields = {
    method: req.method,
    path: req.path,
    gatewayId: signingKeyId(signingPublicKey(secretKey)),
    timestamp: req.timestamp ?? Date.now(),
    nonce: req.nonce ?? newRequestNonce(),
    contentLength: body.length,
    contentDigest: contentDigest(body),
  }
  const signature = sign(secretKey, REQUEST_SIGNING_DOMAIN, requestSigningPayload(fields))
  return {
    [REQUEST_HEADERS.version]: String(REQUEST_SIGNATURE_VERSION),
    [REQUEST_HEADERS.gateway]: fields.gatewayId,
    [REQUEST_HEADERS.timestamp]: String(fields.timestamp),
    [REQUEST_HEADERS.nonce]: fields.nonce,
    [REQUEST_HEADERS.signature]: Buffer.from(signature).toString('base64'),
    [REQUEST_HEADERS.digest]: fields.contentDigest,
  } as SignedRequestHeaders
}

type HeaderBag = Readonly<Record<string, string | readonly string[] | undefined>>

/**
 * Parse the signed headers (names matched case-insensitively). INVALID_ARGUMENT with
 * `info.header` naming the first one that is missing, repeated or malformed, and `info.reason`:
 * MISSING (a request without any of them is simply unsigned), MALFORMED, or VERSION (signed under
 * a scheme this build no longer accepts — an older gateway).
 */
export function readRequestCredentials(headers: HeaderBag): RequestCredentials {
  const lower = new Map<string, string | readonly string[] | undefined>()
  for (const [k, v] of Object.entries(headers)) lower.set(k.toLowerCase(), v)
  const get = (name: string) => lower.get(name.toLowerCase())
  const one = (name: string, pattern: RegExp, shape: string): string => {
    const v = get(name)
    if (v === undefined || v === '') bad(`header ${name} is missing`, { header: name, reason: 'MISSING' })
    if (typeof v !== 'string') bad(`header ${name} is given more than once`, { header: name, reason: 'MALFORMED' })
    if (!pattern.test(v)) bad(`header ${name} must be ${shape}`, { header: name, reason: 'MALFORMED' })
    return v
  }
  const gatewayId = one(REQUEST_HEADERS.gateway, GATEWAY_ID, '16 lower-case hex digits (the gateway id)')
  const version = get(REQUEST_HEADERS.version)
  if (version === undefined && get(REQUEST_HEADERS.signature) !== undefined) {
    bad(
      `header ${REQUEST_HEADERS.version} is missing: this is a version 1 request signature (signed over the body, so the body had to be read first), which this cloud no longer accepts; sign with version ${REQUEST_SIGNATURE_VERSION} (docs/api.md §Signed requests) — upgrade the gateway`,
      { header: REQUEST_HEADERS.version, reason: 'VERSION', version: 1 },
    )
  }
  const v = one(REQUEST_HEADERS.version, /^[0-9]{1,3}$/, 'a version number')
  if (v !== String(REQUEST_SIGNATURE_VERSION)) {
    bad(`request signature version ${v} is not supported (this cloud accepts version ${REQUEST_SIGNATURE_VERSION}, docs/api.md §Signed requests)`, { header: REQUEST_HEADERS.version, reason: 'VERSION', version: Number(v) })
  }
  const timestamp = Number(one(REQUEST_HEADERS.timestamp, TIMESTAMP, 'epoch milliseconds (decimal digits)'))
  if (!Number.isSafeInteger(timestamp)) bad(`header ${REQUEST_HEADERS.timestamp} is out of range`, { header: REQUEST_HEADERS.timestamp, reason: 'MALFORMED' })
  const nonce = one(REQUEST_HEADERS.nonce, NONCE, '32 lower-case hex digits')
  const signature = new Uint8Array(Buffer.from(one(REQUEST_HEADERS.signature, SIGNATURE_B64, `base64 of a ${SIGNATURE_BYTES}-byte Ed25519 signature`), 'base64'))
  const digest = one(REQUEST_HEADERS.digest, DIGEST, '"sha-256=:<base64 of the body\'s SHA-256>:" (RFC 9530; also for an empty body)')
  if (get('transfer-encoding') !== undefined) {
    bad('a signed request must declare its body length with Content-Length, not Transfer-Encoding', { header: 'Transfer-Encoding', reason: 'MALFORMED' })
  }
  const length = get('content-length')
  if (length !== undefined && (typeof length !== 'string' || !LENGTH.test(length))) bad('header Content-Length must be one decimal byte count', { header: 'Content-Length', reason: 'MALFORMED' })
  return { gatewayId, timestamp, nonce, signature, contentDigest: digest, contentLength: length === undefined ? 0 : Number(length) }
}

/** Whether `timestamp` is within ±windowMs of `now` (the cloud's clock). */
export const isFreshRequest = (timestamp: number, now: number, windowMs: number = REQUEST_WINDOW_MS): boolean => Math.abs(now - timestamp) <= windowMs

/**
 * Strict Ed25519 verification (RFC 8032 §5.1.7) of a request signature under the gateway's
 * registered public key. False for anything that does not verify.
 */
export function verifyRequestSignature(publicKey: Uint8Array, req: SignedFields, signature: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) return false
  let payload: Uint8Array
  try {
    payload = requestSigningPayload(req)
  } catch {
    return false
  }
  return verify(publicKey, REQUEST_SIGNING_DOMAIN, payload, signature)
}
