/**
 * A verified retrieval, the core of `careledger access read`, `careledger research export` and the
 * console's doctor view. The I/O (the cloud's evidence API, the blocks by CID, the trusted-head
 * store) comes in as interfaces, so the same pipeline runs in Node and in the browser.
 *
 *   retrieveStages = [askPlan, checkHead, fetchSpans, linkChain, verifySpans, fetchBlocks, openBatches]
 *
 * Nothing is decrypted, and nothing returned, before every record, link and boundary of the
 * answer verified and every fetched block hashed to its CID: any failure throws RetrievalError
 * naming all that was wrong (clients/verify.ts).
 */
import { isCareLedgerError } from '../shared/errors.ts'
import type { SealedReading } from '../shared/protocol/batch.ts'
import type { BatchManifest } from '../shared/protocol/manifest.ts'
import { batchMatches, BULK_BLOCKS_MAX, type EvidencePlan, type EvidenceQuery, type StreamSpan } from '../shared/protocol/evidence.ts'
import type { RetrievalKey } from '../shared/crypto/abe/outsource.ts'
import { authorises, checkBlock, OutsourcedFinisher, selectReadings, type LocalOpener } from './decrypt.ts'
import { checkNotStale, linkHeaders, RetrievalError, supervisoryPolicies, verifyPlan, verifyStreamSpan, type KnownHead, type RetrievalFailure, type VerifiedHead, type VerifiedRecord, type VerifiedRedaction, type VerifiedStream, type VerifiedTombstone } from './verify.ts'

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

  // fetchSpans
  let fetched = 0
  const total = plan.streams.reduce((n, s) => n + s.lastSeq - s.firstSeq + 1, 0)
  const spans = await stage('records', () =>
    mapLimit(plan.streams, 4, async (span: StreamSpan) => {
      const proofs: unknown[] = []
      let from: number | null = span.firstSeq
      while (from !== null && from <= span.lastSeq) {
        const page: { records: unknown[]; next: number | null } = await o.evidence.records(span.stream, from, span.lastSeq, head.height)
        proofs.push(...page.records)
        fetched += page.records.length
        progress('records', fetched, total)
        from = page.next
      }
      return { span, proofs }
    }),
  )

  // prefetchBlocks: while the evidence is checked, the blocks its (still unverified) proofs name
  // for matching batches are asked for in bulk. Nothing fetched is used before its record verified
  // and its bytes hashed to the CID of the verified manifest; a CID the proofs lied about is
  // simply not used, and the verified one fetched below.
  const getMany = o.blocks.getMany?.bind(o.blocks)
  const bulk = new Map<string, Uint8Array | Error>()
  const bulkFetch = (cids: readonly string[], inFlight: number) =>
    mapLimit(chunked(cids, BULK_BLOCKS_MAX), inFlight, async (chunk) => {
      const answer = await getMany!(chunk)
      for (const [k, v] of answer) if (!(bulk.get(k) instanceof Uint8Array)) bulk.set(k, v)
    })
  const prefetch = getMany ? stage('prefetch', () => bulkFetch(claimedCids(spans, o.query), 4)).catch(() => undefined) : null

  // linkChain: from the lowest block any record (or known head) sits in, up to the head.
  const heights = spans.flatMap(({ proofs }) => proofs.map((p) => (p as { record?: { block?: unknown } }).record?.block).filter((h): h is number => typeof h === 'number' && h >= 0 && h <= head.height))
  const lowest = Math.min(head.height, ...heights, ...known.map((k) => k.height))
  const hashes = await stage('headers', async () => {
    const headers: { height: number; header: string }[] = []
    for (let from = lowest; from < head.height; from += 5000) headers.push(...(await o.evidence.headers(from, Math.min(head.height - 1, from + 4999))))
    return linkHeaders(head, headers, known)
  })

  // verifySpans (yielding between streams, so the prefetch's answers are read as they come)
  const failures: RetrievalFailure[] = []
  const warnings: RetrievalFailure[] = []
  const streams = await stage('verify', async () => {
    const out: VerifiedStream[] = []
    for (const { span, proofs } of spans) {
      const r = verifyStreamSpan(span, proofs, { query: o.query, head, hashes, allowGaps: o.allowGaps ?? false, ...(policies ? { policies } : {}) })
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
      await prefetch
      const rest = [...new Set(wanted.map((r) => r.manifest.cid))].filter((c) => !bulk.has(c))
      if (rest.length > 0) await bulkFetch(rest, 2)
    })
  }
  const blocks = await stage('blocks', () =>
    mapLimit(wanted, o.concurrency ?? 8, async (r) => {
      let bytes: Uint8Array
      try {
        const b = bulk.get(r.manifest.cid)
        if (b instanceof Error) throw b
        bytes = b ?? (await o.blocks.get(r.manifest.cid))
      } catch (e) {
        const substituted = isCareLedgerError(e) && e.info.reason === 'BLOCK_MISMATCH'
        failures.push({ kind: substituted ? 'SUBSTITUTED' : 'OMITTED', stream: r.manifest.stream, seq: r.seq, recordId: r.id, message: `record ${r.id} (${r.manifest.stream}#${r.seq}): ${(e as Error).message}` })
        return null
      }
      const bad = await checkBlock(bytes, r.manifest, r.id)
      if (bad) failures.push(bad)
      if (!bulk.has(r.manifest.cid)) progress('blocks', ++got, wanted.length)
      return bytes
    }),
  )
  if (failures.length > 0) throw new RetrievalError(failures)

  // openBatches
  const d = o.decryptor
  const open = wanted.map((r, i) => ({ r, bytes: blocks[i]!, ok: authorises(d.attributes, r.manifest.policy) }))
  const transformed = d.kind === 'outsourced' ? await stage('transform', () => transformAll(d.proxy, open.filter((x) => x.ok).map((x) => x.r.id))) : null
  let decryptions = 0
  const finisher = d.kind === 'outsourced' ? new OutsourcedFinisher(d.retrievalKey) : null
  const batches = await stage('decrypt', () =>
    open.map(({ r, bytes, ok }, i): RetrievedBatch => {
      progress('decrypt', i + 1, open.length)
      if (!ok) return { recordId: r.id, manifest: r.manifest, status: 'not-authorised', readings: [], redaction: r.redaction }
      decryptions++
      try {
        const body = d.kind === 'local' ? d.opener.open(bytes, r.manifest) : finishOutsourced(finisher!, bytes, transformed!.get(r.id), r)
        return { recordId: r.id, manifest: r.manifest, status: 'opened', readings: selectReadings(body, o.query), redaction: r.redaction }
      } catch (e) {
        failures.push({ kind: 'ALTERED', stream: r.manifest.stream, seq: r.seq, recordId: r.id, message: `record ${r.id}: ${isCareLedgerError(e) ? `${e.code}${e.info.reason ? ` (${String(e.info.reason)})` : ''}: ` : ''}${(e as Error).message}` })
        return { recordId: r.id, manifest: r.manifest, status: 'opened', readings: [], redaction: r.redaction }
      }
    }),
  )
  if (failures.length > 0) throw new RetrievalError(failures)
  o.trust.remember({ height: head.height, hash: head.hash }, head.signingKey)
  return { plan, head, streams, batches, tombstones: streams.flatMap((s) => s.tombstones), warnings, timings, decryptions }
}

const chunked = <T>(xs: readonly T[], n: number): T[][] => Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, (i + 1) * n))

/** The CIDs the unverified proofs name for batches matching the query (a guess to prefetch by, never trusted). */
function claimedCids(spans: readonly { proofs: readonly unknown[] }[], q: EvidenceQuery): string[] {
  const out = new Set<string>()
  for (const { proofs } of spans) {
    for (const p of proofs) {
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

function finishOutsourced(finisher: OutsourcedFinisher, envelope: Uint8Array, t: Uint8Array | Error | undefined, r: VerifiedRecord) {
  if (t === undefined) throw new Error('the proxy returned no transformation for it')
  if (t instanceof Error) throw t
  return finisher.open(envelope, t, r.manifest)
}
