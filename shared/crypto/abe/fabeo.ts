/**
 * FABEO CP-ABE as a key-encapsulation mechanism on BLS12-381
 * (Riepel & Wee, "FABEO: Fast Attribute-Based Encryption with Optimal Security", CCS 2022, Fig. 1 left,
 * as implemented in the authors' Charm code ACMCCS2024/FABEO and in FABESA).
 *
 *   Setup:   α ← Zr;  mpk = e(g,h)^α;  msk = α            (g, h: the standard generators of G1, G2)
 *   KeyGen:  r ← Zr;  K0 = h^r;  K_x = H(x)^r for each attribute x;  K1 = g^α · H(b)^r
 *   Encaps:  (M, ρ) = LSSS(policy);  s0, s1 ← Zr;  v = (s0, y2, …, yc)
 *            C0 = h^s0, C1 = h^s1;  C_i = H(b)^(M_i·v) · H(ρ(i))^s1;   K = e(g,h)^(α·s0)
 *   Decaps:  {ω_i} with Σ ω_i M_i = (1,0,…,0);
 *            K = e(K1, C0) · e(Π K_ρ(i)^ω_i, C1) / e(Π C_i^ω_i, K0)        — 3 pairings, one batch
 *
 * Security: adaptive in the generic group model with H a random oracle. The scheme as given needs
 * every attribute to label at most one row (rows with the same attribute would share H(x)^s1);
 * `encaps` rejects such policies with UNSUPPORTED_POLICY instead of silently weakening them.
 * See docs/crypto.md.
 */
import { CareLedgerError } from '../../errors.ts'
import { randomScalar, systemRng, type Rng } from '../random.ts'
import { canonicalAttributeSet } from '../policy/attribute.ts'
import { assertEachAttributeOnce, formatPolicy, parsePolicy, type PolicyNode } from '../policy/parse.ts'
import { compileLsss, reconstruct, type Lsss } from '../policy/lsss.ts'
import { backend, type PairingBackend } from './backend.ts'
import { ORDER, egh, hashAttribute, hb, mulG2Generator, pairingProduct, type G1, type G2 } from './groups.ts'
import { gtToBytes, type GT } from './gt.ts'
import { sha256 } from '@noble/hashes/sha2.js'
import { concatBytes } from '@noble/hashes/utils.js'

const utf8 = new TextEncoder()

export interface MasterPublicKey {
  /** e(g, h)^α */
  readonly eghAlpha: GT
  /** Authority id: SHA-256("careledger/authority\0" ‖ e(g,h)^α), first 16 bytes. Keys and ciphertexts carry it. */
  readonly id: Uint8Array
}

export interface MasterSecretKey {
  readonly alpha: bigint
  readonly mpk: MasterPublicKey
}

/**
 * A user's decryption key. A transformation key (outsource.ts) has exactly this shape: it is a
 * key under the re-scaled master secret α/z, which is why a proxy holding it learns nothing.
 */
export interface UserKey {
  /** The issuing authority (MasterPublicKey.id). */
  readonly authority: Uint8Array
  /** Canonical attributes, sorted. */
  readonly attributes: readonly string[]
  /** K0 = h^r */
  readonly k0: G2
  /** K1 = g^α · H(b)^r */
  readonly k1: G1
  /** K_x = H(x)^r, aligned with `attributes`. */
  readonly kx: readonly G1[]
}

/** The ABE header of a ciphertext. The policy travels as canonical text; M and ρ are re-derived from it. */
export interface Ciphertext {
  readonly authority: Uint8Array
  readonly policy: string
  readonly c0: G2
  readonly c1: G2
  /** One G1 element per LSSS row, in row order. */
  readonly rows: readonly G1[]
}

export function setup(rng: Rng = systemRng): MasterSecretKey {
  const alpha = randomScalar(rng, ORDER)
  return masterFromAlpha(alpha)
}

export function masterFromAlpha(alpha: bigint): MasterSecretKey {
  if (alpha <= 0n || alpha >= ORDER) throw new CareLedgerError('INVALID_ARGUMENT', 'the master secret α must be in [1, r)', { reason: 'SCALAR_OUT_OF_RANGE' })
  return { alpha, mpk: masterPublicKey(egh().pow(alpha)) }
}

