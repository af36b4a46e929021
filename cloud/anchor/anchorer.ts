/**
 * One step of anchoring at a time, against an EVM chain through ethers v6: publish the chain's
 * newest block (`anchorHead`), or follow the anchor in flight (`follow`) until it is
 * `confirmations` blocks deep. Every step reads the state from the database (AnchorRecords: cloud.db,
 * or the shared PostgreSQL) and the EVM
 * chain, so it can stop anywhere — an RPC error, a crash, a restart — and the next step carries on:
 *
 *   anchorHead  [pending anchor? follow it] → read the head block → skip if already anchored →
 *               ask the contract for its latest height: refuse ("behind") if it is above the head
 *               or this chain's block there is not the anchored one → nonce, fees, gas → sign →
 *               STORE → broadcast
 *   follow      receipt of any attempt? → mined: count confirmations, confirm at N, or record a
 *               revert as failed; not mined (or a reorganisation took it out) → the node does not
 *               know the transaction (dropped): broadcast the same bytes again; known but unmined
 *               for CARELEDGER_ANCHOR_REPLACE_AFTER_S: replace it (same nonce, fees +25 %)
 *
 * Signing before storing and storing before broadcasting means a lost answer or a crash can
 * never produce a second transaction under another nonce; replacements reuse the nonce, so at
 * most one of an anchor's transactions is ever mined. The contract refuses a height that does not
 * increase anyway.
 *
 * Errors from the RPC propagate (the service retries with backoff); a misconfiguration (wrong
 * chain id, no anchor contract at the address, another anchoring account) is an AnchorSetupError.
 */
import { Contract, JsonRpcProvider, Transaction, Wallet, parseUnits, toBeHex, zeroPadValue, type TransactionReceipt } from 'ethers'
import { CareLedgerError } from '../../shared/errors.ts'
import type { AnchorConfig } from './config.ts'
import { anchorCalldata, anchorInterface, anchoredTopic, deployedCodeMismatch, describeAnchorRevert, parseAnchorLog, type AnchorPoint } from './contract.ts'
import type { AnchorRecords, AnchorRow, AnchorTarget, TxAttempt } from './store.ts'
import { isDamaged, type BlockSource } from './blocks.ts'

/** The configuration cannot work: the service reports it and retries slowly, but it will not heal by itself. */
export class AnchorSetupError extends CareLedgerError {
  constructor(message: string, info: Record<string, unknown> = {}) {
    super('INVALID_ARGUMENT', message, { reason: 'ANCHOR_SETUP', ...info })
    this.name = 'AnchorSetupError'
  }
}

export type StepKind =
  | 'idle' // nothing sealed yet, or nothing pending to follow
  | 'up-to-date' // the newest block is already anchored
  | 'behind' // the contract holds a higher anchor than this chain's head: rolled back?
  | 'waiting-fee' // the network's fee is above CARELEDGER_ANCHOR_MAX_FEE_GWEI
  | 'sent'
  | 'waiting' // in the mempool, not mined yet
  | 'resent' // the node had dropped it: the same transaction broadcast again
  | 'replaced' // a replacement with higher fees at the same nonce
  | 'mined' // mined, fewer than N confirmations
  | 'reorged' // a reorganisation removed the mined transaction
  | 'confirmed'
  | 'failed'

export interface StepOutcome {
  readonly kind: StepKind
  readonly anchor: AnchorRow | null
  readonly message?: string
}

export interface AnchorerOptions {
  readonly config: AnchorConfig
  readonly provider: JsonRpcProvider
  readonly wallet: Wallet
  readonly store: AnchorRecords
  readonly blocks: BlockSource
  readonly now: () => number
}

/** Errors of broadcasting a transaction the node already has or has already mined: not failures. */
const ALREADY_SENT = /already known|known transaction|already imported|nonce too low|NONCE_EXPIRED|nonce has already been used|transaction already exists/i

/** Fee multiplier of a replacement: geth and most nodes want ≥ +10 % on both fee fields. */
const BUMP_NUM = 125n
const BUMP_DEN = 100n
const bump = (x: bigint): bigint => (x * BUMP_NUM + BUMP_DEN - 1n) / BUMP_DEN
const max = (a: bigint, b: bigint): bigint => (a > b ? a : b)
const min = (a: bigint, b: bigint): bigint => (a < b ? a : b)
const str = (x: bigint | null | undefined): string | null => (x === null || x === undefined ? null : x.toString())

