/**
 * Blocks by CID through Helia (the clients' BlockSource): a light Helia node per gateway URL, each
 * with the IPFS trustless-gateway block broker pointed at that one gateway (fallback router), so
 * the cloud's API token goes to the cloud's gateway only, never to another gateway given. Helia
 * checks every block against its CID before handing it over; every fetch has a timeout, so a
 * missing block fails instead of hanging. Helia is imported only here and only when used
 * (≈ 95 MB of RSS: fine for a reader, never loaded by the gateway).
 */
import type { Router } from '@helia/interface'
import { CID } from 'multiformats/cid'
import { CareLedgerError } from '../shared/errors.ts'
import { rawCid } from '../shared/protocol/car.ts'
import type { BlockSource } from './retrieve.ts'

export interface GatewaySpec {
  /** Base URL of a trustless gateway (serving GET /ipfs/{cid}?format=raw). */
  readonly url: string
  /** Bearer token for this gateway (the cloud's), or none. */
  readonly token?: string
}

export interface HeliaBlockSource extends BlockSource {
  stop(): Promise<void>
}

/** The router's findProviders, without its capabilities. */
const asRouter = (r: Router): Router => ({ name: 'careledger-gateway', findProviders: (cid, options) => r.findProviders!(cid, options) })

export async function heliaBlockSource(gateways: readonly GatewaySpec[], opts: { timeoutMs?: number } = {}): Promise<HeliaBlockSource> {
  if (gateways.length === 0) throw new CareLedgerError('INVALID_ARGUMENT', 'no IPFS gateway to fetch blocks from', { field: 'gateway' })
  const [{ createHeliaLight }, { trustlessGatewayBlockBroker }, { fallbackRouter }] = await Promise.all([import('helia'), import('@helia/trustless-gateway-client'), import('@helia/fallback-router')])
  const nodes = await Promise.all(
    gateways.map(async (g) => {
      const helia = await createHeliaLight({
        blockBrokers: [
          trustlessGatewayBlockBroker({
            allowInsecure: true,
            allowLocal: true,
            ...(g.token ? { transformRequestInit: (init: RequestInit): RequestInit => ({ ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${g.token}` } }) } : {}),
          }),
        ],
        // fallback-router turns the URL into a provider; wrapped so Helia treats it as an ordinary router
        // (with only `fallback`-capable routers Helia 7's findProviders never finishes).
        routers: [asRouter(fallbackRouter({ gateways: [g.url], shuffle: false }))],
      })
      await helia.start()
      return { url: g.url, helia }
    }),
  )
  const timeoutMs = opts.timeoutMs ?? 15_000
  return {
    async get(text: string): Promise<Uint8Array> {
      const cid = CID.parse(text)
      const problems: string[] = []
      for (const { url, helia } of nodes) {
        try {
          const chunks: Uint8Array[] = []
          // A timer of our own, not AbortSignal.timeout: that one does not keep the process alive while it waits.
          const abort = new AbortController()
          const timer = setTimeout(() => abort.abort(new Error(`no block within ${timeoutMs / 1000} s`)), timeoutMs)
          try {
            for await (const c of helia.blockstore.get(cid, { signal: abort.signal })) chunks.push(c)
          } finally {
            clearTimeout(timer)
          }
          try {
            await helia.blockstore.delete(cid) // do not keep a whole export in memory
          } catch {
            /* already gone */
          }
          return chunks.length === 1 ? chunks[0]! : Uint8Array.from(Buffer.concat(chunks))
        } catch (e) {
          problems.push(`${new URL(url).host}: ${(e as Error).message}`)
        }
      }
      // Helia drops a block that does not hash to its CID without saying so; ask the first gateway directly to tell why.
      const why = await diagnose(gateways[0]!, cid, timeoutMs)
      throw new CareLedgerError('INVALID_ARGUMENT', `block ${text} ${why.message} (${problems.join('; ')})`, { reason: why.reason, cid: text })
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.helia.stop()))
    },
  }
}

/** Why a gateway did not give a block: not there, not answering, or bytes that are not the block. */
async function diagnose(g: GatewaySpec, cid: CID, timeoutMs: number): Promise<{ reason: 'BLOCK_MISSING' | 'BLOCK_MISMATCH' | 'BLOCK_UNAVAILABLE'; message: string }> {
  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(), timeoutMs)
  try {
    const res = await fetch(new URL(`/ipfs/${cid}?format=raw`, g.url), { headers: { accept: 'application/vnd.ipld.raw', ...(g.token ? { authorization: `Bearer ${g.token}` } : {}) }, signal: abort.signal })
    if (res.status === 404) return { reason: 'BLOCK_MISSING', message: `is not held by ${new URL(g.url).host} (404)` }
    if (!res.ok) return { reason: 'BLOCK_UNAVAILABLE', message: `could not be fetched: ${new URL(g.url).host} answered ${res.status}` }
    const bytes = new Uint8Array(await res.arrayBuffer())
    const got = await rawCid(bytes)
    if (!got.multihash.bytes.every((b, i) => b === cid.multihash.bytes[i])) return { reason: 'BLOCK_MISMATCH', message: `was answered by ${new URL(g.url).host} with ${bytes.length} bytes that hash to ${got}, not to the CID` }
    return { reason: 'BLOCK_UNAVAILABLE', message: 'could not be fetched through Helia' }
  } catch {
    return { reason: 'BLOCK_UNAVAILABLE', message: `could not be fetched: no answer within ${timeoutMs / 1000} s` }
  } finally {
    clearTimeout(timer)
  }
}
