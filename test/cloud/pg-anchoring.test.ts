/**
 * Anchoring on a chain shared through PostgreSQL (issue 14): two `careledger cloud start
 * --database …` processes configured to anchor to one EVM chain (Hardhat's, in this process) with
 * one anchoring account. Only the sealer lease holder anchors; the other is in standby and still
 * answers GET /v1/anchors from the shared table. The holder is SIGKILLed right after it broadcast
 * an anchor; the other takes the lease, follows that anchor to its confirmations (it does not send
 * a second one) and anchors the blocks sealed after. At the end:
 *
 *   - the contract holds strictly increasing heights, each the hash and records root of the
 *     shared chain's block at that height;
 *   - the anchors table holds one live row per height, every one confirmed;
 *   - `careledger chain verify --database … --anchors` checks the chain and its anchors from one
 *     snapshot, and `careledger chain anchors --database …` lists what both processes made.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { bytesToHex } from '@noble/hashes/utils.js'
import { usePostgres } from '../helpers/postgres.ts'
import { usePgClouds } from '../helpers/pg-clouds.ts'
import { careledger, cli, getAs, json, type CloudProcess } from '../helpers/cloud-process.ts'
import { batchBody, sealTestBatch, signedPost, testGateway, testStream } from '../helpers/cloud-batches.ts'
import { startTestEvm, testKeystore, type TestEvm } from '../helpers/evm.ts'
import { anchorEvents, deployAnchor, until } from './anchor-helpers.ts'
import type { SealedBatch } from '../../gateway/seal/seal.ts'

const postgres = usePostgres()
const { temp, startPair } = usePgClouds(postgres.server)
let evm: TestEvm | null = null
afterAll(async () => {
  await evm?.close()
})


describe('anchoring on a chain shared through PostgreSQL', () => {
  it('only the lease holder anchors; SIGKILLed with an anchor in flight, the other follows it and anchors on; nothing doubled', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    evm = await startTestEvm({ intervalMs: 200 })
    const wallet = await evm.fundedWallet()
    const contract = await deployAnchor(evm, wallet, wallet.address)
    const dir = temp('pg-anchoring-keys')
    const keystore = join(dir, 'anchor-keystore.json')
    const passwordFile = join(dir, 'password')
    writeFileSync(keystore, await testKeystore(wallet, 'pg anchoring password'), { mode: 0o600 })
    writeFileSync(passwordFile, 'pg anchoring password\n', { mode: 0o600 })
    // What `chain anchor` takes too, then what only the service does (its schedule, its backoff).
    const connectArgs = ['--anchor-rpc-url', evm.url, '--anchor-chain-id', String(evm.chainId), '--anchor-contract', contract, '--anchor-keystore', keystore, '--anchor-keystore-password-file', passwordFile, '--anchor-confirmations', '3', '--anchor-poll-s', '0.2', '--anchor-rpc-timeout-s', '2']
    const anchorArgs = [...connectArgs, '--anchor-schedule', '*/2 * * * * *', '--anchor-backoff-max-s', '1']
    const { url, shared, dirA, a, b } = await startPair('anchoring', anchorArgs)
    await a.waitForLog((l) => l.event === 'sealer_lease_acquired', 10_000).catch(() => null)
    expect(a.logs.some((l) => l.event === 'sealer_lease_acquired')).toBe(true)
    const { token: admin } = JSON.parse(await cli(['cloud', 'token', 'create', '--role', 'admin', '--name', 'ops', '--json', '--database', url]))
    const anchorsOf = async (c: CloudProcess): Promise<any> => json(getAs(c.url, admin, '/v1/anchors?limit=1000'))

    // A gateway uploads a batch to B every 150 ms: the chain grows while A seals and anchors.
    const gw = testGateway()
    const invited = JSON.parse(await cli(['cloud', 'gateway', 'invite', '--name', 'ward-1', '--json', '--database', url]))
    const reg = await fetch(`${b.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: invited.token, publicKey: bytesToHex(gw.publicKey), name: 'ward-1' }) })
    expect(reg.status).toBe(201)
    const stream = testStream(gw, 'bed-01', 'P-anchor')
    let last: SealedBatch | null = null
    let seq = 0
    let growing = true
    const growth = (async () => {
      while (growing) {
        const batch: SealedBatch = await sealTestBatch(stream, seq, last?.commitment ?? null, last ? { kem: last.kem } : {})
        const { res } = await signedPost(b.url, gw, '/v1/batches', await batchBody(batch))
        expect(res.status).toBe(201)
        last = batch
        seq++
        await new Promise((r) => setTimeout(r, 150))
      }
    })()

    // A anchors; B, in standby, shows A's anchors from the shared table.
    const first = await until(async () => (await anchorsOf(b)).status.latest, 'a confirmed anchor seen through B')
    expect((await anchorsOf(a)).status.state).toBe('ok')
    expect((await anchorsOf(b)).status.state).toBe('standby')
    expect(b.logs.some((l) => l.event === 'anchor_sent')).toBe(false)

    // Kill A right after it broadcast the next anchor: it is in flight, in the shared table.
    await a.waitForLog((l) => l.event === 'anchor_sent', 30_000)
    await a.kill('SIGKILL')
    const inFlight = (await anchorsOf(b)).status.pending
    const killedAt = Math.max(first.height, inFlight?.height ?? 0)

    // B takes the lease, confirms what A left in flight, and anchors the blocks sealed since.
    if (!b.logs.some((l) => l.event === 'sealer_lease_acquired')) await b.waitForLog((l) => l.event === 'sealer_lease_acquired', 30_000)
    const later = await until(async () => {
      const s = (await anchorsOf(b)).status
      return s.latest && s.latest.height > killedAt && s.state === 'ok' ? s.latest : null
    }, 'an anchor by B above the height A last anchored', 60_000)
    growing = false
    await growth
    expect(b.logs.some((l) => l.event === 'anchor_sent' || l.event === 'anchor_confirmed')).toBe(true)
    if (inFlight) {
      // A's anchor in flight was followed to its confirmations, not sent again under another nonce.
      const rows = (await anchorsOf(b)).anchors as any[]
      expect(rows.filter((r) => r.height === inFlight.height && r.status !== 'failed')).toEqual([expect.objectContaining({ id: inFlight.id, status: 'confirmed', tx: inFlight.tx })])
    }

    // Let the last anchor settle, then compare the contract, the table and the chain.
    await until(async () => (await anchorsOf(b)).status.pending === null, 'no anchor in flight', 30_000)
    const events = await anchorEvents(evm, contract)
    expect(events.length).toBeGreaterThanOrEqual(2)
    for (let i = 1; i < events.length; i++) expect(events[i]!.height).toBeGreaterThan(events[i - 1]!.height)
    const db = new pg.Client({ connectionString: url })
    await db.connect()
    try {
      for (const ev of events) {
        const row = (await db.query<{ hash: Buffer }>('SELECT hash FROM blocks WHERE height = $1', [ev.height])).rows[0]
        expect(row && bytesToHex(row.hash), `block ${ev.height}`).toBe(ev.blockHash)
      }
      const live = (await db.query<{ height: string; n: string; statuses: string[] }>("SELECT height, count(*) AS n, array_agg(status) AS statuses FROM anchors WHERE status <> 'failed' GROUP BY height ORDER BY height")).rows
      expect(live.every((r) => Number(r.n) === 1 && r.statuses[0] === 'confirmed')).toBe(true)
      expect(live.map((r) => Number(r.height))).toEqual(events.map((e) => e.height))
    } finally {
      await db.end()
    }
    expect(later.height).toBe(events.at(-1)!.height)

    // The CLI reads the shared table, and chain verify checks the anchors against the same snapshot as the chain.
    const listed = JSON.parse(await cli(['chain', 'anchors', '--database', url, '--json']))
    expect(listed.map((v: { height: number }) => v.height).reverse()).toEqual(events.map((e) => e.height))
    const verify = await careledger(['chain', 'verify', '--database', url, '--chameleon-key', join(dirA, 'keys', 'chameleon-public.key'), '--signing-key', join(dirA, 'keys', 'cloud-signing.pub'), '--blocks', shared, '--anchors', evm.url, '--anchor-contract', contract, '--anchor-account', wallet.address, '--json'])
    const report = JSON.parse(verify.stdout)
    expect(report.failures).toEqual([])
    expect(report.anchors).toMatchObject({ ok: true, anchors: events.length, failures: [] })
    expect(verify.code).toBe(0)

    // `chain anchor --database` beside the running service: it anchors the head or finds it anchored, through the same table.
    const byCli = JSON.parse(await cli(['chain', 'anchor', '--database', url, ...connectArgs, '--timeout', '60', '--json']))
    expect(['confirmed', 'up-to-date']).toContain(byCli.outcome)
    console.log(`[pg-anchoring] ${events.length} anchors (heights ${events.map((e) => e.height).join(', ')}); A SIGKILLed with height ${inFlight?.height ?? '-'} in flight, B confirmed it and anchored up to ${later.height}`)
  }, 240_000)
})
