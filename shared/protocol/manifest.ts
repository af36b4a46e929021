/**
 * The batch manifest: what a gateway says about one sealed batch, signed with its Ed25519 key and
 * committed on the cloud's chain. It carries no plaintext reading and no raw patient id — only the
 * patient pseudonym (pseudonym.ts). docs/protocol.md §Batch manifest is the normative description.
 *
 *   commitment(m)  = SHA-256("careledger/v1/batch-manifest" ‖ 0x00 ‖ canonical(m))   — the stream link
 *   signature(m)   = Ed25519(gateway key, domain "batch-manifest", canonical(m))
 *   aad(m)         = canonical(m without cid, size) — bound into the envelope's AEAD, because the
 *                    CID and size are only known after sealing
 */
import { z } from 'zod'
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../errors.ts'
import { canonicalDigest, encodeCanonical } from '../encoding/canonical.ts'
import { sign, verify } from '../crypto/sign.ts'
import { DEVICE_ID } from '../schema/device.ts'
import { VITAL_TYPES } from '../schema/vitals.ts'
import { manifestFastCheck } from './manifest-check.ts'

export const MANIFEST_VERSION = 1
export const MANIFEST_DOMAIN = 'batch-manifest'
/** Largest batch a manifest may describe. */
export const MAX_BATCH_READINGS = 100_000

const hex = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `must be ${bytes * 2} lower-case hex digits`)
const epochMs = z.number().int().min(0).max(8.64e15)

export const ManifestSchema = z
  .strictObject({
    v: z.literal(MANIFEST_VERSION),
    gateway: hex(8),
    stream: hex(16),
    device: z.string().regex(DEVICE_ID, 'must be a device id'),
    patient: z.string().regex(/^p-[0-9a-f]{24}$/, 'must be a patient pseudonym p-<24 hex>'),
    seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    prev: hex(32).nullable(),
    from: epochMs,
    to: epochMs,
    count: z.number().int().min(1).max(MAX_BATCH_READINGS),
    types: z.array(z.enum(VITAL_TYPES as [string, ...string[]])).min(1),
    merkleRoot: hex(32),
    authority: hex(16),
    policy: z.string().min(1).max(8192),
    sealedAt: epochMs,
    cid: z.string().regex(/^b[a-z2-7]{20,120}$/, 'must be a base32 CIDv1'),
    size: z.number().int().min(1),
  })
  .refine((m) => m.from <= m.to, { message: 'from must not be after to', path: ['from'] })
  .refine((m) => (m.seq === 0) === (m.prev === null), { message: 'prev is null exactly for the first batch of a stream (seq 0)', path: ['prev'] })
  .refine((m) => m.types.every((t, i) => i === 0 || m.types[i - 1]! < t), { message: 'types must be sorted and unique', path: ['types'] })

export type BatchManifest = z.infer<typeof ManifestSchema>

/**
 * Validate an untrusted manifest; INVALID_ENCODING naming the first problems. The hand-written
 * check (manifest-check.ts) answers for valid manifests; zod judges, and words, everything else.
 */
export function parseManifest(value: unknown): BatchManifest {
  const fast = manifestFastCheck(value)
  if (fast !== null) return fast
  const r = ManifestSchema.safeParse(value)
  if (!r.success) {
    const problems = r.error.issues.slice(0, 4).map((i) => `${i.path.join('.') || 'manifest'}: ${i.message}`)
    throw new CareLedgerError('INVALID_ENCODING', `batch manifest: ${problems.join('; ')}`, { what: 'batch manifest', reason: 'SCHEMA', problems })
  }
  return r.data
}

export const manifestBytes = (m: BatchManifest): Uint8Array => encodeCanonical(m)

/** The stream link: hex SHA-256 over the canonical manifest (domain-separated). */
export const manifestCommitment = (m: BatchManifest): string => bytesToHex(canonicalDigest(MANIFEST_DOMAIN, m))

/** Associated data bound into the envelope: every field known before the ciphertext exists. */
export function manifestAad(m: Omit<BatchManifest, 'cid' | 'size'>): Uint8Array {
  const { cid: _cid, size: _size, ...sealed } = m as BatchManifest
  return encodeCanonical(sealed)
}

export const signManifest = (gatewaySecretKey: Uint8Array, m: BatchManifest): Uint8Array => sign(gatewaySecretKey, MANIFEST_DOMAIN, manifestBytes(m))

export const verifyManifest = (gatewayPublicKey: Uint8Array, m: BatchManifest, signature: Uint8Array): boolean =>
  verify(gatewayPublicKey, MANIFEST_DOMAIN, manifestBytes(m), signature)
