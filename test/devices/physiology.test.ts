import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { PatientModel, ouStep, type Observation } from '../../devices/simulator/physiology.ts'
import { gaussian, seededRandom } from '../../devices/simulator/prng.ts'
import { tickReadings } from '../../devices/simulator/readings.ts'
import { validatePayload } from '../../shared/schema/reading.ts'
import { VITALS } from '../../shared/schema/vitals.ts'

const T0 = Date.UTC(2026, 10, 25, 10, 0, 0)

/** Run a patient for `seconds` at `rate` ticks/s; returns every tick's observations. */
function run(seed: string, seconds: number, rate = 1, opts = {}): Observation[][] {
  const p = new PatientModel(seed, T0, opts)
  const ticks: Observation[][] = []
  for (let i = 1; i <= seconds * rate; i++) ticks.push(p.step(T0 + (i * 1000) / rate))
  return ticks
}

const values = (ticks: Observation[][], type: string): number[] => ticks.flat().filter((o) => o.type === type).map((o) => o.value!)
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
const sd = (xs: number[]): number => {
  const m = mean(xs)
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2)))
}

describe('seeded PRNG', () => {
  it('replays the same stream for the same seed and differs across seeds', () => {
    const a = seededRandom('x'), b = seededRandom('x'), c = seededRandom('y')
    const sa = Array.from({ length: 5 }, a), sb = Array.from({ length: 5 }, b), sc = Array.from({ length: 5 }, c)
    expect(sa).toEqual(sb)
    expect(sa).not.toEqual(sc)
    expect(sa.every((x) => x >= 0 && x < 1)).toBe(true)
  })

  it('gaussian has mean ≈ 0 and sd ≈ 1', () => {
    const r = seededRandom('g')
    const xs = Array.from({ length: 20_000 }, () => gaussian(r))
    expect(Math.abs(mean(xs))).toBeLessThan(0.03)
    expect(Math.abs(sd(xs) - 1)).toBeLessThan(0.03)
  })
})

describe('Ornstein–Uhlenbeck drift', () => {
  it('reverts to the mean with the stationary sd it was given', () => {
    const r = seededRandom('ou')
    let x = 100 // start far from the mean of 70
    const xs: number[] = []
    for (let i = 0; i < 50_000; i++) {
      x = ouStep(x, 70, 4, 120, 1, r)
      if (i > 1000) xs.push(x)
    }
    expect(Math.abs(mean(xs) - 70)).toBeLessThan(1)
    expect(Math.abs(sd(xs) - 4)).toBeLessThan(0.6)
  })
})

