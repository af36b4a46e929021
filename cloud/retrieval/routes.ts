/**
 * Reading records back (docs/api.md §Retrieval):
 *
 *   GET  /v1/evidence            the evidence plan of a read or an export (shared/protocol/evidence.ts)
 *   GET  /v1/evidence/headers    canonical block headers of a height range
 *   GET  /v1/evidence/records    the record proofs of one stream's seq span, as of a head
 *   POST /v1/transform           outsourced decryption: the pairings, with the holder's transformation key
 *   GET  /ipfs/{cid}             every stored block by CID, IPFS Trustless Gateway (raw block or CAR)
 *   POST /v1/blocks              many blocks by CID in one CAR (bulk-blocks.ts)
 *
 * Evidence is metadata (the `records` role group); transformations and blocks are ciphertext (the
 * `envelope` group), unless CARELEDGER_CLOUD_PUBLIC_IPFS serves blocks to anyone. Nothing here is
 * trusted by the clients: they check every answer against the signed head.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { bytesToHex } from '@noble/hashes/utils.js'
import { z } from 'zod'
import { EVIDENCE_VERSION, EvidenceQuerySchema, DEFAULT_LATENESS_MS, DEFAULT_SKEW_MS, MAX_HEADERS_PAGE, MAX_RECORDS_PAGE, type EvidencePlan } from '../../shared/protocol/evidence.ts'
import { singleBlockCar } from '../../shared/protocol/car.ts'
import type { ServiceContext } from '../service/context.ts'
import { ApiError } from '../service/errors.ts'
import { guard } from '../service/guard.ts'
import { TransformPool } from './transform-pool.ts'
import { registerBulkBlocks } from './bulk-blocks.ts'
import { sqliteRetrievalReads, type RetrievalReads } from './reads.ts'
import { decodeEnvelope } from '../../shared/crypto/envelope.ts'
import { digestHeader } from '../../shared/crypto/abe/codec.ts'

type Query = Readonly<Record<string, string | string[] | undefined>>

const int = (q: Query, name: string, opts: { min?: number; def?: number } = {}): number => {
  const v = q[name]
  if (v === undefined || v === '') {
    if (opts.def !== undefined) return opts.def
    throw new ApiError('INVALID_REQUEST', `${name}: required`, { field: name })
  }
  if (typeof v !== 'string' || !/^\d{1,16}$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < (opts.min ?? 0)) {
    throw new ApiError('INVALID_REQUEST', `${name}: must be an integer${opts.min ? ` ≥ ${opts.min}` : ' ≥ 0'}`, { field: name })
  }
  return Number(v)
}

/** The most records one POST /v1/transform may name. */
export const MAX_TRANSFORM_RECORDS = 64
const TransformBody = z.strictObject({
  transformKey: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64').max(64 * 1024),
  records: z.array(z.number().int().min(1)).min(1).max(MAX_TRANSFORM_RECORDS),
})

const RAW = 'application/vnd.ipld.raw'
const CAR = 'application/vnd.ipld.car'
/** bafkqaaa: the empty identity CID, the trustless gateway's probe path. */
const PROBE = 'bafkqaaa'

