/**
 * Readings as FHIR R4 Observations (pure). Scalar vitals follow the vital-signs profile
 * (hl7.org/fhir/R4/observation-vitalsigns.html) and its specific profiles (heart rate, oxygen
 * saturation, respiratory rate, body temperature): category vital-signs, LOINC code (with the
 * IEEE 11073 MDC code beside it), UCUM quantity, effectiveDateTime. Systolic and diastolic
 * pressure travel as separate readings and are emitted as separate vital-sign Observations (the
 * bp panel profile needs both in one resource). ECG chunks become SampledData Observations
 * without a vital-signs profile. The subject is the pseudonym — the export never knows a patient id.
 */
import type { SealedReading } from '../shared/protocol/batch.ts'
import { VITALS, type VitalType } from '../shared/schema/vitals.ts'

const FHIR_SD = 'http://hl7.org/fhir/StructureDefinition/'
export const VITALSIGNS_PROFILE = `${FHIR_SD}vitalsigns`
/** The specific vital-sign profile of each type, where R4 has one. */
export const SPECIFIC_PROFILE: Partial<Record<VitalType, string>> = {
  heart_rate: `${FHIR_SD}heartrate`,
  spo2: `${FHIR_SD}oxygensat`,
  resp_rate: `${FHIR_SD}resprate`,
  body_temp: `${FHIR_SD}bodytemp`,
}
/**
 * Codings the R4 profiles demand beside the device's own: the oxygensat profile requires LOINC
 * 2708-6 (oxygen saturation in arterial blood) next to 59408-5 (by pulse oximetry), as US Core's
 * pulse-oximetry profile does.
 */
const EXTRA_LOINC: Partial<Record<VitalType, { code: string; display: string }>> = { spo2: { code: '2708-6', display: 'Oxygen saturation in Arterial blood' } }
const UCUM = 'http://unitsofmeasure.org'
const LOINC = 'http://loinc.org'
const MDC = 'urn:iso:std:iso:11073:10101'
/** The system of CareLedger's reading identifiers: <stream id>/<reading seq>. */
export const READING_ID_SYSTEM = 'urn:careledger:reading'

export interface ObservationContext {
  readonly stream: string
  readonly device: string
  readonly patient: string
}

export type Observation = Record<string, unknown> & { resourceType: 'Observation'; id: string }

export function toObservation(r: SealedReading, c: ObservationContext): Observation {
  const spec = VITALS[r.type]
  const profiles = r.type === 'ecg' ? [] : [VITALSIGNS_PROFILE, ...(SPECIFIC_PROFILE[r.type] ? [SPECIFIC_PROFILE[r.type]!] : [])]
  const category = r.type === 'ecg' ? { code: 'procedure', display: 'Procedure' } : { code: 'vital-signs', display: 'Vital Signs' }
  const base: Observation = {
    resourceType: 'Observation',
    id: `${c.stream}-${r.seq}`,
    ...(profiles.length ? { meta: { profile: profiles } } : {}),
    identifier: [{ system: READING_ID_SYSTEM, value: `${c.stream}/${r.seq}` }],
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', ...category }], text: category.display }],
    code: {
      coding: [
        { system: LOINC, code: spec.loinc, display: spec.display },
        ...(EXTRA_LOINC[r.type] ? [{ system: LOINC, ...EXTRA_LOINC[r.type]! }] : []),
        { system: MDC, code: String(spec.mdc) },
      ],
      text: spec.display,
    },
    subject: { reference: `Patient/${c.patient}` },
    effectiveDateTime: new Date(r.ts).toISOString(),
    issued: new Date(r.rx).toISOString(),
    device: { reference: `Device/${c.device}`, display: c.device },
  }
  if (r.type === 'ecg') {
    return {
      ...base,
      valueSampledData: { origin: { value: 0, unit: 'mV', system: UCUM, code: 'mV' }, period: 1000 / r.hz!, dimensions: 1, data: r.samples!.join(' ') },
    }
  }
  return { ...base, valueQuantity: { value: r.value!, unit: spec.unit, system: UCUM, code: spec.unit } }
}
