/**
 * The cloud as an IPFS Trustless Gateway (GET /ipfs/{cid}, application/vnd.ipld.raw and
 * application/vnd.ipld.car): with plain HTTP as any IPFS tool would ask, and with Helia (the
 * clients' block source) — the bytes Helia returns hash to the CID, and it asked the trustless
 * gateway path. Behind the API's tokens by default; public with CARELEDGER_CLOUD_PUBLIC_IPFS.
 */
import { CarReader } from '@ipld/car'
import { CID } from 'multiformats/cid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Cloud } from '../../cloud/runtime.ts'
import { blocksCar, rawCid } from '../../shared/protocol/car.ts'
import { heliaBlockSource } from '../../clients/ipfs.ts'
import { batchBody, sealChain, signedPost, registerTestGateway, testStream } from '../helpers/cloud-batches.ts'
import { startTestCloud, tempDataDir } from '../helpers/cloud-process.ts'
import { RewritingProxy } from '../helpers/rewriting-proxy.ts'
import { checkBulkAnswer } from '../../clients/bulk-blocks.ts'

let data: ReturnType<typeof tempDataDir>
let pub: ReturnType<typeof tempDataDir>
let cloud: Cloud
let publicCloud: Cloud
let doctor: string
let admin: string
const blocks: { cid: string; bytes: Uint8Array }[] = []

async function fill(c: Cloud): Promise<void> {
  const gw = await registerTestGateway(c)
  for (const b of await sealChain(testStream(gw, 'bed-01', 'P-1'), 3)) {
    expect((await signedPost(c.url, gw, '/v1/batches', await batchBody(b))).res.status).toBe(201)
    if (c === cloud) blocks.push({ cid: b.cid.toString(), bytes: b.envelope })
  }
}

beforeAll(async () => {
  data = tempDataDir('ipfs-gateway')
  pub = tempDataDir('ipfs-gateway-public')
  cloud = await startTestCloud(data.dir)
  publicCloud = await startTestCloud(pub.dir, { publicIpfs: 'yes' })
  doctor = (await cloud.tokens.create('doctor', 'dr')).token
  admin = (await cloud.tokens.create('admin', 'adm')).token
  await fill(cloud)
  await fill(publicCloud)
}, 60_000)

afterAll(async () => {
  await cloud?.stop()
  await publicCloud?.stop()
  data?.cleanup()
  pub?.cleanup()
})

const get = (c: Cloud, path: string, headers: Record<string, string> = {}, method = 'GET') => fetch(new URL(path, c.url), { method, headers })

