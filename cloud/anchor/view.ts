/**
 * Anchors as people see them (GET /v1/anchors, /healthz, the console, `careledger chain anchors`):
 * no signed transaction bytes, with the block-explorer link of each transaction. Free of ethers,
 * so that a cloud with anchoring off never loads it.
 */
import { KNOWN_EXPLORERS, explorerLink, type AnchorConfig } from './config.ts'
import type { AnchorRow } from './store.ts'

/** An anchor as the API and console show it (no signed transaction bytes). */
export interface AnchorView {
  readonly id: number
  readonly chainId: number
  readonly contract: string
  readonly height: number
  readonly blockHash: string
  readonly recordsRoot: string
  readonly status: AnchorRow['status']
  readonly tx: string | null
  readonly txUrl: string | null
  readonly evmBlock: number | null
  readonly confirmations: number
  readonly transactions: number
  readonly resends: number
  readonly gasUsed: number | null
  readonly effectiveGasPrice: string | null
  readonly error: string | null
  readonly createdAt: number
  readonly minedAt: number | null
  readonly confirmedAt: number | null
}

/** A stored anchor for people: with its explorer link (the configured template for this chain, a known explorer for another). */
export function anchorView(r: AnchorRow, config: Pick<AnchorConfig, 'chainId' | 'explorerTxUrl'>): AnchorView {
  const template = r.chainId === config.chainId ? config.explorerTxUrl : (KNOWN_EXPLORERS[r.chainId] ?? null)
  const tx = r.txHash ?? r.attempts.at(-1)?.hash ?? null
  return {
    id: r.id,
    chainId: r.chainId,
    contract: r.contract,
    height: r.height,
    blockHash: r.blockHash,
    recordsRoot: r.recordsRoot,
    status: r.status,
    tx,
    txUrl: explorerLink(template, tx),
    evmBlock: r.evmBlock,
    confirmations: r.confirmations,
    transactions: r.attempts.length,
    resends: r.resends,
    gasUsed: r.gasUsed,
    effectiveGasPrice: r.effectiveGasPrice,
    error: r.error,
    createdAt: r.createdAt,
    minedAt: r.minedAt,
    confirmedAt: r.confirmedAt,
  }
}

/** What /healthz and the API say when anchoring is off. */
export const ANCHORING_OFF = { enabled: false, state: 'off' } as const
