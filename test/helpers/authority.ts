/** One FABEO authority per test file (Setup costs a GT exponentiation), deterministic for reproducibility. */
import { setup } from '../../shared/crypto/abe/fabeo.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'

export const rng = deterministicRng('careledger test authority')
export const msk = setup(rng)
export const mpk = msk.mpk
