/**
 * Outsourced decryption, Green–Hohenberger–Waters style ("Outsourcing the Decryption of ABE
 * Ciphertexts", USENIX Security 2011, §3 key blinding), applied to FABEO:
 *
 *   MakeTransformKey:  z ← Zr;  TK = (K0^(1/z), K1^(1/z), K_x^(1/z));  RK = z
 *                      TK is an ordinary FABEO key for master secret α/z and randomness r/z,
 *                      so the proxy holding it learns nothing it could not learn from a key
 *                      that decrypts to a different, unrelated value.
 *   Transform (proxy): T = Decaps(TK, CT) = e(g,h)^(α·s0/z)          — all the pairings
 *   Finish (user):     K = T^z                                       — one GT exponentiation
 *
 * A lying proxy is caught by the envelope: the data key and a key-commitment tag are derived
 * from K and the ciphertext header (envelope.ts), so any T ≠ e(g,h)^(α·s0/z) fails there.
 * T is also checked to lie in GT before it is exponentiated: an element of a small subgroup
 * would otherwise turn success/failure into an oracle on z mod its order.
 */
import { invert } from '@noble/curves/abstract/modular.js'
import { CareLedgerError } from '../../errors.ts'
import { randomScalar, systemRng, type Rng } from '../random.ts'
import { decaps, type Ciphertext, type UserKey } from './fabeo.ts'
import { backend } from './backend.ts'
import { ORDER } from './groups.ts'
import type { GT } from './gt.ts'

/** The user's retrieval secret z. */
export interface RetrievalKey {
  readonly authority: Uint8Array
  readonly z: bigint
}

export interface OutsourcedKeys {
  /** Give this to the proxy (gateway or cloud). */
  readonly transformKey: UserKey
  /** Keep this: 32 bytes that finish a transformed ciphertext. */
  readonly retrievalKey: RetrievalKey
}

export function makeTransformKey(key: UserKey, rng: Rng = systemRng): OutsourcedKeys {
  const z = randomScalar(rng, ORDER)
  const zInv = invert(z, ORDER)
  return {
    transformKey: {
      authority: key.authority,
      attributes: key.attributes,
      k0: key.k0.multiply(zInv),
      k1: key.k1.multiply(zInv),
      kx: key.kx.map((p) => p.multiply(zInv)),
    },
    retrievalKey: { authority: key.authority, z },
  }
}

/** The proxy's work: T = e(g,h)^(α·s0/z). Same errors as decaps. */
export function transform(transformKey: UserKey, ct: Ciphertext): GT {
  return decaps(transformKey, ct)
}

/** The user's work: K = T^z, after checking T is in GT (and not 1, which no honest proxy returns). */
export function finish(rk: RetrievalKey, transformed: GT): GT {
  const b = backend()
  let t: GT | null
  try {
    t = b.adoptGT(transformed)
  } catch {
    t = null
  }
  if (!t || !b.isInGT(t)) {
    throw new CareLedgerError('DECRYPTION_FAILED', 'transformed ciphertext is not an element of GT: the proxy returned garbage', {
      reason: 'NOT_IN_GT',
    })
  }
  if (t.isOne()) {
    throw new CareLedgerError('DECRYPTION_FAILED', 'transformed ciphertext is 1: the proxy returned a degenerate value', { reason: 'DEGENERATE' })
  }
  return t.pow(rk.z)
}
