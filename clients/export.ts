/**
 * `careledger research export` — a research institution's data set that proves its completeness.
 * clients/retrieve.ts verifies the cloud's evidence for every device stream the query touches
 * (record proofs against the signed head, contiguous stream links, boundary batches), downloads
 * and checks every matching ciphertext, and decrypts what the key may open. Only then are files
 * written — into a temporary directory renamed into place at the end, so a failed export leaves
 * nothing behind but its report:
 *
 *   readings.csv          one row per reading; `status` amended and the redaction's request,
 *                         reason, approvers and time for readings of a corrected batch
 *   observations.ndjson   FHIR R4 Observations (vital-signs profile; clients/fhir.ts), `amended`
 *                         with a note for corrected readings
 *   provenance.ndjson     FHIR R4 Provenance, one per verified redaction (corrections and deletions)
 *   manifest.json         what was verified (head, streams, spans, boundaries), what the key could
 *                         not open, the corrected batches with their redaction log entries and the
 *                         deleted ones (tombstones, status `deleted`), hashes of the files
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import cliProgress from 'cli-progress'
import { CareLedgerError } from '../shared/errors.ts'
import { keyValidity } from '../shared/protocol/epoch.ts'
import type { EvidenceQuery } from '../shared/protocol/evidence.ts'
import { VITAL_TYPES, VITALS, type VitalType } from '../shared/schema/vitals.ts'
import { resolvePatient, unlockPseudonymKey } from '../shared/cli/patients.ts'
import { toObservation, toProvenance } from './fhir.ts'
import { approversText, corrections, deletions } from './redaction-output.ts'
import { openSession, timeRange, type CommonOptions } from './options.ts'
import { retrieve, type Progress, type Retrieval } from './retrieve.ts'
import { csvLine } from './tables.ts'
import { RetrievalError } from './verify.ts'

/** 2: redaction columns in readings.csv, provenance.ndjson, redactions and tombstones listed. */
export const EXPORT_FORMAT = 'careledger-export/2'

