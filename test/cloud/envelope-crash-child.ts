/**
 * Child of envelope-store.test.ts: stores random envelope blocks in `dir` through EnvelopeStore,
 * many at once, and prints "OK <cid>" for each only after its put resolved (acknowledged, as the
 * service's 201 is) — until it is killed.
 */
import { randomBytes } from 'node:crypto'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { FileEnvelopeStore } from '../../cloud/service/blockstore.ts'

const store = await FileEnvelopeStore.open(process.argv[2]!)
process.stdout.write('READY\n')
const lane = async (): Promise<never> => {
  for (;;) {
    const bytes = randomBytes(1024 + (randomBytes(1)[0]! << 4))
    const cid = CID.createV1(0x55, await sha256.digest(bytes))
    await store.put(cid, bytes)
    process.stdout.write(`OK ${cid.toString()}\n`)
  }
}
await Promise.all(Array.from({ length: 24 }, lane))
