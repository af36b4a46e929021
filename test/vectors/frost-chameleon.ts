/**
 * Known-answer vectors for the threshold chameleon Adapt (shared/crypto/chameleon-threshold.ts) and
 * the FROST files (shared/crypto/frost-codec.ts): a deterministic-RNG run — a 2-of-3 trusted-dealer
 * key, a record hashed under it, regulators 1 and 3 adapting it — whose outputs are committed in
 * frost-chameleon.json and checked byte for byte by test/crypto/chameleon-threshold.test.ts.
 * Regenerate only on a deliberate format change:
 *
 *   node test/vectors/frost-chameleon.ts --write        (or npm run kat:regenerate)
 */
import { writeFileSync } from 'node:fs'
import { chameleonHash, chameleonVerify } from '../../shared/crypto/chameleon.ts'
import { thresholdAdaptAggregate, thresholdAdaptCommit, thresholdAdaptSign } from '../../shared/crypto/chameleon-threshold.ts'
import { frostDeal } from '../../shared/crypto/frost.ts'
import { encodeFrostNonceFile, encodeFrostShareFile } from '../../shared/crypto/frost-codec.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'

export const FROST_CHAMELEON_KAT_SEED = 'careledger frost-chameleon kat v1'
export const FROST_CHAMELEON_KAT_MESSAGE = 'record #1: bed 12, heart_rate 72 /min at 2026-11-25T08:00:00Z'
export const FROST_CHAMELEON_KAT_ADAPTED = 'record #1 corrected: bed 12, heart_rate 78 /min at 2026-11-25T08:00:00Z'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const utf8 = new TextEncoder()

export function computeFrostChameleonVectors(): Record<string, string> {
  const rng = deterministicRng(FROST_CHAMELEON_KAT_SEED)
  const { group, shares } = frostDeal(2, 3, rng)
  const message = utf8.encode(FROST_CHAMELEON_KAT_MESSAGE)
  const adapted = utf8.encode(FROST_CHAMELEON_KAT_ADAPTED)
  const { hash, opening } = chameleonHash(group.groupKey, message, rng)
  const signers = [shares[0]!, shares[2]!]
  const round1 = signers.map((s) => thresholdAdaptCommit(s, rng))
  const nonceFile = encodeFrostNonceFile({ nonces: round1[0]!.nonces, label: 'request 0001', groupKey: group.groupKey })
  const commitments = round1.map((r) => r.commitment)
  const target = { hash, message: adapted }
  const sigShares = signers.map((s, j) => thresholdAdaptSign(s, group, round1[j]!.nonces, commitments, target))
  const result = thresholdAdaptAggregate(group, commitments, target, sigShares)
  const adaptedOpening = Uint8Array.from([...result.R, ...result.s]) // record format 2: R ‖ s
  if (!chameleonVerify(group.groupKey, message, hash, opening) || !chameleonVerify(group.groupKey, adapted, hash, adaptedOpening)) {
    throw new Error('KAT run: an opening does not verify')
  }
  return {
    seed: FROST_CHAMELEON_KAT_SEED,
    message: hex(message),
    adaptedMessage: hex(adapted),
    groupKey: hex(group.groupKey),
    verificationShares: group.verificationShares.map(hex).join(','),
    share1: hex(shares[0]!.signingShare),
    share3: hex(shares[2]!.signingShare),
    hash: hex(hash),
    opening: hex(opening),
    commitments: commitments.map((c) => `${c.index}:${hex(c.hiding)}:${hex(c.binding)}`).join(','),
    signatureShares: sigShares.map((z) => `${z.index}:${hex(z.share)}`).join(','),
    R: hex(result.R),
    s: hex(result.s),
    r: hex(result.r),
    adaptedOpening: hex(adaptedOpening),
    shareFile1: hex(encodeFrostShareFile(group, shares[0]!)),
    nonceFile1: hex(nonceFile),
  }
}

if (import.meta.main && process.argv.includes('--write')) {
  writeFileSync(new URL('frost-chameleon.json', import.meta.url), JSON.stringify(computeFrostChameleonVectors(), null, 2) + '\n')
  console.log('wrote test/vectors/frost-chameleon.json')
} else if (import.meta.main) {
  console.log(JSON.stringify(computeFrostChameleonVectors(), null, 2))
}
