/**
 * HTTP client of the cloud API (docs/api.md) for the gateway: registration with a one-time
 * enrolment token, signed bulk uploads of sealed batches, and the instruction channel (fetch,
 * acknowledge, resend an envelope block). Every request after registration is signed anew
 * (request signing version 2: shared/protocol/request-signing.ts).
 */
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../../shared/errors.ts'
import { encodeCanonical } from '../../shared/encoding/canonical.ts'
import { signRequest } from '../../shared/protocol/request-signing.ts'
import type { CloudRegistration, GatewayIdentity } from '../identity.ts'
import type { CloudUploader, Upload, UploadResult } from './sync.ts'
import type { InstructionChannel } from './instructions.ts'
import type { Ack } from '../../shared/protocol/instructions.ts'
import { cloudRequest, type CloudResponse } from './http-request.ts'

const TIMEOUT_MS = 60_000

async function errorOf(res: CloudResponse): Promise<string> {
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
  let res: CloudResponse
  try {
    res = await cloudRequest(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, publicKey: bytesToHex(identity.publicKey), name }),
      timeoutMs: TIMEOUT_MS,
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

/** Signed requests to the cloud: `POST /v1/batches/bulk` and the instruction channel. */
export class HttpUploader implements CloudUploader, InstructionChannel {
  readonly #base: string
  readonly #identity: GatewayIdentity
  /** Instructions the cloud said wait for this gateway, in its last bulk answer. */
  pendingInstructions = 0

  constructor(cloudUrl: string, identity: GatewayIdentity) {
    this.#base = cloudUrl
    this.#identity = identity
  }

  /** One signed request; a fresh timestamp and nonce per attempt, so a retry never looks like a replay. */
  async #signed(method: string, path: string, body: Uint8Array | null, contentType?: string): Promise<CloudResponse> {
    const url = new URL(path, this.#base)
    const target = url.pathname + url.search
    const headers: Record<string, string> = { ...signRequest(this.#identity.secretKey, { method, path: target, ...(body ? { body } : {}) }) }
    if (contentType) headers['content-type'] = contentType
    return cloudRequest(url, { method, headers, ...(body ? { body } : {}), timeoutMs: TIMEOUT_MS })
  }

  async upload(batches: readonly Upload[]): Promise<UploadResult[]> {
    const body = encodeCanonical({ batches: batches.map((b) => ({ manifest: b.manifest, signature: b.signature, car: b.car })) })
    const res = await this.#signed('POST', '/v1/batches/bulk', body, 'application/cbor')
    if (res.status !== 200) throw new Error(`bulk upload: ${await errorOf(res)}`)
    const answer = (await res.json()) as { results: { status: number; record: { id: number } | null; error: { code: string; message: string } | null }[]; instructions?: number }
    this.pendingInstructions = typeof answer.instructions === 'number' ? answer.instructions : 0
    return answer.results.map((r) => ({ status: r.status, recordId: r.record?.id ?? null, error: r.error }))
  }

  async fetchInstructions(): Promise<unknown[]> {
    const res = await this.#signed('GET', '/v1/gateways/self/instructions', null)
    if (res.status !== 200) throw new Error(`instructions: ${await errorOf(res)}`)
    const body = (await res.json()) as { instructions?: unknown }
    if (!Array.isArray(body.instructions)) throw new Error('instructions: the answer holds no instructions array')
    return body.instructions
  }

  async acknowledge(id: number, ack: Ack): Promise<void> {
    const res = await this.#signed('POST', `/v1/gateways/self/instructions/${id}/ack`, new TextEncoder().encode(JSON.stringify(ack)), 'application/json')
    if (res.status !== 200) throw new Error(`acknowledge instruction ${id}: ${await errorOf(res)}`)
  }

  async resendEnvelope(cid: string, bytes: Uint8Array): Promise<{ repaired: boolean }> {
    const res = await this.#signed('PUT', `/v1/envelopes/${cid}`, bytes, 'application/octet-stream')
    if (res.status !== 200) throw new Error(`resend envelope ${cid}: ${await errorOf(res)}`)
    return (await res.json()) as { repaired: boolean }
  }
}
