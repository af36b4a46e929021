/**
 * Who signed a 32-byte digest with an Ethereum signature (r ‖ s ‖ v, v = 27/28, low s) — what
 * ethers' recoverAddress answers — made cheap for the signer we expect.
 *
 * Recovery (SEC 1 v2 §4.1.6) lifts R from r, computes Q = r⁻¹(s·R − h·G) and hashes Q to an
 * address (Keccak-256, the last 20 bytes). In JavaScript (noble, under ethers) that costs ~2 ms of
 * CPU here; libsecp256k1 — bitcoin-core's constant-checked C library, compiled to WebAssembly by
 * bitcoinjs' tiny-secp256k1 — does the same recovery in ~0.25 ms (bench:supervision-crypto).
 *
 * Fast path and its guard: libsecp256k1 recovers Q with recovery id v − 27 over the same digest,
 * r and s (ethers' Signature.from has already refused a high s, EIP-2); its answer is taken ONLY
 * when keccak(Q) is the expected signer's address. Any other outcome — another address, no key,
 * the library not loading (a browser bundle, CARELEDGER_NO_LIBSECP256K1=1) — is re-judged by
 * ethers' own recovery, which names the real signer. So a fast-path bug can never reject a valid
 * signature, and its "yes" is libsecp256k1's verification that (r, s) is valid under Q.
 *
 * Nothing is read from a file or a database: a cold `chain verify` trusts nothing it did not
 * compute. Answers this process computed are remembered (the same approval is checked when it
 * arrives, when the redaction is applied and when its log entry is built).
 */
import { computeAddress, getAddress, recoverAddress, Signature, SigningKey } from 'ethers'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { loadOptionalModule } from './optional-module.ts'

interface Libsecp256k1 {
  recover(h: Uint8Array, signature: Uint8Array, recoveryId: 0 | 1 | 2 | 3, compressed?: boolean): Uint8Array | null
}

/** tiny-secp256k1 where it loads (Node: its CommonJS build reads the .wasm beside it), else null. */
const loadLibsecp256k1 = (): Libsecp256k1 | null => loadOptionalModule<Libsecp256k1>('tiny-secp256k1', 'CARELEDGER_NO_LIBSECP256K1', (m) => typeof m.recover === 'function')
const libsecp256k1 = loadLibsecp256k1()

/** Which library the fast path uses here ('ethers' = no fast path: every signature is recovered by ethers/noble). */
export const ethSignerEngine = (): 'libsecp256k1' | 'ethers' => (libsecp256k1 ? 'libsecp256k1' : 'ethers')

/** The lower-case address libsecp256k1 recovers, or null when it recovers none (ethers then decides). */
function fastSigner(digest: Uint8Array, sig: Signature): string | null {
  if (!libsecp256k1 || digest.length !== 32 || (sig.v !== 27 && sig.v !== 28)) return null
  try {
    const compact = hexToBytes(sig.r.slice(2) + sig.s.slice(2))
    const q = libsecp256k1.recover(digest, compact, (sig.v - 27) as 0 | 1, false)
    if (!q || q.length !== 65) return null
    return '0x' + bytesToHex(keccak_256(q.subarray(1)).subarray(12))
  } catch {
    return null
  }
}

/**
 * The address that signed `digest` with `signature` (any form ethers' Signature.from accepts, or
 * the Signature it made),
 * checked first against `expected` (an address, any case) by libsecp256k1. Returns the EIP-55
 * address; throws as ethers' recoverAddress does for a signature that recovers to no key.
 */
export function ethSigner(digest: Uint8Array, signature: string | Signature, expected: string): string {
  // A Signature passed in was made by Signature.from (its constructor is guarded), so it is checked already.
  const sig = signature instanceof Signature ? signature : Signature.from(signature)
  const memoKey = `${bytesToHex(digest)}${sig.r}${sig.s}${sig.v}`
  const seen = answers.get(memoKey)
  if (seen !== undefined) return seen
  const want = typeof expected === 'string' ? expected.toLowerCase() : ''
  let signer: string
  if (fastSigner(digest, sig) === want) signer = checksummed(want)
  else signer = computeAddress(SigningKey.recoverPublicKey(digest, sig))
  if (answers.size >= MAX_ANSWERS) answers.clear()
  answers.set(memoKey, signer)
  return signer
}

/** (digest ‖ signature) → signer, for signatures this process has already checked. */
const answers = new Map<string, string>()
const MAX_ANSWERS = 4096

/** EIP-55 form (ethers' getAddress) of a lower-case address, remembered (a policy names a handful of signers). */
const eip55 = new Map<string, string>()
function checksummed(lower: string): string {
  let a = eip55.get(lower)
  if (a === undefined) {
    a = getAddress(lower)
    if (eip55.size >= MAX_ANSWERS) eip55.clear()
    eip55.set(lower, a)
  }
  return a
}

/** For tests and benchmarks: forget every remembered answer (the next check of each signature starts cold). */
export function forgetKnownSigners(): void {
  answers.clear()
  eip55.clear()
}

/** The plain recovery, for comparison in tests. */
export const recoverSigner = (digest: Uint8Array, signature: string): string => recoverAddress(digest, signature)
