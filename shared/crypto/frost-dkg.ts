/**
 * Distributed key generation for FROST(ristretto255, SHA-512): the Pedersen DKG with proofs of
 * knowledge of Komlo & Goldberg, "FROST: Flexible Round-Optimized Schnorr Threshold Signatures"
 * (SAC 2020, §5.1, Figure 1), run by noble's `DKG.round1/2/3` (the frost-rs split). Nobody ever
 * holds the group secret: each participant i deals a random polynomial f_i of degree k − 1, the
 * group secret is s = Σ f_i(0) and participant j's share is s_j = Σ_i f_i(j).
 *
 *   Round 1  a_i0..a_i(k−1) ← Z_ℓ;  φ_ij = a_ij·G;  σ_i = (R_i, μ_i) a Schnorr proof of knowledge
 *            of a_i0 with c_i = H(i, Φ, φ_i0, R_i)  (Fig. 1 step 2: Φ is the context string, here
 *            the ceremony id, so a proof cannot be replayed into another ceremony);
 *            broadcast (φ_i, σ_i, E_i) — E_i = e_i·G a one-time encryption key (see below)
 *   check    every σ_j verifies (step 5) — a bad one names its sender
 *   Round 2  send f_i(j) to each j, encrypted to E_j (the cloud relays it and must not read it)
 *   Round 3  s_j·G ≟ Σ_t φ_it·j^t for every share received (Fig. 1 round 2 step 2) — a bad one names
 *            its sender; s_j = Σ_i f_i(j);  Y = Σ_i φ_i0;  Y_j = Σ_i Σ_t φ_it·j^t
 *
 * Figure 1 assumes authenticated broadcast and secure point-to-point channels. Here the cloud
 * relays everything, so (a) the round-1 package is authenticated by the sender outside this file
 * (the regulator's wallet signs its digest: shared/protocol/supervision-setup.ts), (b) round-2 shares
 * travel encrypted: key = HKDF-SHA256(e_from·E_to, salt "careledger/v1/frost-dkg/share",
 * info = ceremony ‖ from ‖ to ‖ E_from ‖ E_to) (RFC 5869), AES-256-GCM with that info as AAD
 * (SP 800-38D), and (c) everyone ends with a transcript digest over all round-1 packages, compared
 * by all (every regulator signs the resulting policy), so a relay that showed different packages to
 * different participants is caught.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto'
import { ristretto255 } from '@noble/curves/ed25519.js'
import { createFROST, type DKG_Round1, type DKG_Secret, type FROST } from '@noble/curves/abstract/frost.js'
import { bytesToNumberLE } from '@noble/curves/utils.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256, sha512 } from '@noble/hashes/sha2.js'
import { bytesToHex, concatBytes } from '@noble/hashes/utils.js'
import { domainSeparated } from '../encoding/canonical.ts'
import { randomScalar, type Rng } from './random.ts'
import {
  checkFrostGroup,
  checkThresholdParams,
  expectBytes,
  FROST_ORDER,
  frostError,
  guarded,
  nobleRng,
  parsePoint,
  parseScalar,
  scalarBytes,
  type FrostGroup,
  type FrostShare,
} from './frost.ts'

const Point = ristretto255.Point
const Fn = Point.Fn
const utf8 = new TextEncoder()
const SUITE = 'FROST-RISTRETTO255-SHA512-v1'
const SHARE_SALT = utf8.encode('careledger/v1/frost-dkg/share')
const NONCE_BYTES = 12
const TAG_BYTES = 16
/** An encrypted round-2 share: the 32-byte scalar and the GCM tag. */
export const DKG_SHARE_CIPHERTEXT_BYTES = 32 + TAG_BYTES

/** What every participant agrees on before round 1 (shared/protocol/supervision-setup.ts derives `id`). */
export interface DkgCeremony {
  /** Φ: 32 bytes naming this one run (the cloud, the regulators, k, a fresh nonce). */
  readonly id: Uint8Array
  readonly threshold: number
  readonly participants: number
}

/** Round-1 broadcast of participant `index`. */
export interface DkgRound1Package {
  readonly index: number
  /** φ_i0 … φ_i(k−1). */
  readonly commitments: readonly Uint8Array[]
  /** σ_i = R_i ‖ μ_i (64 bytes). */
  readonly proof: Uint8Array
  /** E_i, the one-time key round-2 shares to this participant are encrypted to. */
  readonly encryptionKey: Uint8Array
}

