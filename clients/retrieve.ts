/**
 * A verified retrieval, the core of `careledger access read`, `careledger research export` and the
 * console's doctor view. The I/O (the cloud's evidence API, the blocks by CID, the trusted-head
 * store) comes in as interfaces, so the same pipeline runs in Node and in the browser.
 *
 *   retrieveStages = [askPlan, checkHead, fetchSpans + checkPages, linkChain, verifySpans, fetchBlocks, openBatches]
 *
 * The CPU-bound jobs (a page of proofs, a chunk of batches: clients/retrieval-work.ts) run on
 * `work` — worker threads in the CLI (clients/work-pool.ts), this thread in the browser — and each
 * page is checked as soon as it arrives, while the next is fetched. Nothing is decrypted before
 * every record, link and boundary of the answer verified and the batch's own block hashed to its
 * CID, and nothing is returned before all of it did: any failure throws RetrievalError naming all
 * that was wrong (clients/verify.ts).
 */
import { isCareLedgerError } from '../shared/errors.ts'
import type { SealedReading } from '../shared/protocol/batch.ts'
import type { BatchManifest } from '../shared/protocol/manifest.ts'
import { batchMatches, BULK_BLOCKS_MAX, type EvidencePlan, type EvidenceQuery, type StreamSpan } from '../shared/protocol/evidence.ts'
import type { RetrievalKey } from '../shared/crypto/abe/outsource.ts'
import { authorises, OutsourcedFinisher, type LocalOpener } from './decrypt.ts'
import { inThread, type CheckedProof, type Opener, type OpenItem, type RetrievalWork } from './retrieval-work.ts'
import { checkNotStale, committedRedactionLog, linkHeaders, RetrievalError, supervisoryPolicies, verifyPlan, verifyStreamSpan, type KnownHead, type RetrievalFailure, type VerifiedHead, type VerifiedRecord, type VerifiedRedaction, type VerifiedStream, type VerifiedTombstone } from './verify.ts'

export interface EvidenceSource {
  plan(q: EvidenceQuery): Promise<unknown>
  /** Canonical headers (hex) of heights from…to, ascending. */
  headers(from: number, to: number): Promise<{ height: number; header: string }[]>
  /** Record proofs of a stream's seqs, as of block `head`, one page; `next` continues. */
  records(stream: string, fromSeq: number, toSeq: number, head: number): Promise<{ records: unknown[]; next: number | null }>
}

export interface BlockSource {
  /** The block's bytes; throws (with a message naming the CID) when it cannot be had in time. */
  get(cid: string): Promise<Uint8Array>
  /**
   * Many blocks in one go (clients/bulk-blocks.ts): bytes, or an error naming why they are not the
   * block; a CID left out is fetched with get().
   */
  getMany?(cids: readonly string[]): Promise<Map<string, Uint8Array | Error>>
}

export interface Transformer {
  /** Transformed ciphertexts (or per-record errors) for record ids, from the proxy holding the transformation key. */
  transform(ids: readonly number[]): Promise<Map<number, Uint8Array | Error>>
}

export type Decryptor =
  | { readonly kind: 'local'; readonly attributes: readonly string[]; readonly opener: LocalOpener }
  | { readonly kind: 'outsourced'; readonly attributes: readonly string[]; readonly retrievalKey: RetrievalKey; readonly proxy: Transformer }

export interface TrustStore {
  /** The pinned block-signing key, or null (trust on first use). */
  signingKey(): Uint8Array | null
  /** Heads seen before or expected: the answer must not be behind them, and must extend them. */
  knownHeads(): KnownHead[]
  /** After a fully verified answer. */
  remember(head: { height: number; hash: string }, signingKey: Uint8Array): void
}

export type BatchStatus = 'opened' | 'not-authorised'

export interface RetrievedBatch {
  readonly recordId: number
  readonly manifest: BatchManifest
  readonly status: BatchStatus
  /** The readings of the query's range and types (empty when not authorised). */
  readonly readings: readonly SealedReading[]
  /** The verified correction that made the batch what it is (its readings are the corrected ones), or null. */
  readonly redaction: VerifiedRedaction | null
}

export interface Progress {
  readonly stage: string
  readonly done: number
  readonly total: number
}

