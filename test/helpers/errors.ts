/** For assertions on typed errors: the code and `info.reason` of a CareLedgerError; anything untyped fails the test. */
import { isCareLedgerError } from '../../shared/errors.ts'

export function errorOf(f: () => unknown): { code: string; reason: unknown } | null {
  try {
    f()
    return null
  } catch (e) {
    if (!isCareLedgerError(e)) throw e
    return { code: e.code, reason: e.info.reason }
  }
}