/** Round-2 message from `from` to `to`: f_from(to), encrypted. */
export interface DkgRound2Package {
  readonly from: number
  readonly to: number
  readonly nonce: Uint8Array
  readonly ciphertext: Uint8Array
}

/** What a participant keeps between rounds (SECRET: its polynomial and decryption key). Delete it after round 3. */
export interface DkgState {
  readonly ceremony: Uint8Array
  readonly threshold: number
  readonly participants: number
  readonly index: number
  /** a_i0 … a_i(k−1), 32 bytes little-endian each. */
  readonly coefficients: readonly Uint8Array[]
  /** e_i. */
  readonly encryptionSecret: Uint8Array
}

export interface DkgResult {
  readonly group: FrostGroup
  readonly share: FrostShare
  /** SHA-256 over every round-1 package (sorted): equal at every participant, or someone saw other packages. */
  readonly transcript: Uint8Array
}

// ---- the ceremony-bound noble instance -----------------------------------------------------

const instances = new Map<string, FROST>()
const dkgPrefix = (ceremony: Uint8Array): string => `${SUITE}dkg/careledger/v1/dkg/${bytesToHex(ceremony)}`

/** FROST with the proof-of-knowledge hash prefixed by the ceremony id (Fig. 1's Φ). Signing is unaffected. */
function ceremonyFrost(ceremony: Uint8Array): FROST {
  const key = bytesToHex(ceremony)
  let f = instances.get(key)
  if (!f) {
    f = createFROST({ name: SUITE, Point, validatePoint: (p) => p.assertValidity(), hash: sha512, HDKG: dkgPrefix(ceremony) })
    if (instances.size >= 8) instances.delete(instances.keys().next().value!)
    instances.set(key, f)
  }
  return f
}

function checkCeremony(ceremony: DkgCeremony): DkgCeremony {
  if (typeof ceremony !== 'object' || ceremony === null) frostError('INVALID_ARGUMENT', 'BAD_CEREMONY', 'DKG ceremony: expected an object')
  expectBytes(ceremony.id, 32, 'DKG ceremony id')
  checkThresholdParams(ceremony.threshold, ceremony.participants)
  return ceremony
}

function checkParticipant(ceremony: DkgCeremony, index: unknown, what: string): number {
  if (!Number.isInteger(index) || (index as number) < 1 || (index as number) > ceremony.participants) {
    frostError('INVALID_ARGUMENT', 'UNKNOWN_PARTICIPANT', `${what}: participant ${String(index)} is not one of 1..${ceremony.participants}`, { participant: index })
  }
  return index as number
}

const nobleId = (f: FROST, index: number): string => f.Identifier.fromNumber(index)

// ---- round 1 ---------------------------------------------------------------------------------

export function dkgRound1(ceremony: DkgCeremony, index: number, rng: Rng): { package: DkgRound1Package; state: DkgState } {
  checkCeremony(ceremony)
  checkParticipant(ceremony, index, 'DKG round 1')
  const f = ceremonyFrost(ceremony.id)
  const r1 = guarded('DKG round 1', () => f.DKG.round1(nobleId(f, index), { min: ceremony.threshold, max: ceremony.participants }, undefined, nobleRng(rng)))
  const encryptionSecret = randomScalar(rng, FROST_ORDER)
  const state: DkgState = {
    ceremony: ceremony.id.slice(),
    threshold: ceremony.threshold,
    participants: ceremony.participants,
    index,
    coefficients: r1.secret.coefficients!.map(scalarBytes),
    encryptionSecret: scalarBytes(encryptionSecret),
  }
  f.DKG.clean(r1.secret)
  return {
    package: { index, commitments: r1.public.commitment, proof: r1.public.proofOfKnowledge, encryptionKey: Point.BASE.multiply(encryptionSecret).toBytes() },
    state,
  }
}

/**
 * Fig. 1 round 1 step 5 for one package: R ≟ μ·G − c·φ_0 with c = H_dkg(i ‖ φ_0 ‖ R). noble checks
 * the same inside round 2 but throws without saying whose proof failed; this names the sender.
 */
