/**
 * Attributes are `type:value` strings such as `role:doctor`, `dept:cardiology`, `patient:p-7f3a`.
 * They are matched case-insensitively: the canonical form is NFC, lower-case ASCII. Both key
 * generation and policy parsing go through `canonicalAttribute`, so `Role:Doctor` in a policy
 * and `role:doctor` in a key are the same attribute.
 */
import { CareLedgerError } from '../../errors.ts'

const TYPE = /^[a-z][a-z0-9_-]{0,63}$/
const VALUE = /^[a-z0-9_.@/+-]{1,128}$/

/** The reason an attribute string is malformed, or null if it is fine. */
export function attributeProblem(raw: string): string | null {
  const s = raw.normalize('NFC').toLowerCase()
  const colon = s.indexOf(':')
  if (colon < 0) return `"${raw}" is not an attribute: use the form type:value, e.g. role:doctor`
  if (s.indexOf(':', colon + 1) >= 0) return `attribute "${raw}" has more than one ':'`
  const type = s.slice(0, colon)
  const value = s.slice(colon + 1)
  if (!TYPE.test(type)) return `attribute type "${type}" must start with a letter and use only a-z, 0-9, _ and - (at most 64)`
  if (!VALUE.test(value)) return `attribute value "${value}" must be 1-128 characters of a-z, 0-9 and _ . @ / + -`
  return null
}

/** Canonical form of one attribute; throws INVALID_ARGUMENT naming the problem. */
export function canonicalAttribute(raw: string): string {
  if (typeof raw !== 'string') throw new CareLedgerError('INVALID_ARGUMENT', `attribute must be a string, got ${typeof raw}`, { value: raw })
  const problem = attributeProblem(raw)
  if (problem) throw new CareLedgerError('INVALID_ARGUMENT', problem, { attribute: raw })
  return raw.normalize('NFC').toLowerCase()
}

/** Canonical, de-duplicated, sorted attribute set (the order keys are serialised in). */
export function canonicalAttributeSet(raw: readonly string[]): string[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new CareLedgerError('INVALID_ARGUMENT', 'a key needs at least one attribute', { value: raw })
  }
  return [...new Set(raw.map(canonicalAttribute))].sort()
}
