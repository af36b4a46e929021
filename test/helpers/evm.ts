/**
 * An Ethereum-compatible chain for anchoring tests, in this process: Hardhat 3's simulated network
 * (EDR, the Rust EVM behind Hardhat, created programmatically: no config file, no network access),
 * served as JSON-RPC over HTTP on 127.0.0.1 like a real node, behind a TCP proxy that a test can
 * cut, hang or make swallow responses — what the cloud meets when its RPC provider is down, slow,
 * or loses an answer after acting on the request.
 *
 * EDR mines a block per transaction (automine) and, with `intervalMs`, also on a timer, so that
 * confirmations accrue as on a live chain. Its development methods stand in for the network's
 * misbehaviour: `hardhat_dropTransaction` (a transaction evicted from the mempool),
 * `evm_snapshot` / `evm_revert` (a reorganisation that removes mined blocks).
 *
 * Why Hardhat 3 rather than ganache 7 or @ethereumjs/vm: it is maintained (ganache is archived and
 * stops at Shanghai), it has a real JSON-RPC with the development methods above (@ethereumjs/vm has
 * none: a hand-written shim would be the thing under test), it decodes revert data like a node,
 * and it runs in process on Node 24. Its native binding is an optional package that npm installs
 * only when npm itself runs on Node >= 22 (README §Runtime and tooling, .ci/run).
 */
import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createNetServer, connect, type Server as NetServer, type Socket } from 'node:net'
import { once } from 'node:events'
import { BrowserProvider, Wallet, encryptKeystoreJson, parseEther, toBeHex, type Eip1193Provider } from 'ethers'

export type ProxyMode = 'pass' | 'refuse' | 'hang' | 'swallow'

/** A TCP proxy to the RPC port: `pass` forwards; `refuse` resets every connection; `hang` accepts and never answers; `swallow` forwards requests but drops the answers and resets. */
export class CuttableProxy {
  #mode: ProxyMode = 'pass'
  readonly #sockets = new Set<Socket>()
  readonly server: NetServer
  port = 0

  readonly upstreamPort: number

