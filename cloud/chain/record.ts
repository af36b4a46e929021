/**
 * A chain record: one gateway-signed batch manifest as the cloud received it. Pure rules, no I/O.
 *
 *   content    = canonical CBOR (RFC 8949 §4.2.1) { v, id, stream, seq, gateway, gatewayKey,
 *                manifest, signature, receivedAt }
 *   commitment = chameleon hash of content (Ateniese–de Medeiros, shared/crypto/chameleon.ts):
 *                a 32-byte hash C and a 64-byte opening. Blocks commit to C only, so the
 *                regulator's trapdoor can later replace content and opening without moving C.
 *
 * The record format is the content's `v`, and it says how the opening is encoded:
 *   v 1   opening r ‖ s          (chains written before format 2; still verified, never written)
 *   v 2   opening encode(P) ‖ s  (written now): the check is hashes plus P = e·Y + s·G, which
 *                                checkRecordRows verifies for a whole chunk of rows at once
 *                                (shared/crypto/chameleon-batch.ts)
 * Both encode openings of the same hash function, so a v1 record redacted by the regulator is
 * re-encoded as v2 content with a format-2 opening of the same C.
 *
 * The gateway's public key travels inside the content, so anyone holding a record can check the
 * manifest signature without the cloud's gateway registry (its id is SHA-256(key)[0..8], which
 * the manifest names). `id` binds the content to its position in the chain (leaf order).
 */
import { createHash } from 'node:crypto'
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError, isCareLedgerError } from '../../shared/errors.ts'
import { decodeCanonical, domainHead, encodeCanonical } from '../../shared/encoding/canonical.ts'
import {
  chameleonEquation,
  chameleonHash,
  chameleonPublicPoint,
  chameleonVerify,
  chameleonEquationHolds,
  type ChameleonEquation,
  type OpeningFormat,
} from '../../shared/crypto/chameleon.ts'
import { failingChameleonEquations } from '../../shared/crypto/chameleon-batch.ts'
import { publicRng, systemRng, type Rng } from '../../shared/crypto/random.ts'
import { MANIFEST_DOMAIN, parseManifest, type BatchManifest } from '../../shared/protocol/manifest.ts'
import { streamId } from '../../shared/protocol/pseudonym.ts'
import { manifestBytesOf, type ContentFields } from './content-slice.ts'
import { checkSigningPublicKey, isUsableSigningKey, signingKeyId, verify as verifySignature } from '../../shared/crypto/sign.ts'
import { verifyEd25519Batch, type SignedMessage } from '../../shared/crypto/ed25519-batch.ts'
import { attempt, type Outcome } from './outcome.ts'

/** The record format written now. */
export const RECORD_VERSION = 2
export type RecordVersion = 1 | 2
/** The chameleon opening format of each record format. */
export const OPENING_FORMAT: Readonly<Record<RecordVersion, OpeningFormat>> = { 1: 1, 2: 2 }
const CONTENT_KEYS = ['gateway', 'gatewayKey', 'id', 'manifest', 'receivedAt', 'seq', 'signature', 'stream', 'v'] as const

/** What the content holds (before encoding). */
export interface RecordFields {
  readonly id: number
  readonly stream: string
  readonly seq: number
  /** Gateway id (16 hex) = signingKeyId(gatewayKey) = manifest.gateway. */
  readonly gateway: string
  readonly gatewayKey: Uint8Array
  readonly manifest: BatchManifest
  readonly signature: Uint8Array
  readonly receivedAt: number
}

export interface DecodedRecord extends RecordFields {
  readonly v: RecordVersion
  /** encodeCanonical(manifest): what the gateway signed. */
  readonly manifestBytes: Uint8Array
}

/** An upload the chain may accept: every field checked, the signature verified. */
export interface AdmittedBatch {
  readonly manifest: BatchManifest
  readonly manifestBytes: Uint8Array
  /** manifestCommitment(manifest): hex, the stream link. */
  readonly commitment: string
  readonly gatewayKey: Uint8Array
  readonly signature: Uint8Array
  readonly receivedAt: number
}

export interface AppendInput {
  readonly manifest: BatchManifest
  readonly signature: Uint8Array
  readonly gatewayKey: Uint8Array
  readonly receivedAt: number
}

