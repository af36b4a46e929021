/**
 * Known-answer vectors for sealed secrets (shared/crypto/sealed-secret.ts): deterministic-RNG runs
 * whose outputs are committed in sealed-secret.json and checked byte for byte by
 * test/crypto/sealed-secret.test.ts. One at the default cost (scrypt N=2^17, r=8, p=1), one at the
 * lowest (N=2^10) with a non-ASCII passphrase given in NFC. Regenerate only on a deliberate format
 * change (npm run kat:regenerate); keep the vectors of a retired scheme beside the new ones.
 */
import { deriveSealingKey, sealSecret, type ScryptParams } from '../../shared/crypto/sealed-secret.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

export interface SealedSecretCase {
  readonly name: string
  readonly seed: string
  readonly passphrase: string
  readonly label: string
  readonly params: ScryptParams
  readonly secretLength: number
}

export const SEALED_SECRET_CASES: readonly SealedSecretCase[] = [
  { name: 'default cost, Ed25519 seed', seed: 'careledger sealed-secret kat v1 a', passphrase: 'correct horse battery staple', label: 'gateway signing key (Ed25519 seed)', params: { log2N: 17, r: 8, p: 1 }, secretLength: 32 },
  { name: 'lowest cost, NFC passphrase, empty secret', seed: 'careledger sealed-secret kat v1 b', passphrase: 'Grüße, Ünïcödé — ☃'.normalize('NFC'), label: 'an empty secret', params: { log2N: 10, r: 8, p: 1 }, secretLength: 0 },
]

export function computeSealedSecretVectors(): Array<Record<string, unknown>> {
  return SEALED_SECRET_CASES.map((c) => {
    const rng = deterministicRng(c.seed)
    const secret = rng(c.secretLength)
    const key = deriveSealingKey(c.passphrase, rng(16), c.params)
    const sealed = sealSecret(secret, key, c.label, rng)
    return { ...c, secret: hex(secret), salt: hex(key.salt), key: hex(key.key), check: hex(key.check), sealed: hex(sealed) }
  })
}
