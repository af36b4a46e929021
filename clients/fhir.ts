/**
 * Readings as FHIR R4 Observations (pure). Scalar vitals follow the vital-signs profile
 * (hl7.org/fhir/R4/observation-vitalsigns.html) and its specific profiles (heart rate, oxygen
 * saturation, respiratory rate, body temperature): category vital-signs, LOINC code (with the
 * IEEE 11073 MDC code beside it), UCUM quantity, effectiveDateTime. Systolic and diastolic
 * pressure travel as separate readings and are emitted as separate vital-sign Observations (the
 * bp panel profile needs both in one resource). ECG chunks become SampledData Observations
 * without a vital-signs profile. The subject is the pseudonym — the export never knows a patient id.
 *
 * Redactions (docs/security.md §Supervision): a reading of a batch a verified redaction corrected
 * is an Observation with status `amended` (R4 ObservationStatus: "subsequent to being final, the
 * observation has been modified") and a `note` naming the request, reason, approvers and time; each
 * redaction is also a Provenance resource (R4 §6.3: activity UPDATE or DELETE of v3-DataOperation,
 * the regulators as `verifier` agents, the requester as `author`, the reason, the time applied)
 * whose target is the corrected Observations, or for a deletion the deleted batch by identifier
 * (no Observation of it exists).
 */
import type { SealedReading } from '../shared/protocol/batch.ts'
import { VITALS, type VitalType } from '../shared/schema/vitals.ts'
import type { VerifiedRedaction } from './verify.ts'

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
/** The system of CareLedger's batch identifiers: <stream id>/<batch seq>. */
export const BATCH_ID_SYSTEM = 'urn:careledger:batch'
/** The system of a redaction's request id (the EIP-712 digest of the signed request, hex). */
export const REDACTION_ID_SYSTEM = 'urn:careledger:redaction-request'
const DATA_OPERATION = 'http://terminology.hl7.org/CodeSystem/v3-DataOperation'
const PARTICIPANT_TYPE = 'http://terminology.hl7.org/CodeSystem/provenance-participant-type'

export interface ObservationContext {
  readonly stream: string
  readonly device: string
  readonly patient: string
}

export type Observation = Record<string, unknown> & { resourceType: 'Observation'; id: string }

const approvedBy = (x: VerifiedRedaction): string => x.approvers.map((a) => `${a.name} (${a.address})`).join('; ')

export function toObservation(r: SealedReading, c: ObservationContext, redaction: VerifiedRedaction | null = null): Observation {
  const spec = VITALS[r.type]
  const profiles = r.type === 'ecg' ? [] : [VITALSIGNS_PROFILE, ...(SPECIFIC_PROFILE[r.type] ? [SPECIFIC_PROFILE[r.type]!] : [])]
  const category = r.type === 'ecg' ? { code: 'procedure', display: 'Procedure' } : { code: 'vital-signs', display: 'Vital Signs' }
  const base: Observation = {
    resourceType: 'Observation',
    id: `${c.stream}-${r.seq}`,
    ...(profiles.length ? { meta: { profile: profiles } } : {}),
    identifier: [{ system: READING_ID_SYSTEM, value: `${c.stream}/${r.seq}` }],
    status: redaction ? 'amended' : 'final',
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
    ...(redaction
      ? { note: [{ time: new Date(redaction.time).toISOString(), text: `Corrected by CareLedger redaction request ${redaction.requestId}: ${redaction.reason} (requested by ${redaction.requester}; approved by ${approvedBy(redaction)}).` }] }
      : {}),
  }
  if (r.type === 'ecg') {
    return {
      ...base,
      valueSampledData: { origin: { value: 0, unit: 'mV', system: UCUM, code: 'mV' }, period: 1000 / r.hz!, dimensions: 1, data: r.samples!.join(' ') },
    }
  }
  return { ...base, valueQuantity: { value: r.value!, unit: spec.unit, system: UCUM, code: spec.unit } }
}

export type Provenance = Record<string, unknown> & { resourceType: 'Provenance'; id: string }

/**
 * A verified redaction as an R4 Provenance: `targets` are the ids of the corrected batch's
 * Observations; for a deletion (no Observations) the deleted batch by identifier.
 */
export function toProvenance(x: VerifiedRedaction, batch: { stream: string; seq: number }, targets: readonly string[]): Provenance {
  const deleted = x.action === 'delete'
  return {
    resourceType: 'Provenance',
    id: x.requestId,
    target: deleted || targets.length === 0 ? [{ identifier: { system: BATCH_ID_SYSTEM, value: `${batch.stream}/${batch.seq}` }, display: `batch ${batch.stream}#${batch.seq} (${deleted ? 'deleted' : 'corrected'})` }] : targets.map((id) => ({ reference: `Observation/${id}` })),
    recorded: new Date(x.time).toISOString(),
    policy: [`urn:careledger:supervisory-policy:${x.policy}`],
    reason: [{ text: x.reason }],
    activity: { coding: [{ system: DATA_OPERATION, code: deleted ? 'DELETE' : 'UPDATE', display: deleted ? 'delete' : 'revise' }] },
    agent: [
      { type: { coding: [{ system: PARTICIPANT_TYPE, code: 'author', display: 'Author' }] }, who: { display: x.requester } },
      ...x.approvers.map((a) => ({ type: { coding: [{ system: PARTICIPANT_TYPE, code: 'verifier', display: 'Verifier' }] }, who: { identifier: { system: 'urn:careledger:regulator-address', value: a.address }, display: a.name } })),
    ],
    entity: [{ role: 'source', what: { identifier: { system: REDACTION_ID_SYSTEM, value: x.requestId }, display: `redaction log entry ${x.logSeq} (hash ${x.entryHash})` } }],
  }
}
