/**
 * A patient-like physiology for one simulated bedside monitor. Pure and seeded: the same seed and
 * the same clock readings give the same observations.
 *
 * Each vital drifts as an Ornstein–Uhlenbeck process around a per-patient baseline (mean-reverting
 * noise: plausible minute-to-minute wander, never a random walk off the chart). On top come the
 * artefacts real monitors produce — motion spikes, false SpO2 desaturations, probe-off gaps — so the
 * gateway and dashboards see realistic data, not sine waves. Every value is kept inside the limits
 * of shared/schema/vitals.ts: artefacts are implausible-looking, never invalid.
 */
import { ECG_LIMITS, VITALS, type VitalType } from '../../shared/schema/vitals.ts'
import { clippedNormal, gaussian, poissonEvent, seededRandom, uniform, type Random } from './prng.ts'

/** One measurement before it gets a seq: `ts` is epoch ms. */
export interface Observation {
  readonly ts: number
  readonly type: VitalType
  readonly unit: string
  readonly value?: number
  readonly samples?: number[]
  readonly hz?: number
}

export interface Baseline {
  readonly heartRate: number
  readonly spo2: number
  readonly respRate: number
  readonly bodyTemp: number
  readonly systolic: number
  readonly diastolic: number
  /** ECG amplitude scale (electrode placement, body habitus). */
  readonly ecgGain: number
}

export interface PhysiologyOptions {
  /** Emit 1-s ECG chunks (lead II). Default false. */
  readonly ecg?: boolean
  /** ECG sampling rate, Hz. Default 250. */
  readonly ecgHz?: number
  /** Body temperature period, s. Default 60. */
  readonly tempIntervalS?: number
  /** Non-invasive blood pressure (cuff) period, s. Default 300. */
  readonly nibpIntervalS?: number
  /** Motion spikes, desaturations, probe-off gaps. Default true. */
  readonly artefacts?: boolean
}

export type ArtefactKind = 'motion' | 'desaturation' | 'probe_off'

/** Stationary standard deviation and time constant of each vital's drift (OU process). */
const DRIFT = {
  heartRate: { sd: 4, tauS: 120 },
  spo2: { sd: 0.7, tauS: 60 },
  respRate: { sd: 1.5, tauS: 90 },
  bodyTemp: { sd: 0.15, tauS: 1800 },
  systolic: { sd: 6, tauS: 900 },
  diastolic: { sd: 4, tauS: 900 },
} as const
type Drifting = keyof typeof DRIFT

/** Mean rate (per second) and duration range (s) of each artefact. */
const ARTEFACTS: Record<ArtefactKind, { ratePerS: number; minS: number; maxS: number }> = {
  motion: { ratePerS: 1 / 600, minS: 3, maxS: 10 },
  desaturation: { ratePerS: 1 / 1200, minS: 8, maxS: 25 },
  probe_off: { ratePerS: 1 / 1800, minS: 10, maxS: 45 },
}

/** A plausible adult in a general ward: baselines drawn once per patient. */
export function drawBaseline(rand: Random): Baseline {
  const systolic = clippedNormal(rand, 122, 14, 95, 165)
  return {
    heartRate: clippedNormal(rand, 76, 10, 52, 115),
    spo2: clippedNormal(rand, 97, 1.2, 93, 99.5),
    respRate: clippedNormal(rand, 15, 2.5, 10, 24),
    bodyTemp: clippedNormal(rand, 36.9, 0.35, 36.1, 38.3),
    systolic,
    diastolic: clippedNormal(rand, systolic * 0.62, 5, 55, 100),
    ecgGain: uniform(rand, 0.8, 1.3),
  }
}

/** One exact OU step over dtS seconds: x' = μ + (x − μ)·a + sd·√(1 − a²)·N(0,1), a = e^(−dt/τ). */
export function ouStep(x: number, mean: number, sd: number, tauS: number, dtS: number, rand: Random): number {
  const a = Math.exp(-dtS / tauS)
  return mean + (x - mean) * a + sd * Math.sqrt(1 - a * a) * gaussian(rand)
}

const round = (x: number, digits = 0): number => {
  const f = 10 ** digits
  return Math.round(x * f) / f
}
const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x))
/** Keep a displayed value inside the contract's limits for its type. */
const within = (type: VitalType, x: number): number => clamp(x, VITALS[type].min, VITALS[type].max)

/**
 * Lead II PQRST as a sum of Gaussians (after McSharry et al., IEEE TBME 2003): [amplitude mV,
 * offset from the R peak s, width s]. The T wave moves with the RR interval (Bazett: QT ∝ √RR).
 */
function ecgMillivolts(secondsFromR: number, rrS: number): number {
  const tPeak = 0.4 * Math.sqrt(rrS) - 0.12
  const waves: [number, number, number][] = [
    [0.12, -0.17, 0.022], // P
    [-0.1, -0.035, 0.009], // Q
    [1.1, 0, 0.011], // R
    [-0.22, 0.035, 0.01], // S
    [0.28, tPeak, 0.045], // T
  ]
  let v = 0
  for (const [a, mu, w] of waves) v += a * Math.exp(-((secondsFromR - mu) ** 2) / (2 * w * w))
  return v
}

export class PatientModel {
  readonly baseline: Baseline
  readonly options: Required<PhysiologyOptions>
  /** Current true (artefact-free) values. */
  readonly state: Record<Drifting, number>
  private readonly rand: Random
  private readonly startMs: number
  private lastS = 0
  private nextTempS = 0
  private nextNibpS = 0
  private ecgDoneS = 0
  private beatPhase = 0
  private artefact: { kind: ArtefactKind; untilS: number; magnitude: number } | null = null