/** A record as the records table holds it (BLOBs as plain Uint8Arrays). */
export interface RecordRow {
  readonly id: number
  readonly stream: string
  readonly seq: number
  readonly gatewayId: string
  readonly content: Uint8Array
  readonly hash: Uint8Array
  readonly opening: Uint8Array
  readonly manifestCommitment: string
  readonly prevCommitment: string | null
  readonly cid: string
  readonly receivedAt: number
  readonly blockHeight: number | null
}

/** What GET /v1/records lists (docs/api.md): metadata only, JSON-ready. */
export interface RecordSummary {
  readonly id: number
  readonly stream: string
  readonly seq: number
  readonly gateway: string
  readonly device: string
  readonly patient: string
  readonly from: number
  readonly to: number
  readonly count: number
  readonly types: readonly string[]
  readonly cid: string
  readonly policy: string
  /** hex chameleon hash C: what the block commits to. */
  readonly commitment: string
  readonly block: number | null
  readonly receivedAt: number
  /** Set (true) only when the stored content no longer decodes; the manifest fields are then empty. */
  readonly damaged?: true
}

/** GET /v1/records/:id: everything needed to re-check the record without the cloud. */
export interface RecordDetail extends RecordSummary {
  readonly manifest: BatchManifest | null
  /** hex manifestCommitment(manifest): the stream link. */
  readonly manifestCommitment: string
  readonly prevCommitment: string | null
  /** hex Ed25519 signature of the gateway over the manifest (domain batch-manifest). */
  readonly signature: string
  /** hex Ed25519 public key of the gateway. */
  readonly gatewayKey: string
  /** hex chameleon opening (r ‖ s). */
  readonly opening: string
  /** hex canonical CBOR content: the chameleon hash's message. */
  readonly content: string
}

export type RecordFailureKind = 'RECORD_CONTENT' | 'RECORD_OPENING' | 'MANIFEST_SIGNATURE'

export interface RecordFailure {
  readonly kind: RecordFailureKind
  readonly recordId: number
  readonly height?: number
  readonly stream?: string
  readonly seq?: number
  readonly message: string
}

const hex = bytesToHex

/**
 * hex SHA-256("careledger/v1/batch-manifest" ‖ 0x00 ‖ bytes) — manifestCommitment without
 * re-encoding; node:crypto's SHA-256 (OpenSSL's: the same digest as noble's, at half the cost, once
 * per record in `chain verify`; noble's in the browser through clients/browser/node-crypto.ts).
 */
export function commitmentOfManifestBytes(manifestBytes: Uint8Array): string {
  const digest: string | Uint8Array = createHash('sha256').update(domainHead(MANIFEST_DOMAIN)).update(manifestBytes).digest('hex')
  return typeof digest === 'string' ? digest : hex(digest) // the browser's shim answers bytes
}

function refuse(code: 'INVALID_ARGUMENT' | 'INVALID_ENCODING' | 'VERIFICATION_FAILED', reason: string, message: string, info: Record<string, unknown> = {}): never {
  throw new CareLedgerError(code, message, { reason, ...info })
}

const isEpochMs = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0

/**
 * Everything the chain relies on about an upload, checked: the manifest schema, the gateway key
 * (a usable Ed25519 key whose id is manifest.gateway), the stream id (derived from gateway, device
 * and pseudonym, so no gateway can write into another's stream) and the gateway's signature.
 * Typed errors carry `info.reason`: SCHEMA, GATEWAY_KEY, GATEWAY_KEY_MISMATCH, STREAM_ID,
 * SIGNATURE_ENCODING, MANIFEST_SIGNATURE, RECEIVED_AT.
 */
export function admitBatch(input: AppendInput): AdmittedBatch {
  const unsigned = admitUnsigned(input)
  if (!verifySignature(unsigned.gatewayKey, MANIFEST_DOMAIN, unsigned.manifestBytes, unsigned.signature)) refuseSignature(unsigned.manifest)
  return vouch(unsigned)
}

/**
 * admitBatch for many uploads, in order, each a result or its typed error; the signatures of those
 * that pass every other check are verified as one Ed25519 batch (shared/crypto/ed25519-batch.ts:
 * the same verdicts, a failing batch judged one by one, so every refusal names its upload).
 */
