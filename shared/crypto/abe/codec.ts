/**
 * Versioned binary encodings of FABEO objects (layout in docs/crypto.md §Encodings):
 *
 *   preamble  "CL" ‖ version 0x01 ‖ kind          (encoding/binary.ts)
 *   scheme    0x01 = FABEO on BLS12-381 with the CARELEDGER-V01 hash-to-curve suite
 *   then the object's fields: compressed points (G1 48 B, G2 96 B), GT 576 B, scalars 32 B,
 *   LEB128-prefixed UTF-8 strings.
 *
 * Decoders check lengths, versions, points (on curve, in the subgroup, not the identity),
 * scalars (in [1, r)), GT membership and canonical forms, and throw only CareLedgerError.
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { CareLedgerError, isCareLedgerError } from '../../errors.ts'
import { Kind, Reader, Writer } from '../../encoding/binary.ts'
import { attributeProblem } from '../policy/attribute.ts'
import { POLICY_LIMITS } from '../policy/parse.ts'
import { compilePolicy, degenerateMasterKey, masterFromAlpha, masterPublicKey, type Ciphertext, type MasterPublicKey, type MasterSecretKey, type UserKey } from './fabeo.ts'
import { G1_BYTES, G2_BYTES, readG1, readG2, readScalar, scalarToBytes } from './groups.ts'
import { GT_BYTES, gtFromBytes, gtToBytes, type GT } from './gt.ts'
import type { RetrievalKey } from './outsource.ts'

export const SCHEME_FABEO_BLS12_381 = 1
const AUTHORITY_BYTES = 16
const MAX_KEY_ATTRIBUTES = 1024

function open(bytes: Uint8Array, kind: Kind, what: string): Reader {
  const r = Reader.open(bytes, kind, what)
  const scheme = r.u8()
  if (scheme !== SCHEME_FABEO_BLS12_381) {
    throw new CareLedgerError('UNSUPPORTED_VERSION', `${what}: scheme ${scheme} is not supported (this build knows 1 = FABEO/BLS12-381)`, {
      what,
      scheme,
    })
  }
  return r
}

const start = (kind: Kind): Writer => Writer.withPreamble(kind).u8(SCHEME_FABEO_BLS12_381)

function readGT(r: Reader, field: string): GT {
  const x = gtFromBytes(r.take(GT_BYTES))
  if (!x) r.fail('NOT_IN_GT', `${field}: not a canonical element of GT`, { field })
  return x
}

// ---- master keys ----------------------------------------------------------------------------

export const encodeMasterPublicKey = (mpk: MasterPublicKey): Uint8Array =>
  start(Kind.MasterPublicKey).bytes(gtToBytes(mpk.eghAlpha)).finish()

/** Refuses the degenerate key e(g,h)^α = 1 (reason DEGENERATE_KEY): every envelope under it would open without a key. */
export function decodeMasterPublicKey(bytes: Uint8Array): MasterPublicKey {
  const r = open(bytes, Kind.MasterPublicKey, 'master public key')
  const eghAlpha = readGT(r, 'e(g,h)^alpha')
  r.end()
  if (eghAlpha.isOne()) {
    const e = degenerateMasterKey()
    r.fail('DEGENERATE_KEY', `e(g,h)^alpha: ${e.message}`, { field: 'e(g,h)^alpha' })
  }
  return masterPublicKey(eghAlpha)
}

export const encodeMasterSecretKey = (msk: MasterSecretKey): Uint8Array =>
  start(Kind.MasterSecretKey).bytes(scalarToBytes(msk.alpha)).finish()

export function decodeMasterSecretKey(bytes: Uint8Array): MasterSecretKey {
  const r = open(bytes, Kind.MasterSecretKey, 'master secret key')
  const alpha = readScalar(r, 'alpha')
  r.end()
  return masterFromAlpha(alpha)
}

// ---- user keys and transformation keys (same layout, different kind) ----------------------

function encodeKey(kind: Kind, key: UserKey): Uint8Array {
  const w = start(kind).bytes(key.authority).bytes(key.k0.toBytes()).bytes(key.k1.toBytes()).uvarint(key.attributes.length)
  key.attributes.forEach((a, i) => w.string(a).bytes(key.kx[i]!.toBytes()))
  return w.finish()
}

