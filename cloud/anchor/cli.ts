/**
 * `careledger chain …` commands of anchoring (docs/operations.md §Anchoring):
 *
 *   anchor-keygen    a new anchoring account in an encrypted JSON keystore (mode 0600)
 *   deploy-anchor    deploy this cloud's CareLedgerAnchor contract (the committed bytecode)
 *   anchor           anchor the newest block now, and follow it to its confirmations
 *   anchors          list the anchors recorded in cloud.db (or the shared PostgreSQL)
 *
 * and the `--anchors <rpc>` options of `chain verify` (verify.ts). The commands take the same
 * --anchor-* flags and CARELEDGER_ANCHOR_* variables as `cloud start`; `anchor` works on the data
 * directory — or, with --database, on the PostgreSQL a deployment shares — beside a running
 * service (the anchors table keeps one anchor in flight between them).
 */
import { existsSync, writeFileSync } from 'node:fs'
import { Command, Option } from 'commander'
import { CareLedgerError } from '../../shared/errors.ts'
import { cloudDbPath, resolveCloudDataDir } from '../config.ts'
import { openCloudDb } from '../store/db.ts'
import { isPostgresUrl, redactDatabaseUrl } from '../store/chain-backend.ts'
import type { AnchorRecords } from './store.ts'
import type { BlockSource } from './blocks.ts'
import { ANCHOR_SETTINGS, PASSWORD_ENV, anchorPassword, checksumAddress, loadAnchorConfig, loadAnchorWallet } from './config.ts'
import type { StepOutcome } from './anchorer.ts'
import type { AnchorReport } from './verify.ts'

// ethers and the modules built on it load only in the commands that use them: every `careledger`
// command registers these, and loading ethers would slow all of them down.
const ethers = () => import('ethers')
const anchoring = async () => ({ ...(await import('./anchorer.ts')), ...(await import('./service.ts')), ...(await import('./contract.ts')), ...(await import('./store.ts')), ...(await import('./blocks.ts')) })

const out = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : `${s}\n`)
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

function settingOptions(cmd: Command, paths: readonly string[]): Command {
  for (const s of ANCHOR_SETTINGS.filter((x) => paths.includes(x.path))) cmd.addOption(new Option(s.flag, `${s.doc} (env ${s.env}${s.default ? `, default ${s.default}` : ''})`))
  return cmd
}

/** The anchors table and the chain's blocks: cloud.db in --data, or the shared PostgreSQL of --database (env CARELEDGER_CLOUD_DATABASE). */
async function openAnchorTables(opts: { data?: string; database?: string }): Promise<{ store: AnchorRecords; blocks: BlockSource; where: string; close(): Promise<void> }> {
  const url = opts.database ?? (process.env.CARELEDGER_CLOUD_DATABASE || undefined)
  if (url !== undefined) {
    if (!isPostgresUrl(url)) throw new CareLedgerError('INVALID_ARGUMENT', '--database must be a postgres:// or postgresql:// URL', { reason: 'DATABASE_URL' })
    const [{ openMigratedPool }, { PgAnchorStore, PgChainBlocks }] = await Promise.all([import('../store/pg/pool.ts'), import('../store/pg/anchors.ts')])
    const pool = await openMigratedPool(url, 2)
    return { store: new PgAnchorStore(pool), blocks: new PgChainBlocks(pool), where: redactDatabaseUrl(url), close: () => pool.end() }
  }
  const dbPath = cloudDbPath(resolveCloudDataDir(opts.data))
  if (!existsSync(dbPath)) throw new CareLedgerError('INVALID_ARGUMENT', `no cloud database at ${dbPath} (use --data, or --database for a chain on PostgreSQL)`, { path: dbPath })
  const { AnchorStore, ChainBlocks } = await anchoring()
  const db = openCloudDb(dbPath)
  return { store: new AnchorStore(db), blocks: new ChainBlocks(db), where: dbPath, close: async () => { db.close() } }
}

const DATABASE_OPTION = "the deployment's shared PostgreSQL (postgres://…, env CARELEDGER_CLOUD_DATABASE) instead of --data"

const CONNECT = ['anchor.rpcUrl', 'anchor.chainId', 'anchor.keystore', 'anchor.passwordFile', 'anchor.rpcTimeoutS']

