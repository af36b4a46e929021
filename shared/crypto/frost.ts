/**
 * FROST(ristretto255, SHA-512): two-round threshold Schnorr signatures, RFC 9591, on the audited
 * implementation in @noble/curves (`ristretto255_FROST`, `createFROST`). This file adds what a
 * deployment needs around it and nothing cryptographic of its own:
 *
 *   - participants are numbers 1..n (RFC 9591 §3: identifier i is the scalar i), not noble's hex ids;
 *   - every input is checked first, and every failure is a CareLedgerError that names the
 *     participant at fault (noble throws plain Errors without saying who);
 *   - the coordinator verifies EVERY signature share against that participant's verification share
 *     (RFC 9591 §5.4) before aggregating, so a wrong share is named, not just "aggregation failed";
 *   - k = n = 1 is refused here (noble follows frost-rs: min ≥ 2); one key holder signs alone and
 *     needs no protocol (the chameleon hash's own Adapt covers that case).
 *
 *   KeyGen (trusted dealer, RFC 9591 App. C)   f(X) = s + a₁X + … + a_{k−1}X^{k−1};  share i = f(i)
 *   Round one  (§5.1)  nonces (d_i, e_i) ← nonce_generate(share);  commitment (D_i, E_i) = (d_i·G, e_i·G)
 *   Round two  (§5.2)  ρ_i = H1(…);  R = Σ D_j + ρ_j·E_j;  c = H2(R, Y, m);  z_i = d_i + e_i·ρ_i + λ_i·s_i·c
 *   Aggregate  (§5.3)  z = Σ z_i;  signature (R, z);  verify: z·G ≟ R + c·Y
 *
 * A suite is FROST with its challenge: `FROST_RISTRETTO255` is RFC 9591's, and
 * shared/crypto/chameleon-threshold.ts builds one whose challenge is the chameleon hash's (its
 * Adapt IS a Schnorr signature), from the same code.
 *
 * Nonces are single-use: noble zeroes the nonce bytes in place once a share is made, and a
 * zeroed nonce pair is refused (NONCE_USED). Reusing a nonce pair for two different signing
 * sessions hands out the signing share (two equations, one unknown) — see docs/crypto.md §FROST.
 */
import { ristretto255, ristretto255_FROST } from '@noble/curves/ed25519.js'
import type { FROST, FrostPublic, NonceCommitments, RNG } from '@noble/curves/abstract/frost.js'
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js'
import { CareLedgerError, isCareLedgerError } from '../errors.ts'
import type { Rng } from './random.ts'

export type RistrettoPoint = InstanceType<typeof ristretto255.Point>

const Point = ristretto255.Point
const Fn = Point.Fn
/** ℓ, the order of ristretto255. */
export const FROST_ORDER: bigint = Fn.ORDER
export const FROST_SCALAR_BYTES = 32
export const FROST_POINT_BYTES = 32
/** A signature or a chameleon opening: R ‖ z, 64 bytes. */
export const FROST_SIGNATURE_BYTES = 64
/** Participants are numbered 1..n and n fits the one-byte fields of the share files. */
export const FROST_MAX_PARTICIPANTS = 255

/** The public key package: what the coordinator and every verifier know. */
export interface FrostGroup {
  /** k: how many participants must sign. */
  readonly threshold: number
  /** n: how many hold a share. */
  readonly participants: number
  /** encode(Y), Y = s·G: the group public key (for the chain: the chameleon public key). */
  readonly groupKey: Uint8Array
  /** encode(Y_i), Y_i = s_i·G, for i = 1..n (index i − 1). */
  readonly verificationShares: readonly Uint8Array[]
}

/** One participant's secret signing share s_i = f(i). */
export interface FrostShare {
  readonly index: number
  /** 32 bytes little-endian, in [1, ℓ). */
  readonly signingShare: Uint8Array
}

/** Round-one secret: (d_i, e_i). Used once, then zeroed in place by `sign`. */
export interface FrostNonces {
  readonly index: number
  readonly hiding: Uint8Array
  readonly binding: Uint8Array
}

