/**
 * Anchoring configuration (docs/operations.md §Anchoring): flags of `careledger cloud start`
 * and of the `chain anchor` / `deploy-anchor` commands > environment > defaults, like every
 * cloud setting (shared/config/settings.ts). Anchoring is off unless CARELEDGER_ANCHOR_RPC_URL
 * is set; then the chain id, the contract address and the keystore are required.
 *
 * The anchoring key is an ethers v6 encrypted JSON keystore (Web3 Secret Storage: scrypt +
 * AES-128-CTR), so it is encrypted at rest; its password comes from the environment
 * (CARELEDGER_ANCHOR_KEYSTORE_PASSWORD) or a file (CARELEDGER_ANCHOR_KEYSTORE_PASSWORD_FILE), never
 * from a flag (flags show in `ps`), and is never part of the printed configuration.
 */
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import cron from 'node-cron'
import { z } from 'zod'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import type { Wallet } from 'ethers'
import { CareLedgerError } from '../../shared/errors.ts'
import { PASSPHRASE_ENV, PASSPHRASE_FILE_ENV } from '../../shared/cli/passphrase.ts'
import { parseSettings, resolveSettings, type Env, type Setting } from '../../shared/config/settings.ts'

export const DEFAULT_ANCHOR_SCHEDULE = '0 * * * *'
export const PASSWORD_ENV = 'CARELEDGER_ANCHOR_KEYSTORE_PASSWORD'

export const ANCHOR_SETTINGS: readonly Setting[] = [
  { path: 'anchor.rpcUrl', env: 'CARELEDGER_ANCHOR_RPC_URL', flag: '--anchor-rpc-url <url>', option: 'anchorRpcUrl', default: undefined, doc: 'JSON-RPC URL of the EVM chain to anchor the chain head to (unset: anchoring off)' },
  { path: 'anchor.chainId', env: 'CARELEDGER_ANCHOR_CHAIN_ID', flag: '--anchor-chain-id <id>', option: 'anchorChainId', default: undefined, doc: 'EIP-155 chain id the RPC must report' },
  { path: 'anchor.contract', env: 'CARELEDGER_ANCHOR_CONTRACT', flag: '--anchor-contract <address>', option: 'anchorContract', default: undefined, doc: 'address of this cloud\'s anchor contract (careledger chain deploy-anchor)' },
  { path: 'anchor.keystore', env: 'CARELEDGER_ANCHOR_KEYSTORE', flag: '--anchor-keystore <file>', option: 'anchorKeystore', default: undefined, doc: 'ethers encrypted JSON keystore of the anchoring account' },
  { path: 'anchor.passwordFile', env: 'CARELEDGER_ANCHOR_KEYSTORE_PASSWORD_FILE', flag: '--anchor-keystore-password-file <file>', option: 'anchorKeystorePasswordFile', default: undefined, doc: `file holding the keystore password (else ${PASSWORD_ENV})` },
  { path: 'anchor.schedule', env: 'CARELEDGER_ANCHOR_SCHEDULE', flag: '--anchor-schedule <cron>', option: 'anchorSchedule', default: DEFAULT_ANCHOR_SCHEDULE, doc: 'node-cron expression: when to anchor the latest block (5 fields, or 6 with seconds)' },
  { path: 'anchor.confirmations', env: 'CARELEDGER_ANCHOR_CONFIRMATIONS', flag: '--anchor-confirmations <n>', option: 'anchorConfirmations', default: '12', doc: 'EVM blocks (the one holding it included) before an anchor counts' },
  { path: 'anchor.pollS', env: 'CARELEDGER_ANCHOR_POLL_S', flag: '--anchor-poll-s <s>', option: 'anchorPollS', default: '15', doc: 'seconds between checks of an anchor transaction in flight' },
  { path: 'anchor.rpcTimeoutS', env: 'CARELEDGER_ANCHOR_RPC_TIMEOUT_S', flag: '--anchor-rpc-timeout-s <s>', option: 'anchorRpcTimeoutS', default: '20', doc: 'seconds before an RPC request counts as failed' },
  { path: 'anchor.backoffMaxS', env: 'CARELEDGER_ANCHOR_BACKOFF_MAX_S', flag: '--anchor-backoff-max-s <s>', option: 'anchorBackoffMaxS', default: '300', doc: 'cap of the retry backoff (from 1 s, doubling, jittered) while the RPC fails' },
  { path: 'anchor.replaceAfterS', env: 'CARELEDGER_ANCHOR_REPLACE_AFTER_S', flag: '--anchor-replace-after-s <s>', option: 'anchorReplaceAfterS', default: '600', doc: 'an anchor transaction unmined this long is replaced (same nonce, fees +25 %)' },
  { path: 'anchor.maxFeeGwei', env: 'CARELEDGER_ANCHOR_MAX_FEE_GWEI', flag: '--anchor-max-fee-gwei <gwei>', option: 'anchorMaxFeeGwei', default: undefined, doc: 'highest fee per gas to offer; above it anchoring waits (unset: no cap)' },
  { path: 'anchor.explorerTxUrl', env: 'CARELEDGER_ANCHOR_EXPLORER_TX_URL', flag: '--anchor-explorer-tx-url <template>', option: 'anchorExplorerTxUrl', default: undefined, doc: 'block-explorer link of a transaction, {tx} = its hash (unset: the known explorer of the chain id, if any)' },
]