function keygenCommand(): Command {
  return new Command('anchor-keygen')
    .description(`create an anchoring account: an ethers encrypted JSON keystore (scrypt), password from ${PASSWORD_ENV} or --password-file; fund its address with gas on the anchoring network`)
    .requiredOption('-o, --out <file>', 'keystore file to write (mode 0600)')
    .option('--password-file <file>', 'file holding the password')
    .option('--force', 'overwrite an existing file')
    .action(async (opts: { out: string; passwordFile?: string; force?: boolean }) => {
      if (existsSync(opts.out) && !opts.force) throw new CareLedgerError('INVALID_ARGUMENT', `${opts.out} exists (use --force to overwrite it; the account in it would be lost)`, { path: opts.out })
      const password = anchorPassword({ passwordFile: opts.passwordFile ?? null })
      const { Wallet } = await ethers()
      const wallet = Wallet.createRandom()
      const json = await wallet.encrypt(password)
      writeFileSync(opts.out, json, { mode: 0o600, flag: opts.force ? 'w' : 'wx' })
      out(`anchoring account ${wallet.address}: keystore written to ${opts.out} (mode 0600)`)
      out('next: send it gas money on the anchoring network, then run careledger chain deploy-anchor')
    })
}

function deployCommand(): Command {
  const cmd = new Command('deploy-anchor')
    .description("deploy this cloud's anchor contract (CareLedgerAnchor, the committed bytecode) from the anchoring account; prints CARELEDGER_ANCHOR_CONTRACT")
    .option('--anchorer <address>', 'the account allowed to anchor (default: the keystore\'s account)')
    .option('--json', 'print {"contract","anchorer","tx","evmBlock","chainId"}')
  settingOptions(cmd, CONNECT)
  return cmd.action(async (opts: Record<string, unknown> & { anchorer?: string; json?: boolean }) => {
    const config = loadAnchorConfig(opts, ['chainId', 'keystore'])
    const anchorer = opts.anchorer ? checksumAddress(opts.anchorer) : null
    if (opts.anchorer && !anchorer) throw new CareLedgerError('INVALID_ARGUMENT', `--anchorer must be an EVM address (0x and 40 hex digits), got ${JSON.stringify(opts.anchorer)}`, { value: opts.anchorer })
    const wallet = await loadAnchorWallet(config)
    const { ContractFactory, formatEther } = await ethers()
    const { anchorProvider, anchorArtifact, deployedCodeMismatch, displayError } = await anchoring()
    const provider = anchorProvider(config)
    const rpcError = (e: unknown): never => {
      throw new CareLedgerError('INVALID_ARGUMENT', `cannot reach the anchoring RPC ${config.rpcUrl}: ${displayError(e)}`, { url: config.rpcUrl })
    }
    try {
      const chainId = Number((await provider.send('eth_chainId', []).catch(rpcError)) as string)
      if (chainId !== config.chainId) throw new CareLedgerError('INVALID_ARGUMENT', `${config.rpcUrl} serves chain id ${chainId}, not ${config.chainId}`, { chainId })
      const balance = await provider.getBalance(wallet.address)
      if (balance === 0n) throw new CareLedgerError('INVALID_ARGUMENT', `the anchoring account ${wallet.address} has no funds for gas on chain ${chainId}`, { account: wallet.address })
      const a = anchorArtifact()
      const account = anchorer ?? wallet.address
      const contract = await new ContractFactory(a.abi as never, a.bytecode, wallet.connect(provider)).deploy(account)
      const receipt = await contract.deploymentTransaction()!.wait(1)
      const address = await contract.getAddress()
      const why = deployedCodeMismatch(await provider.getCode(address), account)
      if (why) throw new CareLedgerError('VERIFICATION_FAILED', `the deployed code at ${address} is not right: ${why}`, { address })
      const result = { contract: address, anchorer: account, tx: receipt!.hash, evmBlock: receipt!.blockNumber, chainId, gasUsed: Number(receipt!.gasUsed) }
      if (opts.json) return out(JSON.stringify(result))
      out(`deployed CareLedgerAnchor at ${address} on chain ${chainId} (tx ${result.tx}, EVM block ${result.evmBlock}, ${result.gasUsed} gas; balance left ${formatEther(await provider.getBalance(wallet.address))})`)
      out(`anchoring account: ${account}`)
      out(`configure the cloud:  CARELEDGER_ANCHOR_CONTRACT=${address}`)
      out(`verifiers need:       --anchor-contract ${address} --anchor-account ${account} --anchors-from-block ${result.evmBlock}`)
    } finally {
      provider.destroy()
    }
  })
}