/**
 * The public key e(g,h)^α. It must not be 1 (α ≡ 0): under it every ciphertext's key would be 1
 * and every envelope would open without any attribute key. A non-trivial element of GT generates
 * GT (its order r is prime), so 1 is the only degenerate value.
 */
export function masterPublicKey(eghAlpha: GT): MasterPublicKey {
  const x = backend().adoptGT(eghAlpha)
  if (x.isOne()) throw degenerateMasterKey()
  eghAlpha = x
  const id = sha256(concatBytes(utf8.encode('careledger/authority\0'), gtToBytes(eghAlpha))).subarray(0, 16)
  return { eghAlpha, id }
}

export const degenerateMasterKey = (): CareLedgerError =>
  new CareLedgerError('INVALID_ARGUMENT', 'degenerate master public key e(g,h)^α = 1: every envelope under it would open without any attribute key', {
    reason: 'DEGENERATE_KEY',
  })

/** g^α of a master secret, memoised per key and backend: the fixed part of every K1. */
const gAlphaOf = new WeakMap<MasterSecretKey, { backend: PairingBackend; point: G1 }>()
function gAlpha(msk: MasterSecretKey): G1 {
  const b = backend()
  let hit = gAlphaOf.get(msk)
  if (!hit || hit.backend !== b) {
    hit = { backend: b, point: b.g1Base().multiply(msk.alpha) }
    gAlphaOf.set(msk, hit)
  }
  return hit.point
}

export function keyGen(msk: MasterSecretKey, attributes: readonly string[], rng: Rng = systemRng): UserKey {
  const attrs = canonicalAttributeSet(attributes)
  const r = randomScalar(rng, ORDER)
  return {
    authority: msk.mpk.id,
    attributes: attrs,
    k0: mulG2Generator(r),
    k1: gAlpha(msk).add(hb().multiply(r)),
    kx: attrs.map((a) => hashAttribute(a).multiply(r)),
  }
}

// ---- policies -------------------------------------------------------------------------------

export interface CompiledPolicy {
  readonly text: string
  readonly tree: PolicyNode
  readonly lsss: Lsss
}

const policyCache = new Map<string, CompiledPolicy>()

/**
 * Parse, check and compile a policy for FABEO (memoised by text). Throws INVALID_POLICY for
 * syntax errors and UNSUPPORTED_POLICY when an attribute appears more than once.
 */
export function compilePolicy(policy: string): CompiledPolicy {
  const hit = policyCache.get(policy)
  if (hit) return hit
  const tree = parsePolicy(policy)
  assertEachAttributeOnce(tree, policy)
  const compiled = { text: formatPolicy(tree), tree, lsss: compileLsss(tree, ORDER) }
  if (policyCache.size >= 1024) policyCache.clear()
  policyCache.set(policy, compiled)
  return compiled
}

// ---- encapsulation --------------------------------------------------------------------------

export interface Encapsulation {
  readonly ciphertext: Ciphertext
  /** The encapsulated key K = e(g,h)^(α·s0); feed it to the KDF, never use it directly. */
  readonly key: GT
}

export function encaps(mpk: MasterPublicKey, policy: string, rng: Rng = systemRng): Encapsulation {
  const eghAlpha = backend().adoptGT(mpk.eghAlpha)
  if (eghAlpha.isOne()) throw degenerateMasterKey()
  const { text, lsss } = compilePolicy(policy)
  const s0 = randomScalar(rng, ORDER)
  const s1 = randomScalar(rng, ORDER)
  const v = [s0]
  for (let c = 1; c < lsss.cols; c++) v.push(randomScalar(rng, ORDER))
  const H = hb()
  const rows = lsss.rows.map((m, i) => {
    let lambda = 0n
    for (let c = 0; c < m.length; c++) if (m[c]) lambda += m[c]! * v[c]!
    return H.multiply(lambda).add(hashAttribute(lsss.rho[i]!).multiply(s1))
  })
  return {
    ciphertext: { authority: mpk.id, policy: text, c0: mulG2Generator(s0), c1: mulG2Generator(s1), rows },
    key: eghAlpha.pow(s0),
  }
}

/**
 * The pairing product shared by Decaps and Transform. Throws POLICY_NOT_SATISFIED (naming the
 * policy and the key's attributes) when the key cannot open the ciphertext.
 */
const HALF_ORDER = ORDER >> 1n

