/**
 * The running cloud anchors its chain head to an EVM chain (Hardhat 3's EDR, in this process,
 * over real JSON-RPC/HTTP behind a cuttable proxy): on its node-cron schedule, through an RPC
 * outage, a lost answer, a dropped transaction and a reorganisation — with the chain growing all
 * the while, and every anchor on the EVM chain exactly once.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { getAs, json } from '../helpers/cloud-process.ts'
import { verifyAnchors } from '../../cloud/anchor/verify.ts'
import { anchorEvents, anchoredCloud, until, type AnchoredCloud } from './anchor-helpers.ts'

let env: AnchoredCloud | null = null
afterEach(async () => {
  await env?.close()
  env = null
})

/** The cloud's anchors and the contract's events agree one to one: nothing lost, nothing doubled. */
async function expectExactlyOnce(e: AnchoredCloud): Promise<void> {
  const rows = (await e.cloud.anchor!.store.list({ limit: 1000 })).reverse()
  const confirmed = rows.filter((r) => r.status === 'confirmed')
  expect(rows.filter((r) => r.status === 'failed')).toEqual([])
  const events = await anchorEvents(e.evm, e.contract)
  const minedRows = rows.filter((r) => r.txHash !== null)
  expect(events.map((ev) => [ev.height, ev.blockHash, ev.txHash])).toEqual(minedRows.map((r) => [r.height, r.blockHash, r.txHash]))
  expect(confirmed.length).toBeGreaterThan(0)
  const heights = events.map((ev) => ev.height)
  expect([...heights].sort((a, b) => a - b)).toEqual(heights)
  expect(new Set(heights).size).toBe(heights.length)
  for (const r of rows) expect(e.cloud.chain.getBlock(r.height)!.hash).toBe(r.blockHash)
}

