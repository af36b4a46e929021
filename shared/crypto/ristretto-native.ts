/**
 * The optional native fast path of `chain verify`'s batch check (chameleon-batch.ts): the addon
 * native/ristretto (curve25519-dalek 4.1.3 behind a hand-written N-API binding, built by
 * `npm run build:native`; docs/crypto.md §The native ristretto255 addon). Two operations on public
 * inputs, flat byte buffers so that a batch crosses N-API once:
 *
 * - decodeCheck(points: n×32 bytes): the index of the first encoding RFC 9496 §4.3.1 refuses, or −1;
 * - batchHolds(Y, points n×32, weights n×16, a, b): Σ z_i·P_i = a·Y + b·G, every point decoded
 *   (RFC 9496 §4.3.1), z_i 128-bit little-endian, a and b canonical scalars (< ℓ).
 *
 * Measured here: decoding ~5–9 µs and the MSM ~6–13 µs a point, against ~80–120 and ~45–100 µs in
 * @noble/curves. noble stays the reference: callers take the addon's "yes" and re-judge every "no"
 * with noble, so a fault in the addon can cost time but never reject a valid chain, and the
 * bisection still names the bad records. Where the addon was not built (no Rust toolchain), in a
 * browser bundle, or with CARELEDGER_NO_RISTRETTO_NATIVE=1, this is null and noble does it all.
 */
import { ristretto255 } from '@noble/curves/ed25519.js'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { loadOptionalModule } from './optional-module.ts'

export interface RistrettoNative {
  decodeCheck(points: Uint8Array): number
  batchHolds(Y: Uint8Array, points: Uint8Array, weights: Uint8Array, a: Uint8Array, b: Uint8Array): boolean
}

/** Where `npm run build:native` puts the addon (relative to this file). */
const ADDON = '../../native/ristretto/careledger-ristretto.node'

const G = ristretto255.Point.BASE.toBytes()

/** Known answers before trusting a build: RFC 9496 Appendix A.2's first bad encoding, 1·G = 0·G + 1·G, and not 2·G. */
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

function load(): RistrettoNative | null {
  const m = loadOptionalModule<RistrettoNative>(ADDON, 'CARELEDGER_NO_RISTRETTO_NATIVE', (x) => typeof x.decodeCheck === 'function' && typeof x.batchHolds === 'function')
  try {
    return m && passesSelfTest(m) ? m : null
  } catch {
    return null
  }
}

/** The addon, or null (not built, turned off, failed its self-test, or no Node). Loaded once a thread, on import. */
export const ristrettoNative: RistrettoNative | null = load()

/** Which library checks `chain verify`'s batch equation here. */
export const ristrettoBatchLibrary = (): 'curve25519-dalek' | 'noble' => (ristrettoNative ? 'curve25519-dalek' : 'noble')
