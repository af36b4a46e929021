import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { computeAbeVectors, ABE_KAT_AAD, ABE_KAT_ATTRIBUTES, ABE_KAT_PLAINTEXT } from '../vectors/abe.ts'
import { decodeUserKey } from '../../shared/crypto/abe/codec.ts'
import { openEnvelope } from '../../shared/crypto/envelope.ts'

const committed = JSON.parse(readFileSync(new URL('../vectors/abe.json', import.meta.url), 'utf8')) as Record<string, string>

describe('known-answer vectors (FABEO, outsourcing, envelope)', () => {
  const fresh = computeAbeVectors()

  it.each(Object.keys(committed))('%s matches the committed vector byte for byte', (name) => {
    expect(fresh[name]).toBe(committed[name])
  })

  it('the committed vectors are self-consistent', () => {
    expect(committed.decapsulatedKey).toBe(committed.kemKey)
    expect(committed.finishedKey).toBe(committed.kemKey)
    const key = decodeUserKey(Buffer.from(committed.userKey!, 'hex'))
    expect([...key.attributes]).toEqual([...ABE_KAT_ATTRIBUTES].sort())
    const opened = openEnvelope(key, Buffer.from(committed.envelope!, 'hex'), new TextEncoder().encode(ABE_KAT_AAD))
    expect(new TextDecoder().decode(opened)).toBe(ABE_KAT_PLAINTEXT)
    // format 2: both batches of the stream open with the same key, under the same header
    for (const name of ['envelopeV2Seq0', 'envelopeV2Seq1']) {
      const v2 = Buffer.from(committed[name]!, 'hex')
      expect(v2[2], name).toBe(2)
      expect(new TextDecoder().decode(openEnvelope(key, v2, new TextEncoder().encode(ABE_KAT_AAD)))).toBe(ABE_KAT_PLAINTEXT)
    }
  })
})
