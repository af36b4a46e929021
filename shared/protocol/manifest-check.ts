/**
 * The batch manifest schema (manifest.ts ManifestSchema, docs/protocol.md §Batch manifest) as
 * straight-line code: the fast path of parseManifest. `chain verify` checks every record's
 * manifest, and zod's parse (~10–20 µs with its copy and its garbage) was a tenth of a record's
 * cost (docs/operations.md §Capacity).
 *
 * It only ever says "valid, and here is the parsed copy" or "ask zod": parseManifest runs the zod
 * schema whenever this returns null, so every error — its code, reason and problems — is zod's,
 * and a fault here can cost time but never admit what zod refuses, as long as a non-null answer
 * implies zod's success with the same output. test/protocol/manifest-check.test.ts checks exactly
 * that (and that both agree on the verdict) on random valid and mutated manifests.
 *
 * Zod semantics mirrored: any non-null, non-array object (class instances and null-prototype
 * objects too); each declared key read as `value[key]` (inherited properties included); every
 * enumerable string key, own or inherited, must be declared (`for … in`, what strictObject walks);
 * numbers finite safe integers within the bounds; strings primitive; the output a fresh object
 * with the keys in the schema's order and a fresh `types` array.
 */
import type { BatchManifest } from './manifest.ts'
import { VITAL_TYPES } from '../schema/vitals.ts'
import { DEVICE_ID } from '../schema/device.ts'

const MANIFEST_VERSION = 1
const MAX_BATCH_READINGS = 100_000
const MAX_EPOCH_MS = 8.64e15
const MAX_POLICY = 8192

const HEX16 = /^[0-9a-f]{16}$/
const HEX32 = /^[0-9a-f]{32}$/
const HEX64 = /^[0-9a-f]{64}$/
const PATIENT = /^p-[0-9a-f]{24}$/
const CID = /^b[a-z2-7]{20,120}$/
const KEYS = new Set(['v', 'gateway', 'stream', 'device', 'patient', 'seq', 'prev', 'from', 'to', 'count', 'types', 'merkleRoot', 'authority', 'policy', 'sealedAt', 'cid', 'size'])
const TYPES = new Set<string>(VITAL_TYPES)

const int = (x: unknown, min: number, max: number): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= min && x <= max
const epochMs = (x: unknown): x is number => int(x, 0, MAX_EPOCH_MS)
const str = (x: unknown, re: RegExp): x is string => typeof x === 'string' && re.test(x)

/** Sorted, unique, known vital types, at least one: a fresh copy, or null. */
function vitalTypes(x: unknown): string[] | null {
  if (!Array.isArray(x) || x.length === 0) return null
  const out: string[] = new Array(x.length)
  for (let i = 0; i < x.length; i++) {
    const t: unknown = x[i]
    if (typeof t !== 'string' || !TYPES.has(t) || (i > 0 && !(out[i - 1]! < t))) return null
    out[i] = t
  }
  return out
}

/** The manifest as ManifestSchema.parse would return it, or null: then zod decides (and words the error). */
export function manifestFastCheck(value: unknown): BatchManifest | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null
  for (const key in value) if (!KEYS.has(key)) return null
  const m = value as Record<string, unknown>
  const { v, gateway, stream, device, patient, seq, prev, from, to, count, merkleRoot, authority, policy, sealedAt, cid, size } = m
  if (v !== MANIFEST_VERSION) return null
  if (!str(gateway, HEX16) || !str(stream, HEX32) || !str(device, DEVICE_ID) || !str(patient, PATIENT)) return null
  if (!int(seq, 0, Number.MAX_SAFE_INTEGER) || !(prev === null || str(prev, HEX64))) return null
  if (!epochMs(from) || !epochMs(to) || !epochMs(sealedAt) || !int(count, 1, MAX_BATCH_READINGS) || !int(size, 1, Number.MAX_SAFE_INTEGER)) return null
  const types = vitalTypes(m.types)
  if (types === null || !str(merkleRoot, HEX64) || !str(authority, HEX32) || !str(cid, CID)) return null
  if (typeof policy !== 'string' || policy.length < 1 || policy.length > MAX_POLICY) return null
  // The schema's refinements: from ≤ to; prev null exactly for seq 0 (types sorted: vitalTypes).
  if (from > to || (seq === 0) !== (prev === null)) return null
  return { v, gateway, stream, device, patient, seq, prev, from, to, count, types, merkleRoot, authority, policy, sealedAt, cid, size } as BatchManifest
}
