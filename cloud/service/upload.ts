/**
 * Reading upload bodies (docs/api.md §POST /v1/batches, §POST /v1/batches/bulk): canonical CBOR
 * (RFC 8949 §4.2.1), decoded strictly — anything encodeCanonical would not have produced is
 * refused — into `{manifest, signature, car}` items. Pure; errors are INVALID_REQUEST naming the field.
 */
import { decodeCanonical, type CanonicalValue } from '../../shared/encoding/canonical.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { SIGNATURE_BYTES } from '../../shared/crypto/sign.ts'
import { ApiError } from './errors.ts'

export interface Upload {
  /** Unvalidated: checkManifest judges it. */
  readonly manifest: unknown
  readonly signature: Uint8Array
  readonly car: Uint8Array
}

const isMap = (v: unknown): v is Record<string, CanonicalValue> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)

function bad(field: string, message: string): ApiError {
  return new ApiError('INVALID_REQUEST', `${field}: ${message}`, { field })
}

/** The body as canonical CBOR. */
export function decodeBody(body: Uint8Array): CanonicalValue {
  if (body.length === 0) throw bad('body', 'empty; expected canonical CBOR')
  try {
    return decodeCanonical(body)
  } catch (e) {
    if (!isCareLedgerError(e)) throw e
    throw bad('body', `not canonical CBOR (RFC 8949 §4.2.1): ${e.message.replace(/^canonical CBOR: /, '')}`)
  }
}

/** One `{manifest, signature, car}` map; `at` prefixes field names ("batches[3]"). */
export function readUpload(value: unknown, at = ''): Upload {
  const field = (f: string): string => (at ? `${at}.${f}` : f)
  if (!isMap(value)) throw bad(at || 'body', 'expected a map {manifest, signature, car}')
  const extra = Object.keys(value).filter((k) => k !== 'manifest' && k !== 'signature' && k !== 'car')
  if (extra.length > 0) throw bad(field(extra[0]!), 'unexpected field (a batch is {manifest, signature, car})')
  const { manifest, signature, car } = value
  if (manifest === undefined) throw bad(field('manifest'), 'missing')
  if (!isMap(manifest)) throw bad(field('manifest'), 'expected a map (the batch manifest)')
  if (!(signature instanceof Uint8Array)) throw bad(field('signature'), signature === undefined ? 'missing' : 'expected a byte string')
  if (signature.length !== SIGNATURE_BYTES) throw bad(field('signature'), `expected ${SIGNATURE_BYTES} bytes, got ${signature.length}`)
  if (!(car instanceof Uint8Array)) throw bad(field('car'), car === undefined ? 'missing' : 'expected a byte string (CARv1 bytes)')
  if (car.length === 0) throw bad(field('car'), 'empty')
  return { manifest, signature, car }
}

/** `{"batches": [...]}`: the raw items, each judged on its own by readUpload. */
export function readBulk(value: CanonicalValue, maxBatches: number): readonly unknown[] {
  if (!isMap(value)) throw bad('body', 'expected a map {batches: [...]}')
  const extra = Object.keys(value).filter((k) => k !== 'batches')
  if (extra.length > 0) throw bad(extra[0]!, 'unexpected field (the bulk body is {batches: [...]})')
  const { batches } = value
  if (!Array.isArray(batches)) throw bad('batches', batches === undefined ? 'missing' : 'expected an array')
  if (batches.length === 0) throw bad('batches', 'empty')
  if (batches.length > maxBatches) throw bad('batches', `${batches.length} batches; at most ${maxBatches} per request`)
  return batches
}