describe('GET /ipfs/{cid}: the Trustless Gateway specification', () => {
  it('serves a raw block (Accept or ?format=raw) whose bytes hash to the CID', async () => {
    const { cid, bytes } = blocks[0]!
    for (const [path, headers] of [
      [`/ipfs/${cid}`, { accept: 'application/vnd.ipld.raw' }],
      [`/ipfs/${cid}?format=raw`, {}],
    ] as const) {
      const res = await get(cloud, path, { authorization: `Bearer ${doctor}`, ...headers })
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toBe('application/vnd.ipld.raw')
      expect(res.headers.get('content-disposition')).toBe(`attachment; filename="${cid}.bin"`)
      expect(res.headers.get('etag')).toBe(`"${cid}.raw"`)
      expect(res.headers.get('x-content-type-options')).toBe('nosniff')
      expect(res.headers.get('cache-control')).toBe('private, max-age=29030400, immutable')
      const got = new Uint8Array(await res.arrayBuffer())
      expect(Buffer.compare(got, bytes)).toBe(0)
      expect((await rawCid(got)).toString()).toBe(cid)
    }
  })

  it('serves a CARv1 (Accept or ?format=car) rooted at the CID holding the block', async () => {
    const { cid, bytes } = blocks[1]!
    const res = await get(cloud, `/ipfs/${cid}`, { authorization: `Bearer ${doctor}`, accept: 'application/vnd.ipld.car' })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/vnd.ipld.car; version=1; order=dfs; dups=n')
    expect(res.headers.get('content-location')).toBe(`/ipfs/${cid}?format=car`)
    const car = await CarReader.fromBytes(new Uint8Array(await res.arrayBuffer()))
    expect((await car.getRoots()).map(String)).toEqual([cid])
    const block = await car.get(CID.parse(cid))
    expect(Buffer.compare(block!.bytes, bytes)).toBe(0)
  })

  it('answers HEAD and the bafkqaaa probe; 404 for a block it does not hold; 400 for a bad CID, a path or no format', async () => {
    const auth = { authorization: `Bearer ${doctor}` }
    const head = await get(cloud, `/ipfs/${blocks[0]!.cid}?format=raw`, auth, 'HEAD')
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
    const probe = await get(cloud, '/ipfs/bafkqaaa?format=raw', auth)
    expect(probe.status).toBe(200)
    expect((await probe.arrayBuffer()).byteLength).toBe(0)
    const probeCar = await CarReader.fromBytes(new Uint8Array(await (await get(cloud, '/ipfs/bafkqaaa?format=car', auth)).arrayBuffer()))
    expect((await probeCar.getRoots()).map(String)).toEqual(['bafkqaaa'])
    const absent = (await rawCid(new TextEncoder().encode('not stored here'))).toString()
    const missing = await get(cloud, `/ipfs/${absent}?format=raw`, auth)
    expect(missing.status).toBe(404)
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND')
    expect((await get(cloud, '/ipfs/not-a-cid?format=raw', auth)).status).toBe(400)
    expect((await get(cloud, `/ipfs/${blocks[0]!.cid}/x?format=car`, auth)).status).toBe(400)
    const noFormat = await get(cloud, `/ipfs/${blocks[0]!.cid}`, auth)
    expect(noFormat.status).toBe(400)
    expect(await noFormat.text()).toMatch(/trustless gateway: ask for application\/vnd\.ipld\.raw or application\/vnd\.ipld\.car/)
  })

  it('is behind the API tokens by default (envelope roles only), public when configured', async () => {
    const path = `/ipfs/${blocks[0]!.cid}?format=raw`
    expect((await get(cloud, path)).status).toBe(401)
    expect((await get(cloud, path, { authorization: `Bearer ${admin}` })).status).toBe(403)
    const cid = (await (await fetch(`${publicCloud.url}/v1/records/1`, { headers: { authorization: `Bearer ${(await publicCloud.tokens.create('admin', 'a')).token}` } })).json()) as { cid: string }
    const open = await get(publicCloud, `/ipfs/${cid.cid}?format=raw`)
    expect(open.status).toBe(200)
    expect(open.headers.get('cache-control')).toBe('public, max-age=29030400, immutable')
  })
})

