/**
 * Binary files of a FROST participant (shared/encoding/binary.ts layout: "CL" 01 kind ‖ scheme 01 ‖ …).
 * All three are SECRET and written 0600 (shared/cli/frost-files.ts).
 *
 *   signing share  kind 16:  k u8 ‖ n u8 ‖ i u8 ‖ s_i[32] ‖ Y[32] ‖ Y_1 … Y_n[32 each]
 *                  the share and the whole public key package, so a regulator's tool can sign, and
 *                  check the policy it is shown, from this one file. Decoding refuses a share that
 *                  does not match its verification share or a package whose shares are inconsistent.
 *   nonces         kind 17:  i u8 ‖ blob(label) ‖ Y[32] ‖ d[32] ‖ e[32]
 *                  round-one nonces for ONE signing session (label: the request they were made for);
 *                  taken (read and deleted) before they are used.
 *   DKG state      kind 18:  Φ[32] ‖ k u8 ‖ n u8 ‖ i u8 ‖ a_0 … a_{k−1}[32 each] ‖ e[32]
 *                  a participant's polynomial between DKG rounds; deleted after round 3.
 *
 * Scalars are 32 bytes little-endian and canonical, points canonical ristretto255 (RFC 9496).
 */
import { bytesToNumberLE } from '@noble/curves/utils.js'
import { CareLedgerError, isCareLedgerError } from '../errors.ts'
import { Kind, Reader, Writer } from '../encoding/binary.ts'
import { checkFrostGroup, checkFrostShare, FROST_ORDER, parsePoint, type FrostGroup, type FrostNonces, type FrostShare } from './frost.ts'
import type { DkgState } from './frost-dkg.ts'

export const SCHEME_FROST_RISTRETTO255 = 1
export const MAX_NONCE_LABEL = 256

function open(bytes: Uint8Array, kind: Kind, what: string): Reader {
  const r = Reader.open(bytes, kind, what)
  const scheme = r.u8()
  if (scheme !== SCHEME_FROST_RISTRETTO255) {
    throw new CareLedgerError('UNSUPPORTED_VERSION', `${what}: scheme ${scheme} is not supported (this build knows 1 = FROST(ristretto255, SHA-512))`, { what, scheme })
  }
  return r
}

function scalar(r: Reader, field: string, allowZero = false): Uint8Array {
  const b = r.take(32).slice()
  const k = bytesToNumberLE(b)
  if (k >= FROST_ORDER || (!allowZero && k === 0n)) r.fail('SCALAR_OUT_OF_RANGE', `${field}: scalar must be in [${allowZero ? 0 : 1}, ℓ)`, { field })
  return b
}

function point(r: Reader, field: string): Uint8Array {
  const b = r.take(32).slice()
  try {
    parsePoint(b, field)
  } catch (e) {
    r.fail(isCareLedgerError(e) ? String(e.info.reason) : 'BAD_POINT', `${field}: ${isCareLedgerError(e) ? e.message : 'invalid point'}`, { field })
  }
  return b
}

/** Re-throw a consistency failure with the file named. */
function consistent<T>(what: string, f: () => T): T {
  try {
    return f()
  } catch (e) {
    if (isCareLedgerError(e)) throw new CareLedgerError(e.code, `${what}: ${e.message}`, { what, ...e.info }, { cause: e })
    throw e
  }
}

// ---- signing share -----------------------------------------------------------------------------

export function encodeFrostShareFile(group: FrostGroup, share: FrostShare): Uint8Array {
  const g = checkFrostGroup(group)
  checkFrostShare(g, share)
  const w = Writer.withPreamble(Kind.FrostSigningShare).u8(SCHEME_FROST_RISTRETTO255).u8(g.threshold).u8(g.participants).u8(share.index)
  w.bytes(share.signingShare).bytes(g.groupKey)
  for (const y of g.verificationShares) w.bytes(y)
  return w.finish()
}

export function decodeFrostShareFile(bytes: Uint8Array): { group: FrostGroup; share: FrostShare } {
  const what = 'FROST signing share'
  const r = open(bytes, Kind.FrostSigningShare, what)
  const threshold = r.u8()
  const participants = r.u8()
  const index = r.u8()
  if (threshold < 2 || threshold > participants) r.fail('BAD_THRESHOLD', `k = ${threshold} of n = ${participants} is not a threshold`, { threshold, participants })
  if (index < 1 || index > participants) r.fail('BAD_INDEX', `participant ${index} is not one of 1..${participants}`, { index })
  const signingShare = scalar(r, 's_i')
  const groupKey = point(r, 'Y')
  const verificationShares = Array.from({ length: participants }, (_, j) => point(r, `Y_${j + 1}`))
  r.end()
  const group = consistent(what, () => checkFrostGroup({ threshold, participants, groupKey, verificationShares }))
  const share = { index, signingShare }
  consistent(what, () => checkFrostShare(group, share))
  return { group, share }
}

