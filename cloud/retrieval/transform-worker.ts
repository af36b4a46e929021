/**
 * Worker thread of outsourced decryption (transform-pool.ts): the proxy side of Green–Hohenberger–
 * Waters, `transformEnvelope` (shared/crypto/envelope.ts) — all the pairings of a decryption, done
 * with the holder's transformation key, which yields only K^(1/z) (docs/crypto.md §Outsourced).
 */
import { parentPort } from 'node:worker_threads'
import { decodeTransformKey } from '../../shared/crypto/abe/codec.ts'
import type { UserKey } from '../../shared/crypto/abe/fabeo.ts'
import { transformEnvelope } from '../../shared/crypto/envelope.ts'
import { isCareLedgerError } from '../../shared/errors.ts'

export interface TransformJob {
  readonly id: number
  readonly transformKey: Uint8Array
  readonly envelope: Uint8Array
}

export type TransformAnswer = { readonly id: number; readonly transformed: Uint8Array } | { readonly id: number; readonly error: { readonly code: string; readonly message: string } }

// Decoding a key validates every point (≈ 1 ms a point): keep the last few decoded keys.
const keys = new Map<string, UserKey>()
const keyOf = (bytes: Uint8Array): UserKey => {
  const k = Buffer.from(bytes).toString('base64')
  let key = keys.get(k)
  if (!key) {
    key = decodeTransformKey(bytes)
    if (keys.size >= 16) keys.delete(keys.keys().next().value!)
    keys.set(k, key)
  }
  return key
}

parentPort!.on('message', (job: TransformJob) => {
  let answer: TransformAnswer
  try {
    answer = { id: job.id, transformed: transformEnvelope(keyOf(job.transformKey), job.envelope) }
  } catch (e) {
    answer = { id: job.id, error: isCareLedgerError(e) ? { code: e.code, message: e.message } : { code: 'INTERNAL', message: 'transformation failed' } }
  }
  parentPort!.postMessage(answer)
})