export function admitBatches(inputs: readonly AppendInput[]): Outcome<AdmittedBatch>[] {
  const unsigned = inputs.map((input) => attempt(() => admitUnsigned(input)))
  const toCheck = unsigned.flatMap((u) => ('ok' in u ? [u.ok] : []))
  const verdicts = verifyEd25519Batch(toCheck.map((u) => ({ publicKey: u.gatewayKey, domain: MANIFEST_DOMAIN, payload: u.manifestBytes, signature: u.signature })))
  let next = 0
  return unsigned.map((u) => {
    if (!('ok' in u)) return u
    const ok = verdicts[next++]!
    return attempt(() => (ok ? vouch(u.ok) : refuseSignature(u.ok.manifest)))
  })
}

function refuseSignature(manifest: BatchManifest): never {
  refuse('VERIFICATION_FAILED', 'MANIFEST_SIGNATURE', `append: the signature of gateway ${manifest.gateway} on ${manifest.stream}#${manifest.seq} does not verify`, {
    stream: manifest.stream,
    seq: manifest.seq,
  })
}

/** Every check of admitBatch but the signature's: the admission to be, not yet vouched for. */
function admitUnsigned(input: AppendInput): AdmittedBatch {
  if (typeof input !== 'object' || input === null) refuse('INVALID_ARGUMENT', 'INPUT', 'append: expected { manifest, signature, gatewayKey, receivedAt }')
  const manifest = parseManifest(input.manifest)
  if (!isEpochMs(input.receivedAt)) refuse('INVALID_ARGUMENT', 'RECEIVED_AT', `append: receivedAt must be epoch milliseconds, got ${String(input.receivedAt)}`)
  const gatewayKey = input.gatewayKey
  if (!isUsableSigningKey(gatewayKey)) {
    try {
      checkSigningPublicKey(gatewayKey) // for the precise reason
    } catch (e) {
      refuse('INVALID_ENCODING', 'GATEWAY_KEY', `append: gateway key: ${(e as Error).message}`)
    }
    refuse('INVALID_ENCODING', 'GATEWAY_KEY', 'append: the gateway key is not a usable Ed25519 public key')
  }
  const keyId = signingKeyId(gatewayKey)
  if (keyId !== manifest.gateway) {
    refuse('INVALID_ARGUMENT', 'GATEWAY_KEY_MISMATCH', `append: the gateway key has id ${keyId}, the manifest names gateway ${manifest.gateway}`, { keyId, gateway: manifest.gateway })
  }
  const derived = memoStreamId(manifest.gateway, manifest.device, manifest.patient)
  if (derived !== manifest.stream) {
    refuse('INVALID_ARGUMENT', 'STREAM_ID', `append: stream ${manifest.stream} is not the stream id of (gateway, device, patient), ${derived}`, { stream: manifest.stream, expected: derived })
  }
  if (!(input.signature instanceof Uint8Array) || input.signature.length !== 64) {
    refuse('INVALID_ENCODING', 'SIGNATURE_ENCODING', 'append: the manifest signature must be 64 bytes')
  }
  const manifestBytes = encodeCanonical(manifest)
  return {
    manifest,
    manifestBytes,
    commitment: commitmentOfManifestBytes(manifestBytes),
    gatewayKey: new Uint8Array(gatewayKey),
    signature: new Uint8Array(input.signature),
    receivedAt: input.receivedAt,
  }
}

/** Vouch for an admission whose signature verified: a private copy the caller cannot reach or mutate, so the store can trust it later. */
function vouch(admitted: AdmittedBatch): AdmittedBatch {
  const { manifest, manifestBytes } = admitted
  vouched.set(admitted, { ...admitted, manifest: structuredClone(manifest), manifestBytes: manifestBytes.slice(), gatewayKey: admitted.gatewayKey.slice(), signature: admitted.signature.slice() })
  return admitted
}

const vouched = new WeakMap<object, AdmittedBatch>()

/**
 * If `x` is an AdmittedBatch that admitBatch returned in this thread, the checked copy taken at
 * that moment (whatever the caller did to `x` since); otherwise null. Lets the store skip a second
 * admission of an upload the service has already admitted, without trusting caller-built objects.
 */