interface Fees {
  readonly maxFeePerGas: bigint | null
  readonly maxPriorityFeePerGas: bigint | null
  readonly gasPrice: bigint | null
}

export class Anchorer {
  readonly config: AnchorConfig
  readonly target: AnchorTarget
  readonly account: string
  readonly #o: AnchorerOptions
  readonly #contract: Contract
  #setupChecked = false

  constructor(o: AnchorerOptions) {
    if (o.config.chainId === null || o.config.contract === null) throw new AnchorSetupError('anchoring needs a chain id and a contract address')
    this.#o = o
    this.config = o.config
    this.target = { chainId: o.config.chainId, contract: o.config.contract }
    this.account = o.wallet.address
    this.#contract = new Contract(o.config.contract, anchorInterface(), o.provider)
  }

  /** Once per process: the RPC serves the configured chain, and the contract is ours with this account. */
  async checkSetup(): Promise<void> {
    if (this.#setupChecked) return
    const { provider, config } = this.#o
    const chainId = Number(BigInt((await provider.send('eth_chainId', [])) as string))
    if (chainId !== config.chainId) throw new AnchorSetupError(`the RPC ${safeUrl(config.rpcUrl!)} serves chain id ${chainId}, not the configured ${config.chainId} (CARELEDGER_ANCHOR_CHAIN_ID)`, { chainId })
    const why = deployedCodeMismatch(await provider.getCode(config.contract!), this.account)
    if (why) throw new AnchorSetupError(`${config.contract} on chain ${chainId}: ${why} (CARELEDGER_ANCHOR_CONTRACT, or deploy one: careledger chain deploy-anchor)`, { contract: config.contract })
    this.#setupChecked = true
  }

  /** The contract's latest anchored height, or null before its first anchor. */
  async contractLatest(): Promise<number | null> {
    const [anchored, height] = await Promise.all([this.#contract.getFunction('anchored')() as Promise<boolean>, this.#contract.getFunction('latestHeight')() as Promise<bigint>])
    return anchored ? Number(height) : null
  }

  /** Anchor the newest block (or follow the anchor already in flight). */
  async anchorHead(): Promise<StepOutcome> {
    await this.checkSetup()
    const { store, blocks, provider, now } = this.#o
    if (await store.pending(this.target)) {
      const followed = await this.follow()
      // 'idle': another process (the service, the CLI) settled that anchor meanwhile: go on with the head.
      if (followed.kind !== 'idle') return followed
    }
    const head = await blocks.head()
    if (!head) return { kind: 'idle', anchor: null, message: 'no block sealed yet' }
    if (isDamaged(head)) throw new CareLedgerError('VERIFICATION_FAILED', `block ${head.height}'s header does not decode: not anchoring a damaged chain (run careledger chain verify)`, { height: head.height })
    const highest = await store.highest(this.target)
    if (highest && highest.height >= head.height) return { kind: 'up-to-date', anchor: highest, message: `block ${head.height} is the newest and already anchored` }
    const onChain = await this.contractLatest()
    if (onChain !== null && onChain > head.height) {
      return { kind: 'behind', anchor: highest, message: `the contract's latest anchor is height ${onChain}, above this chain's head ${head.height}: the chain was rolled back behind its anchor (or another process anchors with this key)` }
    }
    if (onChain !== null) {
      // Never anchor a chain that does not extend the latest anchor (rolled back and grown again, or rewritten).
      const anchored = (await store.at(this.target, onChain))?.blockHash ?? (await this.#anchoredHash(onChain))
      const ours = await blocks.at(onChain)
      if (anchored !== null && ours?.blockHash !== anchored) {
        return { kind: 'behind', anchor: highest, message: `the contract anchors block ${onChain} as ${anchored}, but this chain's block ${onChain} is ${ours?.blockHash ?? 'missing'}: the chain no longer extends its latest anchor (rolled back and grown again, or rewritten)` }
      }
      if (onChain === head.height) return { kind: 'up-to-date', anchor: highest, message: `the contract already anchors height ${onChain}` }
    }
    const point: AnchorPoint = { height: head.height, blockHash: head.blockHash, recordsRoot: head.recordsRoot }
    const data = anchorCalldata(point)
    const fees = await this.#fees(null)
    if (!fees) return { kind: 'waiting-fee', anchor: null, message: `the network's fee is above CARELEDGER_ANCHOR_MAX_FEE_GWEI=${this.config.maxFeeGwei}` }
    const nonce = await provider.getTransactionCount(this.account, 'pending')
    let gas: bigint
    try {
      gas = await provider.estimateGas({ from: this.account, to: this.target.contract, data })
    } catch (e) {
      const why = describeAnchorRevert((e as { data?: string }).data)
      if (why) throw new AnchorSetupError(`the contract would refuse this anchor: ${why}`)
      throw e
    }
    const attempt = await this.#sign(nonce, data, gas + gas / 5n, fees)
    const row = await store.insertPending({ ...this.target, account: this.account, ...point, nonce, attempt, createdAt: now() })
    if (!row) return this.follow() // another process (the CLI, the service) made one meanwhile: nothing of ours was sent
    await this.#broadcast(attempt.raw)
    return { kind: 'sent', anchor: await store.get(row.id), message: `anchoring block ${point.height} in ${attempt.hash} (nonce ${nonce})` }
  }

  /** Follow the pending anchor one step. */
  async follow(): Promise<StepOutcome> {
    await this.checkSetup()
    const { store, provider, now } = this.#o
    const p = await store.pending(this.target)
    if (!p) return { kind: 'idle', anchor: null }
    const head = await provider.getBlockNumber()
    for (const a of [...p.attempts].reverse()) {
      const receipt = await provider.getTransactionReceipt(a.hash)
      if (receipt && receipt.blockNumber <= head) return this.#mined(p, receipt, head)
    }
    let kind: StepKind = 'waiting'
    if (p.evmBlock !== null) {
      await store.setUnmined(p.id)
      kind = 'reorged'
    }
    const last = p.attempts.at(-1)!
    const known = await provider.getTransaction(last.hash)
    if (!known) {
      const used = await provider.getTransactionCount(this.account, 'latest')
      if (used > p.nonce) {
        // Our nonce went into a block, but none of our transactions did (receipts checked above).
        const again = await Promise.all(p.attempts.map((a) => provider.getTransactionReceipt(a.hash)))
        const r = again.find((x) => x !== null)
        if (r) return this.#mined(p, r, await provider.getBlockNumber())
        await store.fail(p.id, `nonce ${p.nonce} of ${this.account} was used by a transaction that is not this anchor: is the anchoring key used elsewhere?`)
        return { kind: 'failed', anchor: await store.get(p.id), message: 'nonce taken by another transaction' }
      }
      await this.#broadcast(last.raw)
      await store.countResend(p.id)
      return { kind: kind === 'reorged' ? 'reorged' : 'resent', anchor: await store.get(p.id), message: `the node did not know ${last.hash}: broadcast again` }
    }
    if (now() - last.sentAt >= this.config.replaceAfterMs) {
      const fees = await this.#fees(last)
      if (fees) {
        const gas = known.gasLimit
        const attempt = await this.#sign(p.nonce, known.data, gas, fees)
        await store.addAttempt(p.id, attempt)
        await this.#broadcast(attempt.raw)
        return { kind: 'replaced', anchor: await store.get(p.id), message: `unmined for ${Math.round((now() - last.sentAt) / 1000)} s: replaced by ${attempt.hash} with higher fees` }
      }
    }
    return { kind, anchor: await store.get(p.id) }
  }

  async #mined(p: AnchorRow, r: TransactionReceipt, head: number): Promise<StepOutcome> {
    const { store, now } = this.#o
    const confirmations = Math.max(0, head - r.blockNumber + 1)
    await store.setMined(p.id, { txHash: r.hash, evmBlock: r.blockNumber, evmBlockHash: r.blockHash, confirmations, gasUsed: Number(r.gasUsed), effectiveGasPrice: r.gasPrice.toString(), at: now() })
    if (r.status === 0) {
      await store.fail(p.id, `the contract refused the anchor of height ${p.height} (transaction ${r.hash} reverted)`)
      return { kind: 'failed', anchor: await store.get(p.id), message: 'reverted' }
    }
    if (confirmations >= this.config.confirmations) {
      await store.confirm(p.id, now())
      return { kind: 'confirmed', anchor: await store.get(p.id), message: `block ${p.height} anchored in ${r.hash}, ${confirmations} confirmations` }
    }
    return { kind: 'mined', anchor: await store.get(p.id), message: `${confirmations} of ${this.config.confirmations} confirmations` }
  }

  /** The hash the contract's Anchored event of `height` carries (the height is an indexed topic); null if none is found. */
  async #anchoredHash(height: number): Promise<string | null> {
    const logs = await this.#o.provider.getLogs({ address: this.target.contract, topics: [anchoredTopic(), zeroPadValue(toBeHex(height), 32)], fromBlock: 0, toBlock: 'latest' })
    for (const l of logs) {
      const ev = parseAnchorLog(l)
      if (ev && ev.height === height) return ev.blockHash
    }
    return null
  }

  /** Fees for a new transaction, or for replacing `previous` (≥ +25 %); null when above the cap. */
  async #fees(previous: TxAttempt | null): Promise<Fees | null> {
    const fd = await this.#o.provider.getFeeData()
    const cap = this.config.maxFeeGwei === null ? null : parseUnits(String(this.config.maxFeeGwei), 'gwei')
    if (fd.maxFeePerGas !== null && fd.maxPriorityFeePerGas !== null) {
      let fee = fd.maxFeePerGas
      let tip = fd.maxPriorityFeePerGas
      if (previous?.maxFeePerGas && previous.maxPriorityFeePerGas) {
        fee = max(fee, bump(BigInt(previous.maxFeePerGas)))
        tip = max(tip, bump(BigInt(previous.maxPriorityFeePerGas)))
      }
      if (cap !== null) {
        // ethers offers 2 × base fee + tip; a capped offer still gets in while base fee + tip ≤ cap.
        const needed = (fd.maxFeePerGas - fd.maxPriorityFeePerGas) / 2n + fd.maxPriorityFeePerGas
        if (needed > cap) return null
        fee = min(fee, cap)
        tip = min(tip, fee)
        if (previous?.maxFeePerGas && fee < bump(BigInt(previous.maxFeePerGas))) return null
      }
      return { maxFeePerGas: fee, maxPriorityFeePerGas: tip, gasPrice: null }
    }
    let price = fd.gasPrice ?? 0n
    if (previous?.gasPrice) price = max(price, bump(BigInt(previous.gasPrice)))
    if (cap !== null && price > cap) return null
    return { maxFeePerGas: null, maxPriorityFeePerGas: null, gasPrice: price }
  }

  async #sign(nonce: number, data: string, gasLimit: bigint, fees: Fees): Promise<TxAttempt> {
    const base = { chainId: this.target.chainId, nonce, to: this.target.contract, data, gasLimit, value: 0n }
    const tx = fees.maxFeePerGas !== null ? { ...base, type: 2, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas } : { ...base, type: 0, gasPrice: fees.gasPrice }
    const raw = await this.#o.wallet.signTransaction(tx)
    return {
      hash: Transaction.from(raw).hash!,
      raw,
      maxFeePerGas: str(fees.maxFeePerGas),
      maxPriorityFeePerGas: str(fees.maxPriorityFeePerGas),
      gasPrice: str(fees.gasPrice),
      sentAt: this.#o.now(),
    }
  }

