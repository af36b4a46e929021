/**
 * `--patient <id or pseudonym>` as the people's commands take it (`authority keygen`, `access read`):
 * a pseudonym p-<24 hex> is used as it is; a hospital patient id becomes its pseudonym with the
 * hospital's pseudonym key (`--pseudonym-key`, or CARELEDGER_PSEUDONYM_KEY_FILE), exactly as the
 * gateway computes it (shared/protocol/pseudonym.ts). The patient id never leaves this machine.
 * The key file may be sealed under a passphrase (secret-files.ts) or raw (read with a warning).
 */
import { CareLedgerError } from '../errors.ts'
import { patientPseudonym } from '../protocol/pseudonym.ts'
import { assertPatientId } from '../schema/device.ts'
import { existsSync } from 'node:fs'
import { processKeyring, type Keyring } from './secret-files.ts'

export const PSEUDONYM = /^p-[0-9a-f]{24}$/

const pseudonymKeyFileOf = (file: string | undefined): string | undefined => file ?? (process.env.CARELEDGER_PSEUDONYM_KEY_FILE || undefined)

/** A command that may prompt calls this before resolvePatient: a terminal asks for a sealed pseudonym key's passphrase. */
export async function unlockPseudonymKey(patient: string | undefined, pseudonymKeyFile?: string, keyring: Keyring = processKeyring()): Promise<void> {
  const file = pseudonymKeyFileOf(pseudonymKeyFile)
  if (patient !== undefined && !PSEUDONYM.test(patient.trim()) && file && existsSync(file)) await keyring.unlockFor(file)
}

export function resolvePatient(patient: string, pseudonymKeyFile?: string, keyring: Keyring = processKeyring()): string {
  pseudonymKeyFile = pseudonymKeyFileOf(pseudonymKeyFile)
  const text = patient.trim()
  if (PSEUDONYM.test(text)) return text
  assertPatientId(text)
  if (!pseudonymKeyFile) {
    throw new CareLedgerError('INVALID_ARGUMENT', `--patient ${JSON.stringify(text)} is a patient id, not a pseudonym (p-<24 hex>): give the hospital's pseudonym key with --pseudonym-key <file> (or CARELEDGER_PSEUDONYM_KEY_FILE) to turn it into one`, {
      field: 'patient',
    })
  }
  const key = keyring.readSync(pseudonymKeyFile)
  if (key.length < 32) throw new CareLedgerError('INVALID_ARGUMENT', `${pseudonymKeyFile}: a pseudonym key holds at least 32 bytes, this file ${key.length}`, { path: pseudonymKeyFile })
  return patientPseudonym(key, text)
}
