/**
 * OutsourcedFinisher (clients/decrypt.ts): batches of one stream and epoch share an encapsulation
 * (envelope format 2), so one Finish serves them all — and a transformed ciphertext is still
 * refused for an envelope whose header it was not computed for, whether K is kept or not.
 */
import { describe, expect, it } from 'vitest'
import { makeTransformKey } from '../../shared/crypto/abe/outsource.ts'
import { transformEnvelope, type StreamKem } from '../../shared/crypto/envelope.ts'
import { VITALS } from '../../shared/schema/vitals.ts'
import { finishBatch, LocalOpener, OutsourcedFinisher } from '../../clients/decrypt.ts'
import { currentKey } from '../helpers/authority.ts'
import { sealTestBatch, testAuthoritySecret, testGateway, testStream } from '../helpers/cloud-batches.ts'

const T = Date.UTC(2026, 10, 1)
const readings = (k: number) => Array.from({ length: 3 }, (_, i) => ({ seq: k * 3 + i, ts: T + k * 5000 + i * 1000, rx: T + k * 5000 + i * 1000 + 20, type: 'heart_rate' as const, unit: VITALS.heart_rate.unit, value: 60 + k + i }))

async function sealStream(name: string, n: number) {
  const stream = testStream(testGateway(), name, `P-${name}`, 'role:doctor OR patient:{patient}')
  const out = []
  let prev: string | null = null
  let kem: StreamKem | undefined
  for (let k = 0; k < n; k++) {
    const b = await sealTestBatch(stream, k, prev, { readings: readings(k), now: T + k * 5000 + 4000, ...(kem ? { kem } : {}) })
    prev = b.commitment
    kem = b.kem
    out.push({ e: b.envelope, m: b.manifest })
  }
  return out
}

describe('OutsourcedFinisher', () => {
  it('opens every batch of a stream with one Finish, as finishBatch and local decryption do; refuses a transformation for another header', async () => {
    const key = currentKey(testAuthoritySecret(), ['role:doctor'], T)
    const { transformKey, retrievalKey } = makeTransformKey(key)
    const a = await sealStream('a', 3)
    const b = await sealStream('b', 1)
    const ta = a.map((x) => transformEnvelope(transformKey, x.e))
    const tb = transformEnvelope(transformKey, b[0]!.e)
    expect(new Set(ta.map((t) => Buffer.from(t).toString('hex'))).size).toBe(1) // one header for the stream
    const finisher = new OutsourcedFinisher(retrievalKey)
    const local = new LocalOpener(key)
    a.forEach((x, i) => {
      const body = finisher.open(x.e, ta[i]!, x.m)
      expect(body).toEqual(finishBatch(retrievalKey, x.e, ta[i]!, x.m))
      expect(body.readings).toEqual(local.open(x.e, x.m).readings)
    })
    // A kept K is not a pass: stream a's transformation does not open stream b's envelope, nor the other way round.
    expect(() => finisher.open(b[0]!.e, ta[0]!, b[0]!.m)).toThrow(/computed for a different envelope/)
    expect(() => new OutsourcedFinisher(retrievalKey).open(a[0]!.e, tb, a[0]!.m)).toThrow(/computed for a different envelope/)
    expect(finisher.open(b[0]!.e, tb, b[0]!.m).readings).toEqual(local.open(b[0]!.e, b[0]!.m).readings)
  })
})
