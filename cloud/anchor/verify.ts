/**
 * Checking a chain against its anchors (`careledger chain verify --anchors <rpc>`): with only an
 * EVM RPC endpoint, the anchor contract's address and the cloud's anchoring account — all three
 * obtainable without asking the cloud — a verifier reads every `Anchored` event and checks the
 * cloud's database against them. This closes what verification from the database alone cannot
 * see (docs/security.md, trust assumption 3): a chain rewritten and re-signed by the cloud, or cut
 * back to an earlier height.
 *
 *   ANCHOR_CONTRACT  the address holds the CareLedger anchor contract (committed runtime code,
 *                    byte for byte) with exactly this anchoring account; the RPC serves the chain id
 *   ANCHOR_ORDER     anchored heights strictly increase (the contract enforces it; checked anyway)
 *   ANCHOR_MISMATCH  each anchored block hashes (SHA-256 of its stored header) to the anchored hash,
 *                    and commits to the anchored records root
 *   ANCHOR_MISSING   each anchored height below the head is in the chain
 *   ANCHOR_BEHIND    the chain reaches the latest anchored height (not rolled back behind it)
 *   ANCHOR_FORK      from the latest anchored block to the head, each block links to the hash of
 *                    the one before: the chain extends its latest anchor
 *
 * Approved redactions change a record's content and opening but not its chameleon hash, so no
 * block hash or records root moves and every anchor still matches.
 */
import Database from 'better-sqlite3'
import { JsonRpcProvider, type Log } from 'ethers'
import { CareLedgerError } from '../../shared/errors.ts'
import { anchorProvider } from './service.ts'
import { anchoredTopic, checkAddress, deployedCodeMismatch, parseAnchorLog, type AnchorEvent } from './contract.ts'
import { ChainBlocks, isDamaged } from './blocks.ts'
import { displayError, errorText } from './anchorer.ts'

export type AnchorFailureKind = 'ANCHOR_CONTRACT' | 'ANCHOR_ORDER' | 'ANCHOR_MISMATCH' | 'ANCHOR_MISSING' | 'ANCHOR_BEHIND' | 'ANCHOR_FORK'

export interface AnchorFailure {
  readonly kind: AnchorFailureKind
  readonly height?: number
  readonly message: string
}

export interface AnchorVerifyOptions {
  readonly rpcUrl: string
  readonly contract: string
  /** The cloud's anchoring account, from a source you trust. */
  readonly account: string
  /** Expected EIP-155 chain id (optional: the RPC's is reported either way). */
  readonly chainId?: number
  /** First EVM block to read events from (the contract's deployment block; default 0). */
  readonly fromBlock?: number
  /** Most EVM blocks per eth_getLogs request (default 10,000; halved while the node refuses). */
  readonly logRange?: number
  readonly rpcTimeoutMs?: number
}

export interface AnchorReport {
  readonly ok: boolean
  readonly chainId: number | null
  readonly contract: string
  readonly account: string
  /** EVM blocks read: fromBlock..toBlock. */
  readonly fromBlock: number
  readonly toBlock: number | null
  readonly anchors: number
  readonly latest: (AnchorEvent & { readonly confirmations: number }) | null
  readonly chainHead: { readonly height: number; readonly hash: string } | null
  readonly failures: readonly AnchorFailure[]
}

async function readEvents(provider: JsonRpcProvider, address: string, from: number, to: number, range: number): Promise<AnchorEvent[]> {
  const topic = anchoredTopic()
  const out: AnchorEvent[] = []
  let step = Math.max(1, range)
  for (let start = from; start <= to; ) {
    const end = Math.min(to, start + step - 1)
    let logs: Log[]
    try {
      logs = await provider.getLogs({ address, topics: [topic], fromBlock: start, toBlock: end })
    } catch (e) {
      if (step > 1 && /range|limit|too many|exceed|10000|results/i.test(errorText(e))) {
        step = Math.max(1, Math.floor(step / 2))
        continue
      }
      throw e
    }
    for (const l of logs) {
      const ev = parseAnchorLog(l)
      if (ev) out.push(ev)
    }
    start = end + 1
  }
  return out.sort((a, b) => a.evmBlock - b.evmBlock || a.logIndex - b.logIndex)
}

