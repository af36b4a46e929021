/**
 * The gateway's requests to the cloud on node:http (gateway/outbox/http-request.ts), and the
 * gateway's modules loading without undici (issue 11: ~10 – 14 MB of a Raspberry Pi gateway's RSS).
 */
import { execFileSync } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import { afterAll, expect, it } from 'vitest'
import { cloudRequest } from '../../gateway/outbox/http-request.ts'

const servers: Server[] = []
afterAll(() => {
  for (const s of servers) s.close()
})

async function serve(handler: Parameters<typeof createServer>[1]): Promise<URL> {
  const s = createServer(handler)
  servers.push(s)
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok))
  const { port } = s.address() as { port: number }
  return new URL(`http://127.0.0.1:${port}/v1/x`)
}

it('sends the body with its length and answers status and JSON, reusing the connection', async () => {
  const seen: Array<{ length: string | undefined; body: string; socket: unknown }> = []
  const url = await serve((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      seen.push({ length: req.headers['content-length'], body, socket: req.socket })
      res.writeHead(req.method === 'POST' ? 201 : 404, { 'content-type': 'application/json' }).end(JSON.stringify({ got: body }))
    })
  })
  const a = await cloudRequest(url, { method: 'POST', body: new TextEncoder().encode('héllo'), headers: { 'content-type': 'text/plain' }, timeoutMs: 5000 })
  expect(a.status).toBe(201)
  expect(await a.json()).toEqual({ got: 'héllo' })
  const b = await cloudRequest(url, { method: 'GET', timeoutMs: 5000 })
  expect(b.status).toBe(404)
  expect(seen[0]!.length).toBe('6')
  expect(seen[1]!.socket).toBe(seen[0]!.socket) // keep-alive
})

it('gives up on a cloud that does not answer, saying so', async () => {
  const url = await serve(() => {}) // never answers
  await expect(cloudRequest(url, { method: 'GET', timeoutMs: 200 })).rejects.toThrow(/no answer from the cloud within 0\.2 s/)
})

it('refuses a URL that is not http or https', async () => {
  await expect(cloudRequest(new URL('ftp://cloud.example/'), { method: 'GET', timeoutMs: 200 })).rejects.toThrow(/unsupported protocol ftp:/)
})

it('loads the gateway (runtime, back office, outbox client) without undici', () => {
  const script = [
    "await import('./gateway/runtime.ts')",
    "await import('./gateway/backoffice/plugin.ts')",
    "await import('./gateway/backoffice/office.ts')",
    "await import('./gateway/outbox/client.ts')",
    "console.log(JSON.stringify(process.moduleLoadList.filter((m) => m.includes('undici'))))",
  ].join(';')
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('../..', import.meta.url), encoding: 'utf8' })
  expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual([])
})
