/**
 * The chameleon hash's Adapt (shared/crypto/chameleon.ts) by k of n regulators, none of whom holds
 * the trapdoor x: an adapted opening IS a Schnorr signature, so FROST (RFC 9591) computes it.
 *
 *   Adapt, one holder   k;  R = k·G;  r' = C + f(R);  e' = H_e(Y, m', r');  s' = k − e'·x
 *   FROST               group nonce R = Σ D_j + ρ_j·E_j (k = Σ λ_j(d_j + ρ_j e_j));  z = k + c·x
 *
 * With FROST's challenge H2(R, Y, msg) replaced by c = −H_e(Y, m', C + f(R)), where msg = C ‖ m',
 * z = k − e'·x = s' and (R, z) is an adapted opening: r' = C + f(R), and Verify (C ≟ r' − f(e'·Y + s'·G),
 * e'·Y + s'·G = R) holds under the UNCHANGED commitment C. Note the sign: chameleon openings use
 * s' = k − e'·x, FROST z = k + c·x, hence c = −e'. Everything else is RFC 9591: nonce generation
 * (§4.1, H3), binding factors over msg and all commitments (§4.4, H1/H4/H5), Lagrange coefficients,
 * share verification (§5.4), aggregation (§5.3). The suite has its own context string
 * ("CARELEDGER-CH-RISTRETTO255-SHA512-v1") so its binding factors and nonces never coincide with
 * plain FROST's. The challenge hashes (R, Y, C, m') as H2 does (R through f, a hash), so FROST's
 * security argument (Komlo–Goldberg, SAC 2020; Bellare et al., CRYPTO 2022) carries over.
 *
 * The result is (R, s) plus the derived r = C + f(R): the chain's record format can store r ‖ s
 * (record v1) or R ‖ s (r recomputed at verification) without anything here changing.
 */
import { ristretto255 } from '@noble/curves/ed25519.js'
import { createFROST } from '@noble/curves/abstract/frost.js'
import { bytesToNumberLE } from '@noble/curves/utils.js'
import { sha512 } from '@noble/hashes/sha2.js'
import { concatBytes } from '@noble/hashes/utils.js'
import type { Rng } from './random.ts'
import {
  CHAMELEON_HASH_BYTES,
  chameleonAdapt,
  chameleonChallenge,
  chameleonConvert,
  chameleonPublicKey,
  chameleonVerify,
} from './chameleon.ts'
import {
  expectBytes,
  FROST_POINT_BYTES,
  frostError,
  frostSuite,
  parsePoint,
  parseScalar,
  scalarBytes,
  type FrostCommitment,
  type FrostGroup,
  type FrostNonces,
  type FrostShare,
  type FrostSignatureShare,
  type FrostSuite,
} from './frost.ts'

const Point = ristretto255.Point
const Fn = Point.Fn
const MAX_MESSAGE = 0xffff_ffff

/** FROST's context string for the chameleon variant (prefixes H1, H3, H4, H5). */
export const CHAMELEON_FROST_SUITE = 'CARELEDGER-CH-RISTRETTO255-SHA512-v1'

/** What to adapt: the record's unchanged chameleon hash C and its new content m'. */
export interface AdaptTarget {
  /** C: 32 bytes little-endian, < ℓ. */
  readonly hash: Uint8Array
  /** m': the new content. */
  readonly message: Uint8Array
}

/** The new opening as a Schnorr signature (R, s) and the r it implies. */
export interface AdaptedOpening {
  /** encode(R), R = k·G = e'·Y + s'·G: 32 bytes. */
  readonly R: Uint8Array
  /** s' = k − e'·x: 32 bytes little-endian. */
  readonly s: Uint8Array
  /** r' = C + f(R) mod ℓ: 32 bytes little-endian. The record v1 opening is r ‖ s. */
  readonly r: Uint8Array
}

/** FROST's message for a chameleon Adapt: C ‖ m' (the challenge hook splits it again). */
function adaptMessage(target: AdaptTarget): Uint8Array {
  if (typeof target !== 'object' || target === null) frostError('INVALID_ARGUMENT', 'BAD_TARGET', 'adapt target: expected { hash, message }')
  parseScalar(target.hash, 'chameleon hash')
  if (!(target.message instanceof Uint8Array)) frostError('INVALID_ARGUMENT', 'NOT_BYTES', `adapt target message: expected bytes, got ${typeof target.message}`)
  if (target.message.length > MAX_MESSAGE) frostError('INVALID_ARGUMENT', 'MESSAGE_TOO_LONG', `adapt target message of ${target.message.length} bytes exceeds 2^32 - 1`)
  return concatBytes(target.hash, target.message)
}

