/** Rewrites the committed known-answer vectors. Run only on a deliberate format change: npm run kat:regenerate */
import { writeFileSync } from 'node:fs'
import { computeAbeVectors } from './abe.ts'
import { computeChameleonVectors } from './chameleon.ts'

const dir = new URL('.', import.meta.url)
writeFileSync(new URL('abe.json', dir), JSON.stringify(computeAbeVectors(), null, 2) + '\n')
writeFileSync(new URL('chameleon.json', dir), JSON.stringify(computeChameleonVectors(), null, 2) + '\n')
console.log('wrote test/vectors/abe.json and test/vectors/chameleon.json (chameleon-v1.json, the old format, is history: never rewritten)')
