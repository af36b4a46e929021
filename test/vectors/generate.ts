/** Rewrites the committed known-answer vectors. Run only on a deliberate format change: npm run kat:regenerate */
import { writeFileSync } from 'node:fs'
import { computeAbeVectors } from './abe.ts'
import { computeChameleonVectors } from './chameleon.ts'
import { computeSealedSecretVectors } from './sealed-secret.ts'

const dir = new URL('.', import.meta.url)
writeFileSync(new URL('abe.json', dir), JSON.stringify(computeAbeVectors(), null, 2) + '\n')
writeFileSync(new URL('chameleon.json', dir), JSON.stringify(computeChameleonVectors(), null, 2) + '\n')
writeFileSync(new URL('sealed-secret.json', dir), JSON.stringify(computeSealedSecretVectors(), null, 2) + '\n')
console.log('wrote test/vectors/abe.json, chameleon.json and sealed-secret.json')