export interface RetrieveOptions {
  readonly query: EvidenceQuery
  readonly evidence: EvidenceSource
  readonly blocks: BlockSource
  readonly trust: TrustStore
  readonly decryptor: Decryptor
  readonly allowGaps?: boolean
  /** Blocks fetched at once (default 8). */
  readonly concurrency?: number
  readonly onProgress?: (p: Progress) => void
  /** Where proofs are checked and batches opened (default: this thread; clients/work-pool.ts: worker threads). */
  readonly work?: RetrievalWork
  /** Record proofs asked for per request (default RECORDS_PAGE): smaller pages start the checks sooner. */
  readonly recordsPage?: number
}

/** Record proofs per request: small enough that checking starts while the next page is served. */
export const RECORDS_PAGE = 100
/** Records from which an answer is worth the work threads' start. */
export const WORK_MIN_RECORDS = 200
/** Batches per opening job (at most). */
const OPEN_CHUNK = 25

/** The opener of a decryptor, for work done in this thread. */
export const openerOf = (d: Decryptor): Opener => (d.kind === 'local' ? { kind: 'local', opener: d.opener } : { kind: 'outsourced', finisher: new OutsourcedFinisher(d.retrievalKey) })

/** authorises(), once per distinct policy of a retrieval (a stream's batches share theirs). */
function authorisedBy(): (attributes: readonly string[], policy: string) => boolean {
  const seen = new Map<string, boolean>()
  return (attributes, policy) => {
    let ok = seen.get(policy)
    if (ok === undefined) seen.set(policy, (ok = authorises(attributes, policy)))
    return ok
  }
}

export interface Retrieval {
  readonly plan: EvidencePlan
  readonly head: VerifiedHead | null
  readonly streams: readonly VerifiedStream[]
  readonly batches: readonly RetrievedBatch[]
  /** Deleted batches of the verified spans (evidence v2): their place in the stream, no readings. */
  readonly tombstones: readonly VerifiedTombstone[]
  /** Admitted gaps (with allowGaps) and clock oddities: reported, not fatal. */
  readonly warnings: readonly RetrievalFailure[]
  /** Per stage, ms of wall time; `decrypt` is the client's own decryption time. */
  readonly timings: Readonly<Record<string, number>>
  readonly decryptions: number
}

/** Run `f` over `xs` with at most `n` in flight, in order of the results. */
export async function mapLimit<T, R>(xs: readonly T[], n: number, f: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(xs.length)
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(n, xs.length) }, async () => {
      while (next < xs.length) {
        const i = next++
        out[i] = await f(xs[i]!, i)
      }
    }),
  )
  return out
}