describe('PatientModel', () => {
  it('is deterministic: same seed and clock, same observations', () => {
    expect(run('bed-01', 600, 1, { ecg: true })).toEqual(run('bed-01', 600, 1, { ecg: true }))
    expect(run('bed-01', 60)).not.toEqual(run('bed-02', 60))
  })

  it('keeps every value inside the contract limits over three simulated hours, many patients', () => {
    const violations: string[] = []
    let checked = 0
    for (let p = 0; p < 8; p++) {
      for (const o of run(`ward/${p}`, 3 * 3600, 1, { ecg: p === 0 }).flat()) {
        const spec = VITALS[o.type]
        const xs = o.type === 'ecg' ? o.samples! : [o.value!]
        checked += xs.length
        if (o.unit !== spec.unit || xs.some((x) => !(x >= spec.min && x <= spec.max))) violations.push(JSON.stringify(o).slice(0, 120))
      }
    }
    expect(checked).toBeGreaterThan(2_500_000) // 2.7 M ECG samples and ~260 k scalar values
    expect(violations).toEqual([])
  })

  it('drifts plausibly: near the baseline, physiological spread, small minute-to-minute steps', () => {
    const p = new PatientModel('drift', T0, { artefacts: false })
    const ticks: Observation[][] = []
    for (let i = 1; i <= 4 * 3600; i++) ticks.push(p.step(T0 + i * 1000))
    const hr = values(ticks, 'heart_rate')
    const spo2 = values(ticks, 'spo2')
    const rr = values(ticks, 'resp_rate')
    expect(Math.abs(mean(hr) - p.baseline.heartRate)).toBeLessThan(3)
    expect(sd(hr)).toBeGreaterThan(2) // it does move …
    expect(sd(hr)).toBeLessThan(8) // … but like a resting patient, not noise
    expect(Math.abs(mean(spo2) - p.baseline.spo2)).toBeLessThan(1.5)
    expect(Math.max(...spo2)).toBeLessThanOrEqual(100)
    expect(Math.abs(mean(rr) - p.baseline.respRate)).toBeLessThan(2)
    // Slow drift: heart rate a second apart differs by a beat or two, not by tens.
    const steps = hr.slice(1).map((x, i) => Math.abs(x - hr[i]!))
    expect(mean(steps)).toBeLessThan(2.5)
    expect(Math.max(...steps)).toBeLessThan(12)
  })

  it('produces artefacts over a long run: motion spikes, desaturations, probe-off gaps', () => {
    const p = new PatientModel('artefacts', T0)
    const seen = new Set<string>()
    let probeOffTicksWithoutSpo2 = 0
    for (let i = 1; i <= 12 * 3600; i++) {
      const obs = p.step(T0 + i * 1000)
      if (p.currentArtefact) seen.add(p.currentArtefact)
      if (p.currentArtefact === 'probe_off' && !obs.some((o) => o.type === 'spo2')) probeOffTicksWithoutSpo2++
    }
    expect([...seen].sort()).toEqual(['desaturation', 'motion', 'probe_off'])
    expect(probeOffTicksWithoutSpo2).toBeGreaterThan(0)
  })

  it('schedules body temperature every 60 s and a systolic/diastolic pair every NIBP interval', () => {
    const ticks = run('schedule', 3600, 1, { nibpIntervalS: 180 })
    expect(values(ticks, 'body_temp')).toHaveLength(61) // at the first tick, then every 60 s up to 3600 s
    const sys = ticks.flat().filter((o) => o.type === 'bp_systolic')
    const dia = ticks.flat().filter((o) => o.type === 'bp_diastolic')
    expect(sys).toHaveLength(21)
    expect(dia.map((o) => o.ts)).toEqual(sys.map((o) => o.ts))
    sys.forEach((s, i) => expect(dia[i]!.value!).toBeLessThan(s.value!))
  })

  it('keeps the schedule at other tick rates (0.2 and 10 ticks/s)', () => {
    expect(values(run('slow', 600, 0.2), 'body_temp')).toHaveLength(11)
    expect(values(run('fast', 120, 10), 'heart_rate').length).toBeGreaterThan(1100)
    expect(values(run('fast', 120, 10), 'body_temp')).toHaveLength(3)
  })

  it('sends ECG as 1-s chunks of 250 samples with one R peak per beat', () => {
    const p = new PatientModel('ecg', T0, { ecg: true, artefacts: false })
    const chunks: Observation[] = []
    for (let i = 1; i <= 60; i++) chunks.push(...p.step(T0 + i * 1000).filter((o) => o.type === 'ecg'))
    expect(chunks).toHaveLength(60)
    expect(chunks.map((c) => c.ts)).toEqual(chunks.map((_, i) => T0 + i * 1000))
    expect(chunks.every((c) => c.hz === 250 && c.samples!.length === 250)).toBe(true)
    const signal = chunks.flatMap((c) => c.samples!)
    // R peaks: local maxima above 0.6 mV. Their count over a minute is the heart rate.
    let peaks = 0
    for (let i = 1; i < signal.length - 1; i++) if (signal[i]! > 0.6 && signal[i]! >= signal[i - 1]! && signal[i]! > signal[i + 1]!) peaks++
    expect(Math.abs(peaks - p.state.heartRate)).toBeLessThan(12)
    expect(Math.max(...signal)).toBeLessThan(2.5)
    expect(Math.min(...signal)).toBeGreaterThan(-1)
  })

  it('emits several 1-s ECG chunks per tick when ticks are slower than 1 Hz', () => {
    const ticks = run('ecg-slow', 20, 0.25, { ecg: true })
    expect(ticks.every((t) => t.filter((o) => o.type === 'ecg').length === 4)).toBe(true)
  })
})

describe('simulated payloads pass the gateway validator', () => {
  it('every tick of every patient is accepted whole, ECG included', () => {
    let seq = 0
    for (let p = 0; p < 4; p++) {
      const model = new PatientModel(`valid/${p}`, T0, { ecg: true, nibpIntervalS: 60 })
      const rand = seededRandom('nofaults')
      for (let i = 1; i <= 1800; i++) {
        const now = T0 + i * 1000
        const obs = model.step(now)
        const { readings } = tickReadings(obs, seq, 0, rand, now)
        seq += obs.length
        const verdict = validatePayload(Buffer.from(JSON.stringify(readings)), { now })
        expect(verdict.rejected).toEqual([])
        expect(verdict.accepted.map((r) => r.seq)).toEqual(readings.map((r) => r.seq))
      }
    }
  })

  it('property: any seed, any rate, any tick is valid', () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: 20 }), fc.boolean(), (seed, ticksPer10s, ecg) => {
        const model = new PatientModel(seed, T0, { ecg })
        for (let i = 1; i <= 50; i++) {
          const now = T0 + Math.round((i * 10_000) / ticksPer10s)
          const { readings } = tickReadings(model.step(now), i * 100, 0, seededRandom(seed), now)
          if (readings.length === 0) continue
          expect(validatePayload(Buffer.from(JSON.stringify(readings)), { now }).rejected).toEqual([])
        }
      }),
      { numRuns: 60 },
    )
  })
})