export interface ExportOptions extends CommonOptions {
  readonly type: string
  readonly out: string
  readonly patient?: string
  readonly pseudonymKey?: string
  readonly allowGaps?: boolean
  readonly force?: boolean
  readonly progress?: boolean
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

/** The three files of a verified retrieval. Pure. */
export function exportFiles(r: Retrieval, meta: { cloud: string; query: EvidenceQuery; attributes: readonly string[]; createdAt: string }): Record<string, string> {
  const csv = [csvLine(['patient', 'device', 'time', 'type', 'value', 'unit', 'loinc', 'received', 'stream', 'reading_seq', 'record', 'samples_hz', 'samples', 'status', 'redaction_request', 'redaction_reason', 'redaction_approvers', 'redaction_time'])]
  const fhir: string[] = []
  const provenance: string[] = []
  let readings = 0
  for (const b of r.batches) {
    const m = b.manifest
    const red = b.redaction
    const redactionFields = red ? ['amended', red.requestId, red.reason, approversText(red), new Date(red.time).toISOString()] : ['final', null, null, null, null]
    const ids: string[] = []
    for (const x of b.readings) {
      readings++
      csv.push(csvLine([m.patient, m.device, new Date(x.ts).toISOString(), x.type, x.value ?? null, x.unit, VITALS[x.type].loinc, new Date(x.rx).toISOString(), m.stream, x.seq, b.recordId, x.hz ?? null, x.samples ? x.samples.join(' ') : null, ...redactionFields]))
      const obs = toObservation(x, { stream: m.stream, device: m.device, patient: m.patient }, red)
      ids.push(obs.id)
      fhir.push(JSON.stringify(obs))
    }
    if (red) provenance.push(JSON.stringify(toProvenance(red, m, ids)))
  }
  for (const t of r.tombstones) provenance.push(JSON.stringify(toProvenance(t.redaction, t, [])))
  const ndjson = (lines: readonly string[]): string => (lines.length ? lines.join('\n') + '\n' : '')
  const files: Record<string, string> = { 'readings.csv': csv.join('\n') + '\n', 'observations.ndjson': ndjson(fhir), 'provenance.ndjson': ndjson(provenance) }
  const validity = keyValidity(meta.attributes)
  const manifest = {
    format: EXPORT_FORMAT,
    createdAt: meta.createdAt,
    cloud: meta.cloud,
    query: { ...meta.query, fromTime: new Date(meta.query.from).toISOString(), toTime: new Date(meta.query.to).toISOString() },
    head: r.head && { height: r.head.height, hash: r.head.hash, time: new Date(r.head.header.time).toISOString(), signingKey: Buffer.from(r.head.signingKey).toString('hex') },
    verified: {
      records: r.streams.reduce((n, s) => n + s.records.length + s.tombstones.length, 0),
      blocks: r.batches.length,
      streams: r.streams.map((s) => ({
        stream: s.span.stream,
        gateway: s.span.gateway,
        device: s.span.device,
        patient: s.span.patient,
        firstSeq: s.span.firstSeq,
        lastSeq: s.span.lastSeq,
        end: s.tail === 'boundary' ? 'a batch sealed after to + lateness' : "the stream's newest batch at the head",
        records: s.records.length + s.tombstones.length,
        deleted: s.tombstones.length,
        matching: s.records.filter((x) => x.matches).length,
        gaps: s.span.gaps,
      })),
      checks: [
        'head header hash and Ed25519 block signature (pinned key)',
        'block headers linked by prev hash from every record block to the head',
        'every record: chameleon opening, content, gateway manifest signature, RFC 9162 inclusion in its block',
        'every stream: all seqs of the span present, each linked to its predecessor, boundary batches',
        'every ciphertext: bytes hash to the CID of its signed manifest (fetched by CID through IPFS)',
        'every opened batch: AEAD under the manifest, batch body = manifest (stream, seq, count, Merkle root)',
        'every corrected or deleted record: its redaction log entry (hash, log link, k valid EIP-712 approvals of the supervisory policy\'s regulators, v2: the requester\'s signature), the new content it names, the new chameleon opening of the unchanged hash',
      ],
    },
    key: { attributes: meta.attributes.filter((a) => !a.startsWith('epoch:')), validity },
    readings,
    notAuthorised: r.batches.filter((b) => b.status === 'not-authorised').map((b) => ({ record: b.recordId, stream: b.manifest.stream, seq: b.manifest.seq, device: b.manifest.device, patient: b.manifest.patient, from: new Date(b.manifest.from).toISOString(), to: new Date(b.manifest.to).toISOString(), policy: b.manifest.policy })),
    warnings: r.warnings,
    // Supervision: the corrected batches (read in corrected form) with their redaction log
    // entries, and the deleted ones (tombstones: their place in the stream, no readings).
    redactions: corrections(r.batches).map((c) => ({ ...c, entry: r.batches.find((b) => b.recordId === c.record)!.redaction!.entry })),
    tombstones: deletions(r.tombstones, r.streams).map((d) => ({ ...d, entry: r.tombstones.find((t) => t.id === d.record)!.redaction.entry })),
    files: {} as Record<string, { sha256: string; bytes: number }>,
  }
  for (const [name, text] of Object.entries(files)) manifest.files[name] = { sha256: sha256(text), bytes: Buffer.byteLength(text) }
  return { ...files, 'manifest.json': JSON.stringify(manifest, null, 2) + '\n' }
}

/** A progress bar on stderr (only on a terminal, unless --progress). */
function progressBar(enabled: boolean): ((p: Progress) => void) & { stop(): void } {
  const bar = new cliProgress.SingleBar({ format: '{stage} [{bar}] {value}/{total}', stream: process.stderr, noTTYOutput: enabled, notTTYSchedule: 1000, hideCursor: true }, cliProgress.Presets.shades_classic)
  let stage = ''
  const f = (p: Progress): void => {
    if (!enabled && !process.stderr.isTTY) return
    if (p.stage !== stage) {
      if (stage) bar.stop()
      stage = p.stage
      bar.start(p.total, p.done, { stage: p.stage.padEnd(8) })
    } else bar.update(p.done)
  }
  return Object.assign(f, { stop: () => stage && bar.stop() })
}

export async function runExport(o: ExportOptions): Promise<void> {
  const now = Date.now()
  const types = o.type.split(',').map((t) => t.trim())
  for (const t of types) if (!(VITAL_TYPES as string[]).includes(t)) throw new CareLedgerError('INVALID_ARGUMENT', `--type: ${t} is not one of ${VITAL_TYPES.join(', ')}`, { field: 'type' })
  const out = resolve(o.out)
  if (existsSync(out) && !o.force) throw new CareLedgerError('INVALID_ARGUMENT', `${out} exists; choose a new directory (or --force to replace it)`, { path: out })
  await unlockPseudonymKey(o.patient ?? undefined, o.pseudonymKey)
  const query: EvidenceQuery = { patient: o.patient ? resolvePatient(o.patient, o.pseudonymKey) : null, types: types as VitalType[], ...timeRange(o, now) }
  const session = await openSession(o, now)
  const bar = progressBar(o.progress ?? false)
  let r: Retrieval
  try {
    r = await retrieve({ query, evidence: session.api, blocks: session.blocks, trust: session.trust, decryptor: session.decryptor, ...(session.work ? { work: session.work } : {}), allowGaps: o.allowGaps ?? false, onProgress: bar })
  } catch (e) {
    bar.stop()
    if (e instanceof RetrievalError) {
      process.stderr.write(`export FAILED: nothing was written. The cloud's answer does not verify:\n${e.failures.map((f) => `  ${f.kind.padEnd(11)} ${f.message}`).join('\n')}\n`)
      process.exitCode = 1
      return
    }
    throw e
  } finally {
    bar.stop()
    await session.blocks.stop()
    await session.work?.close()
  }
  const files = exportFiles(r, { cloud: o.cloud ?? process.env.CARELEDGER_CLOUD_URL ?? '', query, attributes: session.decryptor.attributes, createdAt: new Date(now).toISOString() })
  // Write everything next to the target, then move it into place in one rename.
  mkdirSync(dirname(out), { recursive: true })
  const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}`)
  rmSync(tmp, { recursive: true, force: true })
  mkdirSync(tmp, { mode: 0o700 })
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(tmp, name), text, { mode: 0o600 })
    if (existsSync(out)) rmSync(out, { recursive: true })
    renameSync(tmp, out)
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true })
    throw e
  }
  const m = JSON.parse(files['manifest.json']!) as { readings: number; verified: { records: number; blocks: number; streams: unknown[] }; notAuthorised: unknown[]; redactions: unknown[]; tombstones: unknown[] }
  const per = r.decryptions > 0 ? (r.timings.decrypt ?? 0) / r.decryptions : 0
  process.stderr.write(
    `exported ${m.readings} readings from ${m.verified.blocks} ciphertexts of ${m.verified.streams.length} streams to ${out} (${m.verified.records} records verified; ${m.redactions.length} corrected, ${m.tombstones.length} deleted by verified redactions; ${m.notAuthorised.length} batches the key may not open; decryption ${per.toFixed(1)} ms a batch)\n`,
  )
}
