import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { bls12_381 } from '@noble/curves/bls12-381.js'
import { decaps, encaps, keyGen, setup } from '../../shared/crypto/abe/fabeo.ts'
import { finish, makeTransformKey, transform } from '../../shared/crypto/abe/outsource.ts'
import { evaluatePolicy, parsePolicy } from '../../shared/crypto/policy/parse.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import type { GT } from '../../shared/crypto/abe/gt.ts'
import { policyAndAttributesArb } from '../helpers/policies.ts'
import { msk, mpk, rng } from '../helpers/authority.ts'

const F12 = bls12_381.fields.Fp12
const EXAMPLE = '(role:doctor AND hospital:h1) OR patient:p-7f3a OR (role:researcher AND consent:research)'

function codeOf(f: () => unknown): string {
  try {
    f()
  } catch (e) {
    if (isCareLedgerError(e)) return e.code
    throw e
  }
  return 'no error'
}

describe('FABEO CP-ABE KEM', () => {
  it('decapsulates the example policy for each satisfying role, and refuses others', () => {
    const { ciphertext, key } = encaps(mpk, EXAMPLE, rng)
    for (const attrs of [['role:doctor', 'hospital:h1'], ['patient:p-7f3a'], ['role:researcher', 'consent:research', 'dept:x']]) {
      expect(decaps(keyGen(msk, attrs, rng), ciphertext).equals(key)).toBe(true)
    }
    for (const attrs of [['role:doctor', 'hospital:h2'], ['role:researcher'], ['patient:p-0000']]) {
      expect(codeOf(() => decaps(keyGen(msk, attrs, rng), ciphertext))).toBe('POLICY_NOT_SATISFIED')
    }
  })

  it('Decaps succeeds exactly when the attributes satisfy the policy, and then yields the encapsulated key (property)', () => {
    fc.assert(
      fc.property(policyAndAttributesArb(8), ({ policy, attributes }) => {
        const { ciphertext, key } = encaps(mpk, policy.text, rng)
        const userKey = keyGen(msk, attributes, rng)
        const satisfied = evaluatePolicy(parsePolicy(policy.text), new Set(attributes))
        if (satisfied) expect(decaps(userKey, ciphertext).equals(key)).toBe(true)
        else expect(codeOf(() => decaps(userKey, ciphertext))).toBe('POLICY_NOT_SATISFIED')
      }),
      { numRuns: 12 },
    )
  })

  it('outsourced decryption gives the same key (property)', () => {
    fc.assert(
      fc.property(policyAndAttributesArb(6), ({ policy, attributes }) => {
        const all = [...attributes, ...Array.from({ length: policy.leaves }, (_, i) => `a:${i}`)]
        const { ciphertext, key } = encaps(mpk, policy.text, rng)
        const { transformKey, retrievalKey } = makeTransformKey(keyGen(msk, all, rng), rng)
        expect(finish(retrievalKey, transform(transformKey, ciphertext)).equals(key)).toBe(true)
      }),
      { numRuns: 6 },
    )
  })

  it('a transformation key alone does not decrypt: it yields K^(1/z), not K', () => {
    const { ciphertext, key } = encaps(mpk, 'role:doctor', rng)
    const { transformKey } = makeTransformKey(keyGen(msk, ['role:doctor'], rng), rng)
    expect(decaps(transformKey, ciphertext).equals(key)).toBe(false)
  })

  it('keys from colluding users cannot be combined by mixing components', () => {
    // doctor at h2 + nurse at h1 must not open "role:doctor AND hospital:h1"
    const { ciphertext } = encaps(mpk, 'role:doctor AND hospital:h1', rng)
    const a = keyGen(msk, ['role:doctor', 'hospital:h2'], rng)
    const b = keyGen(msk, ['role:nurse', 'hospital:h1'], rng)
    const mixed = { ...a, attributes: ['hospital:h1', 'role:doctor'], kx: [b.kx[0]!, a.kx[1]!] }
    const { key } = encaps(mpk, 'role:doctor AND hospital:h1', rng)
    expect(decaps(mixed, ciphertext).equals(key)).toBe(false)
  })

  it('rejects policies that repeat an attribute, naming it and both positions', () => {
    try {
      encaps(mpk, '(role:doctor AND hospital:h1) OR (role:doctor AND hospital:h2)', rng)
      expect.unreachable()
    } catch (e) {
      expect(isCareLedgerError(e, 'UNSUPPORTED_POLICY')).toBe(true)
      if (isCareLedgerError(e)) expect(e.info).toMatchObject({ attribute: 'role:doctor', positions: [1, 34] })
    }
    // The factored form works.
    expect(encaps(mpk, 'role:doctor AND (hospital:h1 OR hospital:h2)', rng).ciphertext.rows).toHaveLength(3)
  })

  it('refuses a key from another authority with a clear error', () => {
    const other = setup(rng)
    const { ciphertext } = encaps(mpk, 'role:doctor', rng)
    expect(codeOf(() => decaps(keyGen(other, ['role:doctor'], rng), ciphertext))).toBe('INVALID_ARGUMENT')
  })

  it('rejects a transformed value outside GT before exponentiating', () => {
    const { retrievalKey } = makeTransformKey(keyGen(msk, ['role:doctor'], rng), rng)
    const notInGT = F12.fromBigTwelve([3n, 1n, 4n, 1n, 5n, 9n, 2n, 6n, 5n, 3n, 5n, 8n])
    // Not an element any backend made: Finish re-decodes it and refuses it.
    const forged = { group: 'GT', toBytes: () => F12.toBytes(notInGT) } as unknown as GT
    expect(codeOf(() => finish(retrievalKey, forged))).toBe('DECRYPTION_FAILED')
  })
})
