/**
 * A misbehaving cloud for tests: a real HTTP proxy in front of a real cloud that passes every
 * request on and lets the test rewrite the answer (status, headers, body) before the client sees
 * it — omitting, altering, substituting, reordering or replaying what the cloud said.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'

export interface Answer {
  status: number
  headers: Record<string, string>
  body: Buffer
}

/** Return the answer to send (changed or not); `path` includes the query string. */
export type Rewrite = (path: string, answer: Answer, upstream: (path: string, init?: RequestInit) => Promise<Answer>) => Promise<Answer> | Answer

export class RewritingProxy {
  readonly #server: Server
  readonly port: number
  rewrite: Rewrite = (_p, a) => a
  /** Every path requested, in order. */
  readonly seen: string[] = []

  private constructor(server: Server, port: number) {
    this.#server = server
    this.port = port
  }

  static async start(upstream: string): Promise<RewritingProxy> {
    const server = createServer()
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()))
    const proxy = new RewritingProxy(server, (server.address() as { port: number }).port)
    const fetchUp = async (path: string, init: RequestInit = {}): Promise<Answer> => {
      const res = await fetch(new URL(path, upstream), init)
      const headers: Record<string, string> = {}
      res.headers.forEach((v, k) => {
        if (!['content-length', 'transfer-encoding', 'connection', 'keep-alive'].includes(k)) headers[k] = v
      })
      return { status: res.status, headers, body: Buffer.from(await res.arrayBuffer()) }
    }
    server.on('request', async (req: IncomingMessage, res) => {
      try {
        const chunks: Buffer[] = []
        for await (const c of req) chunks.push(c as Buffer)
        const headers: Record<string, string> = {}
        for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && !['host', 'connection', 'content-length'].includes(k)) headers[k] = v
        const body = chunks.length ? Buffer.concat(chunks) : undefined
        const path = req.url ?? '/'
        proxy.seen.push(`${req.method} ${path}`)
        const answer = await proxy.rewrite(path, await fetchUp(path, { method: req.method ?? 'GET', headers, ...(body && req.method !== 'GET' && req.method !== 'HEAD' ? { body } : {}) }), fetchUp)
        res.writeHead(answer.status, { ...answer.headers, 'content-length': String(answer.body.length) })
        res.end(req.method === 'HEAD' ? undefined : answer.body)
      } catch (e) {
        res.writeHead(502).end(String(e))
      }
    })
    return proxy
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  close(): Promise<void> {
    this.#server.closeAllConnections()
    return new Promise((ok) => this.#server.close(() => ok()))
  }
}

/** A JSON answer's body, changed by `f`. */
export function rewriteJson<T>(answer: Answer, f: (body: T) => T | void): Answer {
  const body = JSON.parse(answer.body.toString('utf8')) as T
  const changed = f(body) ?? body
  return { ...answer, body: Buffer.from(JSON.stringify(changed)) }
}