// ---- nonces --------------------------------------------------------------------------------------

export interface NonceFile {
  readonly nonces: FrostNonces
  /** What the nonces were made for (the request id): the signer refuses to use them for anything else. */
  readonly label: string
  /** The group key they were made under. */
  readonly groupKey: Uint8Array
}

export function encodeFrostNonceFile(file: NonceFile): Uint8Array {
  const { nonces, label, groupKey } = file
  if (typeof label !== 'string' || label.length === 0 || new TextEncoder().encode(label).length > MAX_NONCE_LABEL) {
    throw new CareLedgerError('INVALID_ARGUMENT', `nonce label must be 1–${MAX_NONCE_LABEL} bytes of text`, { reason: 'BAD_LABEL' })
  }
  if (!Number.isInteger(nonces?.index) || nonces.index < 1 || nonces.index > 255) throw new CareLedgerError('INVALID_ARGUMENT', 'nonces: bad participant index', { reason: 'BAD_INDEX' })
  parsePoint(groupKey, 'group public key')
  for (const [name, b] of [['hiding', nonces.hiding], ['binding', nonces.binding]] as const) {
    if (!(b instanceof Uint8Array) || b.length !== 32 || bytesToNumberLE(b) === 0n || bytesToNumberLE(b) >= FROST_ORDER) {
      throw new CareLedgerError('INVALID_ARGUMENT', `nonces: the ${name} nonce is not a fresh scalar (already used?)`, { reason: 'NONCE_USED' })
    }
  }
  return Writer.withPreamble(Kind.FrostNonces).u8(SCHEME_FROST_RISTRETTO255).u8(nonces.index).string(label).bytes(groupKey).bytes(nonces.hiding).bytes(nonces.binding).finish()
}

export function decodeFrostNonceFile(bytes: Uint8Array): NonceFile {
  const r = open(bytes, Kind.FrostNonces, 'FROST nonces')
  const index = r.u8()
  if (index < 1) r.fail('BAD_INDEX', 'participant 0 does not exist', { index })
  const label = r.string(MAX_NONCE_LABEL)
  const groupKey = point(r, 'Y')
  const hiding = scalar(r, 'd')
  const binding = scalar(r, 'e')
  r.end()
  return { nonces: { index, hiding, binding }, label, groupKey }
}

// ---- DKG state -----------------------------------------------------------------------------------

export function encodeDkgStateFile(state: DkgState): Uint8Array {
  const w = Writer.withPreamble(Kind.FrostDkgState).u8(SCHEME_FROST_RISTRETTO255)
  if (!(state?.ceremony instanceof Uint8Array) || state.ceremony.length !== 32) throw new CareLedgerError('INVALID_ARGUMENT', 'DKG state: the ceremony id must be 32 bytes', { reason: 'BAD_STATE' })
  if (!Array.isArray(state.coefficients) || state.coefficients.length !== state.threshold) throw new CareLedgerError('INVALID_ARGUMENT', 'DKG state: k coefficients expected', { reason: 'BAD_STATE' })
  w.bytes(state.ceremony).u8(state.threshold).u8(state.participants).u8(state.index)
  for (const a of state.coefficients) w.bytes(a)
  return w.bytes(state.encryptionSecret).finish()
}

export function decodeDkgStateFile(bytes: Uint8Array): DkgState {
  const r = open(bytes, Kind.FrostDkgState, 'FROST DKG state')
  const ceremony = r.take(32).slice()
  const threshold = r.u8()
  const participants = r.u8()
  const index = r.u8()
  if (threshold < 2 || threshold > participants) r.fail('BAD_THRESHOLD', `k = ${threshold} of n = ${participants} is not a threshold`, { threshold, participants })
  if (index < 1 || index > participants) r.fail('BAD_INDEX', `participant ${index} is not one of 1..${participants}`, { index })
  const coefficients = Array.from({ length: threshold }, (_, t) => scalar(r, `a_${t}`))
  const encryptionSecret = scalar(r, 'e')
  r.end()
  return { ceremony, threshold, participants, index, coefficients, encryptionSecret }
}
