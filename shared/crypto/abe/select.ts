/**
 * Choosing the pairing backend at process start.
 *
 *   noble  the reference, pure TypeScript: always works, slower
 *   mcl    mcl-wasm: 4–10× faster; refused if it cannot be loaded or fails its self-test
 *   auto   mcl on the platforms where the suite runs it (linux-x64, linux-arm64) and its self-test
 *          passes on this machine; noble otherwise (the reason is returned for the log)
 *
 * The self-test compares mcl with noble on this machine, byte for byte: the RFC 9380 hash of a
 * pinned message (RFC 9380 Appendix J.9.1, msg "abc"), scalar multiplications in G1 and G2, a
 * pairing, a GT exponentiation, and FABEO across the two: what one encapsulates the other decapsulates.
 */
import { CareLedgerError } from '../../errors.ts'
import { deterministicRng } from '../random.ts'
import { setBackend, withBackend, type BackendName, type PairingBackend } from './backend.ts'
import { nobleBackend } from './backend-noble.ts'
import { decodeCiphertext, decodeMasterSecretKey, decodeUserKey, encodeCiphertext, encodeMasterSecretKey, encodeUserKey } from './codec.ts'
import { decaps, encaps, keyGen, setup } from './fabeo.ts'

export type BackendChoice = BackendName | 'auto'
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'noble', 'mcl']
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

export function parseBackendChoice(value: string, where: string): BackendChoice {
  const v = value.trim().toLowerCase()
  if ((BACKEND_CHOICES as readonly string[]).includes(v)) return v as BackendChoice
  throw new CareLedgerError('INVALID_ARGUMENT', `${where}=${JSON.stringify(value)}: the pairing backend must be one of ${BACKEND_CHOICES.join(', ')}`, {
    value,
    allowed: BACKEND_CHOICES,
  })
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

// RFC 9380 Appendix J.9.1, BLS12381G1_XMD:SHA-256_SSWU_RO_, msg = "abc": P.x (the sign bit of
// P.y is in the compressed encoding's flags, so the whole encoding is compared with noble's below).
const RFC9380_DST = 'QUUX-V01-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_'
const RFC9380_ABC_X = '03567bc5ef9c690c2ab2ecdf6a96ef1c139cc0b2f284dca0a9a7943388a49a3aee664ba5379a7655d3c68900be2f6903'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** null if `b` agrees with noble (and RFC 9380) on this machine, else what differed. */
export function selfTestProblem(b: PairingBackend): string | null {
  try {
    const abc = new TextEncoder().encode('abc')
    const h = b.hashToG1(abc, RFC9380_DST)
    const hBytes = h.toBytes()
    const x = hBytes.slice()
    x[0]! &= 0x1f
    if (hex(x) !== RFC9380_ABC_X) return 'RFC 9380 hash_to_curve("abc") differs from the RFC'
    if (hex(hBytes) !== hex(nobleBackend.hashToG1(abc, RFC9380_DST).toBytes())) return 'hash_to_curve differs from noble'
    const k = 0x5a17e5a17e5a17e5a17e5a17e5a17e5a17e5a17e5a17e5a17e5a17e5a17e5n
    const checks: [string, Uint8Array, Uint8Array][] = withBackend(b, () => {
      const p = h.multiply(k)
      const q = b.mulG2Base(k)
      const e = b.pairing(p, q)
      return [
        ['G1 multiplication', p.toBytes(), nobleBackend.adoptG1(nobleBackend.g1FromBytes(hBytes) as never).multiply(k).toBytes()],
        ['G2 multiplication', q.toBytes(), nobleBackend.mulG2Base(k).toBytes()],
        ['pairing', e.toBytes(), nobleBackend.pairing(nobleBackend.adoptG1(p), nobleBackend.adoptG2(q)).toBytes()],
        ['GT exponentiation', e.pow(k).toBytes(), nobleBackend.adoptGT(e).pow(k).toBytes()],
      ]
    })
    for (const [what, mine, reference] of checks) if (hex(mine) !== hex(reference)) return `${what} differs from noble`
    if (!b.isInGT(b.gtFromBytes(checks[2]![1])!)) return 'GT membership refuses a pairing value'
    return crossDecapsProblem(b)
  } catch (e) {
    return e instanceof Error ? e.message : String(e)
  }
}

/** Setup, KeyGen and Encaps under one backend, Decaps under the other, both ways. */
function crossDecapsProblem(b: PairingBackend): string | null {
  const policy = 'role:doctor AND (hospital:h1 OR 2 of (a:1, b:2, c:3))'
  for (const [maker, opener] of [
    [b, nobleBackend],
    [nobleBackend, b],
  ] as const) {
    const rng = deterministicRng(`careledger backend self-test ${maker.name}`)
    const made = withBackend(maker, () => {
      const msk = setup(rng)
      const key = keyGen(msk, ['role:doctor', 'b:2', 'c:3'], rng)
      const { ciphertext, key: k } = encaps(msk.mpk, policy, rng)
      return { msk: encodeMasterSecretKey(msk), key: encodeUserKey(key), ct: encodeCiphertext(ciphertext), k: hex(k.toBytes()) }
    })
    const opened = withBackend(opener, () => {
      decodeMasterSecretKey(made.msk)
      return hex(decaps(decodeUserKey(made.key), decodeCiphertext(made.ct)).toBytes())
    })
    if (opened !== made.k) return `a ciphertext made by ${maker.name} does not open with ${opener.name}`
  }
  return null
}
