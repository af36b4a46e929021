/**
 * Shared by the FROST tests: typed-error capture, hex, and a full signing session run by honest
 * participants (round one, round two) for any suite.
 */
import { isCareLedgerError } from '../../shared/errors.ts'
import type { Rng } from '../../shared/crypto/random.ts'
import type { FrostCommitment, FrostGroup, FrostNonces, FrostShare, FrostSignatureShare, FrostSuite } from '../../shared/crypto/frost.ts'

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
export const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))

/** The code, reason and info of a CareLedgerError; anything untyped fails the test. */
export function errorOf(f: () => unknown): { code: string; reason: unknown; info: Record<string, unknown>; message: string } | null {
  try {
    f()
    return null
  } catch (e) {
    if (!isCareLedgerError(e)) throw e
    return { code: e.code, reason: e.info.reason, info: e.info as Record<string, unknown>, message: e.message }
  }
}

export interface Session {
  readonly signers: readonly FrostShare[]
  readonly nonces: FrostNonces[]
  readonly commitments: FrostCommitment[]
}

/** Round one for `signers`. */
export function roundOne(suite: FrostSuite, signers: readonly FrostShare[], rng: Rng): Session {
  const out = signers.map((s) => suite.commit(s, rng))
  return { signers, nonces: out.map((o) => o.nonces), commitments: out.map((o) => o.commitment) }
}

/** Round two by every signer of the session. */
export function roundTwo(suite: FrostSuite, group: FrostGroup, session: Session, message: Uint8Array): FrostSignatureShare[] {
  return session.signers.map((s, i) => suite.sign(s, group, session.nonces[i]!, session.commitments, message))
}
