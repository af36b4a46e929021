/**
 * The credentials file the simulator reads: what the gateway issued at enrolment, one entry per
 * monitor. {"devices":[{"deviceId":"bed-01","secret":"…"}, …]}
 */
import { readFileSync } from 'node:fs'
import { z } from 'zod'
import { CareLedgerError } from '../../shared/errors.ts'
import { DEVICE_ID } from '../../shared/schema/device.ts'
import type { DeviceCredentials } from './monitor.ts'

const CredentialsFile = z.object({
  devices: z.array(z.object({ deviceId: z.string().regex(DEVICE_ID, 'not a valid device id'), secret: z.string().min(1) })),
})

export function parseCredentials(text: string, source = 'credentials'): DeviceCredentials[] {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    throw new CareLedgerError('INVALID_ARGUMENT', `${source} is not JSON: ${(e as Error).message}`, { source })
  }
  const parsed = CredentialsFile.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new CareLedgerError('INVALID_ARGUMENT', `${source}: ${issue.path.join('.') || 'file'}: ${issue.message} (expected {"devices":[{"deviceId":"bed-01","secret":"…"}]})`, { source })
  }
  const seen = new Set<string>()
  for (const d of parsed.data.devices) {
    if (seen.has(d.deviceId)) throw new CareLedgerError('INVALID_ARGUMENT', `${source}: device ${d.deviceId} is listed twice`, { source, deviceId: d.deviceId })
    seen.add(d.deviceId)
  }
  return parsed.data.devices
}

export function loadCredentials(path: string): DeviceCredentials[] {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new CareLedgerError('INVALID_ARGUMENT', `cannot read credentials file ${path}: ${(e as Error).message}`, { path })
  }
  return parseCredentials(text, path)
}

/** The first `count` devices, or a clear error when the file has fewer. */
export function selectDevices(devices: readonly DeviceCredentials[], count: number | undefined): DeviceCredentials[] {
  if (count === undefined) return [...devices]
  if (!Number.isSafeInteger(count) || count < 1) throw new CareLedgerError('INVALID_ARGUMENT', `--count must be a positive integer, got ${count}`, { count })
  if (devices.length < count) {
    throw new CareLedgerError('INVALID_ARGUMENT', `--count ${count} asks for ${count} monitors but the credentials file lists only ${devices.length}; enrol more devices or lower --count`, { count, available: devices.length })
  }
  return devices.slice(0, count)
}
