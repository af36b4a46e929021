/**
 * The policy a batch claims, checked (docs/api.md §POST /v1/batches): `manifest.policy` must be a
 * valid CP-ABE policy in canonical form (shared/crypto/policy/parse.ts), and the envelope must
 * really be encrypted under it — the manifest's `policy` and `authority` must equal the policy and
 * authority id inside the envelope's FABEO header. Without this, a gateway could sign a manifest
 * claiming "(role:doctor AND hospital:h1)" over an envelope that anyone holding "role:visitor"
 * opens, and the chain would vouch for the wrong policy.
 *
 * Only the header's leading fields are read (docs/crypto.md §Encodings: preamble, scheme,
 * authority[16], policy as a LEB128-prefixed UTF-8 string): decoding the whole header validates
 * every group element (~9 ms for a three-row policy), which ingest cannot afford per batch and
 * does not need — whoever decrypts validates the points (shared/crypto/abe/codec.ts).
 */
import { bytesToHex } from '@noble/hashes/utils.js'
import { Kind, Reader } from '../../shared/encoding/binary.ts'
import { decodeEnvelope } from '../../shared/crypto/envelope.ts'
import { SCHEME_FABEO_BLS12_381 } from '../../shared/crypto/abe/codec.ts'
import { assertEachAttributeOnce, formatPolicy, parsePolicy, POLICY_LIMITS } from '../../shared/crypto/policy/parse.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { ApiError } from './errors.ts'

const AUTHORITY_BYTES = 16

/** The authority id (hex) and policy text inside an envelope's FABEO header. */
export function envelopePolicy(envelope: Uint8Array): { authority: string; policy: string } {
  const header = decodeEnvelope(envelope).header
  const r = Reader.open(header, Kind.Ciphertext, 'ciphertext header')
  const scheme = r.u8()
  if (scheme !== SCHEME_FABEO_BLS12_381) r.fail('SCHEME', `scheme ${scheme} is not FABEO/BLS12-381 (${SCHEME_FABEO_BLS12_381})`)
  const authority = bytesToHex(r.take(AUTHORITY_BYTES))
  return { authority, policy: r.string(POLICY_LIMITS.maxLength) }
}

/**
 * Verdicts of policyProblem by policy text: a gateway seals every batch of a stream under the same
 * policy, so bulk ingest parses a handful of distinct policies thousands of times. Bounded; only
 * verdicts on texts of at most POLICY_LIMITS.maxLength are kept.
 */
const verdicts = new Map<string, string | null>()
const VERDICTS_KEPT = 1024

/** Why `policy` is not a usable canonical policy, or null. */
export function policyProblem(policy: string): string | null {
  const known = verdicts.get(policy)
  if (known !== undefined) return known
  const verdict = judgePolicy(policy)
  if (policy.length <= POLICY_LIMITS.maxLength) {
    if (verdicts.size >= VERDICTS_KEPT) verdicts.delete(verdicts.keys().next().value!)
    verdicts.set(policy, verdict)
  }
  return verdict
}

function judgePolicy(policy: string): string | null {
  try {
    const tree = parsePolicy(policy)
    assertEachAttributeOnce(tree, policy)
    const canonical = formatPolicy(tree)
    if (canonical !== policy) return `not in canonical form (the gateway seals under "${canonical.slice(0, 200)}")`
    return null
  } catch (e) {
    if (!isCareLedgerError(e)) throw e
    return e.message
  }
}

/**
 * The stage: throws INVALID_MANIFEST (field `manifest.policy` or `manifest.authority`, with a
 * reason POLICY_SYNTAX, POLICY_MISMATCH or AUTHORITY_MISMATCH) or INVALID_CAR for an envelope
 * whose header cannot be read.
 */
export function checkPolicyOf(manifest: { policy: string; authority: string }, envelope: Uint8Array, field: (f: string) => string): void {
  const problem = policyProblem(manifest.policy)
  if (problem !== null) {
    throw new ApiError('INVALID_MANIFEST', `${field('manifest.policy')}: not a valid CP-ABE policy: ${problem}`, { field: field('manifest.policy'), reason: 'POLICY_SYNTAX' })
  }
  let inside: { authority: string; policy: string }
  try {
    inside = envelopePolicy(envelope)
  } catch (e) {
    if (!isCareLedgerError(e)) throw e
    throw new ApiError('INVALID_CAR', `${field('car')}: the envelope's CP-ABE header cannot be read: ${e.message}`, { field: field('car'), reason: 'ENVELOPE_HEADER' })
  }
  if (inside.policy !== manifest.policy) {
    throw new ApiError('INVALID_MANIFEST', `${field('manifest.policy')}: the envelope is encrypted under a different policy than the signed manifest claims`, {
      field: field('manifest.policy'),
      reason: 'POLICY_MISMATCH',
      envelopePolicy: inside.policy.slice(0, 500),
    })
  }
  if (inside.authority !== manifest.authority) {
    throw new ApiError('INVALID_MANIFEST', `${field('manifest.authority')}: the envelope is encrypted under authority ${inside.authority}, the manifest claims ${manifest.authority}`, {
      field: field('manifest.authority'),
      reason: 'AUTHORITY_MISMATCH',
      envelopeAuthority: inside.authority,
    })
  }
}
