/**
 * The optional native fast path of `chain verify`'s batch check (chameleon-batch.ts): the addon
 * native/ristretto (curve25519-dalek 4.1.3 behind a hand-written N-API binding, built by
 * `npm run build:native`; docs/crypto.md §The native ristretto255 addon). Two operations on public
 * inputs, flat byte buffers so that a batch crosses N-API once:
 *
 * - decodeCheck(points: n×32 bytes): the index of the first encoding RFC 9496 §4.3.1 refuses, or −1;
 * - batchHolds(Y, points n×32, weights n×16, a, b): Σ z_i·P_i = a·Y + b·G, every point decoded
 *   (RFC 9496 §4.3.1), z_i 128-bit little-endian, a and b canonical scalars (< ℓ);
 * - hashPoint(Y, e, s): encode(e·Y + s·G) through fixed-base tables (Y's built once per key and
 *   thread), or an empty array when Y does not decode or e, s are not canonical: chameleon Hash
 *   (chameleon.ts). An addon built before it lacks it: then libsodium or noble hash.
 * - ed25519BatchHolds(A n×32, R n×32, S n×32, hram n×64, weights n×16): the cofactored Ed25519
 *   batch equation (ed25519-batch.ts). An addon built before it lacks it: single checks then.
 *
 * Measured here: decoding ~5–9 µs and the MSM ~6–13 µs a point, against ~80–120 and ~45–100 µs in
 * @noble/curves. noble stays the reference: callers take the addon's "yes" and re-judge every "no"
 * with noble, so a fault in the addon can cost time but never reject a valid chain, and the
 * bisection still names the bad records. Where the addon was not built (no Rust toolchain), in a
 * browser bundle, or with CARELEDGER_NO_RISTRETTO_NATIVE=1, this is null and noble does it all.
 */
import { ristretto255 } from '@noble/curves/ed25519.js'
import { bytesToHex, concatBytes, hexToBytes } from '@noble/hashes/utils.js'
import { sha512 } from '@noble/hashes/sha2.js'
import { numberToBytesLE } from '@noble/curves/utils.js'
import { loadOptionalModule } from './optional-module.ts'

export interface RistrettoNative {
  decodeCheck(points: Uint8Array): number
  batchHolds(Y: Uint8Array, points: Uint8Array, weights: Uint8Array, a: Uint8Array, b: Uint8Array): boolean
  /** Absent in an addon built before it. */
  hashPoint?(Y: Uint8Array, e: Uint8Array, s: Uint8Array): Uint8Array
  /** Absent in an addon built before it. */
  ed25519BatchHolds?(keys: Uint8Array, rs: Uint8Array, ss: Uint8Array, hrams: Uint8Array, weights: Uint8Array): boolean
}

/** Where `npm run build:native` puts the addon (relative to this file). */
const ADDON = '../../native/ristretto/careledger-ristretto.node'

const G = ristretto255.Point.BASE.toBytes()

/**
 * Known answers before trusting a build: RFC 9496 Appendix A.2's first bad encoding, 1·G = 0·G + 1·G,
 * and not 2·G; and, where hashPoint is built, 1·G + 1·G = 2·G (RFC 9496 Appendix A.1's multiples of G)
 * and 3·(2·G) + 1·G = 7·G. A build whose hashPoint fails is used without it.
 */
function passesSelfTest(m: RistrettoNative): boolean {
  const scalar = (k: number): Uint8Array => Uint8Array.of(k, ...new Uint8Array(31))
  const one = new Uint8Array(16)
  one[0] = 1
  const nonCanonical = hexToBytes('00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff')
  return (
    m.decodeCheck(G) === -1 &&
    m.decodeCheck(new Uint8Array([...G, ...nonCanonical])) === 1 &&
    m.batchHolds(G, G, one, scalar(0), scalar(1)) &&
    !m.batchHolds(G, G, one, scalar(0), scalar(2)) &&
    bytesToHex(G) === 'e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76'
  )
}