/** c = −H_e(Y, m', C + f(R)): the chameleon challenge in FROST's sign convention. */
function chameleonFrostChallenge(R: InstanceType<typeof Point>, Y: InstanceType<typeof Point>, msg: Uint8Array): bigint {
  if (msg.length < CHAMELEON_HASH_BYTES) throw new Error('chameleon FROST message must start with the 32-byte hash C')
  const C = bytesToNumberLE(msg.subarray(0, CHAMELEON_HASH_BYTES))
  const r = Fn.add(Fn.create(C), chameleonConvert(R.toBytes()))
  return Fn.neg(chameleonChallenge(Y.toBytes(), msg.subarray(CHAMELEON_HASH_BYTES), r))
}

/** FROST(ristretto255, SHA-512) with the chameleon challenge in place of H2. */
export const CHAMELEON_FROST: FrostSuite = frostSuite(
  createFROST({ name: CHAMELEON_FROST_SUITE, Point, validatePoint: (p) => p.assertValidity(), hash: sha512, challenge: chameleonFrostChallenge }),
  CHAMELEON_FROST_SUITE,
)

/** (R, s) and r = C + f(R) from a 64-byte R ‖ s. */
export function adaptedOpeningFrom(signature: Uint8Array, hash: Uint8Array): AdaptedOpening {
  const sig = expectBytes(signature, 64, 'adapted opening (R ‖ s)')
  const C = parseScalar(hash, 'chameleon hash')
  const R = parsePoint(sig.subarray(0, FROST_POINT_BYTES), 'adapted opening R')
  return { R: sig.slice(0, FROST_POINT_BYTES), s: sig.slice(FROST_POINT_BYTES), r: scalarBytes(Fn.add(C, chameleonConvert(R.toBytes()))) }
}

// ---- k of n --------------------------------------------------------------------------------

/** Round one of a threshold Adapt: the regulator's single-use nonces (keep secret, delete after use) and its commitment. */
export function thresholdAdaptCommit(share: FrostShare, rng: Rng): { nonces: FrostNonces; commitment: FrostCommitment } {
  return CHAMELEON_FROST.commit(share, rng)
}

/** Round two: this regulator's signature share z_i of the new opening. Consumes `nonces`. */
export function thresholdAdaptSign(share: FrostShare, group: FrostGroup, nonces: FrostNonces, commitments: readonly FrostCommitment[], target: AdaptTarget): FrostSignatureShare {
  return CHAMELEON_FROST.sign(share, group, nonces, commitments, adaptMessage(target))
}

/** The coordinator's check of one regulator's signature share against its verification share. */
export function thresholdAdaptVerifyShare(group: FrostGroup, commitments: readonly FrostCommitment[], target: AdaptTarget, sigShare: FrostSignatureShare): boolean {
  return CHAMELEON_FROST.verifyShare(group, commitments, adaptMessage(target), sigShare)
}

/**
 * The coordinator (the cloud) combines the shares into the new opening. Every share is verified
 * first; a wrong one is named (VERIFICATION_FAILED, reason BAD_SIGNATURE_SHARE, info.participants).
 * The result is checked with the chain's own chameleonVerify before it is returned.
 */
export function thresholdAdaptAggregate(group: FrostGroup, commitments: readonly FrostCommitment[], target: AdaptTarget, shares: readonly FrostSignatureShare[]): AdaptedOpening {
  const signature = CHAMELEON_FROST.aggregate(group, commitments, adaptMessage(target), shares)
  const opening = adaptedOpeningFrom(signature, target.hash)
  if (!chameleonVerify(group.groupKey, target.message, target.hash, concatBytes(opening.R, opening.s))) {
    frostError('VERIFICATION_FAILED', 'BAD_ADAPTED_OPENING', 'the combined opening does not verify under the chameleon hash (this is a bug, not a wrong share)')
  }
  return opening
}

// ---- 1 of 1 --------------------------------------------------------------------------------

/**
 * k = n = 1: the one regulator holds the trapdoor file and adapts alone (chameleonAdapt, hedged
 * nonce). Its format-2 opening is already R ‖ s; the same result shape as the threshold path.
 */
export function adaptAlone(secretKey: Uint8Array, target: AdaptTarget, rng: Rng): AdaptedOpening {
  adaptMessage(target)
  return adaptedOpeningFrom(chameleonAdapt(secretKey, target.message, target.hash, rng, 2), target.hash)
}
