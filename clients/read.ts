/**
 * `careledger access read` — a doctor (or a patient with a key for their own pseudonym) reads a
 * patient's readings: clients/retrieve.ts verifies the cloud's evidence, fetches each ciphertext
 * by CID through Helia, checks it, and decrypts (locally, or finishing the cloud's outsourced
 * transformation). Prints a table, or writes JSON or CSV. Batches the key may not open are listed
 * as "not authorised by policy …"; an expired key is refused before anything is fetched. A batch a verified redaction corrected is
 * read in its corrected form (status `amended`, with the redaction log entry's request, reason,
 * approvers and time); a deleted one is listed as `deleted` (a tombstone, no readings).
 */
import { writeFileSync } from 'node:fs'
import { resolvePatient, unlockPseudonymKey } from '../shared/cli/patients.ts'
import { CareLedgerError } from '../shared/errors.ts'
import { VITAL_TYPES, VITALS } from '../shared/schema/vitals.ts'
import { openSession, timeRange, type CommonOptions } from './options.ts'
import { retrieve, type Retrieval } from './retrieve.ts'
import { csvLine } from './tables.ts'
import { approversText, corrections, deletions, redactionLine } from './redaction-output.ts'

export interface ReadOptions extends CommonOptions {
  readonly patient: string
  readonly pseudonymKey?: string
  readonly type?: string
  readonly format: 'table' | 'json' | 'csv'
  readonly out?: string
}

export interface ReadingRow {
  readonly time: string
  readonly ts: number
  readonly type: string
  readonly value: number | null
  readonly unit: string
  readonly device: string
  readonly record: number
  readonly seq: number
  /** `amended`: from a batch a verified redaction corrected (its request id in `redaction`). */
  readonly status: 'final' | 'amended'
  readonly redaction: string | null
}

export function readingRows(r: Retrieval): ReadingRow[] {
  const rows = r.batches.flatMap((b) =>
    b.readings.map((x) => ({ time: new Date(x.ts).toISOString(), ts: x.ts, type: x.type, value: x.value ?? null, unit: x.unit, device: b.manifest.device, record: b.recordId, seq: x.seq, status: b.redaction ? ('amended' as const) : ('final' as const), redaction: b.redaction?.requestId ?? null })),
  )
  return rows.sort((a, b) => a.ts - b.ts || a.device.localeCompare(b.device) || a.seq - b.seq)
}

export const notAuthorised = (r: Retrieval) =>
  r.batches.filter((b) => b.status === 'not-authorised').map((b) => ({ record: b.recordId, device: b.manifest.device, seq: b.manifest.seq, from: new Date(b.manifest.from).toISOString(), to: new Date(b.manifest.to).toISOString(), policy: b.manifest.policy }))

function render(r: Retrieval, o: ReadOptions, patient: string): string {
  const rows = readingRows(r)
  const refused = notAuthorised(r)
  const corrected = corrections(r.batches)
  const deleted = deletions(r.tombstones, r.streams)
  if (o.format === 'json') {
    return JSON.stringify({ patient, head: r.head && { height: r.head.height, hash: r.head.hash }, readings: rows.map(({ ts: _ts, ...x }) => x), notAuthorised: refused, corrected, deleted, warnings: r.warnings }, null, 2) + '\n'
  }
  if (o.format === 'csv') {
    // Deleted batches are not rows (they hold no readings): the JSON and table outputs list them.
    const byRecord = new Map(r.batches.map((b) => [b.recordId, b.redaction]))
    return (
      [
        csvLine(['time', 'type', 'value', 'unit', 'device', 'record', 'reading_seq', 'status', 'redaction_request', 'redaction_reason', 'redaction_approvers', 'redaction_time']),
        ...rows.map((x) => {
          const red = byRecord.get(x.record) ?? null
          return csvLine([x.time, x.type, x.value, x.unit, x.device, x.record, x.seq, x.status, red?.requestId ?? null, red?.reason ?? null, red ? approversText(red) : null, red ? new Date(red.time).toISOString() : null])
        }),
      ].join('\n') + '\n'
    )
  }
  const lines = [`${'time (UTC)'.padEnd(24)}  ${'type'.padEnd(13)}  ${'value'.padStart(8)}  ${'unit'.padEnd(7)}  device`]
  for (const x of rows) lines.push(`${x.time.padEnd(24)}  ${x.type.padEnd(13)}  ${(x.value === null ? 'ecg' : String(x.value)).padStart(8)}  ${x.unit.padEnd(7)}  ${x.device}${x.status === 'amended' ? ' *' : ''}`)
  for (const b of refused) lines.push(`record ${b.record} (${b.device} #${b.seq}, ${b.from} … ${b.to}): not authorised by policy "${b.policy}"`)
  for (const c of corrected) lines.push(redactionLine(c, r.batches.find((b) => b.recordId === c.record)!.manifest.device))
  for (const d of deleted) lines.push(redactionLine(d, d.device))
  for (const w of r.warnings) lines.push(`warning ${w.kind}: ${w.message}`)
  return lines.join('\n') + '\n'
}

/** The action of `careledger access read` (clients/cli.ts). */
export async function runRead(o: ReadOptions): Promise<void> {
  const now = Date.now()
  await unlockPseudonymKey(o.patient, o.pseudonymKey)
  const patient = resolvePatient(o.patient, o.pseudonymKey)
  const types = o.type ? o.type.split(',').map((t) => t.trim()) : null
  for (const t of types ?? []) if (!(t in VITALS)) throw new CareLedgerError('INVALID_ARGUMENT', `--type: ${t} is not one of ${VITAL_TYPES.join(', ')}`, { field: 'type' })
  const query = { patient, types: types as Retrieval['plan']['query']['types'], ...timeRange(o, now) }
  const session = await openSession(o, now)
  try {
    const r = await retrieve({ query, evidence: session.api, blocks: session.blocks, trust: session.trust, decryptor: session.decryptor, ...(session.work ? { work: session.work } : {}), allowGaps: true })
    const text = render(r, o, patient)
    if (o.out) writeFileSync(o.out, text, { mode: 0o600 })
    else process.stdout.write(text)
    const opened = r.batches.filter((b) => b.status === 'opened').length
    const perBatch = r.decryptions > 0 ? (r.timings.decrypt ?? 0) / r.decryptions : 0
    process.stderr.write(
      `${readingRows(r).length} readings from ${opened} of ${r.batches.length} batches (${r.streams.reduce((n, s) => n + s.records.length + s.tombstones.length, 0)} verified records${r.tombstones.length || r.batches.some((b) => b.redaction) ? `, ${r.batches.filter((b) => b.redaction).length} corrected, ${r.tombstones.length} deleted` : ''}, head ${r.head?.height ?? '-'}); ` +
        `decryption here: ${perBatch.toFixed(1)} ms a batch ${session.decryptor.kind === 'outsourced' ? `(outsourced; the cloud's transformation took ${(r.timings.transform ?? 0).toFixed(0)} ms in all)` : '(local, 3 pairings)'}\n`,
    )
  } finally {
    await session.blocks.stop()
    await session.work?.close()
  }
}
