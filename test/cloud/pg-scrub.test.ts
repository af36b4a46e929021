/**
 * The blockstore scrub of a deployment of two `careledger cloud start --database …` processes on
 * one PostgreSQL, whose envelope blocks are rows of that database: only the sealer lease holder scrubs (one scrub a
 * deployment), its findings land in the shared damage log (cloud/store/pg/damage.ts), so both
 * processes' /healthz name the damaged record; the gateway's resent block, PUT to the process that
 * did not scrub, repairs it and closes the damage for both.
 */
import { bytesToHex } from '@noble/hashes/utils.js'
import { describe, expect, it } from 'vitest'
import { pgStoredEnvelopes } from '../helpers/envelopes.ts'
import { signRequest } from '../../shared/protocol/request-signing.ts'
import { careledger } from '../helpers/cloud-process.ts'
import { batchBody, sealTestBatch, signedPost, testGateway, testStream } from '../helpers/cloud-batches.ts'
import { usePgClouds } from '../helpers/pg-clouds.ts'
import { usePostgres } from '../helpers/postgres.ts'
import { waitFor } from '../helpers/system.ts'

const postgres = usePostgres()
const { startPair } = usePgClouds(postgres.server)

type Healthz = { status: string; envelopes: { damaged: number; records: number[] } }

describe('the blockstore scrub of two cloud processes on one PostgreSQL', () => {
  it('the lease holder scrubs; both name the damage; a block resent to the other repairs it for both', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const { url, a, b } = await startPair('scrub_two_clouds', ['--scrub-interval-s', '1'])
    const invite = JSON.parse((await careledger(['cloud', 'gateway', 'invite', '--name', 'ward-1', '--json', '--database', url])).stdout).token
    const gw = testGateway()
    const reg = await fetch(`${a.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: invite, publicKey: bytesToHex(gw.publicKey), name: 'ward-1' }) })
    expect(reg.status).toBe(201)
    const stream = testStream(gw)
    const batches: Awaited<ReturnType<typeof sealTestBatch>>[] = []
    for (let seq = 0; seq < 3; seq++) {
      const batch = await sealTestBatch(stream, seq, batches.at(-1)?.commitment ?? null, batches.at(-1) ? { kem: batches.at(-1)!.kem } : {})
      expect((await signedPost((seq % 2 ? b : a).url, gw, '/v1/batches', await batchBody(batch))).res.status).toBe(201)
      batches.push(batch)
    }
    const healthz = async (p: typeof a): Promise<Healthz> => (await fetch(`${p.url}/healthz`)).json() as Promise<Healthz>
    await waitFor('the records sealed', async () => ((await healthz(a)) as unknown as { pendingRecords: number }).pendingRecords === 0)

    // Flip a byte of the middle batch's envelope in the shared database.
    const target = batches[1]!
    const stored = pgStoredEnvelopes(url)
    const bytes = (await stored.read(target.cid))!
    bytes[bytes.length >> 1]! ^= 0x01
    await stored.write(target.cid, bytes)
    for (const p of [a, b]) {
      await waitFor(`process ${p === a ? 'A' : 'B'} to name the damaged record`, async () => {
        const h = await healthz(p)
        return h.envelopes.damaged === 1 && h.status === 'degraded'
      })
    }
    // One process scrubbed (the lease holder); the other did not.
    const scrubbed = [a, b].map((p) => p.logs.filter((l) => l.event === 'scrub_done').length)
    expect(scrubbed.filter((n) => n > 0)).toHaveLength(1)
    const holder = scrubbed[0]! > 0 ? a : b
    const other = holder === a ? b : a
    expect(holder.logs.some((l) => l.event === 'sealer_lease_acquired')).toBe(true)

    // The gateway's copy, resent to the process that did not scrub.
    const path = `/v1/envelopes/${target.cid.toString()}`
    const headers = { ...signRequest(gw.secretKey, { method: 'PUT', path, body: target.envelope }), 'CareLedger-Gateway': gw.gatewayId, 'content-type': 'application/octet-stream' }
    const put = await fetch(new URL(path, other.url), { method: 'PUT', headers, body: target.envelope })
    expect(put.status, await put.clone().text()).toBe(200)
    expect(await put.json()).toMatchObject({ repaired: true, state: 'intact' })
    for (const p of [a, b]) await waitFor('the alert to clear at both', async () => (await healthz(p)).status === 'ok')
    expect(await stored.read(target.cid)).toEqual(Buffer.from(target.envelope))
  }, 180_000)
})