describe('POST /v1/blocks: many blocks in one CAR', () => {
  const post = (c: Cloud, body: unknown, headers: Record<string, string> = {}) => fetch(new URL('/v1/blocks', c.url), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })

  it('answers the blocks it holds in the order asked, leaves out (and counts) those it does not; the client checks each against its CID', async () => {
    const absent = (await rawCid(new TextEncoder().encode('not stored here'))).toString()
    const asked = [blocks[2]!.cid, absent, blocks[0]!.cid]
    const res = await post(cloud, { cids: asked }, { authorization: `Bearer ${doctor}` })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^application\/vnd\.ipld\.car; version=1/)
    expect(res.headers.get('x-careledger-missing')).toBe('1')
    const car = new Uint8Array(await res.arrayBuffer())
    const reader = await CarReader.fromBytes(car)
    expect((await reader.getRoots()).map(String)).toEqual([blocks[2]!.cid, blocks[0]!.cid])
    const got = await checkBulkAnswer(car, asked, 'cloud')
    expect([...got.keys()]).toEqual([blocks[2]!.cid, blocks[0]!.cid])
    expect(got.get(blocks[0]!.cid)).toEqual(blocks[0]!.bytes)
    // A block under the wrong CID is named, not returned.
    const swapped = await blocksCar([CID.parse(blocks[1]!.cid)], [{ cid: CID.parse(blocks[1]!.cid), bytes: blocks[0]!.bytes }])
    const bad = (await checkBulkAnswer(swapped, [blocks[1]!.cid], 'cloud')).get(blocks[1]!.cid)
    expect(bad).toBeInstanceOf(Error)
    expect((bad as Error).message).toBe(`block ${blocks[1]!.cid} was answered by cloud with ${blocks[0]!.bytes.length} bytes that hash to ${blocks[0]!.cid}, not to the CID`)
  })

  it('is behind the envelope tokens like /ipfs; names a bad request', async () => {
    expect((await post(cloud, { cids: [blocks[0]!.cid] })).status).toBe(401)
    expect((await post(cloud, { cids: [blocks[0]!.cid] }, { authorization: `Bearer ${admin}` })).status).toBe(403)
    const auth = { authorization: `Bearer ${doctor}` }
    const notCid = await post(cloud, { cids: [blocks[0]!.cid, 'not-a-cid'] }, auth)
    expect(notCid.status).toBe(400)
    expect(await notCid.text()).toMatch(/cids\.1: \\?"not-a-cid\\?" is not a CID/)
    expect((await post(cloud, { cids: [] }, auth)).status).toBe(400)
    expect((await post(cloud, { cids: Array.from({ length: 257 }, () => blocks[0]!.cid) }, auth)).status).toBe(400)
    expect((await post(cloud, { cids: [blocks[0]!.cid], extra: 1 }, auth)).status).toBe(400)
  })
})

describe('Helia fetches blocks by CID through the trustless gateway', () => {
  it('every block, verified: the bytes hash to the CID; the requests were /ipfs/{cid}?format=raw', async () => {
    const proxy = await RewritingProxy.start(cloud.url)
    const helia = await heliaBlockSource([{ url: proxy.url, token: doctor }], { timeoutMs: 5000 })
    try {
      for (const { cid, bytes } of blocks) {
        const got = await helia.get(cid)
        expect(Buffer.compare(got, bytes)).toBe(0)
        expect((await rawCid(got)).toString()).toBe(cid)
      }
      expect(proxy.seen.filter((s) => s.startsWith('GET /ipfs/'))).toEqual(blocks.map((b) => `GET /ipfs/${b.cid}?format=raw`))
    } finally {
      await helia.stop()
      await proxy.close()
    }
  })

  it('a block no gateway has fails within the timeout, naming why — it does not hang', async () => {
    const helia = await heliaBlockSource([{ url: cloud.url, token: doctor }], { timeoutMs: 2000 })
    const absent = (await rawCid(new TextEncoder().encode('nowhere'))).toString()
    try {
      await expect(helia.get(absent)).rejects.toThrow(new RegExp(`block ${absent} is not held by 127\\.0\\.0\\.1:\\d+ \\(404\\)`))
      // A gateway that never answers: the timeout ends the wait.
      const net = await import('node:net')
      const sockets = new Set<import('node:net').Socket>()
      const silent = net.createServer((sock) => void sockets.add(sock))
      await new Promise<void>((ok) => silent.listen(0, '127.0.0.1', () => ok()))
      const port = (silent.address() as { port: number }).port
      const stuck = await heliaBlockSource([{ url: `http://127.0.0.1:${port}` }], { timeoutMs: 1500 })
      try {
        await expect(stuck.get(blocks[0]!.cid)).rejects.toThrow(/could not be fetched: no answer within 1\.5 s|no block within 1\.5 s/)
      } finally {
        await stuck.stop()
        for (const sock of sockets) sock.destroy()
        await new Promise((ok) => silent.close(ok))
      }
    } finally {
      await helia.stop()
    }
  })
})