export function vouchedAdmission(x: unknown): AdmittedBatch | null {
  return typeof x === 'object' && x !== null ? (vouched.get(x) ?? null) : null
}

/** The content bytes in record format `version` (default: the current one; the opening must then be in its format). */
export function encodeRecordContent(f: RecordFields, version: RecordVersion = RECORD_VERSION): Uint8Array {
  return encodeCanonical({
    v: version,
    id: f.id,
    stream: f.stream,
    seq: f.seq,
    gateway: f.gateway,
    gatewayKey: f.gatewayKey,
    manifest: f.manifest,
    signature: f.signature,
    receivedAt: f.receivedAt,
  })
}

export interface CommittedContent {
  readonly content: Uint8Array
  readonly hash: Uint8Array
  readonly opening: Uint8Array
}

/** Encode the content (current format) and commit to it: C = CH(content), a fresh format-2 opening. */
export function commitRecord(chameleonPublicKey: Uint8Array, fields: RecordFields): CommittedContent {
  const content = encodeRecordContent(fields)
  // publicRng: the opening's r and s are published with the record (docs/crypto.md).
  const { hash, opening } = chameleonHash(chameleonPublicKey, content, publicRng, OPENING_FORMAT[RECORD_VERSION])
  return { content, hash, opening }
}

/** A bad regulator key is the caller's error (thrown); anything wrong with the record is an answer. */
function recordAnswer<T>(f: () => T, otherwise: T): T {
  try {
    return f()
  } catch (e) {
    if (isCareLedgerError(e, 'INVALID_ENCODING') && (e.info as { what?: string }).what === 'chameleon public key') throw e
    return otherwise
  }
}

/**
 * Does (hash, opening) open to exactly these content bytes under the regulator's public key, with
 * the opening in `format`? False (never an exception) for anything malformed: a verifier must name
 * the record, not crash.
 */
export function verifyRecordCommitment(chameleonPublicKey: Uint8Array, content: Uint8Array, hash: Uint8Array, opening: Uint8Array, format: OpeningFormat = OPENING_FORMAT[RECORD_VERSION]): boolean {
  return recordAnswer(() => chameleonVerify(chameleonPublicKey, content, hash, opening, format), false)
}

/**
 * Parse stored content, strictly: canonical CBOR, exactly the nine fields, a manifest that passes
 * the schema, and the fields agreeing with each other (stream, seq, gateway = the manifest's; the
 * key's id = the gateway; the stream id derived from gateway, device, patient).
 * INVALID_ENCODING with reason RECORD_CONTENT and the offending `field`.
 */
export function decodeRecordContent(bytes: Uint8Array): DecodedRecord {
  const fail = (field: string, problem: string): never => refuse('INVALID_ENCODING', 'RECORD_CONTENT', `record content: ${field}: ${problem}`, { field })
  let value: unknown
  try {
    value = decodeCanonical(bytes)
  } catch (e) {
    return fail('$', (e as Error).message)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) return fail('$', 'not a map')
  const v = value as Record<string, unknown>
  const keys = Object.keys(v).sort()
  if (keys.length !== CONTENT_KEYS.length || keys.some((k, i) => k !== CONTENT_KEYS[i])) return fail('$', `fields are [${keys.join(', ')}], expected [${CONTENT_KEYS.join(', ')}]`)
  if (v.v !== 1 && v.v !== 2) return fail('v', `version ${String(v.v)} is not supported (this build reads 1 and 2)`)
  if (typeof v.id !== 'number' || !Number.isSafeInteger(v.id) || v.id < 1) return fail('id', 'must be a positive integer')
  if (typeof v.stream !== 'string') return fail('stream', 'must be a string')
  if (typeof v.seq !== 'number' || !Number.isSafeInteger(v.seq) || v.seq < 0) return fail('seq', 'must be a non-negative integer')
  if (typeof v.gateway !== 'string') return fail('gateway', 'must be a string')
  if (!(v.gatewayKey instanceof Uint8Array) || v.gatewayKey.length !== 32) return fail('gatewayKey', 'must be 32 bytes')
  if (!(v.signature instanceof Uint8Array) || v.signature.length !== 64) return fail('signature', 'must be 64 bytes')
  if (!isEpochMs(v.receivedAt)) return fail('receivedAt', 'must be epoch milliseconds')
  let manifest: BatchManifest
  try {
    manifest = parseManifest(v.manifest)
  } catch (e) {
    return fail('manifest', (e as Error).message)
  }
  if (manifest.stream !== v.stream) fail('stream', `${v.stream} but the manifest says ${manifest.stream}`)
  if (manifest.seq !== v.seq) fail('seq', `${v.seq} but the manifest says ${manifest.seq}`)
  if (manifest.gateway !== v.gateway) fail('gateway', `${v.gateway} but the manifest says ${manifest.gateway}`)
  let keyId: string
  try {
    keyId = memoKeyId(v.gatewayKey)
  } catch (e) {
    return fail('gatewayKey', (e as Error).message)
  }
  if (keyId !== v.gateway) fail('gatewayKey', `has id ${keyId}, not the gateway ${v.gateway}`)
  const derived = memoStreamId(manifest.gateway, manifest.device, manifest.patient)
  if (derived !== manifest.stream) fail('stream', `${manifest.stream} is not the stream id of (gateway, device, patient), ${derived}`)
  return {
    v: v.v,
    id: v.id,
    stream: v.stream,
    seq: v.seq,
    gateway: v.gateway,
    gatewayKey: v.gatewayKey,
    manifest,
    signature: v.signature,
    receivedAt: v.receivedAt,
    // The bytes are canonical (decodeCanonical), so the manifest's encoding is a slice of them.
    manifestBytes: manifestBytesOf(bytes, v as unknown as ContentFields) ?? encodeCanonical(manifest),
  }
}

