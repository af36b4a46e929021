/**
 * The cloud's retrieval API over HTTP (docs/api.md §Retrieval), as the clients' EvidenceSource and
 * Transformer: bearer token, a timeout on every request, API errors turned into CareLedgerErrors
 * that name the endpoint. Works with Node's fetch and a browser's alike.
 */
import { CareLedgerError } from '../shared/errors.ts'
import { evidenceQueryParams, HeadersPageSchema, RecordsPageSchema, type EvidenceQuery } from '../shared/protocol/evidence.ts'
import type { EvidenceSource, Transformer } from './retrieve.ts'

export interface CloudApiOptions {
  readonly url: string
  readonly token: string
  /** Per request (default 30 s). */
  readonly timeoutMs?: number
  readonly fetch?: typeof fetch
}

const b64 = (bytes: Uint8Array): string => {
  let s = ''
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(s)
}
const unb64 = (text: string): Uint8Array => Uint8Array.from(atob(text), (c) => c.charCodeAt(0))

export class CloudApi implements EvidenceSource {
  readonly #o: CloudApiOptions

  constructor(o: CloudApiOptions) {
    this.#o = o
  }

  async #call(path: string, init: RequestInit = {}): Promise<unknown> {
    const url = new URL(path, this.#o.url)
    let res: Response
    try {
      res = await (this.#o.fetch ?? fetch)(url, {
        ...init,
        headers: { authorization: `Bearer ${this.#o.token}`, accept: 'application/json', ...(init.headers as Record<string, string> | undefined) },
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? 30_000),
      })
    } catch (e) {
      throw new CareLedgerError('INVALID_ARGUMENT', `cannot reach the cloud at ${url.origin}: ${(e as Error).message}`, { reason: 'UNREACHABLE', url: url.origin })
    }
    const text = await res.text()
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      throw new CareLedgerError('INVALID_ENCODING', `${init.method ?? 'GET'} ${url.pathname}: the cloud answered ${res.status} with something that is not JSON`, { status: res.status })
    }
    if (!res.ok) {
      const err = (body as { error?: { code?: string; message?: string } }).error
      throw new CareLedgerError(res.status === 401 || res.status === 403 ? 'INVALID_ARGUMENT' : 'INVALID_ENCODING', `${init.method ?? 'GET'} ${url.pathname}: ${res.status} ${err?.code ?? ''}: ${err?.message ?? text.slice(0, 200)}`, {
        status: res.status,
        reason: err?.code ?? 'HTTP',
      })
    }
    return body
  }

  plan(q: EvidenceQuery): Promise<unknown> {
    return this.#call(`/v1/evidence?${evidenceQueryParams(q)}`)
  }

  async headers(from: number, to: number): Promise<{ height: number; header: string }[]> {
    const page = HeadersPageSchema.safeParse(await this.#call(`/v1/evidence/headers?from=${from}&to=${to}`))
    if (!page.success) throw new CareLedgerError('INVALID_ENCODING', 'GET /v1/evidence/headers: malformed answer', { reason: 'MALFORMED' })
    return page.data.headers
  }

  async records(stream: string, fromSeq: number, toSeq: number, head: number): Promise<{ records: unknown[]; next: number | null }> {
    const page = RecordsPageSchema.safeParse(await this.#call(`/v1/evidence/records?stream=${stream}&fromSeq=${fromSeq}&toSeq=${toSeq}&head=${head}`))
    if (!page.success) throw new CareLedgerError('INVALID_ENCODING', 'GET /v1/evidence/records: malformed answer', { reason: 'MALFORMED' })
    if (page.data.next !== null && page.data.next <= fromSeq) throw new CareLedgerError('INVALID_ENCODING', 'GET /v1/evidence/records: the next page does not move forward', { reason: 'MALFORMED' })
    return page.data
  }

  /**
   * POST /v1/blocks: the CAR of the blocks the cloud holds of `cids` (unchecked: see
   * clients/bulk-blocks.ts). Errors name the endpoint like the JSON calls.
   */
  async blocks(cids: readonly string[]): Promise<Uint8Array> {
    const url = new URL('/v1/blocks', this.#o.url)
    let res: Response
    try {
      res = await (this.#o.fetch ?? fetch)(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.#o.token}`, accept: 'application/vnd.ipld.car', 'content-type': 'application/json' },
        body: JSON.stringify({ cids }),
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? 30_000),
      })
    } catch (e) {
      throw new CareLedgerError('INVALID_ARGUMENT', `cannot reach the cloud at ${url.origin}: ${(e as Error).message}`, { reason: 'UNREACHABLE', url: url.origin })
    }
    const bytes = new Uint8Array(await res.arrayBuffer())
    if (!res.ok) throw new CareLedgerError('INVALID_ENCODING', `POST /v1/blocks: ${res.status}: ${new TextDecoder().decode(bytes.subarray(0, 200))}`, { status: res.status, reason: 'HTTP' })
    return bytes
  }

  /** The outsourced-decryption proxy (POST /v1/transform) holding `transformKey` for the duration of each request. */
  transformer(transformKey: Uint8Array): Transformer {
    const key = b64(transformKey)
    return {
      transform: async (ids) => {
        const body = (await this.#call('/v1/transform', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ transformKey: key, records: ids }) })) as {
          results?: { id: number; transformed?: string; error?: { code: string; message: string } }[]
        }
        const out = new Map<number, Uint8Array | Error>()
        for (const r of body.results ?? []) out.set(r.id, r.transformed ? unb64(r.transformed) : new Error(`the proxy could not transform it: ${r.error?.code}: ${r.error?.message}`))
        return out
      },
    }
  }
}
