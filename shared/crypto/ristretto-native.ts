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
 *
 * Measured here: decoding ~5–9 µs and the MSM ~6–13 µs a point, against ~80–120 and ~45–100 µs in
 * @noble/curves. noble stays the reference: callers take the addon's "yes" and re-judge every "no"
 * with noble, so a fault in the addon can cost time but never reject a valid chain, and the
 * bisection still names the bad records. Where the addon was not built (no Rust toolchain), in a
 * browser bundle, or with CARELEDGER_NO_RISTRETTO_NATIVE=1, this is null and noble does it all.
 */
import { ristretto255 } from '@noble/curves/ed25519.js'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { numberToBytesLE } from '@noble/curves/utils.js'
import { loadOptionalModule } from './optional-module.ts'

export interface RistrettoNative {
  decodeCheck(points: Uint8Array): number
  batchHolds(Y: Uint8Array, points: Uint8Array, weights: Uint8Array, a: Uint8Array, b: Uint8Array): boolean
  /** Absent in an addon built before it. */
  hashPoint?(Y: Uint8Array, e: Uint8Array, s: Uint8Array): Uint8Array
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

function load(): RistrettoNative | null {
  const m = loadOptionalModule<RistrettoNative>(ADDON, 'CARELEDGER_NO_RISTRETTO_NATIVE', (x) => typeof x.decodeCheck === 'function' && typeof x.batchHolds === 'function')
  try {
    if (!m || !passesSelfTest(m)) return null
    if (typeof m.hashPoint !== 'function') return m
    if (hashPointPassesSelfTest(m)) return m
    return { decodeCheck: m.decodeCheck.bind(m), batchHolds: m.batchHolds.bind(m) }
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