const FINAL: ReadonlySet<StepOutcome['kind']> = new Set(['confirmed', 'failed', 'up-to-date', 'idle', 'behind', 'waiting-fee'])

function anchorCommand(): Command {
  const cmd = new Command('anchor')
    .description('anchor the newest block of the chain now (or follow the anchor in flight) and wait for its confirmations; exit 0 once it counts or the head is already anchored')
    .addOption(new Option('--data <dir>', 'cloud data directory (env CARELEDGER_CLOUD_DATA, default ./.careledger/cloud)'))
    .option('--database <url>', DATABASE_OPTION)
    .option('--no-wait', 'return once the transaction is sent')
    .option('--timeout <s>', 'give up waiting after this many seconds (the running service keeps following it)', '900')
    .option('--json', 'print the anchor as JSON')
  settingOptions(cmd, [...CONNECT, 'anchor.contract', 'anchor.confirmations', 'anchor.pollS', 'anchor.maxFeeGwei', 'anchor.replaceAfterS', 'anchor.explorerTxUrl'])
  return cmd.action(async (opts: Record<string, unknown> & { data?: string; database?: string; wait: boolean; timeout: string; json?: boolean }) => {
    const config = loadAnchorConfig(opts, ['chainId', 'contract', 'keystore'])
    const timeoutS = Number(opts.timeout)
    if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new CareLedgerError('INVALID_ARGUMENT', '--timeout must be a positive number of seconds', { value: opts.timeout })
    const tables = await openAnchorTables(opts)
    const provider = { destroy: () => {} }
    try {
      const wallet = await loadAnchorWallet(config)
      const { Anchorer, anchorProvider, anchorView, displayError } = await anchoring()
      const rpc = anchorProvider(config)
      provider.destroy = () => rpc.destroy()
      const anchorer = new Anchorer({ config, provider: rpc, wallet, store: tables.store, blocks: tables.blocks, now: Date.now })
      const deadline = Date.now() + timeoutS * 1000
      let outcome = await anchorer.anchorHead().catch((e: unknown) => {
        if (e instanceof CareLedgerError) throw e
        throw new CareLedgerError('INVALID_ARGUMENT', `cannot reach the anchoring RPC ${config.rpcUrl}: ${displayError(e)}`, { url: config.rpcUrl })
      })
      if (!opts.json && outcome.message) out(outcome.message)
      let shown = outcome.kind
      let failures = 0
      while (opts.wait && !FINAL.has(outcome.kind) && Date.now() < deadline) {
        await sleep(Math.min(config.pollMs, 2000) * 2 ** Math.min(failures, 5))
        try {
          const following = outcome.anchor
          outcome = await anchorer.follow()
          failures = 0
          // Nothing in flight any more: the running service settled the anchor this command followed.
          const settled = outcome.kind === 'idle' && following ? await tables.store.get(following.id) : null
          if (settled?.status === 'confirmed') outcome = { kind: 'confirmed', anchor: settled, message: `block ${settled.height} anchored in ${settled.txHash}, ${settled.confirmations} confirmations` }
          else if (settled?.status === 'failed') outcome = { kind: 'failed', anchor: settled, message: settled.error ?? 'failed' }
        } catch (e) {
          failures++
          if (!opts.json) out(`RPC error (${displayError(e)}); retrying`)
          continue
        }
        if (!opts.json && (outcome.kind !== shown || outcome.kind === 'mined')) out(outcome.message ?? outcome.kind)
        shown = outcome.kind
      }
      const a = outcome.anchor ? anchorView(outcome.anchor, config) : null
      if (opts.json) out(JSON.stringify({ outcome: outcome.kind, message: outcome.message ?? null, anchor: a }))
      else if (a) out(`block ${a.height} (${a.blockHash}): ${a.status}, tx ${a.tx}${a.txUrl ? ` ${a.txUrl}` : ''}, ${a.confirmations} of ${config.confirmations} confirmations`)
      const done = outcome.kind === 'confirmed' || outcome.kind === 'up-to-date' || (!opts.wait && ['sent', 'waiting', 'mined', 'resent', 'replaced'].includes(outcome.kind))
      if (!done && !opts.json && opts.wait && !FINAL.has(outcome.kind)) out(`still in flight after ${timeoutS} s: the cloud service (or the next careledger chain anchor) keeps following it`)
      process.exitCode = done ? 0 : 1
    } finally {
      provider.destroy()
      await tables.close()
    }
  })
}

