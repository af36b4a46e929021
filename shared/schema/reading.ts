/**
 * Validation of what a device publishes on careledger/v1/devices/{deviceId}/readings
 * (docs/protocol.md §Payload). Pure: bytes and a clock in, accepted readings and named rejections
 * out. Shape is checked with zod; meaning (units, limits, clock) by the small rules below.
 *
 * A payload is one reading object or an array of them. A malformed payload as a whole yields one
 * rejection with seq null; inside an array each reading is judged on its own.
 */
import { z } from 'zod'
import { checkJsonText } from './json-text.ts'
import { parseRfc3339 } from './timestamp.ts'
import { ECG_LIMITS, VITALS, VITAL_TYPES, type VitalType } from './vitals.ts'

/** A reading as the gateway stores it: timestamp normalised to epoch milliseconds. */
export interface Reading {
  readonly seq: number
  readonly ts: number
  readonly type: VitalType
  readonly unit: string
  /** Scalar vitals. */
  readonly value?: number
  /** ECG chunk. */
  readonly samples?: readonly number[]
  readonly hz?: number
}

export type RejectionCode =
  | 'PAYLOAD_TOO_LARGE'
  | 'MALFORMED_JSON'
  | 'TOO_MANY_READINGS'
  | 'SCHEMA'
  | 'UNKNOWN_TYPE'
  | 'WRONG_UNIT'
  | 'IMPLAUSIBLE_VALUE'
  | 'BAD_TIMESTAMP'
  | 'FUTURE_TIMESTAMP'

export interface Rejection {
  /** The reading's seq when it could be read, else null. */
  readonly seq: number | null
  readonly code: RejectionCode
  readonly message: string
  /** The offending reading (or a prefix of the payload), for the quarantine table. */
  readonly raw: string
}

export interface ValidationOptions {
  /** Gateway clock, epoch ms. */
  readonly now: number
  /** Largest payload accepted, bytes (default 256 KiB). */
  readonly maxBytes?: number
  /** Most readings in one array (default 1000). */
  readonly maxReadings?: number
  /** How far ahead of the gateway clock a timestamp may be, ms (default 5 min: clock skew). */
  readonly maxFutureMs?: number
}

export const VALIDATION_DEFAULTS = { maxBytes: 256 * 1024, maxReadings: 1000, maxFutureMs: 5 * 60_000 } as const
/** Earliest timestamp accepted: a device clock reading 1970 is unset, not a reading from then. */
export const EARLIEST_TS = Date.UTC(2000, 0, 1)

const ReadingShape = z.strictObject({
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  ts: z.union([z.string().max(40), z.number().int()]),
  type: z.string().max(32),
  unit: z.string().max(16),
  value: z.number().optional(),
  samples: z.array(z.number()).max(ECG_LIMITS.maxSamples).optional(),
  hz: z.number().optional(),
})

const describeIssue = (issue: z.core.$ZodIssue): string => {
  const path = issue.path.length ? issue.path.join('.') : 'reading'
  return `${path}: ${issue.message}`
}

function parseTimestamp(ts: string | number): { ms: number } | { problem: string } {
  if (typeof ts === 'number') return Number.isSafeInteger(ts) ? { ms: ts } : { problem: 'is not a safe integer of epoch milliseconds' }
  return parseRfc3339(ts)
}

const clip = (s: string, n = 2048): string => (s.length > n ? `${s.slice(0, n)}…` : s)

/** A rejected value as text for the quarantine; never throws (depth is bounded before parsing, this is the belt). */
function rawOf(value: unknown): string {
  try {
    return clip(JSON.stringify(value) ?? String(value))
  } catch {
    return '(unprintable)'
  }
}

/** Judge one already-parsed JSON value as a reading. */
export function validateReading(value: unknown, opts: ValidationOptions): Reading | Rejection {
  const seqOf = (v: unknown): number | null => {
    const s = (v as { seq?: unknown } | null)?.seq
    return typeof s === 'number' && Number.isSafeInteger(s) && s >= 0 ? s : null
  }
  const reject = (code: RejectionCode, message: string): Rejection => ({ seq: seqOf(value), code, message, raw: rawOf(value) })

  const shape = ReadingShape.safeParse(value)
  if (!shape.success) return reject('SCHEMA', shape.error.issues.slice(0, 3).map(describeIssue).join('; '))
  const r = shape.data
  if (!(VITAL_TYPES as string[]).includes(r.type)) return reject('UNKNOWN_TYPE', `type "${r.type}" is not one of ${VITAL_TYPES.join(', ')}`)
  const spec = VITALS[r.type as VitalType]
  if (r.unit !== spec.unit) return reject('WRONG_UNIT', `${r.type} must be sent in "${spec.unit}" (UCUM), not "${r.unit}"`)

  const parsed = parseTimestamp(r.ts)
  if ('problem' in parsed) return reject('BAD_TIMESTAMP', `ts ${JSON.stringify(r.ts)} ${parsed.problem}`)
  const ts = parsed.ms
  if (ts < EARLIEST_TS) return reject('BAD_TIMESTAMP', `ts ${new Date(ts).toISOString()} is before 2000-01-01: the device clock is not set`)
  const maxFuture = opts.maxFutureMs ?? VALIDATION_DEFAULTS.maxFutureMs
  if (ts > opts.now + maxFuture) {
    return reject('FUTURE_TIMESTAMP', `ts ${new Date(ts).toISOString()} is ${Math.round((ts - opts.now) / 1000)} s ahead of the gateway clock (limit ${maxFuture / 1000} s)`)
  }

  if (spec.type === 'ecg') {
    if (r.value !== undefined) return reject('SCHEMA', 'ecg carries "samples" and "hz", not "value"')
    if (!r.samples || r.samples.length === 0) return reject('SCHEMA', 'ecg needs a non-empty "samples" array')
    if (r.hz === undefined) return reject('SCHEMA', 'ecg needs "hz", the sampling rate in Hz')
    if (!Number.isFinite(r.hz) || r.hz < ECG_LIMITS.minHz || r.hz > ECG_LIMITS.maxHz) {
      return reject('IMPLAUSIBLE_VALUE', `ecg hz must be between ${ECG_LIMITS.minHz} and ${ECG_LIMITS.maxHz}, got ${r.hz}`)
    }
    const bad = r.samples.findIndex((s) => !Number.isFinite(s) || s < spec.min || s > spec.max)
    if (bad >= 0) return reject('IMPLAUSIBLE_VALUE', `ecg sample ${bad} = ${r.samples[bad]} mV is outside [${spec.min}, ${spec.max}] mV`)
    return { seq: r.seq, ts, type: 'ecg', unit: spec.unit, samples: r.samples.map(noNegativeZero), hz: r.hz }
  }
  if (r.samples !== undefined || r.hz !== undefined) return reject('SCHEMA', `${r.type} carries "value", not "samples"/"hz"`)
  if (r.value === undefined) return reject('SCHEMA', `${r.type} needs a numeric "value"`)
  if (!Number.isFinite(r.value) || r.value < spec.min || r.value > spec.max) {
    return reject('IMPLAUSIBLE_VALUE', `${r.type} ${r.value} ${spec.unit} is outside the physiological range [${spec.min}, ${spec.max}]`)
  }
  return { seq: r.seq, ts, type: spec.type, unit: spec.unit, value: noNegativeZero(r.value) }
}

