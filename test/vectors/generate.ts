/** Rewrites the committed known-answer vectors. Run only on a deliberate format change: npm run kat:regenerate */
import { writeFileSync } from 'node:fs'
import { computeAbeVectors } from './abe.ts'
import { computeChameleonVectors } from './chameleon.ts'
import { computeFrostChameleonVectors } from './frost-chameleon.ts'
import { computeSupervisionVectors } from './supervision.ts'

const dir = new URL('.', import.meta.url)
writeFileSync(new URL('abe.json', dir), JSON.stringify(computeAbeVectors(), null, 2) + '\n')
writeFileSync(new URL('chameleon.json', dir), JSON.stringify(computeChameleonVectors(), null, 2) + '\n')
writeFileSync(new URL('frost-chameleon.json', dir), JSON.stringify(computeFrostChameleonVectors(), null, 2) + '\n')
writeFileSync(new URL('supervision.json', dir), JSON.stringify(computeSupervisionVectors(), null, 2) + '\n')
console.log('wrote test/vectors/abe.json, chameleon.json, frost-chameleon.json and supervision.json (chameleon-v1.json, the old record format, and rfc9591/ are history: never rewritten)')