function proofOfKnowledgeHolds(ceremony: Uint8Array, pkg: DkgRound1Package, phi0: ReturnType<typeof parsePoint>): boolean {
  const R = Point.fromBytes(pkg.proof.subarray(0, 32))
  const mu = bytesToNumberLE(pkg.proof.subarray(32))
  if (mu >= FROST_ORDER || R.is0()) return false
  const c = Fn.create(bytesToNumberLE(sha512(concatBytes(utf8.encode(dkgPrefix(ceremony)), scalarBytes(BigInt(pkg.index)), phi0.toBytes(), R.toBytes()))))
  return R.equals(Point.BASE.multiplyUnsafe(mu).subtract(phi0.multiplyUnsafe(c)))
}

/**
 * Check all n round-1 packages of a ceremony (each participant does this before round 2, and the
 * cloud may do it on receipt): one from each participant, k commitments each, valid points, a
 * valid proof of knowledge bound to this ceremony. Errors name the participant at fault.
 * Returns the packages sorted by participant.
 */
export function dkgCheckRound1(ceremony: DkgCeremony, packages: readonly DkgRound1Package[]): DkgRound1Package[] {
  checkCeremony(ceremony)
  if (!Array.isArray(packages)) frostError('INVALID_ARGUMENT', 'BAD_PACKAGES', 'DKG round 1: expected an array of packages')
  const seen = new Map<number, DkgRound1Package>()
  for (const p of packages) {
    const i = checkParticipant(ceremony, p?.index, 'DKG round 1')
    if (seen.has(i)) frostError('INVALID_ARGUMENT', 'DUPLICATE_PARTICIPANT', `DKG round 1: participant ${i} sent two packages`, { participant: i })
    seen.set(i, p)
    if (!Array.isArray(p.commitments) || p.commitments.length !== ceremony.threshold) {
      frostError('VERIFICATION_FAILED', 'BAD_COMMITMENT', `DKG round 1: participant ${i} committed to ${Array.isArray(p.commitments) ? p.commitments.length : 'no'} coefficients, not ${ceremony.threshold}`, { participant: i })
    }
    const points = p.commitments.map((c: Uint8Array, t: number) => parsePointOf(c, i, `coefficient commitment ${t}`))
    parsePointOf(p.encryptionKey, i, 'encryption key')
    expectBytes(p.proof, 64, `proof of knowledge of participant ${i}`)
    let ok = false
    try {
      ok = proofOfKnowledgeHolds(ceremony.id, p, points[0]!)
    } catch {
      ok = false
    }
    if (!ok) frostError('VERIFICATION_FAILED', 'BAD_PROOF_OF_KNOWLEDGE', `DKG round 1: the proof of knowledge of participant ${i} does not verify for this ceremony`, { participant: i })
  }
  const missing = Array.from({ length: ceremony.participants }, (_, k) => k + 1).filter((i) => !seen.has(i))
  if (missing.length > 0) frostError('INVALID_ARGUMENT', 'MISSING_PACKAGE', `DKG round 1: no package from participant${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`, { participants: missing })
  return [...seen.values()].sort((a, b) => a.index - b.index)
}

/** A point from participant i's package; a bad one is that participant's fault. */
function parsePointOf(bytes: unknown, participant: number, what: string) {
  try {
    return parsePoint(bytes, `${what} of participant ${participant}`)
  } catch (e) {
    const reason = (e as { info?: { reason?: string } }).info?.reason
    return frostError('VERIFICATION_FAILED', 'BAD_COMMITMENT', `DKG round 1: participant ${participant} sent an invalid ${what} (${reason})`, { participant, cause: reason })
  }
}

/** SHA-256("careledger/v1/frost-dkg-transcript" ‖ 0 ‖ Φ ‖ every package in order). */
export function dkgTranscript(ceremony: DkgCeremony, packages: readonly DkgRound1Package[]): Uint8Array {
  const sorted = dkgCheckRound1(ceremony, packages)
  const parts: Uint8Array[] = [ceremony.id]
  for (const p of sorted) parts.push(Uint8Array.of(p.index), ...p.commitments, p.proof, p.encryptionKey)
  return sha256(domainSeparated('frost-dkg-transcript', concatBytes(...parts)))
}

/** One round-1 package's digest: what its sender's wallet signs (shared/protocol/supervision-setup.ts). */
export function dkgPackageDigest(ceremony: DkgCeremony, pkg: DkgRound1Package): Uint8Array {
  checkCeremony(ceremony)
  checkParticipant(ceremony, pkg?.index, 'DKG package')
  if (!Array.isArray(pkg.commitments)) frostError('INVALID_ARGUMENT', 'BAD_COMMITMENT', 'DKG package: commitments must be an array')
  const parts = [ceremony.id, Uint8Array.of(pkg.index), ...pkg.commitments.map((c: unknown, t: number) => expectBytes(c, 32, `commitment ${t}`)), expectBytes(pkg.proof, 64, 'proof'), expectBytes(pkg.encryptionKey, 32, 'encryption key')]
  return sha256(domainSeparated('frost-dkg-package', concatBytes(...parts)))
}