/** Round-one public commitment (D_i, E_i), sent to the coordinator. */
export interface FrostCommitment {
  readonly index: number
  readonly hiding: Uint8Array
  readonly binding: Uint8Array
}

/** Round-two output z_i of participant `index`. */
export interface FrostSignatureShare {
  readonly index: number
  /** 32 bytes little-endian, < ℓ. */
  readonly share: Uint8Array
}

// ---- typed errors, scalars and points ----------------------------------------------------------

export function frostError(code: 'INVALID_ARGUMENT' | 'INVALID_ENCODING' | 'VERIFICATION_FAILED', reason: string, message: string, info: Record<string, unknown> = {}): never {
  throw new CareLedgerError(code, message, { reason, ...info })
}

export function expectBytes(value: unknown, length: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) return frostError('INVALID_ENCODING', 'NOT_BYTES', `${what}: expected ${length} bytes, got ${typeof value}`, { what })
  if (value.length !== length) return frostError('INVALID_ENCODING', 'BAD_LENGTH', `${what}: expected ${length} bytes, got ${value.length}`, { what, length: value.length })
  return value
}

/** RFC 9591 §3.1 DeserializeScalar: 32 bytes little-endian, canonical (< ℓ). */
export function parseScalar(bytes: unknown, what: string, allowZero = true): bigint {
  const k = bytesToNumberLE(expectBytes(bytes, FROST_SCALAR_BYTES, what))
  if (k >= FROST_ORDER || (!allowZero && k === 0n)) {
    frostError('INVALID_ENCODING', 'SCALAR_OUT_OF_RANGE', `${what}: scalar must be in [${allowZero ? 0 : 1}, ℓ)`, { what })
  }
  return k
}

export const scalarBytes = (k: bigint): Uint8Array => numberToBytesLE(k, FROST_SCALAR_BYTES)

/** RFC 9591 §3.1 DeserializeElement: a canonical ristretto255 encoding (RFC 9496 §4.3.1), never the identity. */
export function parsePoint(bytes: unknown, what: string): RistrettoPoint {
  const b = expectBytes(bytes, FROST_POINT_BYTES, what)
  let p: RistrettoPoint
  try {
    p = Point.fromBytes(b)
  } catch {
    return frostError('INVALID_ENCODING', 'BAD_POINT', `${what}: not a canonical ristretto255 encoding`, { what })
  }
  if (p.is0()) frostError('INVALID_ENCODING', 'IDENTITY_POINT', `${what}: the identity element is not allowed`, { what })
  return p
}

function checkIndex(index: unknown, n: number, what: string): number {
  if (!Number.isInteger(index) || (index as number) < 1 || (index as number) > n) {
    frostError('INVALID_ARGUMENT', 'UNKNOWN_PARTICIPANT', `${what}: participant ${String(index)} is not one of 1..${n}`, { participant: index })
  }
  return index as number
}

/** k of n with 2 ≤ k ≤ n ≤ 255 (k = n = 1 is a plain key, not a threshold). */
export function checkThresholdParams(threshold: unknown, participants: unknown): { threshold: number; participants: number } {
  const ok =
    Number.isInteger(threshold) && Number.isInteger(participants) && (threshold as number) >= 2 && (threshold as number) <= (participants as number) && (participants as number) <= FROST_MAX_PARTICIPANTS
  if (!ok) {
    frostError(
      'INVALID_ARGUMENT',
      'BAD_THRESHOLD',
      `threshold ${String(threshold)} of ${String(participants)}: FROST needs 2 ≤ k ≤ n ≤ ${FROST_MAX_PARTICIPANTS} (k = 1 would give every participant the whole key)`,
      { threshold, participants },
    )
  }
  return { threshold: threshold as number, participants: participants as number }
}

// ---- Lagrange interpolation and group consistency ------------------------------------------

/** λ_i(x) = Π_{j ∈ xs, j ≠ i} (x − j)/(i − j) mod ℓ: the coefficient of the point at i when evaluating at x. */
export function lagrangeAt(xs: readonly bigint[], i: bigint, x: bigint): bigint {
  let num = 1n
  let den = 1n
  for (const j of xs) {
    if (j === i) continue
    num = Fn.mul(num, Fn.sub(x, j))
    den = Fn.mul(den, Fn.sub(i, j))
  }
  return Fn.div(num, den)
}

