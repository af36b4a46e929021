/**
 * cloud/chain/content-slice.ts: the manifest bytes cut out of canonical record content are
 * exactly encodeCanonical(manifest), for every size of every field before and after it (each
 * CBOR head length), both record versions; anything else gives null, never wrong bytes.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeCanonical, encodeCanonical } from '../../shared/encoding/canonical.ts'
import { manifestBytesOf, type ContentFields } from '../../cloud/chain/content-slice.ts'
import { encodeRecordContent } from '../../cloud/chain/record.ts'
import { testFleet } from './chain-helpers.ts'

const fleet = testFleet(2, 3, 'content slice')
const sizes = fc.oneof(fc.constantFrom(0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER), fc.nat())

describe('manifestBytesOf', () => {
  it('equals the manifest encoded anew (property: ids, seqs, receive times and versions of every head length)', () => {
    fc.assert(
      fc.property(fc.nat({ max: fleet.length - 1 }), fc.nat({ max: 3 }), sizes, sizes, fc.constantFrom(1, 2) as fc.Arbitrary<1 | 2>, (k, seq, id, receivedAt, version) => {
        const b = fleet[k]!.batch(seq, { prev: null, variant: 1 })
        const bytes = encodeRecordContent({ id: Math.max(1, id), stream: b.manifest.stream, seq: b.manifest.seq, gateway: b.manifest.gateway, gatewayKey: b.gatewayKey, manifest: b.manifest, signature: b.signature, receivedAt }, version)
        const fields = decodeCanonical(bytes) as unknown as ContentFields & { manifest: unknown }
        expect(Buffer.from(manifestBytesOf(bytes, fields)!).equals(Buffer.from(encodeCanonical(fields.manifest)))).toBe(true)
      }),
      { numRuns: 300 },
    )
  })

  it('gives null when the fields do not describe the bytes', () => {
    const b = fleet[0]!.batch(0)
    const f = { id: 7, stream: b.manifest.stream, seq: 0, gateway: b.manifest.gateway, gatewayKey: b.gatewayKey, manifest: b.manifest, signature: b.signature, receivedAt: 1_760_000_000_000 }
    const bytes = encodeRecordContent(f)
    const fields = decodeCanonical(bytes) as unknown as ContentFields
    expect(manifestBytesOf(bytes, { ...fields, id: 70_000 })).toBeNull()
    expect(manifestBytesOf(bytes, { ...fields, receivedAt: 5 })).toBeNull()
    expect(manifestBytesOf(bytes.subarray(0, bytes.length - 1), fields)).toBeNull()
  })
})
