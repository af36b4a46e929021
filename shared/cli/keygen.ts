/** What `careledger authority keygen` issues: the holder's attributes plus one epoch attribute per month of validity. */
import { CareLedgerError } from '../errors.ts'
import { epochOf, keyAttributes, parseEpoch, type KeyValidity } from '../protocol/epoch.ts'
import { resolvePatient } from './patients.ts'

export interface KeygenOptions {
  readonly attributes?: readonly string[]
  readonly attrs?: readonly string[]
  readonly patient?: string
  readonly pseudonymKey?: string
  readonly validFrom?: string
  readonly validUntil: string
}

export function keygenAttributes(opts: KeygenOptions, now: number): { attributes: string[]; validity: KeyValidity } {
  const own = [...(opts.attributes ?? []), ...(opts.attrs ?? [])]
  if (opts.patient !== undefined) own.push(`patient:${resolvePatient(opts.patient, opts.pseudonymKey)}`)
  if (own.length === 0) throw new CareLedgerError('INVALID_ARGUMENT', 'a key needs attributes: --attrs role:doctor,hospital:h1 … and/or --patient <id or pseudonym>', { field: 'attributes' })
  const validity = { from: opts.validFrom === undefined ? epochOf(now) : parseEpoch(opts.validFrom, '--valid-from'), until: parseEpoch(opts.validUntil, '--valid-until') }
  return { attributes: keyAttributes(own, validity), validity }
}
