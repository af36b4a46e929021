/**
 * A task's result or its typed error, in a form that crosses threads (structured clone): what the
 * store's worker threads answer (sync-pool.ts) and what a bulk admission returns per upload
 * (record.ts admitBatches). Free of worker_threads, so record.ts stays usable in the browser bundle.
 */
import { CareLedgerError, isCareLedgerError, type ErrorCode } from '../../shared/errors.ts'

export type Outcome<R> = { readonly ok: R } | { readonly error: { readonly code: ErrorCode | 'INTERNAL'; readonly message: string; readonly info: Record<string, unknown> } }

export function attempt<R>(f: () => R): Outcome<R> {
  try {
    return { ok: f() }
  } catch (e) {
    if (isCareLedgerError(e)) return { error: { code: e.code, message: e.message, info: { ...e.info } } }
    return { error: { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e), info: {} } }
  }
}

/** The CareLedgerError an outcome carries (an internal failure becomes a plain Error). */
export function outcomeError(o: Outcome<unknown>): Error | null {
  if ('ok' in o) return null
  const { code, message, info } = o.error
  return code === 'INTERNAL' ? new Error(message) : new CareLedgerError(code, message, info)
}
