/**
 * HTTP client of the cloud API (docs/api.md) for the gateway: registration with a one-time
 * enrolment token, and signed bulk uploads of sealed batches.
 */
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../../shared/errors.ts'
import { encodeCanonical } from '../../shared/encoding/canonical.ts'
import { signRequest } from '../../shared/protocol/request-signing.ts'
import type { CloudRegistration, GatewayIdentity } from '../identity.ts'
import type { CloudUploader, Upload, UploadResult } from './sync.ts'

const TIMEOUT_MS = 60_000

async function errorOf(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } }
    return `${res.status} ${body.error?.code ?? ''}: ${body.error?.message ?? res.statusText}`
  } catch {
    return `${res.status} ${res.statusText}`
  }
}

/** `careledger gateway register`: trade the enrolment token for a registration. */
export async function registerGateway(cloudUrl: string, token: string, name: string, identity: Pick<GatewayIdentity, 'publicKey' | 'gatewayId'>): Promise<CloudRegistration> {
  const url = new URL('/v1/gateways/register', cloudUrl)
  let res: Response
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, publicKey: bytesToHex(identity.publicKey), name }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
  } catch (e) {
    throw new CareLedgerError('INVALID_ARGUMENT', `cannot reach the cloud at ${cloudUrl}: ${(e as Error).message}`, { cloudUrl })
  }
  if (res.status !== 201) throw new CareLedgerError('INVALID_ARGUMENT', `registration refused: ${await errorOf(res)}`, { status: res.status })
  const body = (await res.json()) as { gatewayId: string; name: string; cloud: { signingKey: string; chameleonKey: string } }
  if (body.gatewayId !== identity.gatewayId) {
    throw new CareLedgerError('VERIFICATION_FAILED', `the cloud registered gateway id ${body.gatewayId}, expected ${identity.gatewayId}`, {})
  }
  return {
    url: new URL(cloudUrl).origin,
    gatewayId: body.gatewayId,
    name: body.name,
    cloudSigningKey: body.cloud.signingKey,
    chameleonKey: body.cloud.chameleonKey,
    registeredAt: Date.now(),
  }
}

/** Signed `POST /v1/batches/bulk`. */
export class HttpUploader implements CloudUploader {
  readonly #url: URL
  readonly #identity: GatewayIdentity

  constructor(cloudUrl: string, identity: GatewayIdentity) {
    this.#url = new URL('/v1/batches/bulk', cloudUrl)
    this.#identity = identity
  }

  async upload(batches: readonly Upload[]): Promise<UploadResult[]> {
    const body = encodeCanonical({ batches: batches.map((b) => ({ manifest: b.manifest, signature: b.signature, car: b.car })) })
    // A fresh timestamp and nonce per attempt: a retry must not look like a replay.
    const headers = signRequest(this.#identity.secretKey, { method: 'POST', path: this.#url.pathname, body })
    const res = await fetch(this.#url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/cbor' },
      body,
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
    if (res.status !== 200) throw new Error(`bulk upload: ${await errorOf(res)}`)
    const { results } = (await res.json()) as { results: { status: number; record: { id: number } | null; error: { code: string; message: string } | null }[] }
    return results.map((r) => ({ status: r.status, recordId: r.record?.id ?? null, error: r.error }))
  }
}
