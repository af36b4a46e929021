/**
 * Fees of anchoring (docs/operations.md §Anchoring): an anchor transaction left unmined for
 * CARELEDGER_ANCHOR_REPLACE_AFTER_S is replaced at the same nonce with both fee fields +25 %, and
 * only one of its transactions is ever mined; CARELEDGER_ANCHOR_MAX_FEE_GWEI holds anchoring back
 * while the network's base fee is above it (nothing sent), resumes by itself when it falls, and
 * bounds replacements too. Against Hardhat 3's EDR in process, over real JSON-RPC.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Transaction, parseUnits, toBeHex } from 'ethers'
import { anchorEvents, anchoredCloud, until, type AnchoredCloud } from './anchor-helpers.ts'
import type { AnchorRow } from '../../cloud/anchor/store.ts'

let env: AnchoredCloud | null = null
afterEach(async () => {
  await env?.close()
  env = null
})

const gwei = (g: string): bigint => parseUnits(g, 'gwei')
const pendingOf = async (e: AnchoredCloud): Promise<AnchorRow | null> => e.cloud.anchor!.store.pending(e.cloud.anchor!.anchorer.target)
const sends = (e: AnchoredCloud): number => e.evm.calls.filter((m) => m === 'eth_sendRawTransaction').length

/** The base fee of the next blocks: set it, and mine one block so that the latest block carries it (ethers reads the latest). */
async function setBaseFee(e: AnchoredCloud, fee: bigint): Promise<void> {
  await e.evm.request('hardhat_setNextBlockBaseFeePerGas', [toBeHex(fee)])
  await e.evm.mine(1)
}

/** Every attempt decodes to a transaction of the anchoring account at the anchor's nonce, with the fees stored beside it. */
function decodeAttempts(row: AnchorRow, account: string): Transaction[] {
  return row.attempts.map((a) => {
    const tx = Transaction.from(a.raw)
    expect(tx.from).toBe(account)
    expect(tx.nonce).toBe(row.nonce)
    expect(tx.hash).toBe(a.hash)
    expect(tx.maxFeePerGas?.toString()).toBe(a.maxFeePerGas)
    expect(tx.maxPriorityFeePerGas?.toString()).toBe(a.maxPriorityFeePerGas)
    return tx
  })
}