export async function retrieve(o: RetrieveOptions): Promise<Retrieval> {
  const timings: Record<string, number> = {}
  const stage = async <T>(name: string, f: () => Promise<T> | T): Promise<T> => {
    const t0 = performance.now()
    try {
      return await f()
    } finally {
      timings[name] = (timings[name] ?? 0) + performance.now() - t0
    }
  }
  const progress = (s: string, done: number, total: number): void => o.onProgress?.({ stage: s, done, total })

  // askPlan + checkHead
  const { plan, head } = await stage('plan', async () => verifyPlan(await o.evidence.plan(o.query), o.query, { signingKey: o.trust.signingKey() }))
  const known = o.trust.knownHeads()
  checkNotStale(head, known)
  if (!head) return { plan, head, streams: [], batches: [], tombstones: [], warnings: [], timings, decryptions: 0 }
  const supervision = supervisoryPolicies(plan, head)
  if (supervision.failures.length > 0) throw new RetrievalError(supervision.failures)
  const policies = plan.v === 2 ? supervision.policies : undefined
  // The committed redaction log: its failures are reported with the spans' (so every hidden record is named too).
  const logged = committedRedactionLog(plan, head)

  // fetchSpans + checkPages: each page's proofs go to the work threads as soon as they arrive, and
  // the blocks their (still unverified) proofs name for matching batches are asked for in bulk —
  // so the client checks page n, and the cloud serves blocks, while page n+1 is on its way.
  // Nothing fetched is used before its record verified and its bytes hashed to the CID of the
  // verified manifest; a CID the proofs lied about is simply not used, and the verified one
  // fetched below.
  const total = plan.streams.reduce((n, s) => n + s.lastSeq - s.firstSeq + 1, 0)
  // Threads pay for themselves only on a large answer (each costs ≈ 0.3–0.5 s of CPU to start).
  const work = o.work && total >= (o.work.minRecords ?? WORK_MIN_RECORDS) ? o.work : inThread(openerOf(o.decryptor))
  work.start?.() // the threads load while the first page is on its way
  const pageSize = o.recordsPage ?? RECORDS_PAGE
  const getMany = o.blocks.getMany?.bind(o.blocks)
  const bulk = new Map<string, Uint8Array | Error>()
  const bulkFetch = (cids: readonly string[], inFlight: number) =>
    mapLimit(chunked(cids, BULK_BLOCKS_MAX), inFlight, async (chunk) => {
      const answer = await getMany!(chunk)
      for (const [k, v] of answer) if (!(bulk.get(k) instanceof Uint8Array)) bulk.set(k, v)
    })
  const prefetches: Promise<unknown>[] = []
  let fetched = 0
  const spans = await stage('records', () =>
    mapLimit(plan.streams, 4, async (span: StreamSpan) => {
      const proofs: unknown[] = []
      const checks: Promise<CheckedProof[]>[] = []
      let from: number | null = span.firstSeq
      while (from !== null && from <= span.lastSeq) {
        const to = Math.min(span.lastSeq, from + pageSize - 1)
        const page: { records: unknown[]; next: number | null } = await o.evidence.records(span.stream, from, to, head.height)
        proofs.push(...page.records)
        const checking = work.checkProofs(page.records, head.chameleonKey)
        checking.catch(() => undefined) // awaited in verifySpans
        checks.push(checking)
        if (getMany) prefetches.push(stage('prefetch', () => bulkFetch(claimedCids([page], o.query), 2)).catch(() => undefined))
        fetched += page.records.length
        progress('records', fetched, total)
        from = page.next !== null ? page.next : to < span.lastSeq ? to + 1 : null
      }
      return { span, proofs, checks }
    }),
  )

  // linkChain: from the lowest block any record (or known head) sits in, up to the head.
  const heights = spans.flatMap(({ proofs }) => proofs.map((p) => (p as { record?: { block?: unknown } }).record?.block).filter((h): h is number => typeof h === 'number' && h >= 0 && h <= head.height))
  const lowest = Math.min(head.height, ...heights, ...known.map((k) => k.height))
  const hashes = await stage('headers', async () => {
    const headers: { height: number; header: string }[] = []
    for (let from = lowest; from < head.height; from += 5000) headers.push(...(await o.evidence.headers(from, Math.min(head.height - 1, from + 4999))))
    return linkHeaders(head, headers, known)
  })

  // verifySpans (yielding between streams, so the prefetch's answers are read as they come)
  const failures: RetrievalFailure[] = [...logged.failures]
  const warnings: RetrievalFailure[] = [...logged.warnings]
  const streams = await stage('verify', async () => {
    const out: VerifiedStream[] = []
    for (const { span, proofs, checks } of spans) {
      const checked = (await Promise.all(checks)).flat()
      const r = verifyStreamSpan(span, proofs, { query: o.query, head, hashes, allowGaps: o.allowGaps ?? false, checked, ...(policies ? { policies } : {}), ...(logged.log ? { log: logged.log } : {}) })
      failures.push(...r.failures)
      warnings.push(...r.warnings)
      out.push(r.stream)
      await new Promise((ok) => setTimeout(ok, 0))
    }
    return out
  })
  if (failures.length > 0) throw new RetrievalError(failures)

  // fetchBlocks: every matching batch's ciphertext, checked against its CID — the prefetched
  // ones, the rest of the verified CIDs in bulk, then one by one what the bulk answers lacked.
  const wanted: VerifiedRecord[] = streams.flatMap((s) => s.records.filter((r) => r.matches))
  let got = bulk.size
  if (getMany) {
    await stage('blocks', async () => {
      await Promise.all(prefetches)
      const rest = [...new Set(wanted.map((r) => r.manifest.cid))].filter((c) => !bulk.has(c))
      if (rest.length > 0) await bulkFetch(rest, 2)
    })
  }
  const blocks = await stage('blocks', () =>
    mapLimit(wanted, o.concurrency ?? 8, async (r) => {
      try {
        const b = bulk.get(r.manifest.cid)
        if (b instanceof Error) throw b
        const bytes = b ?? (await o.blocks.get(r.manifest.cid))
        if (!bulk.has(r.manifest.cid)) progress('blocks', ++got, wanted.length)
        return bytes
      } catch (e) {
        const substituted = isCareLedgerError(e) && e.info.reason === 'BLOCK_MISMATCH'
        failures.push({ kind: substituted ? 'SUBSTITUTED' : 'OMITTED', stream: r.manifest.stream, seq: r.seq, recordId: r.id, message: `record ${r.id} (${r.manifest.stream}#${r.seq}): ${(e as Error).message}` })
        return null
      }
    }),
  )

  // openBatches, on the work threads in chunks: each block must hash to its verified manifest's
  // CID before it is opened (a substituted block is never decrypted); with blocks missing, the
  // rest are only checked, so the report names every block that is wrong.
  const d = o.decryptor
  const authorised = authorisedBy()
  const missing = failures.length > 0
  const items: OpenItem[] = []
  for (const [i, r] of wanted.entries()) {
    const bytes = blocks[i]
    if (bytes) items.push({ recordId: r.id, seq: r.seq, manifest: r.manifest, bytes, open: !missing && authorised(d.attributes, r.manifest.policy) })
  }
  if (d.kind === 'outsourced' && !missing) {
    const transformed = await stage('transform', () => transformAll(d.proxy, items.filter((x) => x.open).map((x) => x.recordId)))
    for (const [i, x] of items.entries()) {
      const t = transformed.get(x.recordId)
      if (x.open) items[i] = { ...x, transformed: t instanceof Error ? { error: t.message } : t }
    }
  }
  let opened = 0
  const results = await stage('decrypt', async () =>
    (
      await Promise.all(
        openingJobs(items, work.threads ?? 1).map(async ({ chunk, thread }) => {
          const r = await work.openBatches(chunk, o.query, thread)
          progress('decrypt', (opened += chunk.length), items.length)
          return r
        }),
      )
    ).flat(),
  )
  const blockFailures = results.flatMap((r) => ('failure' in r && r.stage === 'block' ? [r.failure] : []))
  if (failures.length > 0 || blockFailures.length > 0) throw new RetrievalError([...failures, ...blockFailures])
  for (const r of results) if ('failure' in r) failures.push(r.failure)
  if (failures.length > 0) throw new RetrievalError(failures)
  const byId = new Map(results.map((r) => [r.recordId, r]))
  let decryptions = 0
  const batches = wanted.map((r): RetrievedBatch => {
    const x = byId.get(r.id) as { readings: readonly SealedReading[] | null }
    if (x.readings === null) return { recordId: r.id, manifest: r.manifest, status: 'not-authorised', readings: [], redaction: r.redaction }
    decryptions++
    return { recordId: r.id, manifest: r.manifest, status: 'opened', readings: x.readings, redaction: r.redaction }
  })
  o.trust.remember({ height: head.height, hash: head.hash }, head.signingKey)
  return { plan, head, streams, batches, tombstones: streams.flatMap((s) => s.tombstones), warnings, timings, decryptions }
}