export function registerRetrievalRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  // What the evidence routes read (reads.ts): the process's own cloud.db, or with `--database
  // postgres://…` the shared PostgreSQL (ctx.retrieval, cloud/store/pg/retrieval.ts). The head and
  // the records come from ctx.backend, the chain every route of this process uses.
  const reads: RetrievalReads = ctx.retrieval ?? sqliteRetrievalReads(ctx.db, ctx.chain)
  const pool = new TransformPool(ctx.config.retrieval.transformWorkers)
  app.addHook('onClose', async () => pool.close())

  const signedHead = async () => {
    const head = await ctx.backend.head()
    if (!head) return null
    const block = (await ctx.backend.getBlock(head.height))!
    return { height: head.height, header: block.headerBytes, hash: block.hash, signature: block.signature, decoded: block.header }
  }

  // ── evidence ──────────────────────────────────────────────────────────────────────────────────
  app.get('/v1/evidence', { onRequest: guard(ctx, 'records') }, async (req): Promise<EvidencePlan> => {
    const q = req.query as Query
    const types = typeof q.type === 'string' && q.type !== '' ? q.type.split(',').map((t) => t.trim()) : null
    const parsed = EvidenceQuerySchema.safeParse({
      patient: typeof q.patient === 'string' && q.patient !== '' ? q.patient : null,
      types,
      from: int(q, 'from'),
      to: int(q, 'to'),
      lateness: int(q, 'lateness', { def: DEFAULT_LATENESS_MS }),
      skew: int(q, 'skew', { def: DEFAULT_SKEW_MS }),
    })
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!
      const field = String(issue.path[0] ?? 'query')
      throw new ApiError('INVALID_REQUEST', `${field === 'types' ? 'type' : field}: ${issue.message}`, { field })
    }
    const query = parsed.data
    if (query.from > query.to) throw new ApiError('INVALID_REQUEST', 'from: must not be after to', { field: 'from' })
    await reads.catchUp()
    const signed = await signedHead()
    const { streams, truncated } = signed ? await reads.plan(query, signed.height) : { streams: [], truncated: false }
    if (truncated) throw new ApiError('INVALID_REQUEST', 'the query touches more than 10,000 device streams: narrow it (patient, type or time)', { field: 'query' })
    // The log as the head commits it (a v1 head commits none): entries applied after it are not
    // sent (there are none: applying a redaction seals a block in the same transaction, on SQLite and on PostgreSQL).
    const headHeader = signed?.decoded ?? null
    const log = headHeader && headHeader.v === 2 ? await reads.log(headHeader.redactions.count) : undefined
    const head = signed ? { height: signed.height, header: signed.header, hash: signed.hash, signature: signed.signature } : null
    return { v: EVIDENCE_VERSION, query, keys: { signing: bytesToHex(ctx.keys.signingPublicKey), chameleon: bytesToHex(ctx.keys.chameleonPublicKey) }, head, streams, policies: await reads.policies(), ...(log ? { log } : {}) }
  })

  app.get('/v1/evidence/headers', { onRequest: guard(ctx, 'records') }, async (req) => {
    const q = req.query as Query
    const from = int(q, 'from')
    const to = int(q, 'to')
    if (to < from) throw new ApiError('INVALID_REQUEST', 'to: must not be below from', { field: 'to' })
    if (to - from + 1 > MAX_HEADERS_PAGE) throw new ApiError('INVALID_REQUEST', `at most ${MAX_HEADERS_PAGE} headers per request`, { field: 'to' })
    return { headers: await reads.headers(from, to) }
  })

  app.get('/v1/evidence/records', { onRequest: guard(ctx, 'records') }, async (req) => {
    const q = req.query as Query
    if (typeof q.stream !== 'string' || !/^[0-9a-f]{32}$/.test(q.stream)) throw new ApiError('INVALID_REQUEST', 'stream: must be a stream id (32 lower-case hex digits)', { field: 'stream' })
    const fromSeq = int(q, 'fromSeq')
    const toSeq = int(q, 'toSeq')
    const head = int(q, 'head')
    const limit = Math.min(int(q, 'limit', { min: 1, def: MAX_RECORDS_PAGE }), MAX_RECORDS_PAGE)
    const ids = await reads.span(q.stream, fromSeq, toSeq, head, limit)
    const proofs = await reads.recordProofs(ids.map((r) => r.id))
    const redactions = await reads.redactions(ids.map((r) => r.id))
    const records = proofs.map((proof, i) => {
      const redaction = redactions[i]!
      return { ...proof!, record: { ...proof!.record, redacted: redaction !== null }, redaction }
    })
    return { records, next: ids.length === limit && ids.at(-1)!.seq < toSeq ? ids.at(-1)!.seq + 1 : null }
  })

  // ── outsourced decryption ─────────────────────────────────────────────────────────────────────
  app.post('/v1/transform', { onRequest: guard(ctx, 'envelope') }, async (req) => {
    const body = TransformBody.safeParse(req.body)
    if (!body.success) {
      const issue = body.error.issues[0]!
      throw new ApiError('INVALID_REQUEST', `${issue.path.join('.') || 'body'}: ${issue.message}`, { field: issue.path.join('.') || 'body' })
    }
    const tk = new Uint8Array(Buffer.from(body.data.transformKey, 'base64'))
    // Batches sealed under one encapsulation (envelope format 2: a stream's batches in one epoch)
    // share a header, so one transformation answers them all (docs/crypto.md §Stream keys).
    const byHeader = new Map<string, ReturnType<TransformPool['transform']>>()
    const transformOnce = (envelope: Uint8Array): ReturnType<TransformPool['transform']> => {
      const head = headerKey(envelope)
      let answer = head === null ? undefined : byHeader.get(head)
      if (!answer) {
        answer = pool.transform(tk, envelope)
        if (head !== null) byHeader.set(head, answer)
      }
      return answer
    }
    const results = await Promise.all(
      body.data.records.map(async (id) => {
        const record = await ctx.backend.getRecord(id)
        if (!record) return { id, error: { code: 'NOT_FOUND', message: `record ${id} does not exist` } }
        const envelope = await ctx.blocks.get(CID.parse(record.cid))
        if (!envelope) return { id, error: { code: 'NOT_FOUND', message: `the envelope ${record.cid} of record ${id} is not in this cloud's blockstore` } }
        const a = await transformOnce(envelope)
        return 'transformed' in a ? { id, transformed: Buffer.from(a.transformed).toString('base64') } : { id, error: a.error }
      }),
    )
    return { results }
  })

  // ── IPFS Trustless Gateway ────────────────────────────────────────────────────────────────────
  const ipfs = async (req: FastifyRequest, reply: FastifyReply) => {
    const { cid: text, '*': rest } = req.params as { cid: string; '*'?: string }
    const q = req.query as Query
    const format = typeof q.format === 'string' ? q.format : null
    const accept = String(req.headers.accept ?? '')
    // format= takes precedence over Accept (Trustless Gateway §format).
    const kind = format === 'raw' ? 'raw' : format === 'car' ? 'car' : format !== null ? 'bad' : accept.includes(RAW) ? 'raw' : accept.includes(CAR) ? 'car' : null
    if (kind === 'bad') throw new ApiError('INVALID_REQUEST', `format: this trustless gateway serves format=raw and format=car, not ${JSON.stringify(format)}`, { field: 'format' })
    if (kind === null) throw new ApiError('INVALID_REQUEST', `this is a trustless gateway: ask for ${RAW} or ${CAR} (Accept header or ?format=raw|car)`, { field: 'accept' })
    if (rest) throw new ApiError('INVALID_REQUEST', 'paths under a CID are not served: every block here is a raw block', { field: 'path' })
    let cid: CID
    try {
      cid = CID.parse(text)
    } catch {
      throw new ApiError('INVALID_REQUEST', `cid: ${JSON.stringify(text.slice(0, 80))} is not a CID`, { field: 'cid' })
    }
    const bytes = cid.multihash.code === identity.code ? cid.multihash.digest : await ctx.blocks.get(cid)
    if (!bytes) throw new ApiError('NOT_FOUND', `block ${cid} is not in this cloud's blockstore`, { cid: cid.toString() })
    const base = `/ipfs/${text}`
    void reply
      .header('cache-control', `${ctx.config.retrieval.publicIpfs ? 'public' : 'private'}, max-age=29030400, immutable`)
      .header('x-ipfs-path', base)
      .header('x-ipfs-roots', cid.toString())
    if (format === null) void reply.header('content-location', `${base}?format=${kind}`)
    if (kind === 'raw') {
      return reply
        .type(RAW)
        .header('etag', `"${cid}.raw"`)
        .header('content-disposition', `attachment; filename="${cid}.bin"`)
        .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    }
    const car = await singleBlockCar(cid, text === PROBE ? null : bytes)
    return reply.type(`${CAR}; version=1; order=dfs; dups=n`).header('etag', `"${cid}.car"`).header('content-disposition', `attachment; filename="${cid}.car"`).send(Buffer.from(car))
  }
  const ipfsOptions = ctx.config.retrieval.publicIpfs ? {} : { onRequest: guard(ctx, 'envelope') }
  app.get('/ipfs/:cid', ipfsOptions, ipfs)
  app.get('/ipfs/:cid/*', ipfsOptions, ipfs)
  registerBulkBlocks(app, ctx)
}

/** The digest of an envelope's ABE header, or null when the bytes are not an envelope (the worker reports why). */
function headerKey(envelope: Uint8Array): string | null {
  try {
    return Buffer.from(digestHeader(decodeEnvelope(envelope).header)).toString('hex')
  } catch {
    return null
  }
}