/**
 * Numbers are IEEE 754 binary64, exactly as JSON.parse reads them (docs/protocol.md §Numbers); -0
 * is read as 0, the number canonical CBOR writes for both (RFC 8949 §4.2.2 preferred serialization
 * of an integral value), so a resend of "-0" matches a stored 0.
 */
const noNegativeZero = (x: number): number => x + 0

export const isRejection = (x: Reading | Rejection): x is Rejection => 'code' in x

export interface PayloadVerdict {
  readonly accepted: Reading[]
  readonly rejected: Rejection[]
}

/**
 * Strict UTF-8 (RFC 3629): an invalid sequence is an error, not U+FFFD; a byte order mark is kept,
 * so JSON.parse refuses it (RFC 8259 §8.1: senders MUST NOT add one), and one value has one encoding.
 */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Judge a whole MQTT payload. Never throws: whatever a device sends ends as accepted readings or rejections. */
export function validatePayload(payload: Uint8Array, opts: ValidationOptions): PayloadVerdict {
  const maxBytes = opts.maxBytes ?? VALIDATION_DEFAULTS.maxBytes
  const whole = (code: RejectionCode, message: string, raw: string): PayloadVerdict => ({ accepted: [], rejected: [{ seq: null, code, message, raw }] })
  if (payload.length > maxBytes) {
    return whole('PAYLOAD_TOO_LARGE', `payload of ${payload.length} bytes exceeds the limit of ${maxBytes}`, `(${payload.length} bytes)`)
  }
  let text: string
  try {
    text = UTF8.decode(payload)
  } catch {
    const at = firstInvalidUtf8(payload)
    return whole('MALFORMED_JSON', `payload is not valid UTF-8 JSON: invalid UTF-8 at byte ${at}`, clip(Buffer.from(payload).toString('latin1'), 512))
  }
  const problems = checkJsonText(text)
  const depth = problems.find((p) => p.reason === 'DEPTH' || p.item === null)
  if (depth) return whole('SCHEMA', depth.message, clip(text, 512))
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    return whole('MALFORMED_JSON', `payload is not valid UTF-8 JSON: ${(e as Error).message}`, clip(text, 512))
  }
  const items = Array.isArray(json) ? json : [json]
  const maxReadings = opts.maxReadings ?? VALIDATION_DEFAULTS.maxReadings
  if (items.length === 0) return whole('SCHEMA', 'payload is an empty array', '[]')
  if (items.length > maxReadings) {
    return whole('TOO_MANY_READINGS', `payload holds ${items.length} readings; at most ${maxReadings} per message`, clip(text, 512))
  }
  const repeated = problems.length === 0 ? null : new Map(problems.map((p) => [p.item, p.message]))
  const accepted: Reading[] = []
  const rejected: Rejection[] = []
  items.forEach((item, i) => {
    const dup = repeated?.get(i)
    // The seq itself may be the repeated name: which one the device meant is unknown.
    if (dup !== undefined) return rejected.push({ seq: null, code: 'SCHEMA', message: `reading ${i}: ${dup}`, raw: rawOf(item) })
    let verdict: Reading | Rejection
    try {
      verdict = validateReading(item, opts)
    } catch (e) {
      // A bug in a rule must cost this reading (kept in quarantine), never the process.
      verdict = { seq: null, code: 'SCHEMA', message: `reading ${i} could not be judged: ${(e as Error)?.message ?? String(e)}`, raw: rawOf(item) }
    }
    if (isRejection(verdict)) rejected.push(verdict)
    else accepted.push(verdict)
  })
  return { accepted, rejected }
}

/** Offset of the first byte that breaks UTF-8, for the error message. */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let lo = 0
  let hi = bytes.length
  // The longest valid prefix, by bisection on the fatal decoder (a prefix may end mid-sequence: stream mode).
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid), { stream: true })
      lo = mid
    } catch {
      hi = mid - 1
    }
  }
  return lo
}