function listCommand(): Command {
  return new Command('anchors')
    .description('list the anchors recorded in cloud.db (or the shared PostgreSQL), newest first')
    .addOption(new Option('--data <dir>', 'cloud data directory (env CARELEDGER_CLOUD_DATA, default ./.careledger/cloud)'))
    .option('--database <url>', DATABASE_OPTION)
    .option('--limit <n>', 'how many', '20')
    .option('--json', 'machine-readable output')
    .action(async (opts: { data?: string; database?: string; limit: string; json?: boolean }) => {
      const limit = Number(opts.limit)
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) throw new CareLedgerError('INVALID_ARGUMENT', '--limit must be an integer 1–1000', { value: opts.limit })
      const tables = await openAnchorTables(opts)
      try {
        const { anchorView } = await import('./view.ts')
        const template = process.env.CARELEDGER_ANCHOR_EXPLORER_TX_URL || null
        const views = (await tables.store.list({ limit })).map((r) => anchorView(r, { chainId: template ? r.chainId : null, explorerTxUrl: template }))
        if (opts.json) return out(JSON.stringify(views))
        if (views.length === 0) return out('no anchors yet (careledger chain anchor, or the cloud service on CARELEDGER_ANCHOR_SCHEDULE)')
        for (const v of views) out(`${String(v.height).padStart(8)}  ${v.status.padEnd(9)}  chain ${v.chainId}  ${v.tx ?? '-'}  ${v.confirmations} conf.${v.txUrl ? `  ${v.txUrl}` : ''}${v.error ? `  ${v.error}` : ''}`)
      } finally {
        await tables.close()
      }
    })
}

/** The anchoring commands under `careledger chain`. */
export const anchorCommands = (): Command[] => [keygenCommand(), deployCommand(), anchorCommand(), listCommand()]

// ── chain verify --anchors ────────────────────────────────────────────────────────────────────

export interface AnchorVerifyFlags {
  anchors?: string
  anchorContract?: string
  anchorAccount?: string
  anchorChainId?: string
  anchorsFromBlock?: string
}

export function addAnchorVerifyOptions(cmd: Command): Command {
  return cmd
    .option('--anchors <rpc>', 'also check the chain against its anchors on an EVM chain, read through this JSON-RPC URL')
    .option('--anchor-contract <address>', 'the anchor contract (env CARELEDGER_ANCHOR_CONTRACT)')
    .option('--anchor-account <address>', "the cloud's anchoring account, as you obtained it independently")
    .option('--anchor-chain-id <id>', 'the EVM chain id the RPC must serve')
    .option('--anchors-from-block <n>', 'EVM block to start reading anchors from (the contract\'s deployment block)', '0')
}

/** Run the anchor checks of `chain verify` when --anchors is given: the report and its text; null otherwise. */
export async function verifyAnchorFlags(dbPath: string, f: AnchorVerifyFlags): Promise<{ report: AnchorReport; text: string } | null> {
  if (!f.anchors) return null
  const contract = f.anchorContract ?? process.env.CARELEDGER_ANCHOR_CONTRACT
  if (!contract) throw new CareLedgerError('INVALID_ARGUMENT', '--anchors needs --anchor-contract (or CARELEDGER_ANCHOR_CONTRACT)', {})
  if (!f.anchorAccount) throw new CareLedgerError('INVALID_ARGUMENT', "--anchors needs --anchor-account: the cloud's anchoring account, from a source you trust", {})
  const int = (v: string | undefined, name: string, min: number): number | undefined => {
    if (v === undefined) return undefined
    const n = Number(v)
    if (!Number.isSafeInteger(n) || n < min) throw new CareLedgerError('INVALID_ARGUMENT', `${name} must be an integer ≥ ${min}`, { value: v })
    return n
  }
  const chainId = int(f.anchorChainId, '--anchor-chain-id', 1)
  const fromBlock = int(f.anchorsFromBlock, '--anchors-from-block', 0)
  const { verifyAnchors, formatAnchorReport } = await import('./verify.ts')
  const report = await verifyAnchors(dbPath, { rpcUrl: f.anchors, contract, account: f.anchorAccount, ...(chainId === undefined ? {} : { chainId }), ...(fromBlock === undefined ? {} : { fromBlock }) })
  return { report, text: formatAnchorReport(report, f.anchors) }
}
