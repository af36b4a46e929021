/**
 * A worker thread of clients/work-pool.ts: runs the jobs of clients/retrieval-work.ts with the
 * holder's key (a user key, or the retrieval key of outsourced decryption) given at start. Each
 * thread keeps its own decapsulated keys (LocalOpener, OutsourcedFinisher): one Decaps or Finish a
 * stream and epoch per thread. A job's error goes back with its code (reviveCareLedgerError).
 */
import { parentPort, workerData } from 'node:worker_threads'
import { decodeRetrievalKey, decodeUserKey } from '../shared/crypto/abe/codec.ts'
import type { UserKey } from '../shared/crypto/abe/fabeo.ts'
import type { RetrievalKey } from '../shared/crypto/abe/outsource.ts'
import type { EvidenceQuery } from '../shared/protocol/evidence.ts'
import { LocalOpener, OutsourcedFinisher } from './decrypt.ts'
import { checkProofPage, openBatch, type OpenItem, type Opener } from './retrieval-work.ts'

export type WorkerKey = { readonly kind: 'local'; readonly userKey: Uint8Array } | { readonly kind: 'outsourced'; readonly retrievalKey: Uint8Array } | { readonly kind: 'none' }

export type WorkJob =
  | { readonly id: number; readonly kind: 'proofs'; readonly proofs: readonly unknown[]; readonly chameleonKey: Uint8Array }
  | { readonly id: 0; readonly kind: 'reset' }
  | { readonly id: number; readonly kind: 'open'; readonly items: readonly OpenItem[]; readonly query: Pick<EvidenceQuery, 'from' | 'to' | 'types'> }

export type WorkAnswer = { readonly id: number; readonly result: unknown } | { readonly id: number; readonly error: { readonly name: string; readonly message: string; readonly code?: string; readonly info?: unknown } }

const key = (workerData as { key: WorkerKey }).key
let decoded: UserKey | RetrievalKey | null = null
let opener: Opener | null = null
/** Decoded on first use (decoding validates every point of the key); the opener keeps K per stream and epoch until a reset. */
const openerOf = (): Opener => {
  if (opener) return opener
  if (key.kind === 'local') opener = { kind: 'local', opener: new LocalOpener((decoded ??= decodeUserKey(key.userKey)) as UserKey) }
  else if (key.kind === 'outsourced') opener = { kind: 'outsourced', finisher: new OutsourcedFinisher((decoded ??= decodeRetrievalKey(key.retrievalKey)) as RetrievalKey) }
  else throw new Error('this work pool holds no key: it checks proofs only')
  return opener
}

parentPort!.postMessage({ ready: true })

parentPort!.on('message', async (job: WorkJob) => {
  if (job.kind === 'reset') return void (opener = null)
  let answer: WorkAnswer
  try {
    if (job.kind === 'proofs') answer = { id: job.id, result: checkProofPage(job.proofs, job.chameleonKey) }
    else {
      const o = openerOf()
      const out = []
      for (const item of job.items) out.push(await openBatch(item, o, job.query))
      answer = { id: job.id, result: out }
    }
  } catch (e) {
    const err = e as Error & { code?: string; info?: unknown }
    answer = { id: job.id, error: { name: err.name ?? 'Error', message: err.message ?? String(e), ...(typeof err.code === 'string' ? { code: err.code, info: structuredCloneable(err.info) } : {}) } }
  }
  parentPort!.postMessage(answer)
})

function structuredCloneable(info: unknown): unknown {
  try {
    return structuredClone(info)
  } catch {
    return {}
  }
}