export function decaps(key: UserKey, ct: Ciphertext): GT {
  if (!equalBytes(key.authority, ct.authority)) {
    throw new CareLedgerError('INVALID_ARGUMENT', 'the key and the ciphertext come from different attribute authorities', {
      keyAuthority: hex(key.authority),
      ciphertextAuthority: hex(ct.authority),
    })
  }
  const { tree, lsss, text } = compilePolicy(ct.policy)
  if (ct.rows.length !== lsss.rho.length) {
    throw new CareLedgerError('INVALID_ENCODING', `ciphertext has ${ct.rows.length} rows but its policy has ${lsss.rho.length}`, {
      what: 'ciphertext',
      reason: 'ROW_COUNT',
    })
  }
  if (key.kx.length !== key.attributes.length) {
    throw new CareLedgerError('INVALID_ARGUMENT', `the key holds ${key.attributes.length} attributes but ${key.kx.length} attribute components`, { reason: 'KEY_SHAPE' })
  }
  const index = new Map(key.attributes.map((a, i) => [a, i]))
  const solution = reconstruct(tree, new Set(key.attributes), ORDER)
  if (!solution) {
    throw new CareLedgerError('POLICY_NOT_SATISFIED', `attributes [${key.attributes.join(', ')}] do not satisfy the policy "${text}"`, {
      policy: text,
      attributes: key.attributes,
    })
  }
  // Σ ω_i·K_ρ(i) and Σ ω_i·C_i. AND/OR rows have ω = 1 (plain additions); threshold rows carry
  // Lagrange coefficients, multiplied in one shared doubling chain (Straus–Shamir; ω is public).
  // A coefficient is taken as the signed residue of least magnitude: Lagrange coefficients at 0
  // are often small integers (for rows 1..k of a k-of-n gate they are ±C(k, i)), and a short
  // scalar shortens the whole doubling chain.
  // Defence in depth: the decoders validate every point, but a Ciphertext or UserKey may have been
  // built some other way. Each element used here must be a valid, non-identity group element
  // (adopt* re-checks anything the backend did not make itself).
  const b = backend()
  const k0 = usable(b.adoptG2(key.k0), 'the key\'s K0')
  const k1 = usable(b.adoptG1(key.k1), 'the key\'s K1')
  const c0 = usable(b.adoptG2(ct.c0), 'the ciphertext\'s C0')
  const c1 = usable(b.adoptG2(ct.c1), 'the ciphertext\'s C1')
  let kSum = b.g1Zero()
  let cSum = b.g1Zero()
  const weighted: { k: G1[]; c: G1[]; w: bigint[] } = { k: [], c: [], w: [] }
  solution.rows.forEach((row, j) => {
    const w = solution.coefficients[j]!
    const negative = w > HALF_ORDER
    const magnitude = negative ? ORDER - w : w
    const attribute = lsss.rho[row]!
    const k = usable(b.adoptG1(key.kx[index.get(attribute)!]!), `the key's K[${attribute}]`)
    const c = usable(b.adoptG1(ct.rows[row]!), `the ciphertext's row ${row}`)
    if (magnitude === 1n) {
      kSum = negative ? kSum.subtract(k) : kSum.add(k)
      cSum = negative ? cSum.subtract(c) : cSum.add(c)
    } else {
      weighted.k.push(negative ? k.negate() : k)
      weighted.c.push(negative ? c.negate() : c)
      weighted.w.push(magnitude)
    }
  })
  if (weighted.w.length > 0) {
    kSum = kSum.add(b.g1Msm(weighted.k, weighted.w))
    cSum = cSum.add(b.g1Msm(weighted.c, weighted.w))
  }
  // e(K1, C0) · e(ΣK, C1) · e(−ΣC, K0), one Miller-loop batch and one final exponentiation.
  return pairingProduct([
    { g1: k1, g2: c0 },
    { g1: kSum, g2: c1 },
    { g1: cSum.negate(), g2: k0 },
  ])
}

/** The identity in a key or ciphertext is degenerate (e.g. C0 = 1 makes e(K1, C0) trivial). */
function usable<P extends G1 | G2>(p: P, what: string): P {
  if (p.is0()) throw new CareLedgerError('INVALID_ARGUMENT', `${what} is the identity point`, { reason: 'IDENTITY_POINT' })
  return p
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