// ---- round 2 ---------------------------------------------------------------------------------

function checkState(ceremony: DkgCeremony, state: DkgState): { coefficients: bigint[]; e: bigint } {
  if (typeof state !== 'object' || state === null) frostError('INVALID_ARGUMENT', 'BAD_STATE', 'DKG state: expected an object')
  if (bytesToHex(expectBytes(state.ceremony, 32, 'DKG state ceremony')) !== bytesToHex(ceremony.id)) {
    frostError('INVALID_ARGUMENT', 'WRONG_CEREMONY', 'DKG state: it belongs to another ceremony')
  }
  if (state.threshold !== ceremony.threshold || state.participants !== ceremony.participants) frostError('INVALID_ARGUMENT', 'WRONG_CEREMONY', 'DKG state: k or n differ from the ceremony')
  checkParticipant(ceremony, state.index, 'DKG state')
  if (!Array.isArray(state.coefficients) || state.coefficients.length !== ceremony.threshold) frostError('INVALID_ARGUMENT', 'BAD_STATE', `DKG state: expected ${ceremony.threshold} coefficients`)
  return {
    coefficients: state.coefficients.map((c, t) => parseScalar(c, `DKG state coefficient ${t}`, false)),
    e: parseScalar(state.encryptionSecret, 'DKG state encryption secret', false),
  }
}

/** noble's round-1 secret, rebuilt from our state (its round 2 is a deterministic polynomial evaluation). */
function nobleState(ceremony: DkgCeremony, state: DkgState, coefficients: bigint[]): DKG_Secret {
  return {
    identifier: BigInt(state.index),
    coefficients: [...coefficients],
    commitment: coefficients.map((a) => Point.BASE.multiply(a).toBytes()),
    signers: { min: ceremony.threshold, max: ceremony.participants },
    step: 1,
  } as DKG_Secret
}

const toNoble = (f: FROST, p: DkgRound1Package): DKG_Round1 => ({ identifier: nobleId(f, p.index), commitment: [...p.commitments], proofOfKnowledge: p.proof }) as DKG_Round1

function shareInfo(ceremony: Uint8Array, from: number, to: number, fromKey: Uint8Array, toKey: Uint8Array): Uint8Array {
  return concatBytes(ceremony, Uint8Array.of(from, to), fromKey, toKey)
}

function shareKey(e: bigint, otherKey: Uint8Array, info: Uint8Array): Uint8Array {
  const shared = Point.fromBytes(otherKey).multiply(e).toBytes() // e is secret: constant-time multiply
  return hkdf(sha256, shared, SHARE_SALT, info, 32)
}

/** Round 2: f_i(j) for every other participant j, each encrypted to E_j. */
export function dkgRound2(ceremony: DkgCeremony, state: DkgState, packages: readonly DkgRound1Package[], rng: Rng): DkgRound2Package[] {
  const { coefficients, e } = checkState(ceremony, state)
  const all = dkgCheckRound1(ceremony, packages)
  const me = all[state.index - 1]!
  const f = ceremonyFrost(ceremony.id)
  const secret = nobleState(ceremony, state, coefficients)
  if (bytesToHex(concatBytes(...me.commitments)) !== bytesToHex(concatBytes(...secret.commitment))) {
    frostError('INVALID_ARGUMENT', 'WRONG_STATE', `DKG round 2: the package listed for participant ${state.index} is not the one this state made`, { participant: state.index })
  }
  const others = all.filter((p) => p.index !== state.index)
  const shares = guarded('DKG round 2', () => f.DKG.round2(secret, others.map((p) => toNoble(f, p))))
  const out = others.map((p) => {
    const info = shareInfo(ceremony.id, state.index, p.index, me.encryptionKey, p.encryptionKey)
    const nonce = rng(NONCE_BYTES)
    const cipher = createCipheriv('aes-256-gcm', shareKey(e, p.encryptionKey, info), nonce)
    cipher.setAAD(info)
    const sealed = concatBytes(cipher.update(shares[nobleId(f, p.index)]!.signingShare), cipher.final(), cipher.getAuthTag())
    return { from: state.index, to: p.index, nonce, ciphertext: sealed }
  })
  f.DKG.clean(secret)
  return out
}