/** signingKeyId of recent gateway keys: a chain holds few gateways, and the SHA-256 was a tenth of a record's decode. */
const keyIds = new Map<string, string>()
function memoKeyId(key: Uint8Array): string {
  const k = hex(key)
  let id = keyIds.get(k)
  if (id === undefined) {
    if (keyIds.size >= 4096) keyIds.clear()
    id = signingKeyId(key)
    keyIds.set(k, id)
  }
  return id
}

/** streamId of recent (gateway, device, patient): a chain holds few streams and many records each. */
const streamIds = new Map<string, string>()
function memoStreamId(gateway: string, device: string, patient: string): string {
  const key = JSON.stringify([gateway, device, patient]) // unambiguous whatever the strings hold
  let id = streamIds.get(key)
  if (id === undefined) {
    if (streamIds.size >= 4096) streamIds.clear()
    id = streamId(gateway, device, patient)
    streamIds.set(key, id)
  }
  return id
}

/** A row's checks done, but for a format-2 opening's equation, which the caller may batch. */
interface PreparedRow {
  readonly failures: RecordFailure[]
  /** The opening's P = e·Y + s·G, still to check (null: nothing left to check, or the opening already failed). */
  readonly equation: ChameleonEquation | null
  /** Where RECORD_OPENING goes in `failures` if the equation fails (the first failure of a row is its opening's). */
  readonly at: Omit<RecordFailure, 'kind' | 'message'>
  /** The gateway's manifest signature, left for the caller to check (alone or in a batch); null when not checked. */
  readonly signature: (SignedMessage & { readonly rec: DecodedRecord }) | null
}

const openingFailure = (row: RecordRow, at: PreparedRow['at']): RecordFailure => ({
  kind: 'RECORD_OPENING',
  ...at,
  message: `record ${row.id}: the chameleon opening does not open hash ${hex(row.hash)} to the stored content`,
})

/**
 * The opening's check up to its linear equation, in the format the content's version says. For
 * content that does not decode (its version unknown, already a RECORD_CONTENT failure) the opening
 * is checked in both formats, alone: it still says whether the bytes are what the hash commits to.
 */
function openingCheck(row: RecordRow, pk: Uint8Array, version: RecordVersion | null): { ok: boolean; equation: ChameleonEquation | null } {
  const format = version === null ? null : OPENING_FORMAT[version]
  if (format === 1 || format === null) {
    if (verifyRecordCommitment(pk, row.content, row.hash, row.opening, 1)) return { ok: true, equation: null }
    if (format === 1) return { ok: false, equation: null }
  }
  const equation = recordAnswer(() => chameleonEquation(pk, row.content, row.hash, row.opening), null)
  if (equation === null) return { ok: false, equation: null }
  if (format === null) return { ok: chameleonEquationHolds(chameleonPublicPoint(pk), equation), equation: null }
  return { ok: true, equation }
}