  async #broadcast(raw: string): Promise<void> {
    try {
      await this.#o.provider.send('eth_sendRawTransaction', [raw])
    } catch (e) {
      if (ALREADY_SENT.test(errorText(e))) return
      throw e
    }
  }
}

/** Everything an ethers / JSON-RPC error says, for matching node messages (may hold the RPC URL: not for display). */
export function errorText(e: unknown): string {
  const x = e as { message?: string; shortMessage?: string; code?: string; error?: { message?: string }; info?: { error?: { message?: string } } }
  return [x?.shortMessage, x?.message, x?.code, x?.error?.message, x?.info?.error?.message].filter(Boolean).join(' | ')
}

/**
 * An RPC URL as it may be shown: scheme and host only. Providers put API keys in the path, the
 * query or the user info (…/v3/<key>), and /healthz, the logs and the console must not show them.
 */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.host}${u.pathname !== '/' || u.search ? '/…' : ''}`
  } catch {
    return '<rpc>'
  }
}

/** An RPC failure for /healthz, logs and the console: the node's own short message and the ethers code, every URL cut to its host. */
export function displayError(e: unknown): string {
  const x = e as { message?: string; shortMessage?: string; code?: string; error?: { message?: string } }
  const text = [x?.shortMessage ?? x?.message?.split(' (')[0], x?.error?.message, x?.code].filter((t, i, all) => t && all.indexOf(t) === i).join(': ')
  return (text || String(e)).replace(/https?:\/\/[^\s"'),]+/g, (u) => safeUrl(u)).slice(0, 300)
}