// ---- round 3 ---------------------------------------------------------------------------------

/**
 * Round 3: decrypt and check every share sent to this participant (a share that does not decrypt
 * or does not match its sender's commitments names the sender: Fig. 1's complaint), then derive
 * the signing share, the group key and every verification share.
 */
export function dkgRound3(ceremony: DkgCeremony, state: DkgState, packages: readonly DkgRound1Package[], received: readonly DkgRound2Package[]): DkgResult {
  const { coefficients, e } = checkState(ceremony, state)
  const all = dkgCheckRound1(ceremony, packages)
  const me = all[state.index - 1]!
  if (!Array.isArray(received)) frostError('INVALID_ARGUMENT', 'BAD_PACKAGES', 'DKG round 3: expected an array of round-2 packages')
  const f = ceremonyFrost(ceremony.id)
  const shares = new Map<number, Uint8Array>()
  for (const m of received) {
    const from = checkParticipant(ceremony, m?.from, 'DKG round 3')
    if (m.to !== state.index) frostError('INVALID_ARGUMENT', 'NOT_FOR_ME', `DKG round 3: the share from participant ${from} is addressed to ${String(m.to)}, not ${state.index}`, { participant: from })
    if (from === state.index || shares.has(from)) frostError('INVALID_ARGUMENT', 'DUPLICATE_PARTICIPANT', `DKG round 3: unexpected second share from participant ${from}`, { participant: from })
    const sender = all[from - 1]!
    const info = shareInfo(ceremony.id, from, state.index, sender.encryptionKey, me.encryptionKey)
    let share: Uint8Array
    try {
      const decipher = createDecipheriv('aes-256-gcm', shareKey(e, sender.encryptionKey, info), expectBytes(m.nonce, NONCE_BYTES, 'nonce'))
      decipher.setAAD(info)
      const ct = expectBytes(m.ciphertext, DKG_SHARE_CIPHERTEXT_BYTES, 'ciphertext')
      decipher.setAuthTag(ct.subarray(32))
      share = concatBytes(decipher.update(ct.subarray(0, 32)), decipher.final())
    } catch {
      return frostError('VERIFICATION_FAILED', 'UNREADABLE_DKG_SHARE', `DKG round 3: the share from participant ${from} does not decrypt (tampered in transit, or encrypted to another key)`, { participant: from })
    }
    // Fig. 1 round 2 step 2: s·G ≟ Σ_t φ_from,t · i^t.
    const s = bytesToNumberLE(share)
    const x = BigInt(state.index)
    let expected = Point.ZERO
    let xt = 1n
    for (const c of sender.commitments) {
      expected = expected.add(Point.fromBytes(c).multiplyUnsafe(xt))
      xt = Fn.mul(xt, x)
    }
    if (s >= FROST_ORDER || !Point.BASE.multiplyUnsafe(s).equals(expected)) {
      frostError('VERIFICATION_FAILED', 'BAD_DKG_SHARE', `DKG round 3: participant ${from} sent a share that does not match its commitments`, { participant: from })
    }
    shares.set(from, share)
  }
  const missing = all.filter((p) => p.index !== state.index && !shares.has(p.index)).map((p) => p.index)
  if (missing.length > 0) frostError('INVALID_ARGUMENT', 'MISSING_PACKAGE', `DKG round 3: no share from participant${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`, { participants: missing })

  const secret = nobleState(ceremony, state, coefficients)
  const others = all.filter((p) => p.index !== state.index).map((p) => toNoble(f, p))
  const key = guarded('DKG round 3', () => {
    f.DKG.round2(secret, others) // rebuilds noble's authenticated transcript (deterministic, output discarded)
    return f.DKG.round3(
      secret,
      others,
      [...shares].map(([from, signingShare]) => ({ identifier: nobleId(f, from), signingShare })),
    )
  })
  const group = checkFrostGroup({
    threshold: ceremony.threshold,
    participants: ceremony.participants,
    groupKey: key.public.commitments[0]!,
    verificationShares: Array.from({ length: ceremony.participants }, (_, i) => key.public.verifyingShares[nobleId(f, i + 1)]!),
  })
  return { group, share: { index: state.index, signingShare: key.secret.signingShare }, transcript: dkgTranscript(ceremony, all) }
}