  constructor(upstreamPort: number) {
    this.upstreamPort = upstreamPort
    this.server = createNetServer((client) => this.#accept(client))
  }

  async listen(): Promise<this> {
    this.server.listen(0, '127.0.0.1')
    await once(this.server, 'listening')
    this.port = (this.server.address() as { port: number }).port
    return this
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  get mode(): ProxyMode {
    return this.#mode
  }

  /** Change the mode; every open connection is reset so the client reconnects under it. */
  set(mode: ProxyMode): void {
    this.#mode = mode
    for (const s of this.#sockets) s.destroy()
    this.#sockets.clear()
  }

  #accept(client: Socket): void {
    const track = (s: Socket): void => {
      this.#sockets.add(s)
      s.on('close', () => this.#sockets.delete(s))
      s.on('error', () => {})
    }
    track(client)
    const mode = this.#mode
    if (mode === 'refuse') return void client.resetAndDestroy()
    if (mode === 'hang') return // read nothing, answer nothing
    const upstream = connect(this.upstreamPort, '127.0.0.1')
    track(upstream)
    client.pipe(upstream)
    if (mode === 'pass') upstream.pipe(client)
    else upstream.once('data', () => setTimeout(() => client.resetAndDestroy(), 5)) // acted on, answer lost
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  }

  async close(): Promise<void> {
    this.set('refuse')
    this.server.close()
  }
}

export interface TestEvm {
  readonly chainId: number
  /** The RPC URL the cloud uses (through the proxy). */
  readonly url: string
  readonly proxy: CuttableProxy
  /** In-process provider (not through the proxy): for the test's own checks. */
  readonly provider: BrowserProvider
  /** Every JSON-RPC method that reached the node through HTTP, in order. */
  readonly calls: string[]
  request(method: string, params?: unknown[]): Promise<unknown>
  /** The next `times` requests of `method` reach the node and are carried out, but their answer is lost (the connection is reset). */
  loseAnswer(method: string, times?: number): void
  /** The next `n` HTTP requests are answered 503 without reaching the node (a provider erroring). */
  failRequests(n: number): void
  /** Mine `n` empty blocks now. */
  mine(n?: number): Promise<void>
  /** A new account with 100 ETH. */
  fundedWallet(): Promise<Wallet>
  close(): Promise<void>
}

export async function startTestEvm(opts: { chainId?: number; intervalMs?: number } = {}): Promise<TestEvm> {
  const chainId = opts.chainId ?? 31337
  const { createHardhatRuntimeEnvironment } = await import('hardhat/hre')
  const hre = await createHardhatRuntimeEnvironment({
    networks: { default: { type: 'edr-simulated', chainId, mining: { auto: true, interval: opts.intervalMs ?? 0 }, allowBlocksWithSameTimestamp: true } },
  } as never)
  let conn: Awaited<ReturnType<typeof hre.network.connect>>
  try {
    conn = await hre.network.connect()
  } catch (e) {
    if (/native binding/i.test(String(e))) throw new Error("Hardhat's EDR native binding is missing: npm ran on Node < 22 and skipped it; reinstall with npm on Node 24 (README §Runtime and tooling)", { cause: e })
    throw e
  }
  const eip1193 = conn.provider as unknown as Eip1193Provider
  const calls: string[] = []
  const lose = new Map<string, number>()
  let failing = 0

  type Rpc = { jsonrpc: '2.0'; id: unknown; method: string; params?: unknown[] }
  const answer = async (r: Rpc): Promise<object> => {
    calls.push(r.method)
    try {
      return { jsonrpc: '2.0', id: r.id, result: await eip1193.request({ method: r.method, params: r.params ?? [] }) }
    } catch (e) {
      const err = e as { code?: number; message?: string; data?: unknown }
      return { jsonrpc: '2.0', id: r.id, error: { code: typeof err.code === 'number' ? err.code : -32603, message: err.message ?? String(e), ...(err.data === undefined ? {} : { data: err.data }) } }
    }
  }
  const http: Server = createHttpServer(async (req, res) => {
    if (failing > 0) {
      failing--
      res.writeHead(503, { 'content-type': 'text/plain' }).end('upstream unavailable')
      return
    }
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    let body: Rpc | Rpc[]
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Rpc | Rpc[]
    } catch {
      res.writeHead(400).end()
      return
    }
    const out = Array.isArray(body) ? await Promise.all(body.map(answer)) : await answer(body)
    const lost = (Array.isArray(body) ? body : [body]).find((r) => (lose.get(r.method) ?? 0) > 0)
    if (lost) {
      lose.set(lost.method, lose.get(lost.method)! - 1)
      req.socket.resetAndDestroy()
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out))
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  const proxy = await new CuttableProxy((http.address() as { port: number }).port).listen()
  const provider = new BrowserProvider(eip1193, chainId, { cacheTimeout: -1 })
  const request = (method: string, params: unknown[] = []): Promise<unknown> => eip1193.request({ method, params })

  return {
    chainId,
    url: proxy.url,
    proxy,
    provider,
    calls,
    request,
    failRequests(n) {
      failing = n
    },
    loseAnswer(method, times = 1) {
      lose.set(method, times)
    },
    async mine(n = 1) {
      await request('hardhat_mine', [toBeHex(n)])
    },
    async fundedWallet() {
      const w = Wallet.createRandom()
      await request('hardhat_setBalance', [w.address, toBeHex(parseEther('100'))])
      return new Wallet(w.privateKey)
    },
    async close() {
      await proxy.close()
      http.closeAllConnections()
      http.close()
      await conn.close()
    },
  }
}

/** An ethers keystore for `wallet` with cheap scrypt (tests only: production keystores use ethers' default N = 2^17). */
export const testKeystore = (wallet: Wallet, password: string): Promise<string> =>
  encryptKeystoreJson({ address: wallet.address, privateKey: wallet.privateKey }, password, { scrypt: { N: 1 << 10 } })