/** Check the chain in `db` (a path or a connection) against the anchors on the EVM chain. Throws only for usage and RPC errors. */
export async function verifyAnchors(db: string | Database.Database, opts: AnchorVerifyOptions): Promise<AnchorReport> {
  const contract = checkAddress(opts.contract, '--anchor-contract')
  const account = checkAddress(opts.account, '--anchor-account')
  const failures: AnchorFailure[] = []
  const fail = (kind: AnchorFailureKind, message: string, height?: number): void => void failures.push({ kind, message, ...(height === undefined ? {} : { height }) })
  const conn = typeof db === 'string' ? new Database(db, { readonly: true, fileMustExist: true }) : db
  const provider = anchorProvider({ rpcUrl: opts.rpcUrl, chainId: opts.chainId ?? 1, rpcTimeoutMs: opts.rpcTimeoutMs ?? 30_000 })
  const fromBlock = opts.fromBlock ?? 0
  try {
    if (conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blocks'").get() === undefined) {
      throw new CareLedgerError('INVALID_ARGUMENT', `${conn.name} holds no chain (no blocks table)`, { reason: 'NO_CHAIN' })
    }
    let chainId: number
    try {
      chainId = Number(BigInt((await provider.send('eth_chainId', [])) as string))
    } catch (e) {
      throw new CareLedgerError('INVALID_ARGUMENT', `cannot reach the anchoring RPC ${opts.rpcUrl}: ${displayError(e)}`, { url: opts.rpcUrl })
    }
    const base = { contract, account, fromBlock, chainId }
    if (opts.chainId !== undefined && chainId !== opts.chainId) {
      fail('ANCHOR_CONTRACT', `the RPC serves chain id ${chainId}, not ${opts.chainId}`)
      return { ...base, ok: false, toBlock: null, anchors: 0, latest: null, chainHead: null, failures }
    }
    const why = deployedCodeMismatch(await provider.getCode(contract), account)
    if (why) {
      fail('ANCHOR_CONTRACT', `${contract}: ${why}`)
      return { ...base, ok: false, toBlock: null, anchors: 0, latest: null, chainHead: null, failures }
    }
    const toBlock = await provider.getBlockNumber()
    const events = await readEvents(provider, contract, fromBlock, toBlock, opts.logRange ?? 10_000)

    const blocks = new ChainBlocks(conn)
    const head = blocks.head()
    const headHeight = head?.height ?? -1
    let prev = -1
    for (const ev of events) {
      if (ev.height <= prev) fail('ANCHOR_ORDER', `anchor of height ${ev.height} (EVM block ${ev.evmBlock}, tx ${ev.txHash}) follows one of height ${prev}`, ev.height)
      prev = Math.max(prev, ev.height)
      if (ev.height > headHeight) continue // reported once below, as ANCHOR_BEHIND
      const b = blocks.at(ev.height)
      if (!b) {
        fail('ANCHOR_MISSING', `block ${ev.height}, anchored in ${ev.txHash}, is not in the chain`, ev.height)
        continue
      }
      if (b.blockHash !== ev.blockHash) {
        fail('ANCHOR_MISMATCH', `block ${ev.height} hashes to ${b.blockHash}, but ${ev.txHash} anchored ${ev.blockHash}: the block was rewritten`, ev.height)
      } else if (isDamaged(b)) {
        fail('ANCHOR_MISMATCH', `block ${ev.height}'s header does not decode`, ev.height)
      } else if (b.recordsRoot !== ev.recordsRoot) {
        fail('ANCHOR_MISMATCH', `block ${ev.height} commits to records root ${b.recordsRoot}, but ${ev.txHash} anchored ${ev.recordsRoot}`, ev.height)
      }
    }
    const latestEvent = events.reduce<AnchorEvent | null>((m, e) => (m === null || e.height > m.height ? e : m), null)
    if (latestEvent && latestEvent.height > headHeight) {
      fail('ANCHOR_BEHIND', `the chain ends at height ${headHeight}, behind its latest anchor at height ${latestEvent.height} (${latestEvent.txHash}): it was rolled back or truncated`, latestEvent.height)
    } else if (latestEvent && head) {
      // The chain must extend the latest anchor: every block after it links to the one before.
      let before = blocks.at(latestEvent.height)
      let expected = latestEvent.height + 1
      for (const b of blocks.range(latestEvent.height + 1, headHeight)) {
        if (b.height !== expected) {
          fail('ANCHOR_FORK', `block ${expected} is missing between the latest anchor (height ${latestEvent.height}) and the head`, expected)
          break
        }
        if (isDamaged(b) || !before || b.prev !== before.blockHash) {
          fail('ANCHOR_FORK', `block ${b.height} does not link to block ${b.height - 1}'s hash: the chain does not extend its latest anchor`, b.height)
          break
        }
        before = b
        expected++
      }
    }
    return {
      ...base,
      ok: failures.length === 0,
      toBlock,
      anchors: events.length,
      latest: latestEvent ? { ...latestEvent, confirmations: toBlock - latestEvent.evmBlock + 1 } : null,
      chainHead: head ? { height: head.height, hash: head.blockHash } : null,
      failures,
    }
  } finally {
    provider.destroy()
    if (typeof db === 'string') conn.close()
  }
}

/** The anchor section of `careledger chain verify` as people read it. */
export function formatAnchorReport(r: AnchorReport, rpcUrl: string): string {
  const lines: string[] = []
  lines.push(`anchors: ${r.ok ? 'the chain matches every anchor and extends the latest' : `NOT CONSISTENT WITH ITS ANCHORS (${r.failures.length} failure${r.failures.length === 1 ? '' : 's'})`}`)
  lines.push(`  evm        chain id ${r.chainId ?? '?'} via ${rpcUrl}; contract ${r.contract}; anchoring account ${r.account}`)
  lines.push(`  read       EVM blocks ${r.fromBlock}..${r.toBlock ?? '?'}: ${r.anchors} anchor${r.anchors === 1 ? '' : 's'}`)
  if (r.latest) lines.push(`  latest     height ${r.latest.height}, hash ${r.latest.blockHash}, tx ${r.latest.txHash} (EVM block ${r.latest.evmBlock}, ${r.latest.confirmations} confirmations)`)
  if (r.chainHead) lines.push(`  chain head height ${r.chainHead.height}, hash ${r.chainHead.hash}`)
  for (const f of r.failures) lines.push(`  ${f.kind.padEnd(16)} ${f.height === undefined ? ''.padEnd(12) : `height ${f.height}`.padEnd(12)} ${f.message}`)
  return lines.join('\n')
}