describe('anchoring fees', () => {
  it('an anchor unmined for CARELEDGER_ANCHOR_REPLACE_AFTER_S is replaced at the same nonce with fees +25 %; one transaction is mined, one event', async () => {
    env = await anchoredCloud({ flags: { anchorSchedule: '0 0 1 1 *', anchorReplaceAfterS: '1' }, intervalMs: 0 })
    const { cloud, evm, wallet } = env
    env.grow()
    await until(() => cloud.chain.head(), 'a block')
    const nonceBefore = await evm.provider.getTransactionCount(wallet.address, 'latest')

    await evm.request('evm_setAutomine', [false]) // the network stops including it: a fee too low, say
    expect((await cloud.anchor!.anchorNow()).kind).toBe('sent')
    const row = await until(async () => {
      const p = await pendingOf(env!)
      return p && p.attempts.length >= 3 && ((await cloud.anchor!.status()).outcomes.replaced ?? 0) >= 2 ? p : null
    }, 'two replacements')
    const txs = decodeAttempts(row, wallet.address)
    for (let i = 1; i < txs.length; i++) {
      // Each replacement offers at least +25 % on both fields (nodes want ≥ +10 %), and data and gas are the same.
      expect(txs[i]!.maxFeePerGas! * 100n).toBeGreaterThanOrEqual(txs[i - 1]!.maxFeePerGas! * 125n)
      expect(txs[i]!.maxPriorityFeePerGas! * 100n).toBeGreaterThanOrEqual(txs[i - 1]!.maxPriorityFeePerGas! * 125n)
      expect(txs[i]!.data).toBe(txs[0]!.data)
      expect(row.attempts[i]!.sentAt - row.attempts[i - 1]!.sentAt).toBeGreaterThanOrEqual(1000)
    }
    // The node holds one transaction of the account: each replacement evicted the one before.
    expect(await evm.request('eth_getTransactionByHash', [row.attempts[0]!.hash])).toBeNull()

    await evm.request('evm_setAutomine', [true])
    await evm.mine(4)
    const done = await until(async () => (await cloud.anchor!.status()).latest, 'the anchor confirmed')
    const final = (await cloud.anchor!.store.get(row.id))!
    expect(final.attempts.map((a) => a.hash)).toContain(done.tx) // one of its attempts was mined…
    expect(final.attempts.length).toBeGreaterThanOrEqual(3)
    const events = await anchorEvents(evm, env.contract)
    expect(events.map((e) => [e.height, e.txHash])).toEqual([[final.height, done.tx]]) // …exactly once
    expect(await evm.provider.getTransactionCount(wallet.address, 'latest')).toBe(nonceBefore + 1) // one nonce used
    const mined = await evm.provider.getTransaction(done.tx!)
    expect(mined!.maxFeePerGas).toBeGreaterThan(txs[0]!.maxFeePerGas!) // a replacement, not the first, made it
  })

  it('CARELEDGER_ANCHOR_MAX_FEE_GWEI: above it nothing is sent (waiting-fee, shown), below it anchoring resumes by itself; replacements stop at the cap', async () => {
    const cap = gwei('6')
    env = await anchoredCloud({ flags: { anchorSchedule: '0 0 1 1 *', anchorMaxFeeGwei: '6', anchorReplaceAfterS: '1' }, intervalMs: 0 })
    const { cloud, evm, wallet } = env
    env.grow()
    await until(() => cloud.chain.head(), 'a block')

    await setBaseFee(env, gwei('40')) // a fee spike
    const before = sends(env)
    const outcome = await cloud.anchor!.anchorNow()
    expect(outcome.kind).toBe('waiting-fee')
    expect(outcome.message).toContain('CARELEDGER_ANCHOR_MAX_FEE_GWEI=6')
    expect((await cloud.anchor!.status()).state).toBe('waiting-fee')
    expect(await pendingOf(env)).toBeNull()
    // The service keeps asking while the fee is high, and sends nothing.
    const waited = (await cloud.anchor!.status()).outcomes['waiting-fee'] ?? 0
    await until(async () => ((await cloud.anchor!.status()).outcomes['waiting-fee'] ?? 0) >= waited + 3, 'more waiting-fee steps')
    expect(sends(env)).toBe(before)
    expect(await pendingOf(env)).toBeNull()

    // The spike passes; mining is held so the sent anchor waits and replacement is tried.
    await evm.request('evm_setAutomine', [false])
    await setBaseFee(env, gwei('1'))
    const sent = await until(() => pendingOf(env!), 'the anchor sent once the fee fell, without another request')
    await until(async () => (await cloud.anchor!.status()).state === 'ok', 'the state back to ok')
    // Replacements go up by +25 % until the next one would pass the cap; then the anchor waits at its last fee.
    const steps = async (): Promise<number> => (await cloud.anchor!.status()).outcomes.waiting ?? 0
    const atCap = await until(async () => {
      const p = (await pendingOf(env!))!
      const last = BigInt(p.attempts.at(-1)!.maxFeePerGas!)
      return (last * 125n + 99n) / 100n > cap ? p : null
    }, 'replacements up to the cap')
    const s0 = await steps()
    await until(async () => (await steps()) >= s0 + 10 && Date.now() - atCap.attempts.at(-1)!.sentAt > 1500, 'steps past the replace-after time')
    const still = (await pendingOf(env))!
    expect(still.attempts.length).toBe(atCap.attempts.length) // no replacement above the cap
    for (const tx of decodeAttempts(still, wallet.address)) expect(tx.maxFeePerGas!).toBeLessThanOrEqual(cap)
    expect(still.id).toBe(sent.id)

    await evm.request('evm_setAutomine', [true])
    await evm.mine(4)
    const done = await until(async () => (await cloud.anchor!.status()).latest, 'the anchor confirmed')
    expect((await anchorEvents(evm, env.contract)).map((e) => e.txHash)).toEqual([done.tx])
    expect((await evm.provider.getTransaction(done.tx!))!.maxFeePerGas!).toBeLessThanOrEqual(cap)
  })
})
