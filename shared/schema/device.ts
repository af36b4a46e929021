/**
 * Device identity and MQTT topics: the public contract between monitors and the gateway
 * (docs/protocol.md). MQTT 3.1.1; a device publishes only to its readings topic and may
 * subscribe only to its errors topic.
 */
import { CareLedgerError } from '../errors.ts'

/** Device ids double as MQTT usernames and topic levels: no '/', '+', '#' or spaces. */
export const DEVICE_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/
/** Patient ids as the hospital knows them; they never leave the gateway (only pseudonyms do). */
export const PATIENT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

export const TOPIC_PREFIX = 'careledger/v1/devices/'
export const readingsTopic = (deviceId: string): string => `${TOPIC_PREFIX}${deviceId}/readings`
export const errorsTopic = (deviceId: string): string => `${TOPIC_PREFIX}${deviceId}/errors`

/** The device a readings/errors topic belongs to, or null if the topic is not one of ours. */
export function parseDeviceTopic(topic: string): { deviceId: string; channel: 'readings' | 'errors' } | null {
  if (!topic.startsWith(TOPIC_PREFIX)) return null
  const rest = topic.slice(TOPIC_PREFIX.length).split('/')
  if (rest.length !== 2 || !DEVICE_ID.test(rest[0]!)) return null
  if (rest[1] !== 'readings' && rest[1] !== 'errors') return null
  return { deviceId: rest[0]!, channel: rest[1] }
}

export function assertDeviceId(id: string): string {
  if (typeof id !== 'string' || !DEVICE_ID.test(id)) {
    throw new CareLedgerError('INVALID_ARGUMENT', `device id ${JSON.stringify(id)} must be 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit`, { deviceId: id })
  }
  return id
}

export function assertPatientId(id: string): string {
  if (typeof id !== 'string' || !PATIENT_ID.test(id)) {
    throw new CareLedgerError('INVALID_ARGUMENT', `patient id ${JSON.stringify(id)} must be 1-128 characters of letters, digits, '.', '_', ':' and '-'`, { patientId: id })
  }
  return id
}

/** What the gateway publishes on a device's errors topic for every rejected reading. */
export interface DeviceErrorMessage {
  readonly seq: number | null
  readonly code: string
  readonly message: string
}
