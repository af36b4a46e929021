/**
 * Anchoring fixtures: an in-process EVM (test/helpers/evm.ts) with the anchor contract deployed
 * for a fresh anchoring account, its keystore on disk, and a running in-process cloud configured to
 * anchor to it, with a chain that grows while the test runs.
 */
import { writeFileSync } from 'node:fs'
import { expect } from 'vitest'
import { join } from 'node:path'
import { ContractFactory, type Wallet } from 'ethers'
import type { Cloud } from '../../cloud/runtime.ts'
import { anchorArtifact, parseAnchorLog, anchoredTopic, type AnchorEvent } from '../../cloud/anchor/contract.ts'
import { startTestEvm, testKeystore, type TestEvm } from '../helpers/evm.ts'
import { startTestCloud, tempDataDir } from '../helpers/cloud-process.ts'
import { TestGatewayKey, TestStream } from './chain-helpers.ts'

export const PASSWORD = 'correct horse battery staple'

/** Deploy the committed contract with `deployer`, anchoring account `anchorer`. */
export async function deployAnchor(evm: TestEvm, deployer: Wallet, anchorer: string): Promise<string> {
  const a = anchorArtifact()
  const c = await new ContractFactory(a.abi as never, a.bytecode, deployer.connect(evm.provider)).deploy(anchorer)
  await c.waitForDeployment()
  return c.getAddress()
}

/** Every Anchored event of `contract`, in order. */
export async function anchorEvents(evm: TestEvm, contract: string): Promise<AnchorEvent[]> {
  const logs = await evm.provider.getLogs({ address: contract, topics: [anchoredTopic()], fromBlock: 0, toBlock: 'latest' })
  return logs.map((l) => parseAnchorLog(l)!)
}

export interface AnchoredCloud {
  readonly evm: TestEvm
  readonly wallet: Wallet
  readonly contract: string
  readonly keystore: string
  readonly dir: string
  readonly cloud: Cloud
  readonly flags: Record<string, string>
  readonly env: Record<string, string>
  /** Append one batch (a new record); the cloud seals it within its block interval. */
  grow(): void
  close(): Promise<void>
}

/** `rpcPath` is appended to the RPC URL (where providers put API keys). */
export async function anchoredCloud(opts: { flags?: Record<string, string>; intervalMs?: number; rpcPath?: string } = {}): Promise<AnchoredCloud> {
  const evm = await startTestEvm({ intervalMs: opts.intervalMs ?? 250 })
  const wallet = await evm.fundedWallet()
  const contract = await deployAnchor(evm, wallet, wallet.address)
  const data = tempDataDir('anchor')
  const keystore = join(data.dir, 'anchor-keystore.json')
  writeFileSync(keystore, await testKeystore(wallet, PASSWORD), { mode: 0o600 })
  const flags = {
    anchorRpcUrl: `${evm.url}${opts.rpcPath ?? ''}`,
    anchorChainId: String(evm.chainId),
    anchorContract: contract,
    anchorKeystore: keystore,
    anchorSchedule: '*/2 * * * * *',
    anchorConfirmations: '3',
    anchorPollS: '0.2',
    anchorBackoffMaxS: '1',
    anchorRpcTimeoutS: '2',
    anchorExplorerTxUrl: 'https://explorer.example/tx/{tx}',
    ...opts.flags,
  }
  const env = { CARELEDGER_ANCHOR_KEYSTORE_PASSWORD: PASSWORD }
  const cloud = await startTestCloud(join(data.dir, 'cloud'), flags, env)
  const stream = new TestStream(new TestGatewayKey('anchor'), 'bed-01', 'anchor patient')
  let seq = 0
  return {
    evm,
    wallet,
    contract,
    keystore,
    dir: data.dir,
    cloud,
    flags,
    env,
    grow() {
      expect(cloud.chain.appendBatch(stream.batch(seq++)).status).toBe('created')
    },
    async close() {
      await cloud.stop()
      await evm.close()
      data.cleanup()
    },
  }
}

/** Poll `f` until it returns a truthy value; after `giveUpMs` (generous: not a timing assertion) fail naming `what`. */
export async function until<T>(f: () => T | Promise<T>, what: string, giveUpMs = 45_000): Promise<NonNullable<T>> {
  const end = Date.now() + giveUpMs
  for (;;) {
    const v = await f()
    if (v) return v as NonNullable<T>
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