/**
 * An EVM address in its EIP-55 mixed-case checksum form, or null if it is not one (40 hex digits;
 * a mixed-case spelling must carry a correct checksum). Here rather than ethers' getAddress so
 * that every `careledger` command does not load ethers just to read its configuration.
 */
export function checksumAddress(value: string): string | null {
  if (!/^0x[0-9a-fA-F]{40}$/.test(value)) return null
  const lower = value.slice(2).toLowerCase()
  const hash = bytesToHex(keccak_256(new TextEncoder().encode(lower)))
  const sum = `0x${[...lower].map((c, i) => (parseInt(hash[i]!, 16) >= 8 ? c.toUpperCase() : c)).join('')}`
  const mixed = value.slice(2) !== lower && value.slice(2) !== lower.toUpperCase()
  return mixed && value !== sum ? null : sum
}

/** Explorers of well-known networks, used when CARELEDGER_ANCHOR_EXPLORER_TX_URL is unset. */
export const KNOWN_EXPLORERS: Readonly<Record<number, string>> = {
  1: 'https://etherscan.io/tx/{tx}',
  10: 'https://optimistic.etherscan.io/tx/{tx}',
  100: 'https://gnosisscan.io/tx/{tx}',
  137: 'https://polygonscan.com/tx/{tx}',
  8453: 'https://basescan.org/tx/{tx}',
  17000: 'https://holesky.etherscan.io/tx/{tx}',
  42161: 'https://arbiscan.io/tx/{tx}',
  11155111: 'https://sepolia.etherscan.io/tx/{tx}',
}

export interface AnchorConfig {
  /** True when an RPC URL is configured. */
  readonly enabled: boolean
  readonly rpcUrl: string | null
  readonly chainId: number | null
  /** Checksummed address. */
  readonly contract: string | null
  readonly keystore: string | null
  readonly passwordFile: string | null
  readonly schedule: string
  readonly confirmations: number
  readonly pollMs: number
  readonly rpcTimeoutMs: number
  readonly backoffMaxMs: number
  readonly replaceAfterMs: number
  readonly maxFeeGwei: number | null
  /** Template with {tx}; null: none known. */
  readonly explorerTxUrl: string | null
}

const seconds = (min: number, max: number) => z.coerce.number().finite().min(min).max(max)
const httpUrl = (v: string): boolean => {
  try {
    return ['http:', 'https:'].includes(new URL(v).protocol)
  } catch {
    return false
  }
}

const AnchorFields = z.object({
  rpcUrl: z.string().trim().refine(httpUrl, 'must be an http(s) URL').optional(),
  chainId: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  contract: z.string().trim().refine((v) => checksumAddress(v) !== null, 'must be an EVM address (0x and 40 hex digits, EIP-55 checksum if mixed case)').optional(),
  keystore: z.string().trim().min(1, 'must not be empty').optional(),
  passwordFile: z.string().trim().min(1, 'must not be empty').optional(),
  schedule: z.string().trim().refine((s) => cron.validate(s), 'must be a node-cron expression, e.g. "0 * * * *" (hourly)'),
  confirmations: z.coerce.number().int().min(1).max(10_000),
  pollS: seconds(0.05, 3600),
  rpcTimeoutS: seconds(0.1, 600),
  backoffMaxS: seconds(0.1, 86_400),
  replaceAfterS: seconds(1, 7 * 86_400),
  maxFeeGwei: z.coerce.number().finite().positive().optional(),
  explorerTxUrl: z
    .string()
    .trim()
    .refine((t) => t.includes('{tx}') && httpUrl(t.replaceAll('{tx}', '0x00')), 'must be an http(s) URL template containing {tx}')
    .optional(),
})

type Required = 'chainId' | 'contract' | 'keystore'

/** The settings' schema; when an RPC URL is set, the `required` settings must be too. */
export function anchorSchema(required: readonly Required[]) {
  return AnchorFields.superRefine((r, ctx) => {
    if (r.rpcUrl === undefined) return
    for (const key of required) {
      if (r[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'is required when CARELEDGER_ANCHOR_RPC_URL is set (anchoring on)' })
    }
  })
}

/** What the cloud needs to anchor. */
export const AnchorRawSchema = anchorSchema(['chainId', 'contract', 'keystore'])

export type AnchorRaw = z.infer<typeof AnchorFields>

export function anchorConfigFrom(r: AnchorRaw): AnchorConfig {
  const chainId = r.chainId ?? null
  return {
    enabled: r.rpcUrl !== undefined,
    rpcUrl: r.rpcUrl ?? null,
    chainId,
    contract: r.contract === undefined ? null : checksumAddress(r.contract),
    keystore: r.keystore === undefined ? null : resolve(r.keystore),
    passwordFile: r.passwordFile === undefined ? null : resolve(r.passwordFile),
    schedule: r.schedule,
    confirmations: r.confirmations,
    pollMs: Math.round(r.pollS * 1000),
    rpcTimeoutMs: Math.round(r.rpcTimeoutS * 1000),
    backoffMaxMs: Math.round(r.backoffMaxS * 1000),
    replaceAfterMs: Math.round(r.replaceAfterS * 1000),
    maxFeeGwei: r.maxFeeGwei ?? null,
    explorerTxUrl: r.explorerTxUrl ?? (chainId === null ? null : (KNOWN_EXPLORERS[chainId] ?? null)),
  }
}

