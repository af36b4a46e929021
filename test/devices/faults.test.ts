import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { FAULT_CODES, FAULT_KINDS, injectFault, maybeFault } from '../../devices/simulator/faults.ts'
import { PatientModel } from '../../devices/simulator/physiology.ts'
import { seededRandom } from '../../devices/simulator/prng.ts'
import { tickReadings, toReading } from '../../devices/simulator/readings.ts'
import { validatePayload } from '../../shared/schema/reading.ts'

const NOW = Date.UTC(2026, 10, 25, 10, 0, 0)
const verdictOf = (x: unknown) => validatePayload(Buffer.from(JSON.stringify(x)), { now: NOW })

/** One valid reading of every type, from the physiology model itself. */
function oneOfEach() {
  const p = new PatientModel('faults', NOW - 2000, { ecg: true })
  const obs = [...p.step(NOW - 1000), ...p.step(NOW)]
  const byType = new Map(obs.map((o) => [o.type, o]))
  expect([...byType.keys()].sort()).toEqual(['body_temp', 'bp_diastolic', 'bp_systolic', 'ecg', 'heart_rate', 'resp_rate', 'spo2'])
  return [...byType.values()].map((o, i) => toReading(o, 100 + i))
}

describe('injected faults', () => {
  it('each kind, on each vital type, is rejected with its expected code and keeps its seq', () => {
    const rand = seededRandom('kinds')
    for (const reading of oneOfEach()) {
      expect(verdictOf(reading).rejected).toEqual([])
      for (const kind of FAULT_KINDS) {
        for (let i = 0; i < 20; i++) {
          const bad = injectFault(reading, kind, rand, NOW)
          const { accepted, rejected } = verdictOf(bad)
          expect(accepted, `${kind} on ${reading.type}: ${JSON.stringify(bad).slice(0, 200)}`).toEqual([])
          expect(rejected.map((r) => [r.seq, r.code])).toEqual([[reading.seq, FAULT_CODES[kind]]])
        }
      }
    }
  })

  it('property: in a faulty tick exactly the spoiled readings are rejected, with the expected codes', () => {
    fc.assert(
      fc.property(fc.string(), fc.double({ min: 0, max: 1, noNaN: true }), (seed, rate) => {
        const p = new PatientModel(seed, NOW - 10_000, { ecg: true, nibpIntervalS: 1 })
        const rand = seededRandom(`${seed}/f`)
        for (let t = NOW - 9000; t <= NOW; t += 1000) {
          const { readings, faults } = tickReadings(p.step(t), 0, rate, rand, t)
          const { accepted, rejected } = validatePayload(Buffer.from(JSON.stringify(readings)), { now: t })
          expect(rejected.map((r) => [r.seq, r.code])).toEqual(faults.map((f) => [f.seq, FAULT_CODES[f.kind]]))
          expect(accepted.length + rejected.length).toBe(readings.length)
        }
      }),
      { numRuns: 100 },
    )
  })

  it('fault rate 0 never spoils, 1 always does, 0.1 about a tenth of the time', () => {
    const [r] = oneOfEach()
    const rand = seededRandom('rate')
    expect(Array.from({ length: 1000 }, () => maybeFault(r!, 0, rand, NOW).fault).every((f) => f === null)).toBe(true)
    expect(Array.from({ length: 1000 }, () => maybeFault(r!, 1, rand, NOW).fault).every((f) => f !== null)).toBe(true)
    const n = Array.from({ length: 10_000 }, () => maybeFault(r!, 0.1, rand, NOW).fault).filter((f) => f !== null).length
    expect(n).toBeGreaterThan(850)
    expect(n).toBeLessThan(1150)
  })
})
