/**
 * How test/vectors/chain-v1/ was made: a chain in the record format v1 (opening r ‖ s), written by
 * the code of commit 4750e8b (before record format v2) with `node test/vectors/chain-v1/make.ts`,
 * kept byte for byte so `chain verify` is tested on a chain written before the change
 * (test/cloud/chain-formats.test.ts). Running it on today's code would write v2 records: the
 * fixture is not regenerated, it is history.
 *
 * 3 gateways × 4 streams × 4 seqs sealed in 4 blocks, 2 pending records, and record 7 redacted
 * (receive time corrected by an hour) with a v1 opening from Adapt. Keys: chainTestKeys('chain v1 fixture').
 */
import { rmSync, writeFileSync } from 'node:fs'
import { openCloudDb } from '../../../cloud/store/db.ts'
import { ChainStore } from '../../../cloud/chain/store.ts'
import { chameleonAdapt, encodeChameleonPublicKey } from '../../../shared/crypto/chameleon.ts'
import { decodeRecordContent, encodeRecordContent } from '../../../cloud/chain/record.ts'
import { chainTestKeys, testFleet } from '../../cloud/chain-helpers.ts'
const dir = new URL('.', import.meta.url).pathname
const path = `${dir}/cloud.db`
rmSync(path, { force: true })
const keys = chainTestKeys('chain v1 fixture')
const db = openCloudDb(path)
const store = new ChainStore(db, keys.store, { workers: 0 })
const fleet = testFleet(3, 4, 'chain-v1')
for (let seq = 0; seq < 4; seq++) {
  for (const s of fleet) store.appendBatch(s.batch(seq))
  store.sealBlock(1_760_000_000_000 + seq * 5000)
}
for (const s of fleet.slice(0, 2)) store.appendBatch(s.batch(4))
// One approved redaction (a v1 opening made by Adapt): record 7's receive time corrected by an hour.
const row = db.prepare('SELECT content, hash FROM records WHERE id = 7').get() as { content: Buffer; hash: Buffer }
const rec = decodeRecordContent(new Uint8Array(row.content))
const edited = encodeRecordContent({ ...rec, receivedAt: rec.receivedAt - 3_600_000 })
const opening = chameleonAdapt(keys.chameleon.secretKey, edited, new Uint8Array(row.hash))
db.prepare('UPDATE records SET content = ?, opening = ?, received_at = ? WHERE id = 7').run(edited, opening, rec.receivedAt - 3_600_000)
await store.close()
db.pragma('wal_checkpoint(TRUNCATE)')
db.pragma('journal_mode = DELETE')
db.close()
writeFileSync(`${dir}/chameleon-public.key`, encodeChameleonPublicKey(keys.chameleon.publicKey))
writeFileSync(`${dir}/cloud-signing.pub`, keys.signing.publicKey)
console.log('ok')
