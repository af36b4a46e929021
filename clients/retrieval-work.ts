/**
 * The CPU-bound steps of a verified retrieval (clients/retrieve.ts), as self-contained jobs that run
 * either in the calling thread or on worker threads (clients/work-pool.ts), with the same results:
 *
 *   checkProofPage  one page of record proofs: each proof (chameleon openings as one batch,
 *                   content, gateway signature, RFC 9162 inclusion — cloud/chain/record-proof.ts)
 *                   and the manifest shown beside it parsed and hashed; the span-level checks
 *                   (links, completeness, boundaries) stay with clients/verify.ts
 *   openBatch       one verified record's block: bytes hash to the signed manifest's CID, then
 *                   (if the key may) the envelope opens and the body is the manifest's batch
 *
 * Nothing here trusts its input: a page is checked before any of its records is used, and a block is
 * opened only after it hashed to the CID of a manifest that verified. Pure but for the thread it
 * runs on (and rawCid's async hash).
 */
import { verifyRecordProofs, type ProofVerification } from '../cloud/chain/record-proof.ts'
import { isCareLedgerError } from '../shared/errors.ts'
import type { SealedReading } from '../shared/protocol/batch.ts'
import type { EvidenceQuery } from '../shared/protocol/evidence.ts'
import { manifestCommitment, parseManifest, type BatchManifest } from '../shared/protocol/manifest.ts'
import { checkBlock, selectReadings, type LocalOpener, type OutsourcedFinisher } from './decrypt.ts'
import type { RetrievalFailure } from './verify.ts'

/** A proof's own checks, and the manifest beside it (null when it does not parse) with its commitment. */
export interface CheckedProof {
  readonly verification: ProofVerification
  readonly manifest: BatchManifest | null
  readonly commitment: string | null
}

export function checkProofPage(proofs: readonly unknown[], chameleonKey: Uint8Array): CheckedProof[] {
  const verified = verifyRecordProofs(proofs, { chameleonPublicKey: chameleonKey })
  return proofs.map((p, i) => {
    const verification = verified[i]!
    if (!verification.ok) return { verification, manifest: null, commitment: null }
    let manifest: BatchManifest | null
    try {
      manifest = parseManifest((p as { record?: { manifest?: unknown } }).record?.manifest)
    } catch {
      manifest = null
    }
    return { verification, manifest, commitment: manifest && manifestCommitment(manifest) }
  })
}

/** A verified record's block to check and (when `open`) decrypt. */
export interface OpenItem {
  readonly recordId: number
  readonly seq: number
  readonly manifest: BatchManifest
  readonly bytes: Uint8Array
  /** The key satisfies the manifest's policy: open it (otherwise only the block is checked). */
  readonly open: boolean
  /** Outsourced decryption: the proxy's transformation, or why there is none. */
  readonly transformed?: Uint8Array | { readonly error: string }
}

export type OpenResult =
  | { readonly recordId: number; readonly readings: readonly SealedReading[] | null }
  /** `stage` 'block': the bytes are not the manifest's block (nothing was decrypted); 'open': they are, and do not open. */
  | { readonly recordId: number; readonly failure: RetrievalFailure; readonly stage: 'block' | 'open' }

export type Opener = { readonly kind: 'local'; readonly opener: LocalOpener } | { readonly kind: 'outsourced'; readonly finisher: OutsourcedFinisher }

export async function openBatch(item: OpenItem, opener: Opener, query: Pick<EvidenceQuery, 'from' | 'to' | 'types'>): Promise<OpenResult> {
  const { recordId, manifest: m } = item
  const bad = await checkBlock(item.bytes, m, recordId)
  if (bad) return { recordId, failure: bad, stage: 'block' }
  if (!item.open) return { recordId, readings: null }
  try {
    let body
    if (opener.kind === 'local') body = opener.opener.open(item.bytes, m)
    else {
      const t = item.transformed
      if (t === undefined) throw new Error('the proxy returned no transformation for it')
      if (!(t instanceof Uint8Array)) throw new Error(t.error)
      body = opener.finisher.open(item.bytes, t, m)
    }
    return { recordId, readings: selectReadings(body, query) }
  } catch (e) {
    const code = isCareLedgerError(e) ? `${e.code}${e.info.reason ? ` (${String(e.info.reason)})` : ''}: ` : ''
    return { recordId, stage: 'open', failure: { kind: 'ALTERED', stream: m.stream, seq: item.seq, recordId, message: `record ${recordId}: ${code}${(e as Error).message}` } }
  }
}

/**
 * Where the jobs run. `inThread` runs them here (the browser, or --workers 0); clients/work-pool.ts
 * on worker threads, so the client's verification and decryption use every core while the cloud
 * answers the next page.
 */
export interface RetrievalWork {
  /** retrieve() uses this work only for answers of at least this many records (default WORK_MIN_RECORDS there). */
  readonly minRecords?: number
  /** Get ready (threads load their code) before the first job. */
  start?(): void
  /** Threads the work runs on (1 when absent). */
  readonly threads?: number
  checkProofs(proofs: readonly unknown[], chameleonKey: Uint8Array): Promise<CheckedProof[]>
  /** `thread`: run on this one (0 … threads − 1), so that it reuses the keys it decapsulated; otherwise the least busy. */
  openBatches(items: readonly OpenItem[], query: Pick<EvidenceQuery, 'from' | 'to' | 'types'>, thread?: number): Promise<OpenResult[]>
}

export function inThread(opener: Opener): RetrievalWork {
  return {
    checkProofs: async (proofs, key) => checkProofPage(proofs, key),
    openBatches: async (items, query) => {
      const out: OpenResult[] = []
      for (const item of items) out.push(await openBatch(item, opener, query))
      return out
    },
  }
}
