/**
 * Bearer secrets: 256 random bits, base64url (RFC 4648 §5, 43 characters), behind a prefix that
 * says what they are (`clt_` API token, `cle_` gateway enrolment) so a leaked one is recognisable
 * by secret scanners. Only SHA-256 of the whole string is stored; 256 bits of entropy make a slow
 * password hash unnecessary, and lookup by hash keeps the comparison off the secret itself.
 */
import { createHash, randomBytes } from 'node:crypto'
import { CareLedgerError } from '../../shared/errors.ts'

export type SecretPrefix = 'clt_' | 'cle_'

export const newSecret = (prefix: SecretPrefix): string => `${prefix}${randomBytes(32).toString('base64url')}`

export const secretHash = (secret: string): Buffer => createHash('sha256').update(secret, 'utf8').digest()

/** The shape of a secret with `prefix` (43 base64url characters after it). */
export const looksLikeSecret = (s: unknown, prefix: SecretPrefix): s is string => typeof s === 'string' && s.length === 47 && s.startsWith(prefix) && /^[A-Za-z0-9_-]{43}$/.test(s.slice(4))

/** Names of people's tokens and of gateways: shown in lists and the console, used on the command line. */
export const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/

export function assertName(what: string, name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new CareLedgerError('INVALID_ARGUMENT', `${what} name ${JSON.stringify(name)} must be 1–64 characters of A-Z a-z 0-9 . _ @ -, starting with a letter or digit`, { name })
  }
  return name
}
