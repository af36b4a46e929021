/** Rewrites the committed known-answer vectors. Run only on a deliberate format change: npm run kat:regenerate */
import { readFileSync, writeFileSync } from 'node:fs'
import { computeAbeVectors } from './abe.ts'
import { computeBatchVectors } from './batch.ts'
import { computeChameleonVectors } from './chameleon.ts'
import { computeSealedSecretVectors } from './sealed-secret.ts'
import { computeFrostChameleonVectors } from './frost-chameleon.ts'
import { computeSupervisionVectors } from './supervision.ts'
import { computeBlockVectors } from './block.ts'

const dir = new URL('.', import.meta.url)
writeFileSync(new URL('abe.json', dir), JSON.stringify(computeAbeVectors(), null, 2) + '\n')
writeFileSync(new URL('chameleon.json', dir), JSON.stringify(computeChameleonVectors(), null, 2) + '\n')
writeFileSync(new URL('sealed-secret.json', dir), JSON.stringify(computeSealedSecretVectors(), null, 2) + '\n')
writeFileSync(new URL('frost-chameleon.json', dir), JSON.stringify(computeFrostChameleonVectors(), null, 2) + '\n')
writeFileSync(new URL('supervision.json', dir), JSON.stringify(computeSupervisionVectors(), null, 2) + '\n')
// Batch bodies: the current version is rewritten; older versions' vectors are kept as they are.
const batchFile = new URL('batch.json', dir)
const batch = JSON.parse(readFileSync(batchFile, 'utf8')) as Record<string, unknown>
writeFileSync(batchFile, JSON.stringify({ ...batch, v2: computeBatchVectors() }, null, 2) + '\n')
// Block headers: the current version (v2) is rewritten; v1 (before the redaction log was committed) is history.
const blockFile = new URL('block.json', dir)
const block = JSON.parse(readFileSync(blockFile, 'utf8')) as Record<string, unknown>
writeFileSync(blockFile, JSON.stringify({ ...block, v2: computeBlockVectors('v2') }, null, 2) + '\n')
console.log('wrote test/vectors/abe.json, chameleon.json, frost-chameleon.json, supervision.json, sealed-secret.json, batch.json v2 and block.json v2 (block v1, batch v1, chameleon-v1.json and rfc9591/ are history: never rewritten)')
