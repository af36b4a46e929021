/**
 * From measurements to the wire format of docs/protocol.md §Payload: give each observation its
 * seq, write ts as RFC 3339 UTC, and (with --fault-rate) spoil a few on purpose. Pure.
 */
import type { DeviceReading } from '../sdk/client.ts'
import { maybeFault, type FaultKind } from './faults.ts'
import type { Observation } from './physiology.ts'
import type { Random } from './prng.ts'

export function toReading(o: Observation, seq: number): DeviceReading {
  const ts = new Date(o.ts).toISOString()
  return o.type === 'ecg'
    ? { seq, ts, type: o.type, samples: o.samples!, hz: o.hz!, unit: o.unit }
    : { seq, ts, type: o.type, value: o.value!, unit: o.unit }
}

/** One tick's message: consecutive seqs from `firstSeq`, faults injected with probability `faultRate`. */
export function tickReadings(observations: readonly Observation[], firstSeq: number, faultRate: number, rand: Random, nowMs: number): { readings: DeviceReading[]; faults: { seq: number; kind: FaultKind }[] } {
  const faults: { seq: number; kind: FaultKind }[] = []
  const readings = observations.map((o, i) => {
    const { reading, fault } = maybeFault(toReading(o, firstSeq + i), faultRate, rand, nowMs)
    if (fault) faults.push({ seq: reading.seq, kind: fault })
    return reading
  })
  return { readings, faults }
}