/**
 * Check a public key package: k, n in range, every point canonical and not the identity, and the
 * n verification shares and the group key on ONE polynomial of degree k − 1 (Y = F(0), Y_i = F(i)
 * with F = f·G): the k points (0, Y), (1, Y_1) … (k−1, Y_{k−1}) fix F, every other Y_j must match it.
 * Without this, a forged package could pair a group key with shares that do not sign for it.
 */
export function checkFrostGroup(group: FrostGroup): FrostGroup {
  if (typeof group !== 'object' || group === null) frostError('INVALID_ARGUMENT', 'BAD_GROUP', `FROST group: expected an object, got ${group === null ? 'null' : typeof group}`)
  const { threshold, participants } = checkThresholdParams(group.threshold, group.participants)
  const Y = parsePoint(group.groupKey, 'group public key')
  if (!Array.isArray(group.verificationShares) || group.verificationShares.length !== participants) {
    frostError('INVALID_ARGUMENT', 'BAD_GROUP', `FROST group: expected ${participants} verification shares`, { count: Array.isArray(group.verificationShares) ? group.verificationShares.length : null })
  }
  const shares = group.verificationShares.map((b, i) => parsePoint(b, `verification share of participant ${i + 1}`))
  const xs = Array.from({ length: threshold }, (_, i) => BigInt(i))
  const basis = [Y, ...shares.slice(0, threshold - 1)]
  for (let j = threshold; j <= participants; j++) {
    const expected = basis.reduce((acc, P, i) => acc.add(P.multiplyUnsafe(lagrangeAt(xs, xs[i]!, BigInt(j)))), Point.ZERO)
    if (!expected.equals(shares[j - 1]!)) {
      frostError('VERIFICATION_FAILED', 'INCONSISTENT_GROUP', `FROST group: the verification share of participant ${j} does not lie on the group's polynomial`, { participant: j })
    }
  }
  return { threshold, participants, groupKey: group.groupKey.slice(), verificationShares: group.verificationShares.map((b) => b.slice()) }
}

/** Does s_i·G equal participant i's verification share? (A share file that does not match its group is refused.) */
export function checkFrostShare(group: FrostGroup, share: FrostShare): void {
  const index = checkIndex(share?.index, group.participants, 'signing share')
  const s = parseScalar(share.signingShare, `signing share of participant ${index}`, false)
  if (!Point.BASE.multiply(s).equals(parsePoint(group.verificationShares[index - 1], `verification share of participant ${index}`))) {
    frostError('VERIFICATION_FAILED', 'SHARE_MISMATCH', `the signing share of participant ${index} does not match its verification share`, { participant: index })
  }
}

// ---- noble's shapes ------------------------------------------------------------------------

const nobleId = (index: number): string => ristretto255_FROST.Identifier.fromNumber(index)
const ID_TO_INDEX = new Map<string, number>(Array.from({ length: FROST_MAX_PARTICIPANTS }, (_, i) => [nobleId(i + 1), i + 1]))
const indexOf = (id: string): number => ID_TO_INDEX.get(id) ?? frostError('INVALID_ARGUMENT', 'UNKNOWN_PARTICIPANT', `unknown FROST identifier ${id}`)

function noblePublic(group: FrostGroup): FrostPublic {
  return {
    signers: { min: group.threshold, max: group.participants },
    // Only commitments[0] (the group key) is used when signing; the VSS commitments are not needed.
    commitments: [group.groupKey],
    verifyingShares: Object.fromEntries(group.verificationShares.map((b, i) => [nobleId(i + 1), b])),
  } as FrostPublic
}

const nobleSecret = (share: FrostShare) => ({ identifier: nobleId(share.index), signingShare: share.signingShare })
const nobleCommitments = (list: readonly FrostCommitment[]): NonceCommitments[] =>
  list.map((c) => ({ identifier: nobleId(c.index), hiding: c.hiding, binding: c.binding }) as NonceCommitments)

