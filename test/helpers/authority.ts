/** One FABEO authority per test file (Setup costs a GT exponentiation), deterministic for reproducibility. */
import { keyGen, setup, type MasterSecretKey, type UserKey } from '../../shared/crypto/abe/fabeo.ts'
import { deterministicRng, type Rng } from '../../shared/crypto/random.ts'
import { epochOf, keyAttributes } from '../../shared/protocol/epoch.ts'

export const rng = deterministicRng('careledger test authority')
export const msk = setup(rng)
export const mpk = msk.mpk

const MONTH_MS = 31 * 24 * 3600_000

/**
 * A key for `attributes` valid from last month to next month (UTC), like `authority keygen` issues:
 * it opens what the gateway seals today (docs/security.md §Key expiry), whatever day the tests run.
 */
export const currentKey = (authority: MasterSecretKey, attributes: readonly string[], now = Date.now(), r?: Rng): UserKey =>
  keyGen(authority, keyAttributes(attributes, { from: epochOf(now - MONTH_MS), until: epochOf(now + MONTH_MS) }), r)
