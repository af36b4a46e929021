/**
 * The vital-sign types a bedside monitor may send: the device protocol's vocabulary
 * (docs/protocol.md). Codes follow the FHIR R4 vital-signs profile (hl7.org/fhir/R4/vitalsigns.html);
 * units are UCUM. Limits are the edges of what a living patient or a working sensor can produce —
 * deliberately wide: a value outside them is a device fault, not an alarm.
 */
export type VitalType = 'heart_rate' | 'spo2' | 'resp_rate' | 'body_temp' | 'bp_systolic' | 'bp_diastolic' | 'ecg'

export interface VitalSpec {
  readonly type: VitalType
  readonly display: string
  /** LOINC code of the FHIR vital-signs profile. */
  readonly loinc: string
  /** IEEE 11073-10101 (MDC) code, the second coding devices speak natively. */
  readonly mdc: number
  /** UCUM unit the payload must carry. */
  readonly unit: string
  /** Inclusive physiological limits for `value` (for ECG: for each sample, in mV). */
  readonly min: number
  readonly max: number
}

export const VITALS: Readonly<Record<VitalType, VitalSpec>> = {
  heart_rate: { type: 'heart_rate', display: 'Heart rate', loinc: '8867-4', mdc: 147842, unit: '/min', min: 0, max: 350 },
  spo2: { type: 'spo2', display: 'Oxygen saturation by pulse oximetry', loinc: '59408-5', mdc: 150456, unit: '%', min: 0, max: 100 },
  resp_rate: { type: 'resp_rate', display: 'Respiratory rate', loinc: '9279-1', mdc: 151562, unit: '/min', min: 0, max: 150 },
  body_temp: { type: 'body_temp', display: 'Body temperature', loinc: '8310-5', mdc: 150364, unit: 'Cel', min: 10, max: 46 },
  bp_systolic: { type: 'bp_systolic', display: 'Systolic blood pressure', loinc: '8480-6', mdc: 150301, unit: 'mm[Hg]', min: 10, max: 350 },
  bp_diastolic: { type: 'bp_diastolic', display: 'Diastolic blood pressure', loinc: '8462-4', mdc: 150302, unit: 'mm[Hg]', min: 0, max: 250 },
  // ECG waveform chunk: LOINC 11524-6 "EKG study"; samples per MDC_ECG_ELEC_POTL (131328), in mV.
  ecg: { type: 'ecg', display: 'ECG waveform (lead II)', loinc: '11524-6', mdc: 131330, unit: 'mV', min: -20, max: 20 },
}

export const VITAL_TYPES = Object.keys(VITALS) as VitalType[]

/** ECG chunk limits: sampling rate and samples per chunk. */
export const ECG_LIMITS = { minHz: 50, maxHz: 2000, maxSamples: 4000 } as const