/** noble's rng may be called without a length; ours always has one. */
export const nobleRng =
  (rng: Rng): RNG =>
  (n?: number) =>
    rng(n ?? 32) as ReturnType<RNG>

/** Run a noble call; anything it throws that we did not foresee becomes a typed error. */
export function guarded<T>(what: string, f: () => T): T {
  try {
    return f()
  } catch (e) {
    if (isCareLedgerError(e)) throw e
    return frostError('INVALID_ARGUMENT', 'FROST_REFUSED', `${what}: ${e instanceof Error ? e.message : String(e)}`)
  }
}

/**
 * The coordinator's commitment list (RFC 9591 §5.2/5.3): k..n distinct participants of the
 * group, every point canonical and not the identity. Returns it sorted by participant.
 */
export function checkCommitmentList(group: FrostGroup, commitments: readonly FrostCommitment[]): FrostCommitment[] {
  if (!Array.isArray(commitments)) frostError('INVALID_ARGUMENT', 'BAD_COMMITMENTS', 'commitment list: expected an array')
  if (commitments.length < group.threshold) {
    frostError('INVALID_ARGUMENT', 'TOO_FEW_SIGNERS', `commitment list: ${commitments.length} signers, the group needs ${group.threshold}`, { count: commitments.length, threshold: group.threshold })
  }
  if (commitments.length > group.participants) frostError('INVALID_ARGUMENT', 'TOO_MANY_SIGNERS', `commitment list: ${commitments.length} signers for a group of ${group.participants}`)
  const seen = new Set<number>()
  for (const c of commitments) {
    const i = checkIndex(c?.index, group.participants, 'commitment list')
    if (seen.has(i)) frostError('INVALID_ARGUMENT', 'DUPLICATE_PARTICIPANT', `commitment list: participant ${i} appears twice`, { participant: i })
    seen.add(i)
    parsePoint(c.hiding, `hiding commitment of participant ${i}`)
    parsePoint(c.binding, `binding commitment of participant ${i}`)
  }
  return [...commitments].sort((a, b) => a.index - b.index)
}

// ---- a FROST suite ---------------------------------------------------------------------------

