/**
 * Randomness is injected everywhere so that known-answer tests can replay a run byte for byte.
 * Production code uses the OS CSPRNG; tests use a SHAKE256 stream seeded with a fixed string.
 */
import { shake256 } from '@noble/hashes/sha3.js'
import { randomBytes } from '@noble/hashes/utils.js'
import { mapHashToField } from '@noble/curves/abstract/modular.js'
import { bytesToNumberBE } from '@noble/curves/utils.js'

export type Rng = (length: number) => Uint8Array

/** The operating system's CSPRNG (crypto.getRandomValues). */
export const systemRng: Rng = (length) => randomBytes(length)

/**
 * The OS CSPRNG read 4 KiB at a time, for randomness that is published right after use (a
 * chameleon-hash opening's r and s, docs/crypto.md) or matters only until a check is done (the
 * weights of an Ed25519 batch, drawn after the signatures are fixed): one getRandomValues per
 * ~40 records instead of two each (issue 14's append profile: 6 µs a call). Never for secret keys
 * or nonces, whose bytes should not sit in a buffer before use: those take systemRng.
 */
export const publicRng: Rng = (() => {
  const POOL = 4096
  let pool = new Uint8Array(0)
  let at = 0
  return (length: number): Uint8Array => {
    if (length > POOL) return randomBytes(length)
    if (at + length > pool.length) {
      pool = randomBytes(POOL)
      at = 0
    }
    const out = pool.slice(at, at + length)
    pool.fill(0, at, at + length) // drawn bytes leave the pool
    at += length
    return out
  }
})()

/** A deterministic RNG for known-answer tests only: SHAKE256(seed) read as an endless stream. */
export function deterministicRng(seed: string | Uint8Array): Rng {
  const xof = shake256.create({}).update(typeof seed === 'string' ? new TextEncoder().encode(seed) : seed)
  return (length) => xof.xof(length)
}

/**
 * A uniform non-zero scalar modulo `order`, from 48+ random bytes reduced as in FIPS 186-5 A.2.1
 * (noble's mapHashToField), so the bias is below 2^-128.
 */
export function randomScalar(rng: Rng, order: bigint): bigint {
  const bytes = Math.ceil((order.toString(2).length + 128) / 8)
  return bytesToNumberBE(mapHashToField(rng(Math.max(bytes, 48)), order))
}
