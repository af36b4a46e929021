/**
 * A faster e·Y + s·G over ristretto255 (RFC 9496) for the chameleon hash (chameleon.ts), through
 * libsodium (libsodium-wrappers-sumo, the WebAssembly build of the audited C library):
 *
 *   encode(e·Y + s·G) = crypto_core_ristretto255_add(crypto_scalarmult_ristretto255(e, Y),
 *                                                    crypto_scalarmult_ristretto255_base(s))
 *
 * Measured here (docs/crypto.md §The libsodium fast path): ~0.14 ms of CPU against ~0.28 ms for
 * @noble/curves with width-12 fixed-base tables (and ~0.35 ms without), because libsodium's field
 * arithmetic is 32-bit limbs in WebAssembly where noble's is BigInt. It has no multi-scalar
 * multiplication and exports no decoded points, so the batch check of `chain verify`
 * (chameleon-batch.ts) does not use it: it has its own native fast path (ristretto-native.ts,
 * curve25519-dalek), and noble where that is not built.
 *
 * noble stays the reference. This module only answers "here are the bytes" or null (not loaded,
 * disabled, or libsodium refused: a zero scalar, an identity result — RFC 9496 §4.3.2 encodes the
 * identity, libsodium's scalarmult refuses it); callers then compute with noble. A verification
 * through it may say yes only when the bytes libsodium computed equal the opening's (so the
 * opening's P is the canonical encoding of e·Y + s·G, which is what noble checks), and every no is
 * re-judged by noble (test/crypto/ristretto-fast.test.ts holds the two to the same bytes).
 *
 * libsodium's scalar multiplications clear bit 255 of the scalar; every scalar here is < ℓ < 2^253,
 * which this module checks, so none is altered. Loading is asynchronous (WebAssembly) and costs
 * ~60 ms of CPU once a thread: it starts on first use, and noble answers until it is ready
 * (ristrettoFastReady() waits for it). CARELEDGER_RISTRETTO_FAST=0 turns it off (benchmarks compare).
 */
import { ristretto255 } from '@noble/curves/ed25519.js'
import { numberToBytesLE } from '@noble/curves/utils.js'
import { bytesToHex } from '@noble/hashes/utils.js'

interface Libsodium {
  ready: Promise<void>
  crypto_scalarmult_ristretto255(scalar: Uint8Array, element: Uint8Array): Uint8Array
  crypto_scalarmult_ristretto255_base(scalar: Uint8Array): Uint8Array
  crypto_core_ristretto255_add(p: Uint8Array, q: Uint8Array): Uint8Array
}

const ℓ = ristretto255.Point.Fn.ORDER

let lib: Libsodium | null = null
let loading: Promise<boolean> | null = null
/** The load finished without a usable library (or the fast path is turned off). */
let unavailable = false

/** Off by CARELEDGER_RISTRETTO_FAST=0, and where there is no Node (a browser bundle: noble only). */
function nodeRequire(): ((id: string) => unknown) | null {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined>; getBuiltinModule?: (id: string) => unknown } }).process
  if (!proc?.getBuiltinModule || proc.env?.CARELEDGER_RISTRETTO_FAST === '0') return null
  const { createRequire } = proc.getBuiltinModule('node:module') as typeof import('node:module')
  return createRequire(import.meta.url)
}

/** Start loading libsodium (once); resolves true when the fast path is usable, false when noble alone answers. */
export function ristrettoFastReady(): Promise<boolean> {
  loading ??= (async () => {
    try {
      const req = nodeRequire()
      if (!req) return (unavailable = true), false
      const s = req('libsodium-wrappers-sumo') as Libsodium
      await s.ready
      if (typeof s.crypto_scalarmult_ristretto255 !== 'function') return false
      // A known answer before trusting it: 1·G + 1·G is RFC 9496 Appendix A.1's 2·B.
      const one = numberToBytesLE(1n, 32)
      const twoB = s.crypto_core_ristretto255_add(s.crypto_scalarmult_ristretto255(one, G_BYTES), s.crypto_scalarmult_ristretto255_base(one))
      if (bytesToHex(twoB) !== TWO_B_HEX) return (unavailable = true), false
      lib = s
      return true
    } catch {
      unavailable = true
      return false
    }
  })()
  return loading
}

const G_BYTES = ristretto255.Point.BASE.toBytes()
const TWO_B_HEX = '6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919'

/** Which library computes e·Y + s·G here (after ristrettoFastReady resolved). */
export const ristrettoFastLibrary = (): 'libsodium' | 'noble' => (lib ? 'libsodium' : 'noble')

/** Is libsodium loaded in this thread? (cheap: for hot paths that only prepare for the fast path when it can be taken) */
export const ristrettoFastLoaded = (): boolean => lib !== null

/** 'ready'; 'loading' (started, or not yet asked for); 'off': noble alone (turned off, no Node, or libsodium failed to load). */
export function ristrettoFastState(): 'ready' | 'loading' | 'off' {
  if (lib) return 'ready'
  if (unavailable || nodeRequire() === null) return 'off'
  return 'loading'
}

/**
 * encode(e·Y + s·G) by libsodium, for `publicKey` = encode(Y) and scalars e, s in [0, ℓ); null when
 * the fast path is not (yet) loaded or libsodium refuses (the caller computes it with noble).
 */
export function fastDoubleScalarBase(publicKey: Uint8Array, e: bigint, s: bigint): Uint8Array | null {
  if (lib === null) {
    void ristrettoFastReady()
    return null
  }
  if (e <= 0n || e >= ℓ || s <= 0n || s >= ℓ) return null // libsodium refuses a zero scalar; ≥ ℓ is never passed
  try {
    return lib.crypto_core_ristretto255_add(lib.crypto_scalarmult_ristretto255(numberToBytesLE(e, 32), publicKey), lib.crypto_scalarmult_ristretto255_base(numberToBytesLE(s, 32)))
  } catch {
    return null // an invalid Y, or an identity e·Y or result: noble decides
  }
}