export interface FrostSuite {
  /** The ciphersuite's context string (RFC 9591 §6: prefixes every H1..H5). */
  readonly name: string
  /** Round one (RFC 9591 §5.1): fresh nonces, kept secret and used once, and their public commitment. */
  commit(share: FrostShare, rng: Rng): { nonces: FrostNonces; commitment: FrostCommitment }
  /** Round two (§5.2): z_i. Consumes `nonces` (zeroed in place); refuses if they were used or do not match the list. */
  sign(share: FrostShare, group: FrostGroup, nonces: FrostNonces, commitments: readonly FrostCommitment[], message: Uint8Array): FrostSignatureShare
  /** §5.4: is z_i right for participant `sigShare.index`? False also for a non-canonical scalar. */
  verifyShare(group: FrostGroup, commitments: readonly FrostCommitment[], message: Uint8Array, sigShare: FrostSignatureShare): boolean
  /**
   * §5.3, by the coordinator: verifies every share first and throws VERIFICATION_FAILED
   * (reason BAD_SIGNATURE_SHARE, `info.participants`) naming each participant whose share is wrong.
   * Returns R ‖ z.
   */
  aggregate(group: FrostGroup, commitments: readonly FrostCommitment[], message: Uint8Array, shares: readonly FrostSignatureShare[]): Uint8Array
  /** Does R ‖ z verify under the group key? */
  verify(groupKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean
}

function expectMessage(message: unknown): Uint8Array {
  if (!(message instanceof Uint8Array)) frostError('INVALID_ARGUMENT', 'NOT_BYTES', `FROST message: expected bytes, got ${typeof message}`)
  return message
}

/** Wrap a noble FROST instance (RFC 9591's, or one with another challenge) into a suite. */
export function frostSuite(impl: FROST, name: string): FrostSuite {
  const suite: FrostSuite = {
    name,
    commit(share, rng) {
      checkIndex(share?.index, FROST_MAX_PARTICIPANTS, 'commit')
      parseScalar(share.signingShare, `signing share of participant ${share.index}`, false)
      const { nonces, commitments } = guarded('commit', () => impl.commit(nobleSecret(share), nobleRng(rng)))
      return {
        nonces: { index: share.index, hiding: nonces.hiding, binding: nonces.binding },
        commitment: { index: share.index, hiding: commitments.hiding, binding: commitments.binding },
      }
    },

    sign(share, group, nonces, commitments, message) {
      expectMessage(message)
      const list = checkCommitmentList(group, commitments)
      const index = checkIndex(share?.index, group.participants, 'signing share')
      parseScalar(share.signingShare, `signing share of participant ${index}`, false)
      if (nonces?.index !== index) frostError('INVALID_ARGUMENT', 'NONCE_MISMATCH', `the nonces belong to participant ${String(nonces?.index)}, not ${index}`, { participant: index })
      const d = parseScalar(nonces.hiding, 'hiding nonce')
      const e = parseScalar(nonces.binding, 'binding nonce')
      if (d === 0n || e === 0n) frostError('INVALID_ARGUMENT', 'NONCE_USED', `participant ${index}: these nonces were already used (or zeroed); run round one again`, { participant: index })
      const mine = list.find((c) => c.index === index)
      if (!mine) frostError('INVALID_ARGUMENT', 'NOT_A_SIGNER', `participant ${index} is not in the commitment list`, { participant: index })
      if (!Point.BASE.multiply(d).equals(parsePoint(mine.hiding, 'hiding commitment')) || !Point.BASE.multiply(e).equals(parsePoint(mine.binding, 'binding commitment'))) {
        frostError('INVALID_ARGUMENT', 'COMMITMENT_MISMATCH', `participant ${index}: the coordinator listed a commitment that is not the one made with these nonces`, { participant: index })
      }
      const z = guarded('sign', () => impl.signShare(nobleSecret(share), noblePublic(group), nonces, nobleCommitments(list), message))
      return { index, share: z }
    },

    verifyShare(group, commitments, message, sigShare) {
      expectMessage(message)
      const list = checkCommitmentList(group, commitments)
      const index = checkIndex(sigShare?.index, group.participants, 'signature share')
      if (!list.some((c) => c.index === index)) frostError('INVALID_ARGUMENT', 'NOT_A_SIGNER', `participant ${index} is not in the commitment list`, { participant: index })
      if (!(sigShare.share instanceof Uint8Array) || sigShare.share.length !== FROST_SCALAR_BYTES || bytesToNumberLE(sigShare.share) >= FROST_ORDER) return false
      return guarded('verify share', () => impl.verifyShare(noblePublic(group), nobleCommitments(list), message, nobleId(index), sigShare.share))
    },

    aggregate(group, commitments, message, shares) {
      expectMessage(message)
      const list = checkCommitmentList(group, commitments)
      if (!Array.isArray(shares)) frostError('INVALID_ARGUMENT', 'BAD_SHARES', 'signature shares: expected an array')
      const byIndex = new Map<number, Uint8Array>()
      for (const s of shares) {
        const i = checkIndex(s?.index, group.participants, 'signature shares')
        if (byIndex.has(i)) frostError('INVALID_ARGUMENT', 'DUPLICATE_PARTICIPANT', `signature shares: participant ${i} appears twice`, { participant: i })
        if (!list.some((c) => c.index === i)) frostError('INVALID_ARGUMENT', 'NOT_A_SIGNER', `signature shares: participant ${i} made no commitment in this session`, { participant: i })
        byIndex.set(i, s.share)
      }
      const missing = list.filter((c) => !byIndex.has(c.index)).map((c) => c.index)
      if (missing.length > 0) frostError('INVALID_ARGUMENT', 'MISSING_SHARE', `signature shares: missing from participant${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`, { participants: missing })
      const sigShares = Object.fromEntries([...byIndex].map(([i, z]) => [nobleId(i), z]))
      // RFC 9591 §5.3: sum the shares and verify the signature once (noble's aggregate does); only
      // when it fails are the k shares verified one by one, to name the wrong ones (§5.4).
      try {
        return impl.aggregate(noblePublic(group), nobleCommitments(list), message, sigShares)
      } catch (e) {
        const wrong = list.filter((c) => !suite.verifyShare(group, list, message, { index: c.index, share: byIndex.get(c.index)! })).map((c) => c.index)
        if (wrong.length > 0) {
          frostError('VERIFICATION_FAILED', 'BAD_SIGNATURE_SHARE', `the signature share of participant${wrong.length > 1 ? 's' : ''} ${wrong.join(', ')} is wrong`, { participants: wrong })
        }
        return guarded('aggregate', () => {
          throw e
        })
      }
    },

    verify(groupKey, message, signature) {
      expectMessage(message)
      parsePoint(groupKey, 'group public key')
      const sig = expectBytes(signature, FROST_SIGNATURE_BYTES, 'FROST signature')
      if (bytesToNumberLE(sig.subarray(FROST_POINT_BYTES)) >= FROST_ORDER) return false
      try {
        return impl.verify(sig, message, groupKey)
      } catch {
        return false // R is not a valid point
      }
    },
  }
  return Object.freeze(suite)
}

/** FROST(ristretto255, SHA-512), RFC 9591 §6.2: contextString "FROST-RISTRETTO255-SHA512-v1". */
export const FROST_RISTRETTO255: FrostSuite = frostSuite(ristretto255_FROST, 'FROST-RISTRETTO255-SHA512-v1')

// ---- key generation with a trusted dealer ------------------------------------------------------

export interface FrostDeal {
  readonly group: FrostGroup
  /** shares[i − 1] is participant i's; hand each to its holder only, then destroy this object. */
  readonly shares: readonly FrostShare[]
}

/**
 * RFC 9591 App. C trusted_dealer_keygen: a random polynomial of degree k − 1 whose constant term is
 * `secret` (a fresh random one if omitted), shares f(1)..f(n). The dealer sees the whole key: use
 * the distributed key generation (frost-dkg.ts) unless splitting an existing key (`secret`), and
 * destroy the dealer's copy. Passing the existing chameleon trapdoor as `secret` turns a 1-of-1
 * regulator into a k-of-n committee without changing the chain's public key.
 */
export function frostDeal(threshold: number, participants: number, rng: Rng, secret?: Uint8Array): FrostDeal {
  checkThresholdParams(threshold, participants)
  if (secret !== undefined) parseScalar(secret, 'dealer secret', false)
  const ids = Array.from({ length: participants }, (_, i) => nobleId(i + 1))
  const deal = guarded('trusted dealer', () => ristretto255_FROST.trustedDealer({ min: threshold, max: participants }, ids, secret, nobleRng(rng)))
  const group = checkFrostGroup({
    threshold,
    participants,
    groupKey: deal.public.commitments[0]!,
    verificationShares: ids.map((id) => deal.public.verifyingShares[id]!),
  })
  const shares = ids.map((id) => ({ index: indexOf(id), signingShare: deal.secretShares[id]!.signingShare }))
  return { group, shares }
}

/**
 * RFC 9591 App. C.1 secret reconstruction from k shares. Only for tests and for an explicit,
 * documented recovery ceremony: the point of the scheme is that nobody ever does this.
 */
export function frostCombineShares(threshold: number, shares: readonly FrostShare[]): Uint8Array {
  if (!Array.isArray(shares) || shares.length < threshold) frostError('INVALID_ARGUMENT', 'TOO_FEW_SHARES', `need ${threshold} shares to reconstruct, got ${Array.isArray(shares) ? shares.length : 0}`)
  const xs = shares.map((s) => BigInt(checkIndex(s.index, FROST_MAX_PARTICIPANTS, 'shares')))
  if (new Set(xs).size !== xs.length) frostError('INVALID_ARGUMENT', 'DUPLICATE_PARTICIPANT', 'shares: a participant appears twice')
  const secret = shares.reduce((acc, s, i) => Fn.add(acc, Fn.mul(parseScalar(s.signingShare, `share of participant ${s.index}`, false), lagrangeAt(xs, xs[i]!, 0n))), 0n)
  return scalarBytes(secret)
}
