/**
 * What `access read` and `research export` share: the options for the cloud, the token, the key
 * (local or outsourced decryption), the gateways blocks come from, the trusted head; time parsing.
 */
import { decodeRetrievalKey, decodeTransformKey, decodeUserKey, encodeTransformKey } from '../shared/crypto/abe/codec.ts'
import { makeTransformKey } from '../shared/crypto/abe/outsource.ts'
import { CareLedgerError } from '../shared/errors.ts'
import { readKeyFile } from '../shared/cli/files.ts'
import { processKeyring } from '../shared/cli/secret-files.ts'
import { assertKeyValid, type KeyValidity } from '../shared/protocol/epoch.ts'
import { DEFAULT_SKEW_MS } from '../shared/protocol/evidence.ts'
import { CloudApi } from './cloud-api.ts'
import { LocalOpener } from './decrypt.ts'
import { heliaBlockSource, type HeliaBlockSource } from './ipfs.ts'
import { cloudFirst } from './bulk-blocks.ts'
import type { Decryptor } from './retrieve.ts'
import { defaultStateDir, FileTrustStore, parseHead } from './trust.ts'
import { defaultWorkers, WorkPool } from './work-pool.ts'

export interface CommonOptions {
  readonly cloud?: string
  readonly token?: string
  readonly key?: string
  readonly outsource?: boolean
  readonly transformKey?: string
  readonly retrievalKey?: string
  readonly gateway?: string[]
  readonly blockTimeoutS: string
  /** Every block through Helia from the trustless gateways, one request each (no POST /v1/blocks). */
  readonly ipfsOnly?: boolean
  /** Worker threads for proofs and decryption (clients/work-pool.ts); 0: the main thread. Given, they are used for any answer; by default only for large ones (WORK_MIN_RECORDS). */
  readonly workers?: string
  readonly state?: string
  readonly signingKey?: string
  readonly expectHead?: string
  readonly from: string
  readonly to?: string
  readonly latenessMin: string
}

const REL = /^-(\d+(?:\.\d+)?)([smhd])$/
const UNIT: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** A time as people type it: RFC 3339, YYYY-MM-DD (UTC midnight), epoch ms, "now", or -24h / -7d. */
export function parseTime(text: string, field: string, now: number): number {
  const t = text.trim()
  if (t === 'now') return now
  const rel = REL.exec(t)
  if (rel) return Math.round(now - Number(rel[1]) * UNIT[rel[2]!]!)
  if (/^\d{10,16}$/.test(t)) return Number(t)
  if (/^\d{4}-\d{2}-\d{2}$/.test(t)) {
    const ms = Date.parse(`${t}T00:00:00Z`)
    if (Number.isFinite(ms)) return ms
  }
  if (/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/.test(t)) {
    const ms = Date.parse(t)
    if (Number.isFinite(ms)) return ms
  }
  throw new CareLedgerError('INVALID_ARGUMENT', `--${field}: ${JSON.stringify(text)} is not a time (RFC 3339 with a zone, YYYY-MM-DD, epoch ms, now, or -24h / -7d)`, { field })
}

export function timeRange(o: CommonOptions, now: number): { from: number; to: number; lateness: number; skew: number } {
  const from = parseTime(o.from, 'from', now)
  const to = o.to === undefined ? now : parseTime(o.to, 'to', now)
  if (from > to) throw new CareLedgerError('INVALID_ARGUMENT', `--from (${new Date(from).toISOString()}) is after --to (${new Date(to).toISOString()})`, { field: 'from' })
  const minutes = Number(o.latenessMin)
  if (!Number.isFinite(minutes) || minutes < 0) throw new CareLedgerError('INVALID_ARGUMENT', '--lateness-min must be a number of minutes ≥ 0', { field: 'lateness-min' })
  return { from, to, lateness: Math.round(minutes * 60_000), skew: DEFAULT_SKEW_MS }
}

