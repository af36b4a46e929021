/**
 * The gateway's HTTP(S) requests to the cloud, on node:http and node:https with keep-alive agents.
 *
 * Not `fetch`: Node's fetch is undici, whose first use costs the gateway ~14 MB of resident memory
 * more than node:http (measured with 50 requests, one process each: RSS +20 MB against +6 MB), a
 * tenth of a Raspberry Pi gateway's 150 MB budget at a ward (docs/operations.md §Capacity, issue 11);
 * and not an ES import of node:http, which loads undici too (see gateway/http.ts).
 * The answer has the part of fetch's Response the client uses: status, statusText, json().
 */
import type { Agent as HttpAgent, IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'

// node:http through process.getBuiltinModule, not an ES import, which would load undici (gateway/http.ts).
const { Agent: HttpAgentClass, request: httpRequest } = process.getBuiltinModule('node:http')

export interface CloudResponse {
  readonly status: number
  readonly statusText: string
  json(): Promise<unknown>
}

export interface CloudRequest {
  readonly method: string
  readonly headers?: Record<string, string>
  readonly body?: Uint8Array | string
  readonly timeoutMs: number
}

/** Largest answer read (the cloud's answers are small JSON documents: results of a bulk, instructions). */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024

let agents: { http: HttpAgent; https: HttpsAgent } | null = null

export function cloudRequest(url: URL, req: CloudRequest): Promise<CloudResponse> {
  agents ??= { http: new HttpAgentClass({ keepAlive: true, maxSockets: 4 }), https: new HttpsAgent({ keepAlive: true, maxSockets: 4 }) }
  const secure = url.protocol === 'https:'
  if (!secure && url.protocol !== 'http:') return Promise.reject(new Error(`unsupported protocol ${url.protocol} in ${url.origin}`))
  const send = secure ? httpsRequest : httpRequest
  const signal = AbortSignal.timeout(req.timeoutMs)
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...req.headers }
    if (req.body !== undefined) headers['content-length'] = String(typeof req.body === 'string' ? Buffer.byteLength(req.body) : req.body.length)
    const r = send(url, { method: req.method, headers, agent: secure ? agents!.https : agents!.http, signal }, (res: IncomingMessage) => {
      const chunks: Buffer[] = []
      let size = 0
      const text = new Promise<string>((ok, ko) => {
        res.on('data', (c: Buffer) => {
          size += c.length
          if (size > MAX_ANSWER_BYTES) return res.destroy(new Error(`the cloud's answer exceeds ${MAX_ANSWER_BYTES} bytes`))
          chunks.push(c)
        })
        res.once('end', () => ok(Buffer.concat(chunks).toString('utf8')))
        res.once('error', ko)
        res.once('aborted', () => ko(new Error('the cloud closed the connection mid-answer')))
      })
      text.catch(() => {}) // read or not, the answer is consumed so the socket can be reused
      resolve({
        status: res.statusCode ?? 0,
        statusText: res.statusMessage ?? '',
        json: async () => JSON.parse(await text) as unknown,
      })
    })
    r.once('error', (e) => reject(signal.aborted ? new Error(`no answer from the cloud within ${req.timeoutMs / 1000} s (${url.origin})`) : e))
    r.end(req.body)
  })
}
