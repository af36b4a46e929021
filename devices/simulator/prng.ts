/**
 * Seeded pseudo-randomness for the simulator: the same seed replays the same patients, artefacts
 * and faults, so a gateway bug seen once can be reproduced. Not for cryptography (that is
 * shared/crypto/random.ts).
 */

/** Uniform in [0, 1). */
export type Random = () => number

/** xmur3 string hash → 32-bit seeds, then sfc32 (PractRand-clean, fast, 128-bit state). */
export function seededRandom(seed: string): Random {
  let h = 1779033703 ^ seed.length
  for (let i = 0; i < seed.length; i++) {
    h = Math.imul(h ^ seed.charCodeAt(i), 3432918353)
    h = (h << 13) | (h >>> 19)
  }
  const next32 = (): number => {
    h = Math.imul(h ^ (h >>> 16), 2246822507)
    h = Math.imul(h ^ (h >>> 13), 3266489909)
    return (h ^= h >>> 16) >>> 0
  }
  let a = next32(), b = next32(), c = next32(), d = next32()
  const rand: Random = () => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0
    const t = (a + b) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    d = (d + 1) | 0
    const r = (t + d) | 0
    c = (c + r) | 0
    return (r >>> 0) / 4294967296
  }
  for (let i = 0; i < 12; i++) rand() // let the state mix before use
  return rand
}

/** Standard normal deviate (Box–Muller). */
export function gaussian(rand: Random): number {
  const u = 1 - rand() // (0, 1]: log(0) is -Infinity
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand())
}

export const uniform = (rand: Random, lo: number, hi: number): number => lo + (hi - lo) * rand()

/** Normal(mean, sd) clipped into [lo, hi]. */
export const clippedNormal = (rand: Random, mean: number, sd: number, lo: number, hi: number): number =>
  Math.min(hi, Math.max(lo, mean + sd * gaussian(rand)))

/** True with probability 1 − e^(−ratePerS·dtS): a Poisson event in a step of dtS seconds. */
export const poissonEvent = (rand: Random, ratePerS: number, dtS: number): boolean => rand() < 1 - Math.exp(-ratePerS * dtS)
