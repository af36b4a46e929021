/**
 * Known-answer vectors for the chameleon hash (shared/crypto/chameleon.ts): a deterministic-RNG
 * run of KeyGen, Hash and Adapt whose outputs are committed and checked byte for byte by
 * test/crypto/chameleon.test.ts, one file per opening format:
 *
 *   chameleon.json      format 2, encode(P) ‖ s (record format v2, written now)
 *   chameleon-v1.json   format 1, r ‖ s (record format v1): committed before format 2 and never
 *                       rewritten; the same run with format 1 must still reproduce it
 *
 * Same seed, same draws: the hash C is the same in both files (the formats encode openings of one
 * hash function). Regenerate only on a deliberate format change:
 *
 *   node test/vectors/chameleon.ts --write        (or npm run kat:regenerate for every vector file)
 */
import { writeFileSync } from 'node:fs'
import {
  chameleonAdapt,
  chameleonHash,
  chameleonKeyGen,
  chameleonKeyId,
  chameleonVerify,
  encodeChameleonPublicKey,
  encodeChameleonSecretKey,
  type OpeningFormat,
} from '../../shared/crypto/chameleon.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'

export const CHAMELEON_KAT_SEED = 'careledger chameleon kat v1'
export const CHAMELEON_KAT_MESSAGE = 'record #1: bed 12, heart_rate 72 /min at 2026-11-25T08:00:00Z'
export const CHAMELEON_KAT_ADAPTED = 'record #1 corrected: bed 12, heart_rate 78 /min at 2026-11-25T08:00:00Z'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const utf8 = new TextEncoder()

/** The vectors of opening format `format` (2: chameleon.json, 1: chameleon-v1.json). */
export function computeChameleonVectors(format: OpeningFormat = 2): Record<string, string> {
  const rng = deterministicRng(CHAMELEON_KAT_SEED)
  const { secretKey, publicKey } = chameleonKeyGen(rng)
  const message = utf8.encode(CHAMELEON_KAT_MESSAGE)
  const adapted = utf8.encode(CHAMELEON_KAT_ADAPTED)
  const { hash, opening } = chameleonHash(publicKey, message, rng, format)
  const adaptedOpening = chameleonAdapt(secretKey, adapted, hash, rng, format)
  if (!chameleonVerify(publicKey, message, hash, opening, format) || !chameleonVerify(publicKey, adapted, hash, adaptedOpening, format)) {
    throw new Error('KAT run: an opening does not verify')
  }
  return {
    seed: CHAMELEON_KAT_SEED,
    message: hex(message),
    adaptedMessage: hex(adapted),
    secretKey: hex(secretKey),
    publicKey: hex(publicKey),
    keyId: chameleonKeyId(publicKey),
    hash: hex(hash),
    opening: hex(opening),
    adaptedOpening: hex(adaptedOpening),
    publicKeyFile: hex(encodeChameleonPublicKey(publicKey)),
    secretKeyFile: hex(encodeChameleonSecretKey(secretKey)),
  }
}

if (import.meta.main && process.argv.includes('--write')) {
  const out = new URL('chameleon.json', import.meta.url)
  writeFileSync(out, JSON.stringify(computeChameleonVectors(), null, 2) + '\n')
  console.log('wrote test/vectors/chameleon.json')
} else if (import.meta.main) {
  console.log(JSON.stringify(computeChameleonVectors(), null, 2))
}
