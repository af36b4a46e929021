/**
 * Which pairing backend a process uses (shared/crypto/abe/select.ts), from `--crypto-backend`,
 * else CARELEDGER_CRYPTO_BACKEND, else `auto` (mcl-wasm where it passes its self-test on
 * linux-x64 and linux-arm64, noble otherwise). Read once at process start by bin/careledger.ts;
 * the gateway's back-office thread, which does the gateway's sealing, loads it itself.
 */
// Light imports only: the gateway's ingest thread reads the choice here without loading the curves.
import { BACKEND_CHOICES, parseBackendChoice, type BackendChoice } from '../crypto/abe/backend.ts'
import type { BackendSelection } from '../crypto/abe/select.ts'

export const CRYPTO_BACKEND_ENV = 'CARELEDGER_CRYPTO_BACKEND'
export const CRYPTO_BACKEND_FLAG = '--crypto-backend <name>'
export const CRYPTO_BACKEND_HELP = `pairing backend for CP-ABE: ${BACKEND_CHOICES.join(', ')} (env ${CRYPTO_BACKEND_ENV}; default auto: mcl-wasm where its self-test passes on linux-x64/arm64, else noble)`

/** flag > environment > auto; INVALID_ARGUMENT naming the flag or the variable for anything else. */
export function cryptoBackendChoice(flag: string | undefined, env: Readonly<Record<string, string | undefined>> = process.env): BackendChoice {
  if (flag !== undefined) return parseBackendChoice(flag, '--crypto-backend')
  const value = env[CRYPTO_BACKEND_ENV]
  if (value !== undefined && value.trim() !== '') return parseBackendChoice(value, CRYPTO_BACKEND_ENV)
  return 'auto'
}

let selection: BackendSelection | null = null

/** Make the choice this thread's backend (once; again only with another choice). */
export async function initCrypto(choice: BackendChoice): Promise<BackendSelection> {
  if (selection?.requested === choice) return selection
  const { useBackend } = await import('../crypto/abe/select.ts')
  selection = await useBackend(choice, `${process.platform}-${process.arch}`)
  return selection
}

/** What initCrypto chose, for start-up logs; null if it has not run in this thread. */
export const cryptoSelection = (): BackendSelection | null => selection

/** The selection as log fields. */
export const cryptoLogFields = (s: BackendSelection | null): Record<string, string> | null =>
  s && { backend: s.backend.name, requested: s.requested, reason: s.reason, library: s.backend.description }
