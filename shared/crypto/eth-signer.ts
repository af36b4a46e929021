/**
 * Who signed a 32-byte digest with an Ethereum signature (r ‖ s ‖ v, v = 27/28, low s) — what
 * ethers' recoverAddress answers — made cheap for the signer we expect.
 *
 * Recovery (SEC 1 v2 §4.1.6) lifts R from r, computes Q = r⁻¹(s·R − h·G) and hashes Q to an
 * address (Keccak-256): a double-scalar multiplication, a square root and a Keccak per signature.
 * When the claimed signer's public key is already known, the verification equation of SEC 1 v2
 * §4.1.4 (R' = u₁·G + u₂·Q, u₁ = h·s⁻¹, u₂ = r·s⁻¹, accept iff x(R') = r) decides the same
 * question with one multiplication by a fixed G (noble's precomputed table) and one by a fixed Q
 * (a width-4 wNAF table made once per key), about a third of the cost. Requiring in addition that
 * R' has the parity v − 27 (and x(R') < n, the only R that v = 27/28 can name) makes the answer
 * identical to recovery's: recover(h, r, s, v) = Q  ⇔  R' = (r, parity v − 27). So the fast path
 * accepts exactly the signatures recovery would attribute to Q, and anything else falls back to
 * recovery, which names the real signer.
 *
 * The known keys are learnt ONLY from recoveries made in this process (address = Keccak(Q)), and
 * the answers remembered are ones this process computed; nothing is read from a file or a database,
 * so a cold `chain verify` trusts nothing it did not compute.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { bytesToNumberBE } from '@noble/curves/utils.js'
import { computeAddress, recoverAddress, Signature, SigningKey } from 'ethers'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'

const { Point } = secp256k1
const Fn = Point.Fn
type SecpPoint = InstanceType<typeof Point>

interface KnownKey {
  readonly point: SecpPoint
  uses: number
}

/** address (lower case) → its public key, learnt from a recovery in this process. */
const known = new Map<string, KnownKey>()
/** Bounded: policies name at most 255 regulators; a flood of strangers only empties the map. */
const MAX_KNOWN = 1024
/** Build the per-key table once a key has been used this often (it costs about four recoveries). */
const TABLE_AFTER_USES = 4

/** Does (r, s, v) verify under Q for digest h with R' = (r, parity v − 27)? SEC 1 v2 §4.1.4, plus the recovery bit. */
function verifiesUnder(key: KnownKey, digest: Uint8Array, sig: Signature): boolean {
  const r = BigInt(sig.r)
  const s = BigInt(sig.s)
  if (r <= 0n || r >= Fn.ORDER || s <= 0n || s >= Fn.ORDER) return false
  if (++key.uses === TABLE_AFTER_USES) key.point.precompute(4, false)
  const h = Fn.create(bytesToNumberBE(digest))
  const sInv = Fn.inv(s)
  const R = Point.BASE.multiplyUnsafe(Fn.create(h * sInv)).add(key.point.multiplyUnsafe(Fn.create(r * sInv)))
  if (R.is0()) return false
  const { x, y } = R.toAffine()
  return x === r && Number(y & 1n) === sig.v - 27
}

/**
 * The address that signed `digest` with `signature` (any form ethers' Signature.from accepts),
 * checked first against `expected` (an address, any case) by verification when its key is known.
 * Throws as ethers' recoverAddress does for a signature that recovers to no key.
 */
export function ethSigner(digest: Uint8Array, signature: string, expected: string): string {
  const sig = Signature.from(signature)
  // The same approval is checked when it arrives, when the redaction is applied and when its log
  // entry is built: the answer for (digest, signature) is remembered (a fact this process computed).
  const memoKey = bytesToHex(digest) + sig.serialized
  const seen = answers.get(memoKey)
  if (seen !== undefined) return seen
  const want = expected.toLowerCase()
  const key = known.get(want)
  let signer: string
  if (key && verifiesUnder(key, digest, sig)) signer = addressOf(key)
  else {
    const pub = SigningKey.recoverPublicKey(digest, sig)
    signer = computeAddress(pub)
    if (signer.toLowerCase() === want && !key) {
      if (known.size >= MAX_KNOWN) known.clear()
      known.set(want, { point: Point.fromBytes(hexToBytes(pub.slice(2))), uses: 0 })
    }
  }
  if (answers.size >= MAX_ANSWERS) answers.clear()
  answers.set(memoKey, signer)
  return signer
}

/** (digest ‖ signature) → signer, for signatures this process has already checked. */
const answers = new Map<string, string>()
const MAX_ANSWERS = 4096

/** The checksummed address of a known key (computed once). */
const checksummed = new WeakMap<KnownKey, string>()
function addressOf(key: KnownKey): string {
  let a = checksummed.get(key)
  if (a === undefined) {
    a = computeAddress('0x' + bytesToHex(key.point.toBytes(false)))
    checksummed.set(key, a)
  }
  return a
}

/** For tests: forget every learnt key (the next signature of each signer is recovered again). */
export function forgetKnownSigners(): void {
  known.clear()
  answers.clear()
}

/** The plain recovery, for comparison in tests. */
export const recoverSigner = (digest: Uint8Array, signature: string): string => recoverAddress(digest, signature)