/** `gatewaySignature: false` leaves out the gateway's manifest signature: a corrected record's k approvals stand in for it (cloud/supervision/content.ts). */
export interface RowCheckOptions {
  readonly gatewaySignature?: boolean
}

/**
 * Every check one record allows on its own — the chameleon opening over the exact stored bytes,
 * the content's structure, its agreement with the row's indexed columns (which the store and the
 * stream-link check use), and the gateway's signature on the manifest — except that a format-2
 * opening's final equation is returned for the caller to check (alone or in a batch).
 */
function prepareRecordRow(row: RecordRow, chameleonPublicKey: Uint8Array, opts: RowCheckOptions = {}): PreparedRow {
  const failures: RecordFailure[] = []
  const at = { recordId: row.id, ...(row.blockHeight === null ? {} : { height: row.blockHeight }), stream: row.stream, seq: row.seq }
  const add = (kind: RecordFailureKind, message: string): void => void failures.push({ kind, ...at, message })
  let rec: DecodedRecord | null = null
  let contentError: string | null = null
  try {
    rec = decodeRecordContent(row.content)
  } catch (e) {
    contentError = (e as Error).message
  }
  const opening = openingCheck(row, chameleonPublicKey, rec?.v ?? null)
  if (!opening.ok) failures.push(openingFailure(row, at))
  if (rec === null) {
    add('RECORD_CONTENT', `record ${row.id}: ${contentError}`)
    return { failures, equation: null, at, signature: null }
  }
  const commitment = commitmentOfManifestBytes(rec.manifestBytes)
  const mismatched: string[] = []
  const same = (field: string, inContent: unknown, inRow: unknown): void => {
    if (inContent !== inRow) mismatched.push(`${field} (content ${JSON.stringify(inContent)}, row ${JSON.stringify(inRow)})`)
  }
  same('id', rec.id, row.id)
  same('stream', rec.stream, row.stream)
  same('seq', rec.seq, row.seq)
  same('gateway', rec.gateway, row.gatewayId)
  same('receivedAt', rec.receivedAt, row.receivedAt)
  same('cid', rec.manifest.cid, row.cid)
  same('manifest commitment', commitment, row.manifestCommitment)
  same('prev', rec.manifest.prev, row.prevCommitment)
  if (mismatched.length > 0) add('RECORD_CONTENT', `record ${row.id}: the content disagrees with the row: ${mismatched.join('; ')}`)
  const signature =
    opts.gatewaySignature === false
      ? null
      : { publicKey: rec.gatewayKey, domain: MANIFEST_DOMAIN, payload: rec.manifestBytes, signature: rec.signature, rec }
  return { failures, equation: opening.equation, at, signature }
}

const signatureFailure = (id: number, rec: DecodedRecord): string => `record ${id}: the signature of gateway ${rec.gateway} on ${rec.stream}#${rec.seq} does not verify`

/** The rows' manifest signatures as one Ed25519 batch (ed25519-batch.ts: verify()'s verdicts), each failure added to its row. */
function checkManifestSignatures(prepared: readonly PreparedRow[]): void {
  const signed = prepared.filter((p) => p.signature !== null)
  const verdicts = verifyEd25519Batch(signed.map((p) => p.signature!))
  signed.forEach((p, i) => {
    // The message only for a failure: rows that verify (nearly all) build no string.
    if (!verdicts[i]) p.failures.push({ kind: 'MANIFEST_SIGNATURE', ...p.at, message: signatureFailure(p.at.recordId, p.signature!.rec) })
  })
}

/** Every check of one record, alone (GET …/proof, tests). For many rows, checkRecordRows is faster. */
export function checkRecordRow(row: RecordRow, chameleonPublicKey: Uint8Array, opts: RowCheckOptions = {}): RecordFailure[] {
  const prepared = prepareRecordRow(row, chameleonPublicKey, opts)
  checkManifestSignatures([prepared])
  if (prepared.equation && !chameleonEquationHolds(chameleonPublicPoint(chameleonPublicKey), prepared.equation)) {
    prepared.failures.unshift(openingFailure(row, prepared.at))
  }
  return prepared.failures
}

