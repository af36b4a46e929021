/**
 * Deliberate device faults (--fault-rate), so people can exercise the gateway's quarantine and the
 * errors topic. Each fault breaks exactly one rule of shared/schema/reading.ts, so the rejection
 * code it must earn is known in advance (FAULT_CODES). The seq is kept: a faulty reading still
 * consumes its sequence number, as it would on a real device.
 */
import type { RejectionCode } from '../../shared/schema/reading.ts'
import { VITALS, type VitalType } from '../../shared/schema/vitals.ts'
import type { DeviceReading } from '../sdk/client.ts'
import type { Random } from './prng.ts'

export type FaultKind = 'out_of_range' | 'wrong_unit' | 'bad_timestamp' | 'future_timestamp'
export const FAULT_KINDS: readonly FaultKind[] = ['out_of_range', 'wrong_unit', 'bad_timestamp', 'future_timestamp']

export const FAULT_CODES: Readonly<Record<FaultKind, RejectionCode>> = {
  out_of_range: 'IMPLAUSIBLE_VALUE',
  wrong_unit: 'WRONG_UNIT',
  bad_timestamp: 'BAD_TIMESTAMP',
  future_timestamp: 'FUTURE_TIMESTAMP',
}

/** Units a confused firmware might send, with the matching conversion (so only the unit is wrong). */
const WRONG_UNITS: Record<VitalType, { unit: string; convert: (x: number) => number }> = {
  heart_rate: { unit: 'bpm', convert: (x) => x },
  spo2: { unit: '1', convert: (x) => x / 100 },
  resp_rate: { unit: 'breaths/min', convert: (x) => x },
  body_temp: { unit: '[degF]', convert: (x) => Math.round((x * 9) / 5 * 10 + 320) / 10 },
  bp_systolic: { unit: 'kPa', convert: (x) => Math.round(x * 1.3332) / 10 },
  bp_diastolic: { unit: 'kPa', convert: (x) => Math.round(x * 1.3332) / 10 },
  ecg: { unit: 'uV', convert: (x) => Math.round(x * 1000) },
}

/** Timestamps a device with a broken clock or formatter sends (all earn BAD_TIMESTAMP). */
const BAD_TIMESTAMPS: ((tsMs: number) => string | number)[] = [
  (ts) => new Date(ts).toISOString().replace('T', ' ').replace('Z', ''), // no time zone
  (ts) => Math.floor(ts / 1000), // epoch seconds read as ms: 1970
  () => 0, // clock never set
  (ts) => new Date(ts).toUTCString(), // RFC 7231, not RFC 3339
]

/** Apply one fault to a well-formed reading (`nowMs`: the device clock, for future timestamps). */
export function injectFault(reading: DeviceReading, kind: FaultKind, rand: Random, nowMs: number): DeviceReading {
  const type = reading.type as VitalType
  const tsMs = typeof reading.ts === 'number' ? reading.ts : Date.parse(reading.ts)
  switch (kind) {
    case 'out_of_range': {
      const spec = VITALS[type]
      if (reading.samples) {
        const samples = [...reading.samples]
        samples[Math.floor(rand() * samples.length)] = spec.max * (2 + rand()) // a saturated ADC
        return { ...reading, samples }
      }
      return { ...reading, value: rand() < 0.5 ? spec.min - 1 - Math.round(rand() * 10) : spec.max + 1 + Math.round(rand() * 100) }
    }
    case 'wrong_unit': {
      const w = WRONG_UNITS[type]
      if (reading.samples) return { ...reading, unit: w.unit, samples: reading.samples.map(w.convert) }
      return { ...reading, unit: w.unit, value: w.convert(reading.value ?? 0) }
    }
    case 'bad_timestamp':
      return { ...reading, ts: BAD_TIMESTAMPS[Math.floor(rand() * BAD_TIMESTAMPS.length)]!(tsMs) }
    case 'future_timestamp':
      return { ...reading, ts: new Date(nowMs + 3_600_000).toISOString() } // an hour ahead: far past any skew allowance
  }
}

/** With probability `rate`, replace the reading by a faulty one of a random kind. */
export function maybeFault(reading: DeviceReading, rate: number, rand: Random, nowMs: number): { reading: DeviceReading; fault: FaultKind | null } {
  if (rate <= 0 || rand() >= rate) return { reading, fault: null }
  const kind = FAULT_KINDS[Math.floor(rand() * FAULT_KINDS.length)]!
  return { reading: injectFault(reading, kind, rand, nowMs), fault: kind }
}
