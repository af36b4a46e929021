/**
 * Typed errors, in the manner of ethers v6: every error CareLedger raises on bad input carries a
 * stable `code` that callers can switch on, a message naming what was wrong, and the offending
 * value(s) in `info`. Anything else escaping a parser is a bug.
 */
export type ErrorCode =
  /** A policy string could not be parsed; `info.position` is the 0-based offset. */
  | 'INVALID_POLICY'
  /** A well-formed policy that the scheme cannot express (e.g. an attribute used twice under FABEO). */
  | 'UNSUPPORTED_POLICY'
  /** The key's attributes do not satisfy the ciphertext's policy. */
  | 'POLICY_NOT_SATISFIED'
  /** A byte string is not a valid encoding: length, tag, version, point or scalar. */
  | 'INVALID_ENCODING'
  /** An encoding announces a version or kind this build does not know. */
  | 'UNSUPPORTED_VERSION'
  /** AEAD or key-commitment check failed: wrong key, tampered data, or a lying proxy. */
  | 'DECRYPTION_FAILED'
  /** A signature, chameleon-hash opening or Merkle proof does not verify. */
  | 'VERIFICATION_FAILED'
  /** A function argument is out of its documented range. */
  | 'INVALID_ARGUMENT'

export class CareLedgerError extends Error {
  readonly code: ErrorCode
  readonly info: Readonly<Record<string, unknown>>

  constructor(code: ErrorCode, message: string, info: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options)
    this.name = 'CareLedgerError'
    this.code = code
    this.info = info
  }
}

/** Narrow an unknown thrown value to a CareLedgerError (optionally of one code). */
export function isCareLedgerError(e: unknown, code?: ErrorCode): e is CareLedgerError {
  return e instanceof CareLedgerError && (code === undefined || e.code === code)
}

/**
 * A CareLedgerError thrown in a worker thread reaches the parent as a plain Error carrying `name`,
 * `code` and `info` (structured clone drops the class): make it a CareLedgerError again, so the
 * CLI prints it as one line (shared/cli/run.ts). Anything else is returned as it is.
 */
export function reviveCareLedgerError(e: unknown): unknown {
  if (e instanceof CareLedgerError || !(e instanceof Error) || e.name !== 'CareLedgerError') return e
  const { code, info } = e as Error & { code?: unknown; info?: unknown }
  if (typeof code !== 'string') return e
  return new CareLedgerError(code as ErrorCode, e.message, typeof info === 'object' && info !== null ? (info as Record<string, unknown>) : {}, { cause: e })
}
