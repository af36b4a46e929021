/**
 * Known-answer vectors for FABEO + outsourcing + envelope: a deterministic-RNG run whose every
 * output is committed in abe.json and checked byte for byte by test/crypto/kat.test.ts.
 * Regenerate only on a deliberate format change: `npm run kat:regenerate`.
 */
import { decaps, encaps, keyGen, setup } from '../../shared/crypto/abe/fabeo.ts'
import { finish, makeTransformKey, transform } from '../../shared/crypto/abe/outsource.ts'
import * as codec from '../../shared/crypto/abe/codec.ts'
import { gtToBytes } from '../../shared/crypto/abe/gt.ts'
import { encapsulate, sealEnvelope, sealWithKem } from '../../shared/crypto/envelope.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'

export const ABE_KAT_SEED = 'careledger fabeo kat v1'
export const ABE_KAT_POLICY = '(role:doctor AND hospital:h1) OR patient:p-7f3a OR (role:researcher AND 2 of (consent:research, irb:approved, site:h1))'
export const ABE_KAT_ATTRIBUTES = ['role:doctor', 'hospital:h1', 'dept:cardiology']
export const ABE_KAT_PLAINTEXT = '[{"seq":41,"ts":1795600800000,"type":"heart_rate","unit":"/min","value":72}]'
export const ABE_KAT_AAD = 'careledger kat manifest fields'
/** Format-2 envelopes (issue 11): two batches of one stream under one encapsulation. */
export const ABE_KAT_STREAM = 'a3'.repeat(32)
export const ABE_KAT_DIGESTS = ['11'.repeat(32), '22'.repeat(32)] as const

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const utf8 = new TextEncoder()

export function computeAbeVectors(): Record<string, string> {
  const rng = deterministicRng(ABE_KAT_SEED)
  const msk = setup(rng)
  const key = keyGen(msk, ABE_KAT_ATTRIBUTES, rng)
  const { ciphertext, key: kemKey } = encaps(msk.mpk, ABE_KAT_POLICY, rng)
  const decapsulated = decaps(key, ciphertext)
  if (!decapsulated.equals(kemKey)) throw new Error('KAT run: decaps disagrees with encaps')
  const { transformKey, retrievalKey } = makeTransformKey(key, rng)
  const t = transform(transformKey, ciphertext)
  const finished = finish(retrievalKey, t)
  const envelope = sealEnvelope(msk.mpk, ABE_KAT_POLICY, utf8.encode(ABE_KAT_PLAINTEXT), utf8.encode(ABE_KAT_AAD), rng)
  // Format 2, drawn after everything above so the format-1 vectors stay as they were.
  const kem = encapsulate(msk.mpk, ABE_KAT_POLICY, rng)
  const v2 = ABE_KAT_DIGESTS.map((d, seq) =>
    sealWithKem(kem, { stream: ABE_KAT_STREAM, seq, digest: Buffer.from(d, 'hex') }, utf8.encode(ABE_KAT_PLAINTEXT), utf8.encode(ABE_KAT_AAD), rng),
  )
  return {
    masterPublicKey: hex(codec.encodeMasterPublicKey(msk.mpk)),
    masterSecretKey: hex(codec.encodeMasterSecretKey(msk)),
    authority: hex(msk.mpk.id),
    userKey: hex(codec.encodeUserKey(key)),
    ciphertext: hex(codec.encodeCiphertext(ciphertext)),
    kemKey: hex(gtToBytes(kemKey)),
    decapsulatedKey: hex(gtToBytes(decapsulated)),
    transformKey: hex(codec.encodeTransformKey(transformKey)),
    retrievalKey: hex(codec.encodeRetrievalKey(retrievalKey)),
    transformed: hex(gtToBytes(t)),
    finishedKey: hex(gtToBytes(finished)),
    envelope: hex(envelope),
    streamKemKey: hex(gtToBytes(kem.key)),
    envelopeV2Seq0: hex(v2[0]!),
    envelopeV2Seq1: hex(v2[1]!),
  }
}
