/**
 * Choosing the pairing backend at process start.
 *
 *   noble  the reference, pure TypeScript: always works, slower
 *   mcl    mcl-wasm: 4–10× faster; refused if it cannot be loaded or fails its self-test
 *   auto   mcl on the platforms where the suite runs it (linux-x64, linux-arm64) and its self-test
 *          passes on this machine; noble otherwise (the reason is returned for the log)
 *
 * The self-test runs on this machine before mcl is used: the RFC 9380 hash of a pinned message
 * (Appendix J.9.1, msg "abc") and a transcript of every primitive and of FABEO with fixed
 * randomness, which must hash to the digest noble gives (pinned here, checked in the suite).
 */
import { CareLedgerError } from '../../errors.ts'
import { deterministicRng } from '../random.ts'
import { setBackend, withBackend, type BackendChoice, type PairingBackend } from './backend.ts'
import { nobleBackend } from './backend-noble.ts'
import { sha256 } from '@noble/hashes/sha2.js'
import { concatBytes } from '@noble/hashes/utils.js'
import { decodeCiphertext, decodeUserKey, encodeCiphertext, encodeUserKey } from './codec.ts'
import { decaps, encaps, keyGen, setup } from './fabeo.ts'
import { finish, makeTransformKey, transform } from './outsource.ts'

/** Where `auto` picks mcl: the platforms whose CI runs the differential suite with it. */
export const MCL_PLATFORMS: readonly string[] = ['linux-x64', 'linux-arm64']

export interface BackendSelection {
  readonly backend: PairingBackend
  readonly requested: BackendChoice
  /** Why this backend (for the start-up log line). */
  readonly reason: string
}

let mcl: Promise<PairingBackend> | undefined

/** The mcl backend, loaded and self-tested once per thread. Rejects if either fails. */
export function mclBackend(): Promise<PairingBackend> {
  mcl ??= (async () => {
    const { loadMclBackend } = await import('./backend-mcl.ts')
    const b = await loadMclBackend()
    const problem = selfTestProblem(b)
    if (problem) throw new Error(`mcl self-test failed: ${problem}`)
    return b
  })()
  return mcl
}

/** Make `choice` the backend of this thread. `platform` is `${process.platform}-${process.arch}`. */
export async function useBackend(choice: BackendChoice, platform: string): Promise<BackendSelection> {
  if (choice === 'noble') {
    setBackend(nobleBackend)
    return { backend: nobleBackend, requested: choice, reason: 'configured' }
  }
  if (choice === 'auto' && !MCL_PLATFORMS.includes(platform)) {
    setBackend(nobleBackend)
    return { backend: nobleBackend, requested: choice, reason: `mcl is chosen automatically only on ${MCL_PLATFORMS.join(', ')}, not ${platform}` }
  }
  try {
    const b = await mclBackend()
    setBackend(b)
    return { backend: b, requested: choice, reason: choice === 'auto' ? `fastest backend that passed its self-test on ${platform}` : 'configured' }
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e)
    if (choice === 'mcl') {
      throw new CareLedgerError('INVALID_ARGUMENT', `the mcl pairing backend is not usable here: ${why}`, { backend: 'mcl', platform })
    }
    setBackend(nobleBackend)
    return { backend: nobleBackend, requested: choice, reason: `mcl is not usable here (${why}); noble is the fallback` }
  }
}

// RFC 9380 Appendix J.9.1, BLS12381G1_XMD:SHA-256_SSWU_RO_, msg = "abc": P.x (the sign of P.y is
// in the compressed encoding's flags, covered by the transcript below).
const RFC9380_DST = 'QUUX-V01-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_'
const RFC9380_ABC_X = '03567bc5ef9c690c2ab2ecdf6a96ef1c139cc0b2f284dca0a9a7943388a49a3aee664ba5379a7655d3c68900be2f6903'
/**
 * SHA-256 of selfTestTranscript under noble, the reference; test/crypto/backends.test.ts checks
 * that both backends produce it. A backend that gives anything else on this machine is not used.
 */
export const SELF_TEST_DIGEST = 'ae7badba9bb1c930fad0254d12ee169af9921ca80f58acac3e0a3981ef63fc45'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/**
 * Every primitive once, then FABEO end to end with fixed randomness: hash to G1, multiplications in
 * G1 and G2 (plain and by table), a pairing product, GT exponentiation and decoding, Setup, KeyGen,
 * Encaps, Decaps, Transform and Finish.
 */
export function selfTestTranscript(b: PairingBackend): Uint8Array[] {
  return withBackend(b, () => {
    const out: Uint8Array[] = []
    const h = b.hashToG1(new TextEncoder().encode('abc'), RFC9380_DST)
    const k = 0x5a17e5a17e5a17e5a17e5a17e5a17e5a17e5a17e5a17e5a17e5a17e5a17e5n
    const p = h.multiply(k)
    const q = b.mulG2Base(k)
    const e = b.pairingProduct([{ g1: p, g2: q }, { g1: h, g2: b.g2Base() }])
    const decoded = b.gtFromBytes(e.toBytes())
    if (!decoded) throw new Error('GT decoding refuses a pairing value')
    out.push(h.toBytes(), p.toBytes(), q.toBytes(), q.add(b.g2Base()).negate().toBytes(), e.toBytes(), decoded.pow(k).toBytes(), e.inv().mul(e).toBytes())
    const rng = deterministicRng('careledger backend self-test')
    const msk = setup(rng)
    const key = keyGen(msk, ['role:doctor', 'b:2', 'c:3'], rng)
    const { ciphertext, key: kem } = encaps(msk.mpk, 'role:doctor AND (hospital:h1 OR 2 of (a:1, b:2, c:3))', rng)
    const { transformKey, retrievalKey } = makeTransformKey(key, rng)
    const ct = decodeCiphertext(encodeCiphertext(ciphertext))
    out.push(encodeUserKey(key), encodeCiphertext(ciphertext), kem.toBytes(), decaps(decodeUserKey(encodeUserKey(key)), ct).toBytes())
    out.push(finish(retrievalKey, transform(transformKey, ct)).toBytes())
    return out
  })
}

/** null if `b` reproduces RFC 9380 and the reference transcript on this machine, else what differed. */
export function selfTestProblem(b: PairingBackend): string | null {
  try {
    const transcript = selfTestTranscript(b)
    const x = transcript[0]!.slice()
    x[0]! &= 0x1f
    if (hex(x) !== RFC9380_ABC_X) return 'RFC 9380 hash_to_curve("abc") differs from the RFC'
    const digest = hex(sha256(concatBytes(...transcript)))
    if (digest !== SELF_TEST_DIGEST) return `its known-answer transcript differs from noble's (SHA-256 ${digest})`
    return null
  } catch (e) {
    return e instanceof Error ? e.message : String(e)
  }
}