/** The anchoring settings alone (for the chain commands): flags > environment > defaults. An RPC URL is required. */
export function loadAnchorConfig(flags: Readonly<Record<string, unknown>>, required: readonly Required[], env: Env = process.env): AnchorConfig {
  const { raw, sources } = resolveSettings(ANCHOR_SETTINGS, flags, env)
  const parsed = parseSettings('anchoring', z.object({ anchor: anchorSchema(required) }), ANCHOR_SETTINGS, { anchor: {}, ...raw }, sources)
  if (parsed.anchor.rpcUrl === undefined) throw new CareLedgerError('INVALID_ARGUMENT', 'no anchoring RPC: set --anchor-rpc-url or CARELEDGER_ANCHOR_RPC_URL', {})
  return anchorConfigFrom(parsed.anchor)
}

/** The link of a transaction under a template ({tx} replaced), or null. */
export function explorerLink(template: string | null, txHash: string | null): string | null {
  if (!template || !txHash || !/^0x[0-9a-f]{64}$/i.test(txHash)) return null
  return template.replaceAll('{tx}', txHash)
}

/**
 * The keystore password: CARELEDGER_ANCHOR_KEYSTORE_PASSWORD, else the password file (one trailing
 * newline dropped), else the cloud's key-file passphrase (the file in CARELEDGER_PASSPHRASE_FILE, else
 * CARELEDGER_PASSPHRASE, in that order as for key files; docs/operations.md §Passphrases), so one passphrase can guard all of
 * the cloud's secrets. The keystore itself stays Web3 Secret Storage, which wallets import.
 */
export function anchorPassword(config: Pick<AnchorConfig, 'passwordFile'>, env: Env = process.env): string {
  const fromEnv = env[PASSWORD_ENV]
  if (fromEnv) return fromEnv
  const file = config.passwordFile ?? (env[PASSPHRASE_FILE_ENV] || null)
  if (file) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (e) {
      throw new CareLedgerError('INVALID_ARGUMENT', `cannot read the keystore password file ${file}: ${(e as Error).message}`, { path: file })
    }
    const password = text.replace(/\r?\n$/, '')
    if (!password) throw new CareLedgerError('INVALID_ARGUMENT', `the keystore password file ${file} is empty`, { path: file })
    return password
  }
  const shared = env[PASSPHRASE_ENV]
  if (shared) return shared
  throw new CareLedgerError('INVALID_ARGUMENT', `the anchoring keystore needs its password: set ${PASSWORD_ENV} or CARELEDGER_ANCHOR_KEYSTORE_PASSWORD_FILE (or the cloud's ${PASSPHRASE_FILE_ENV} / ${PASSPHRASE_ENV})`, {})
}

/** Decrypt the anchoring key (scrypt: a second or more with ethers' default parameters). */
export async function loadAnchorWallet(config: Pick<AnchorConfig, 'keystore' | 'passwordFile'>, env: Env = process.env): Promise<Wallet> {
  const file = config.keystore
  if (!file) throw new CareLedgerError('INVALID_ARGUMENT', 'no anchoring keystore configured (CARELEDGER_ANCHOR_KEYSTORE or --anchor-keystore)', {})
  let json: string
  try {
    json = readFileSync(file, 'utf8')
  } catch (e) {
    throw new CareLedgerError('INVALID_ARGUMENT', `cannot read the anchoring keystore ${file}: ${(e as Error).message}`, { path: file })
  }
  const { Wallet, isKeystoreJson } = await import('ethers')
  if (!isKeystoreJson(json)) throw new CareLedgerError('INVALID_ENCODING', `${file} is not an encrypted JSON keystore (careledger chain anchor-keygen makes one)`, { path: file })
  const password = anchorPassword(config, env)
  try {
    const w = await Wallet.fromEncryptedJson(json, password)
    return w instanceof Wallet ? w : new Wallet(w.privateKey)
  } catch (e) {
    const wrong = /password/i.test((e as Error).message)
    throw new CareLedgerError('INVALID_ARGUMENT', wrong ? `wrong password for the anchoring keystore ${file}` : `cannot decrypt the anchoring keystore ${file}: ${(e as Error).message}`, { path: file })
  }
}

/** Settings given in seconds and held in milliseconds (for `careledger cloud config`). */
export const ANCHOR_SECONDS: Readonly<Record<string, string>> = {
  'anchor.pollS': 'anchor.pollMs',
  'anchor.rpcTimeoutS': 'anchor.rpcTimeoutMs',
  'anchor.backoffMaxS': 'anchor.backoffMaxMs',
  'anchor.replaceAfterS': 'anchor.replaceAfterMs',
}