  constructor(seed: string, startMs: number, options: PhysiologyOptions = {}) {
    this.rand = seededRandom(seed)
    this.startMs = startMs
    this.options = {
      ecg: options.ecg ?? false,
      ecgHz: options.ecgHz ?? 250,
      tempIntervalS: options.tempIntervalS ?? 60,
      nibpIntervalS: options.nibpIntervalS ?? 300,
      artefacts: options.artefacts ?? true,
    }
    if (this.options.ecgHz < ECG_LIMITS.minHz || this.options.ecgHz > ECG_LIMITS.maxHz) throw new RangeError(`ecgHz must be within [${ECG_LIMITS.minHz}, ${ECG_LIMITS.maxHz}]`)
    this.baseline = drawBaseline(this.rand)
    this.state = { ...this.baseline }
    this.beatPhase = this.rand()
  }

  /** The artefact in progress, if any (for logs and tests). */
  get currentArtefact(): ArtefactKind | null {
    return this.artefact?.kind ?? null
  }

  /** Advance the patient to `nowMs` and return what the monitor measured since the last step. */
  step(nowMs: number): Observation[] {
    const t = (nowMs - this.startMs) / 1000
    const dt = t - this.lastS
    if (dt <= 0) return []
    this.lastS = t
    const r = this.rand
    const s = this.state
    for (const k of Object.keys(DRIFT) as Drifting[]) s[k] = ouStep(s[k], this.baseline[k], DRIFT[k].sd, DRIFT[k].tauS, dt, r)
    s.spo2 = Math.min(s.spo2, 100)
    s.diastolic = Math.min(s.diastolic, s.systolic - 15)
    this.evolveArtefact(t, dt)

    const art = this.artefact
    const out: Observation[] = []
    const scalar = (type: VitalType, value: number, digits = 0, ts = nowMs): void => {
      out.push({ ts, type, unit: VITALS[type].unit, value: round(within(type, value), digits) })
    }
    // Pulse oximeter: HR and SpO2 vanish while the probe is off (a gap, not zeros).
    if (art?.kind !== 'probe_off') {
      scalar('heart_rate', s.heartRate + gaussian(r) + (art?.kind === 'motion' ? art.magnitude : 0))
      const desat = art?.kind === 'desaturation' ? art.magnitude : art?.kind === 'motion' ? uniform(r, 0, 3) : 0
      scalar('spo2', Math.min(100, s.spo2 + 0.3 * gaussian(r)) - desat)
    }
    scalar('resp_rate', s.respRate + 0.7 * gaussian(r) + (art?.kind === 'motion' ? uniform(r, 0, 8) : 0))
    if (t >= this.nextTempS) {
      scalar('body_temp', s.bodyTemp + 0.05 * gaussian(r), 1)
      this.nextTempS += this.options.tempIntervalS * Math.max(1, Math.ceil((t - this.nextTempS) / this.options.tempIntervalS))
    }
    if (t >= this.nextNibpS) {
      // The cuff reports both together, with one timestamp.
      const sys = round(within('bp_systolic', s.systolic + 2 * gaussian(r)))
      scalar('bp_systolic', sys)
      scalar('bp_diastolic', Math.min(sys - 10, s.diastolic + 2 * gaussian(r)))
      this.nextNibpS += this.options.nibpIntervalS * Math.max(1, Math.ceil((t - this.nextNibpS) / this.options.nibpIntervalS))
    }
    if (this.options.ecg) {
      while (this.ecgDoneS + 1 <= t + 1e-9) {
        out.push(this.ecgChunk(this.startMs + this.ecgDoneS * 1000))
        this.ecgDoneS += 1
      }
    }
    return out
  }

  private evolveArtefact(t: number, dt: number): void {
    if (this.artefact && t >= this.artefact.untilS) this.artefact = null
    if (this.artefact || !this.options.artefacts) return
    for (const kind of Object.keys(ARTEFACTS) as ArtefactKind[]) {
      const a = ARTEFACTS[kind]
      if (!poissonEvent(this.rand, a.ratePerS, dt)) continue
      const magnitude = kind === 'motion' ? uniform(this.rand, 15, 50) : kind === 'desaturation' ? uniform(this.rand, 6, 14) : 0
      this.artefact = { kind, untilS: t + uniform(this.rand, a.minS, a.maxS), magnitude }
      return
    }
  }

  /** One second of lead II at the current heart rate, with respiratory baseline wander and noise. */
  private ecgChunk(ts: number): Observation {
    const hz = this.options.ecgHz
    const r = this.rand
    const rrS = 60 / this.state.heartRate
    const motion = this.artefact?.kind === 'motion'
    const samples = new Array<number>(hz)
    for (let i = 0; i < hz; i++) {
      this.beatPhase = (this.beatPhase + 1 / hz / rrS) % 1
      const sinceR = (this.beatPhase - 0.45) * rrS
      const wander = 0.05 * Math.sin((2 * Math.PI * this.state.respRate * (ts / 1000 + i / hz)) / 60)
      const noise = (motion ? 0.3 : 0.01) * gaussian(r)
      samples[i] = round(clamp(this.baseline.ecgGain * ecgMillivolts(sinceR, rrS) + wander + noise, -5, 5), 3)
    }
    return { ts, type: 'ecg', unit: VITALS.ecg.unit, samples, hz }
  }
}
