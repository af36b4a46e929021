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