function decodeKey(bytes: Uint8Array, kind: Kind, what: string): UserKey {
  const r = open(bytes, kind, what)
  const authority = r.take(AUTHORITY_BYTES).slice()
  const k0 = readG2(r, 'K0')
  const k1 = readG1(r, 'K1')
  const n = r.uvarint(MAX_KEY_ATTRIBUTES)
  if (n === 0) r.fail('EMPTY', 'a key must hold at least one attribute')
  const attributes: string[] = []
  const kx = []
  for (let i = 0; i < n; i++) {
    const a = r.string(256)
    const problem = attributeProblem(a)
    if (problem || a !== a.normalize('NFC').toLowerCase()) r.fail('BAD_ATTRIBUTE', problem ?? `attribute "${a}" is not in canonical form`, { attribute: a })
    if (i > 0 && a <= attributes[i - 1]!) r.fail('UNSORTED_ATTRIBUTES', `attribute "${a}" is out of order or repeated`, { attribute: a })
    attributes.push(a)
    kx.push(readG1(r, `K[${a}]`))
  }
  r.end()
  return { authority, attributes, k0, k1, kx }
}

export const encodeUserKey = (key: UserKey): Uint8Array => encodeKey(Kind.SecretKey, key)
export const decodeUserKey = (bytes: Uint8Array): UserKey => decodeKey(bytes, Kind.SecretKey, 'secret key')
export const encodeTransformKey = (key: UserKey): Uint8Array => encodeKey(Kind.TransformKey, key)
export const decodeTransformKey = (bytes: Uint8Array): UserKey => decodeKey(bytes, Kind.TransformKey, 'transformation key')

export const encodeRetrievalKey = (rk: RetrievalKey): Uint8Array =>
  start(Kind.RetrievalKey).bytes(rk.authority).bytes(scalarToBytes(rk.z)).finish()

export function decodeRetrievalKey(bytes: Uint8Array): RetrievalKey {
  const r = open(bytes, Kind.RetrievalKey, 'retrieval key')
  const authority = r.take(AUTHORITY_BYTES).slice()
  const z = readScalar(r, 'z')
  r.end()
  return { authority, z }
}

// ---- ciphertext header -----------------------------------------------------------------------

export function encodeCiphertext(ct: Ciphertext): Uint8Array {
  const w = start(Kind.Ciphertext).bytes(ct.authority).string(ct.policy).bytes(ct.c0.toBytes()).bytes(ct.c1.toBytes()).uvarint(ct.rows.length)
  for (const row of ct.rows) w.bytes(row.toBytes())
  return w.finish()
}

export function decodeCiphertext(bytes: Uint8Array): Ciphertext {
  const r = open(bytes, Kind.Ciphertext, 'ciphertext')
  const authority = r.take(AUTHORITY_BYTES).slice()
  const policy = r.string(POLICY_LIMITS.maxLength)
  let rowCount: number
  try {
    const compiled = compilePolicy(policy)
    if (compiled.text !== policy) r.fail('NON_CANONICAL_POLICY', `policy "${policy}" is not in canonical form ("${compiled.text}")`)
    rowCount = compiled.lsss.rho.length
  } catch (e) {
    if (isCareLedgerError(e, 'INVALID_ENCODING')) throw e
    const reason = isCareLedgerError(e) ? e.message : String(e)
    return r.fail('BAD_POLICY', `embedded policy is unusable: ${reason}`, { policy })
  }
  const c0 = readG2(r, 'C0')
  const c1 = readG2(r, 'C1')
  const n = r.uvarint(POLICY_LIMITS.maxLeaves)
  if (n !== rowCount) r.fail('ROW_COUNT', `has ${n} rows but its policy has ${rowCount} attributes`)
  const rows = []
  for (let i = 0; i < n; i++) rows.push(readG1(r, `C[${i}]`))
  r.end()
  return { authority, policy, c0, c1, rows }
}

/** Size of an encoded ciphertext header: for capacity planning and the docs. */
export const ciphertextSize = (policyBytes: number, rows: number): number =>
  4 + 1 + AUTHORITY_BYTES + varintSize(policyBytes) + policyBytes + 2 * G2_BYTES + varintSize(rows) + rows * G1_BYTES

const varintSize = (n: number): number => (n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : n < 268435456 ? 4 : 5)

// ---- transformed ciphertext (proxy → user) -------------------------------------------------

export interface TransformedCiphertext {
  /** SHA-256 of the encoded ciphertext header it was computed from. */
  readonly headerDigest: Uint8Array
  readonly t: GT
}

export const digestHeader = (header: Uint8Array): Uint8Array => sha256(header)

export const encodeTransformed = (tc: TransformedCiphertext): Uint8Array =>
  start(Kind.TransformedCiphertext).bytes(tc.headerDigest).bytes(gtToBytes(tc.t)).finish()

/** Decoding checks T is canonical and in GT (see outsource.ts for why). */
export function decodeTransformed(bytes: Uint8Array): TransformedCiphertext {
  const r = open(bytes, Kind.TransformedCiphertext, 'transformed ciphertext')
  const headerDigest = r.take(32).slice()
  const t = readGT(r, 'T')
  r.end()
  if (t.isOne()) r.fail('DEGENERATE', 'T: is 1, which no honest proxy returns (it would mean s0 = 0)', { field: 'T' })
  return { headerDigest, t }
}