describe('anchoring in the running cloud', () => {
  it('anchors the newest block on its schedule, counts it after N confirmations, shows it on /healthz, /metrics and GET /v1/anchors, and verifies', async () => {
    env = await anchoredCloud()
    const { cloud } = env
    const grower = setInterval(() => env!.grow(), 100)
    try {
      // Two scheduled anchors, each confirmed: the schedule runs every 2 s here.
      const second = await until(async () => (await cloud.anchor!.store.list({ limit: 10 })).filter((r) => r.status === 'confirmed').length >= 2, 'two confirmed anchors')
      expect(second).toBe(true)
    } finally {
      clearInterval(grower)
    }
    const s = (await cloud.anchor!.status())
    expect(s.state).toBe('ok')
    expect(s.latest!.confirmations).toBeGreaterThanOrEqual(3)
    expect(s.latest!.txUrl).toBe(`https://explorer.example/tx/${s.latest!.tx}`)
    expect((await cloud.anchor!.status()).outcomes.sent).toBeGreaterThanOrEqual(2)
    await expectExactlyOnce(env)

    const health = await json(fetch(`${cloud.url}/healthz`))
    expect(health.status).toBe('ok')
    expect(health.anchor).toMatchObject({ state: 'ok', height: s.latest!.height, tx: s.latest!.tx })
    const admin = (await cloud.tokens.create('admin', 'anchor-admin')).token
    const metrics = await (await getAs(cloud.url, admin, '/metrics')).text()
    expect(metrics).toContain(`careledger_cloud_anchor_height ${s.latest!.height}`)
    expect(metrics).toMatch(/careledger_cloud_anchor_ok 1/)
    const list = await json(getAs(cloud.url, admin, '/v1/anchors'))
    expect(list.status).toMatchObject({ enabled: true, state: 'ok', contract: env.contract, account: env.wallet.address })
    expect(list.anchors[0]).toMatchObject({ status: expect.stringMatching(/pending|confirmed/), txUrl: expect.stringMatching(/^https:\/\/explorer\.example\/tx\/0x[0-9a-f]{64}$/) })
    expect(JSON.stringify(list)).not.toMatch(/"raw"/) // signed transactions stay in the database
    const doctor = (await cloud.tokens.create('doctor', 'anchor-doctor')).token
    expect((await getAs(cloud.url, doctor, '/v1/anchors')).status).toBe(403)

    const report = await verifyAnchors(cloud.config.paths.db, { rpcUrl: env.evm.url, contract: env.contract, account: env.wallet.address, chainId: env.evm.chainId })
    expect(report.failures).toEqual([])
    expect(report.anchors).toBeGreaterThanOrEqual(2)
  })

  it('an RPC that is down, slow or erroring never stops the chain; anchoring retries with backoff, shows the error, and resumes with nothing lost or doubled', async () => {
    env = await anchoredCloud({ rpcPath: '/v3/SECRET-API-KEY' })
    const { cloud, evm } = env
    env.grow()
    await until(async () => (await cloud.anchor!.status()).latest, 'a first confirmed anchor')

    evm.proxy.set('refuse')
    const heightAtCut = cloud.chain.head()!.height
    // The chain keeps growing while the RPC is down; schedules pass and fail.
    for (let i = 0; i < 10; i++) {
      env.grow()
      await new Promise((r) => setTimeout(r, 300))
    }
    const down = await until(async () => {
      const s = (await cloud.anchor!.status())
      return s.consecutiveFailures >= 2 ? s : null
    }, 'failed anchoring steps')
    expect(down.state).toBe('retrying')
    expect(down.lastError).toBeTruthy()
    expect(cloud.chain.head()!.height).toBeGreaterThan(heightAtCut)
    const health = await json(fetch(`${cloud.url}/healthz`))
    expect(health.status).toBe('ok') // anchoring never makes the cloud unhealthy
    expect(health.anchor).toMatchObject({ state: 'retrying', consecutiveFailures: expect.any(Number) })
    expect(health.anchor.lastError).toBeTruthy()
    expect(JSON.stringify(health)).not.toContain('SECRET-API-KEY') // a provider's key in the RPC URL is never shown

    // A slow RPC (accepts, never answers) times out and is retried the same way.
    evm.proxy.set('hang')
    const before = (await cloud.anchor!.status()).rpcFailures
    await until(async () => (await cloud.anchor!.status()).rpcFailures > before, 'a timed-out step')

    // An RPC answering errors (HTTP 503) is retried the same way.
    evm.proxy.set('pass')
    evm.failRequests(6)
    const beforeErrors = (await cloud.anchor!.status()).rpcFailures
    await until(async () => (await cloud.anchor!.status()).rpcFailures > beforeErrors, 'a step failed on an erroring RPC')
    expect((await cloud.anchor!.status()).lastError).toMatch(/503|server|bad response/i)

    const resumedAt = cloud.chain.head()!.height
    await until(async () => ((await cloud.anchor!.status()).latest?.height ?? -1) >= resumedAt, 'an anchor at or above the height when the RPC came back')
    expect((await cloud.anchor!.status())).toMatchObject({ state: 'ok', consecutiveFailures: 0 })
    await expectExactlyOnce(env)
  })

  it('an answer lost after the node took the transaction: the same transaction is followed, never a second one', async () => {
    env = await anchoredCloud({ flags: { anchorSchedule: '0 0 1 1 *' } })
    const { cloud, evm } = env
    env.grow()
    await until(() => cloud.chain.head(), 'a block')
    evm.loseAnswer('eth_sendRawTransaction')
    await expect(cloud.anchor!.anchorNow()).rejects.toThrow()
    const sends = () => evm.calls.filter((m) => m === 'eth_sendRawTransaction').length
    expect(sends()).toBe(1)
    const a = await until(async () => (await cloud.anchor!.status()).latest, 'the anchor confirmed')
    expect(a.transactions).toBe(1)
    await expectExactlyOnce(env)
    expect((await anchorEvents(evm, env.contract)).length).toBe(1)
  })

  it('a transaction dropped from the mempool is broadcast again; one removed by a reorganisation is too, and it counts only after N confirmations', async () => {
    env = await anchoredCloud({ flags: { anchorSchedule: '0 0 1 1 *' }, intervalMs: 0 })
    const { cloud, evm } = env
    env.grow()
    await until(() => cloud.chain.head(), 'a block')

    // Dropped: mining stopped, the transaction evicted from the node's pool.
    await evm.request('evm_setAutomine', [false])
    await cloud.anchor!.anchorNow()
    const hash = (await cloud.anchor!.store.pending(cloud.anchor!.anchorer.target))!.attempts[0]!.hash
    expect(await evm.request('hardhat_dropTransaction', [hash])).toBe(true)
    await until(async () => (await cloud.anchor!.status()).outcomes.resent, 'the dropped transaction broadcast again')
    await evm.request('evm_setAutomine', [true])
    await evm.mine(1)
    await until(async () => (await cloud.anchor!.status()).pending?.evmBlock, 'the anchor mined')
    expect((await cloud.anchor!.status()).latest).toBeNull() // 1 of 3 confirmations: it does not count yet
    await evm.mine(3)
    const first = await until(async () => (await cloud.anchor!.status()).latest, 'the anchor confirmed')
    expect(first.tx).toBe(hash) // the same transaction, broadcast again
    expect(first.resends).toBeGreaterThanOrEqual(1)

    // Reorganisation: the next anchor is mined, then the blocks holding it are reverted.
    env.grow()
    await until(() => cloud.chain.head()!.height > first.height, 'a newer block')
    const snapshot = await evm.request('evm_snapshot')
    await cloud.anchor!.anchorNow()
    const mined = await until(async () => {
      const p = (await cloud.anchor!.status()).pending
      return p?.evmBlock ? p : null
    }, 'the second anchor mined')
    expect(await evm.request('evm_revert', [snapshot])).toBe(true)
    await until(async () => (await cloud.anchor!.status()).outcomes.reorged, 'the reorganisation noticed')
    await evm.mine(4)
    const second = await until(async () => {
      const l = (await cloud.anchor!.status()).latest
      return l && l.height > first.height ? l : null
    }, 'the second anchor confirmed again')
    expect(second.height).toBe(mined.height)
    await expectExactlyOnce(env)
    expect((await anchorEvents(evm, env.contract)).map((e) => e.height)).toEqual([first.height, second.height])
  })
})
