/**
 * publicRng (shared/crypto/random.ts): the OS CSPRNG read 4 KiB at a time, for the chameleon-hash
 * openings the cloud publishes. Every draw is fresh bytes of the asked length, never shared with
 * another draw (a caller changing its copy changes nothing else), across pool refills and for
 * lengths beyond the pool.
 */
import { describe, expect, it } from 'vitest'
import { publicRng, randomScalar } from '../../shared/crypto/random.ts'

describe('publicRng', () => {
  it('gives distinct, unshared draws of the asked length across refills, and longer ones too', () => {
    const seen = new Set<string>()
    const draws: Uint8Array[] = []
    for (let i = 0; i < 1000; i++) {
      const d = publicRng(48) // a scalar's worth (randomScalar reads 48 bytes); 1000 draws span ~12 refills
      expect(d.length).toBe(48)
      seen.add(Buffer.from(d).toString('hex'))
      draws.push(d)
    }
    expect(seen.size).toBe(1000)
    const copy = Buffer.from(draws[999]!)
    draws[998]!.fill(0) // another draw's buffer: not this one's
    expect(Buffer.from(draws[999]!)).toEqual(copy)
    expect(publicRng(10_000).length).toBe(10_000)
    // Roughly uniform bytes: each of 256 values seen in 64 KiB.
    const bytes = Buffer.concat(Array.from({ length: 1024 }, () => publicRng(64)))
    expect(new Set(bytes).size).toBe(256)
    expect(randomScalar(publicRng, 2n ** 252n + 27742317777372353535851937790883648493n)).toBeGreaterThan(0n)
  })
})