/**
 * checkRecordRow for many rows, with the format-2 openings' equations checked as one batch (a
 * failing batch bisected down to the rows at fault, so each is named): the failures, and the ids
 * of the rows that passed every check. `rng` draws the batch weights (tests pass a deterministic one).
 */
export function checkRecordRows(rows: readonly RecordRow[], chameleonPublicKey: Uint8Array, rng: Rng = systemRng, opts: RowCheckOptions = {}): { failures: RecordFailure[]; passed: number[] } {
  const prepared = rows.map((row) => prepareRecordRow(row, chameleonPublicKey, opts))
  checkManifestSignatures(prepared)
  const batched = prepared.flatMap((p, i) => (p.equation ? [i] : []))
  const failing = failingChameleonEquations(
    chameleonPublicPoint(chameleonPublicKey),
    batched.map((i) => prepared[i]!.equation!),
    rng,
  )
  for (const k of failing) {
    const i = batched[k]!
    prepared[i]!.failures.unshift(openingFailure(rows[i]!, prepared[i]!.at))
  }
  const failures: RecordFailure[] = []
  const passed: number[] = []
  prepared.forEach((p, i) => {
    if (p.failures.length === 0) passed.push(rows[i]!.id)
    else failures.push(...p.failures)
  })
  return { failures, passed }
}

export function summarize(id: number, manifest: BatchManifest, hash: Uint8Array, receivedAt: number, block: number | null): RecordSummary {
  return {
    id,
    stream: manifest.stream,
    seq: manifest.seq,
    gateway: manifest.gateway,
    device: manifest.device,
    patient: manifest.patient,
    from: manifest.from,
    to: manifest.to,
    count: manifest.count,
    types: manifest.types,
    cid: manifest.cid,
    policy: manifest.policy,
    commitment: hex(hash),
    block,
    receivedAt,
  }
}

/** Summary and detail of a stored row; a row whose content no longer decodes is marked damaged. */
export function describeRow(row: RecordRow): RecordDetail {
  let rec: DecodedRecord | null = null
  try {
    rec = decodeRecordContent(row.content)
  } catch {
    rec = null
  }
  const base: RecordSummary = rec
    ? summarize(row.id, rec.manifest, row.hash, row.receivedAt, row.blockHeight)
    : {
        id: row.id,
        stream: row.stream,
        seq: row.seq,
        gateway: row.gatewayId,
        device: '',
        patient: '',
        from: 0,
        to: 0,
        count: 0,
        types: [],
        cid: row.cid,
        policy: '',
        commitment: hex(row.hash),
        block: row.blockHeight,
        receivedAt: row.receivedAt,
        damaged: true,
      }
  return {
    ...base,
    manifest: rec ? rec.manifest : null,
    manifestCommitment: row.manifestCommitment,
    prevCommitment: row.prevCommitment,
    signature: rec ? hex(rec.signature) : '',
    gatewayKey: rec ? hex(rec.gatewayKey) : '',
    opening: hex(row.opening),
    content: hex(row.content),
  }
}

/** The summary part of a detail (for lists). */
export function summaryOf(d: RecordDetail): RecordSummary {
  const { manifest: _m, manifestCommitment: _c, prevCommitment: _p, signature: _s, gatewayKey: _k, opening: _o, content: _x, ...summary } = d
  return summary
}

// ---- the records table's rows ------------------------------------------------------------------

/** A `records` row as SQLite returns it (store.ts writes them, verify.ts reads them). */
export interface RawRecord {
  id: number
  stream: string
  seq: number
  gateway_id: string
  content: Buffer
  hash: Buffer
  opening: Buffer
  manifest_commitment: string
  prev_commitment: string | null
  cid: string
  received_at: number
  block_height: number | null
}

const asU8 = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)

export function toRecordRow(r: RawRecord): RecordRow {
  return {
    id: r.id,
    stream: r.stream,
    seq: r.seq,
    gatewayId: r.gateway_id,
    content: asU8(r.content),
    hash: asU8(r.hash),
    opening: asU8(r.opening),
    manifestCommitment: r.manifest_commitment,
    prevCommitment: r.prev_commitment,
    cid: r.cid,
    receivedAt: r.received_at,
    blockHeight: r.block_height,
  }
}
