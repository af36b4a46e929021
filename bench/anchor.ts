/**
 * npm run bench:anchor — what anchoring the chain head to an EVM chain costs (docs/operations.md
 * §Anchoring costs).
 *
 *   gas      deployment of CareLedgerAnchor, the first anchor (its storage slot goes from zero to
 *            non-zero) and every later one, measured on Hardhat 3's EDR (the London-and-later gas
 *            schedule of Ethereum mainnet) through the cloud's own Anchorer
 *   per day  anchors a day at the default schedule (CARELEDGER_ANCHOR_SCHEDULE, counted with
 *            node-cron), the gas they burn, and the fee at stated gas prices
 *   cloud    CPU of the cloud process per anchor (sign, store, broadcast, follow to 1
 *            confirmation) with the EVM in a separate process (bench/lib/evm-server.ts)
 *
 * BENCH_ANCHORS (default 100) anchors are made, one block sealed before each.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import cron from 'node-cron'
import { ContractFactory, Wallet, formatEther, parseUnits, toBeHex, parseEther } from 'ethers'
import { openCloudDb } from '../cloud/store/db.ts'
import { ChainStore } from '../cloud/chain/store.ts'
import { DEFAULT_ANCHOR_SCHEDULE, anchorConfigFrom, AnchorRawSchema } from '../cloud/anchor/config.ts'
import { anchorArtifact } from '../cloud/anchor/contract.ts'
import { AnchorStore } from '../cloud/anchor/store.ts'
import { ChainBlocks } from '../cloud/anchor/blocks.ts'
import { Anchorer } from '../cloud/anchor/anchorer.ts'
import { anchorProvider } from '../cloud/anchor/service.ts'
import { chainTestKeys, TestGatewayKey, TestStream } from '../test/cloud/chain-helpers.ts'
import { table } from './lib/measure.ts'

const N = Number(process.env.BENCH_ANCHORS ?? 100)
/** Gas prices the cost is stated at (gwei): a calm and a busy Ethereum mainnet, a rollup's L2 execution price. */
const PRICES: readonly [string, string][] = [
  ['Ethereum mainnet, calm (5 gwei)', '5'],
  ['Ethereum mainnet, busy (30 gwei)', '30'],
  ['an L2 rollup, execution only (0.01 gwei)', '0.01'],
]

const server = spawn(process.execPath, [join(import.meta.dirname, 'lib/evm-server.ts')], { stdio: ['ignore', 'pipe', 'inherit'] })
const { url, chainId } = JSON.parse(await new Promise<string>((ok) => createInterface({ input: server.stdout! }).once('line', ok))) as { url: string; chainId: number }
const dir = mkdtempSync(join(tmpdir(), 'careledger-bench-anchor-'))
try {
  const wallet = Wallet.createRandom()
  const provider = anchorProvider({ rpcUrl: url, chainId, rpcTimeoutMs: 30_000 })
  await provider.send('hardhat_setBalance', [wallet.address, toBeHex(parseEther('1000'))])
  const a = anchorArtifact()
  const signer = new Wallet(wallet.privateKey, provider)
  const contract = await new ContractFactory(a.abi as never, a.bytecode, signer).deploy(wallet.address)
  const deployReceipt = (await contract.deploymentTransaction()!.wait(1))!
  const config = anchorConfigFrom(
    AnchorRawSchema.parse({ rpcUrl: url, chainId, contract: await contract.getAddress(), keystore: 'unused', schedule: DEFAULT_ANCHOR_SCHEDULE, confirmations: 1, pollS: 1, rpcTimeoutS: 30, backoffMaxS: 60, replaceAfterS: 600 }),
  )

  const db = openCloudDb(join(dir, 'cloud.db'))
  const keys = chainTestKeys('bench anchor')
  const chain = new ChainStore(db, keys.store, { workers: 0 })
  const anchorer = new Anchorer({ config, provider, wallet: new Wallet(wallet.privateKey), store: new AnchorStore(db), blocks: new ChainBlocks(db), now: Date.now })
  const stream = new TestStream(new TestGatewayKey('bench anchor'), 'bed-01', 'bench patient')

  const gas: number[] = []
  let cpuMicros = 0
  let wallMs = 0
  let steps = 0
  for (let i = 0; i < N; i++) {
    chain.appendBatch(stream.batch(i))
    chain.sealBlock(Date.now())
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    let o = await anchorer.anchorHead()
    steps++
    while (o.kind !== 'confirmed') {
      o = await anchorer.follow()
      steps++
    }
    wallMs += performance.now() - t0
    const c = process.cpuUsage(c0)
    cpuMicros += c.user + c.system
    gas.push(o.anchor!.gasUsed!)
  }
  await chain.close()
  db.close()
  provider.destroy()

  const later = gas.slice(1)
  const mean = later.reduce((s, g) => s + g, 0) / later.length
  const task = cron.createTask(DEFAULT_ANCHOR_SCHEDULE, () => {})
  const runs = task.getNextRuns(24 * 60 * 60 + 1) // up to one a second for a day
  const perDay = runs.filter((d) => d.getTime() < runs[0]!.getTime() + 86_400_000).length
  await task.destroy()
  const gasPerDay = perDay * mean

  console.log(`bench:anchor — ${N} anchors on Hardhat 3 EDR (chain id ${chainId}), node ${process.version}, ${new Date().toISOString().slice(0, 10)}; the machine is shared: read CPU per anchor, not wall time\n`)
  console.log(
    table(
      ['what', 'gas'],
      [
        ['deploy CareLedgerAnchor (once per cloud)', String(deployReceipt.gasUsed)],
        ['first anchor (storage slot zero → non-zero)', String(gas[0])],
        [`each later anchor (mean of ${later.length}; min–max)`, `${Math.round(mean)} (${Math.min(...later)}–${Math.max(...later)})`],
      ],
    ),
  )
  console.log(`\nschedule ${JSON.stringify(DEFAULT_ANCHOR_SCHEDULE)}: ${perDay} anchors a day → ${Math.round(gasPerDay).toLocaleString('en-US')} gas a day\n`)
  console.log(
    table(
      ['gas price', 'fee per anchor (ETH)', 'fee per day (ETH)', 'fee per year (ETH)'],
      PRICES.map(([name, gwei]) => {
        const wei = parseUnits(gwei, 'gwei')
        const per = BigInt(Math.round(mean)) * wei
        return [name, formatEther(per), formatEther(per * BigInt(perDay)), formatEther(per * BigInt(perDay) * 365n)]
      }),
    ),
  )
  console.log(`\ncloud CPU per anchor (sign, store, broadcast, follow to 1 confirmation): ${(cpuMicros / N / 1000).toFixed(2)} ms; ${(steps / N).toFixed(1)} steps and ${(wallMs / N).toFixed(1)} ms wall per anchor`)
} finally {
  server.kill('SIGTERM')
  rmSync(dir, { recursive: true, force: true })
}