export interface Session {
  readonly api: CloudApi
  readonly blocks: HeliaBlockSource
  readonly trust: FileTrustStore
  readonly decryptor: Decryptor
  /** What the key opens, for the report (null: a key issued before epochs). */
  readonly validity: KeyValidity | null
  /** The worker threads (--workers), if any: pass as `work` to retrieve() and close when done. */
  readonly work?: WorkPool
}

/** A holder's attribute or retrieval key: raw as `authority keygen` writes it, or sealed by its holder (`careledger keys encrypt`). */
const readHolderKey = (path: string): Promise<Uint8Array> => processKeyring().read(path, { warnIfUnsealed: false })

/**
 * Everything a retrieval needs, checked before anything is fetched: the key must be valid now
 * (an expired key is refused here, with the months it was valid), the cloud URL and token given.
 */
export async function openSession(o: CommonOptions, now: number): Promise<Session> {
  const cloud = o.cloud ?? process.env.CARELEDGER_CLOUD_URL
  const token = o.token ?? process.env.CARELEDGER_TOKEN
  if (!cloud) throw new CareLedgerError('INVALID_ARGUMENT', 'which cloud? give --cloud <url> (or CARELEDGER_CLOUD_URL)', { field: 'cloud' })
  if (!token) throw new CareLedgerError('INVALID_ARGUMENT', 'an API token is needed: CARELEDGER_TOKEN=clt_… (or --token)', { field: 'token' })
  const api = new CloudApi({ url: cloud, token })
  let decryptor: Decryptor
  let validity: KeyValidity | null
  if (o.outsource && o.transformKey) {
    if (!o.retrievalKey) throw new CareLedgerError('INVALID_ARGUMENT', '--transform-key needs --retrieval-key (both from `authority outsource`)', { field: 'retrieval-key' })
    const tkBytes = readKeyFile(o.transformKey)
    const tk = decodeTransformKey(tkBytes)
    validity = assertKeyValid(tk.attributes, now)
    decryptor = { kind: 'outsourced', attributes: tk.attributes, retrievalKey: decodeRetrievalKey(await readHolderKey(o.retrievalKey)), proxy: api.transformer(tkBytes) }
  } else {
    if (!o.key) throw new CareLedgerError('INVALID_ARGUMENT', 'your attribute key is needed: --key <file>', { field: 'key' })
    const key = decodeUserKey(await readHolderKey(o.key))
    validity = assertKeyValid(key.attributes, now)
    if (o.outsource) {
      const split = makeTransformKey(key)
      decryptor = { kind: 'outsourced', attributes: key.attributes, retrievalKey: split.retrievalKey, proxy: api.transformer(encodeTransformKey(split.transformKey)) }
    } else {
      decryptor = { kind: 'local', attributes: key.attributes, opener: new LocalOpener(key) }
    }
  }
  const trust = new FileTrustStore(o.state ?? defaultStateDir(), cloud, { ...(o.signingKey ? { signingKey: o.signingKey } : {}), expect: o.expectHead ? [parseHead(o.expectHead)] : [] })
  const timeoutS = Number(o.blockTimeoutS)
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new CareLedgerError('INVALID_ARGUMENT', '--block-timeout-s must be a positive number of seconds', { field: 'block-timeout-s' })
  const ipfs = await heliaBlockSource([{ url: cloud, token }, ...(o.gateway ?? []).map((url) => ({ url }))], { timeoutMs: timeoutS * 1000 })
  const blocks = o.ipfsOnly ? ipfs : cloudFirst(api, cloud, ipfs)
  const workers = o.workers === undefined ? defaultWorkers() : Number(o.workers)
  if (!Number.isInteger(workers) || workers < 0 || workers > 64) throw new CareLedgerError('INVALID_ARGUMENT', `--workers: ${JSON.stringify(o.workers)} is not a number of threads from 0 to 64`, { field: 'workers' })
  return { api, blocks, trust, decryptor, validity, ...(workers > 0 ? { work: WorkPool.forDecryptor(workers, decryptor, o.workers === undefined ? {} : { minRecords: 0 }) } : {}) }
}