function hashPointPassesSelfTest(m: RistrettoNative): boolean {
  const scalar = (k: number): Uint8Array => Uint8Array.of(k, ...new Uint8Array(31))
  const twoG = hexToBytes('6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919')
  const sevenG = hexToBytes('44f53520926ec81fbd5a387845beb7df85a96a24ece18738bdcfa6a7822a176d')
  const same = (a: Uint8Array | undefined, b: Uint8Array): boolean => a !== undefined && bytesToHex(a) === bytesToHex(b)
  return same(m.hashPoint?.(G, scalar(1), scalar(1)), twoG) && same(m.hashPoint?.(twoG, scalar(3), scalar(1)), sevenG) && m.hashPoint?.(G, scalar(1), new Uint8Array(32).fill(0xff)).length === 0
}

/** RFC 8032 §7.1 TEST 1–3 (public key, message, signature). */
const RFC8032 = [
  ['d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', '', 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'],
  ['3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c', '72', '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00'],
  ['fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025', 'af82', '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a'],
] as const

/** RFC 8032's three signatures hold as a batch, and not with one S changed, nor with one R made non-canonical (y ≥ p). */
function ed25519BatchPassesSelfTest(m: RistrettoNative): boolean {
  const cat = (parts: Uint8Array[]): Uint8Array => concatBytes(...parts)
  const A = RFC8032.map(([a]) => hexToBytes(a))
  const sig = RFC8032.map(([, , s]) => hexToBytes(s))
  const R = sig.map((x) => x.subarray(0, 32))
  const S = sig.map((x) => x.subarray(32))
  const H = RFC8032.map(([, msg], i) => sha512(concatBytes(R[i]!, A[i]!, hexToBytes(msg))))
  const w = new Uint8Array(48).map((_, i) => (i * 37 + 11) & 0xff)
  const holds = (r: Uint8Array[], s: Uint8Array[]): boolean => m.ed25519BatchHolds!(cat(A), cat(r), cat(s), cat(H), w)
  const badS = S.map((x, i) => (i === 1 ? x.map((b, j) => (j === 0 ? b ^ 1 : b)) : x))
  const badR = R.map((x, i) => (i === 2 ? new Uint8Array(32).fill(0xff).fill(0x7f, 31) : x))
  return holds(R, S) && !holds(R, badS) && !holds(badR, S)
}

function load(): RistrettoNative | null {
  const m = loadOptionalModule<RistrettoNative>(ADDON, 'CARELEDGER_NO_RISTRETTO_NATIVE', (x) => typeof x.decodeCheck === 'function' && typeof x.batchHolds === 'function')
  try {
    if (!m || !passesSelfTest(m)) return null
    // Each later operation is used only where it passes its own known answers.
    return {
      decodeCheck: m.decodeCheck.bind(m),
      batchHolds: m.batchHolds.bind(m),
      ...(typeof m.hashPoint === 'function' && hashPointPassesSelfTest(m) ? { hashPoint: m.hashPoint.bind(m) } : {}),
      ...(typeof m.ed25519BatchHolds === 'function' && ed25519BatchPassesSelfTest(m) ? { ed25519BatchHolds: m.ed25519BatchHolds.bind(m) } : {}),
    }
  } catch {
    return null
  }
}

/** The addon, or null (not built, turned off, failed its self-test, or no Node). Loaded once a thread, on import. */
export const ristrettoNative: RistrettoNative | null = load()

/** encode(e·Y + s·G) by the addon, or null (no addon, one built without hashPoint, or Y not a point). */
export function nativeHashPoint(publicKey: Uint8Array, e: bigint, s: bigint): Uint8Array | null {
  if (!ristrettoNative?.hashPoint) return null
  const out = ristrettoNative.hashPoint(publicKey, numberToBytesLE(e, 32), numberToBytesLE(s, 32))
  return out.length === 32 ? new Uint8Array(out.buffer, out.byteOffset, 32) : null
}

/** Which library checks `chain verify`'s batch equation here. */
export const ristrettoBatchLibrary = (): 'curve25519-dalek' | 'noble' => (ristrettoNative ? 'curve25519-dalek' : 'noble')
