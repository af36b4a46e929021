/**
 * The batch body's known answers, both versions (issue 8, item 8): v2 holds every number exactly
 * as the device sent it; v1 bodies (ECG samples rounded to binary32 by older gateways) stay readable.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { decodeBatchBody, readingsTree, sealBody } from '../../shared/protocol/batch.ts'
import { validatePayload } from '../../shared/schema/reading.ts'
import { BATCH_KAT_READINGS, BATCH_KAT_SEQ, BATCH_KAT_STREAM, computeBatchVectors } from '../vectors/batch.ts'

const committed = JSON.parse(readFileSync(new URL('../vectors/batch.json', import.meta.url), 'utf8')) as Record<'v1' | 'v2', { body: string; merkleRoot: string }>
const bytes = (hex: string) => Uint8Array.from(Buffer.from(hex, 'hex'))
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

describe('batch body known-answer vectors', () => {
  it('v2: sealing the fixed readings gives the committed body and Merkle root byte for byte', () => {
    expect(computeBatchVectors()).toEqual({ body: committed.v2.body, merkleRoot: committed.v2.merkleRoot })
  })

  it('v2: decodes to exactly the numbers the device sent (no binary32 rounding)', () => {
    const body = decodeBatchBody(bytes(committed.v2.body))
    expect(body).toMatchObject({ v: 2, stream: BATCH_KAT_STREAM, seq: BATCH_KAT_SEQ })
    const ecg = body.readings.find((r) => r.type === 'ecg')!
    expect(ecg.samples).toEqual([-0.58918, 0.012, 0.1, 0, 1.5, 19.999999999999996, -20])
    expect(ecg.samples![0]).not.toBe(Math.fround(-0.58918))
    expect(hex(readingsTree(body.readings).root)).toBe(committed.v2.merkleRoot)
  })

  it('v1 (frozen): still decodes, with the samples rounded to binary32 as they were sealed', () => {
    const body = decodeBatchBody(bytes(committed.v1.body))
    expect(body.v).toBe(1)
    const ecg = body.readings.find((r) => r.type === 'ecg')!
    expect(ecg.samples).toEqual(BATCH_KAT_READINGS[2]!.samples!.map((x) => Math.fround(x) + 0)) // canonical CBOR writes -0 as 0
    expect(ecg.samples![0]).toBe(-0.5891799926757812)
    expect(hex(readingsTree(body.readings).root)).toBe(committed.v1.merkleRoot)
    expect(body.readings.find((r) => r.type === 'body_temp')!.value).toBe(36.9) // scalars were never rounded
  })

  it('a device recomputes its own leaves from the JSON it published', () => {
    const json = '{"seq":43,"ts":1795600799000,"type":"ecg","unit":"mV","hz":250,"samples":[-0.58918,0.012,0.1,-0,1.5,19.999999999999996,-20]}'
    const [reading] = validatePayload(Buffer.from(json), { now: 1795600800124 }).accepted
    const { root } = sealBody(BATCH_KAT_STREAM, BATCH_KAT_SEQ, [BATCH_KAT_READINGS[0]!, BATCH_KAT_READINGS[1]!, { ...reading!, rx: 1795600800124 }])
    expect(hex(root)).toBe(committed.v2.merkleRoot)
  })
})