/**
 * The opening jobs: thread k gets the k-th contiguous share of the batches (in stream order), so a
 * stream's batches stay on one or two threads and each thread decapsulates (or finishes) once per
 * stream it sees — not every thread once per stream — in chunks of at most OPEN_CHUNK for progress.
 */
function openingJobs<T>(items: readonly T[], threads: number): { chunk: T[]; thread: number }[] {
  const share = Math.ceil(items.length / threads)
  return chunked(items, share).flatMap((part, thread) => chunked(part, OPEN_CHUNK).map((chunk) => ({ chunk, thread })))
}

const chunked = <T>(xs: readonly T[], n: number): T[][] => Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, (i + 1) * n))

/** The CIDs the unverified proofs name for batches matching the query (a guess to prefetch by, never trusted). */
function claimedCids(pages: readonly { records: readonly unknown[] }[], q: EvidenceQuery): string[] {
  const out = new Set<string>()
  for (const { records } of pages) {
    for (const p of records) {
      const m = (p as { record?: { manifest?: { cid?: unknown; from?: unknown; to?: unknown; types?: unknown } } }).record?.manifest
      if (!m || typeof m.cid !== 'string' || typeof m.from !== 'number' || typeof m.to !== 'number' || !Array.isArray(m.types)) continue
      if (batchMatches(q, m as { from: number; to: number; types: string[] })) out.add(m.cid)
    }
  }
  return [...out]
}

async function transformAll(proxy: Transformer, ids: readonly number[]): Promise<Map<number, Uint8Array | Error>> {
  const out = new Map<number, Uint8Array | Error>()
  for (let i = 0; i < ids.length; i += 64) for (const [k, v] of await proxy.transform(ids.slice(i, i + 64))) out.set(k, v)
  return out
}
