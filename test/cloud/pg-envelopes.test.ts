/**
 * The envelope blocks of a PostgreSQL deployment (cloud/store/pg/envelopes.ts, migration
 * ops/005-envelope-blocks), on a real PostgreSQL server: a bulk's puts share one INSERT and are
 * committed when they resolve, visible to another process's store at once; a put over a damaged row
 * and a repair replace it; blocks stored as files by earlier versions stay readable, checked and
 * deletable; the same block stored by two processes at once is one row.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { afterAll, describe, expect, it } from 'vitest'
import { blockFilePath, FileEnvelopeStore } from '../../cloud/service/blockstore.ts'
import { PgEnvelopeStore } from '../../cloud/store/pg/envelopes.ts'
import { openMigratedPool } from '../../cloud/store/pg/pool.ts'
import { pgStoredEnvelopes } from '../helpers/envelopes.ts'
import { usePostgres } from '../helpers/postgres.ts'
import { tempDir } from './chain-helpers.ts'

const postgres = usePostgres()
const tmp = tempDir('pg-envelopes')
afterAll(() => tmp.cleanup())

async function block(size = 2048): Promise<{ cid: CID; bytes: Uint8Array }> {
  const bytes = randomBytes(size)
  return { cid: CID.createV1(0x55, await sha256.digest(bytes)), bytes }
}

describe('PgEnvelopeStore', () => {
  it('stores a bulk in one INSERT, shares it between processes, replaces damage, and reads the files of earlier versions', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const url = await postgres.server().createDatabase('pg_envelopes')
    const [poolA, poolB] = await Promise.all([openMigratedPool(url, 4), openMigratedPool(url, 4)])
    const files = await FileEnvelopeStore.open(join(tmp.dir, 'blocks'))
    const old = await block()
    await files.put(old.cid, old.bytes)
    const a = new PgEnvelopeStore(poolA, files)
    const b = new PgEnvelopeStore(poolB, null)
    try {
      const blocks = await Promise.all(Array.from({ length: 40 }, () => block()))
      let queries = 0
      const query = poolA.query.bind(poolA)
      poolA.query = ((...args: Parameters<typeof query>) => (queries++, query(...args))) as typeof poolA.query
      await Promise.all([...blocks, blocks[0]!].map((x) => a.put(x.cid, x.bytes))) // one block twice in the bulk
      poolA.query = query
      expect(queries).toBe(1)
      for (const x of blocks) {
        expect(Buffer.from((await b.get(x.cid))!)).toEqual(Buffer.from(x.bytes)) // the other process sees it
        expect(await b.check(x.cid)).toEqual({ state: 'ok', bytes: 2048 })
      }
      // Two processes storing the same block at once: one row, the same bytes.
      const same = await block()
      await Promise.all([a.put(same.cid, same.bytes), b.put(same.cid, same.bytes)])
      expect(await pgStoredEnvelopes(url).read(same.cid)).toEqual(Buffer.from(same.bytes))

      const stored = pgStoredEnvelopes(url)
      await stored.write(blocks[1]!.cid, Buffer.alloc(16))
      expect(await a.check(blocks[1]!.cid)).toMatchObject({ state: 'corrupt', detail: expect.stringMatching(/its 16 bytes hash to SHA-256/) })
      await b.replace(blocks[1]!.cid, blocks[1]!.bytes)
      expect(await a.check(blocks[1]!.cid)).toEqual({ state: 'ok', bytes: 2048 })

      // A block file of an earlier version: read, checked (and found damaged), deleted with the row.
      expect(Buffer.from((await a.get(old.cid))!)).toEqual(Buffer.from(old.bytes))
      expect(await a.has(old.cid)).toBe(true)
      expect(await b.has(old.cid)).toBe(false) // a store without that directory does not see it
      writeFileSync(blockFilePath(join(tmp.dir, 'blocks'), old.cid), Buffer.alloc(3))
      expect((await a.check(old.cid)).state).toBe('corrupt')
      await a.delete(old.cid)
      await a.delete(blocks[2]!.cid)
      expect(await a.has(old.cid)).toBe(false)
      expect(await stored.has(blocks[2]!.cid)).toBe(false)
      expect(await a.check(blocks[2]!.cid)).toMatchObject({ state: 'missing' })
    } finally {
      await a.close()
      await b.close()
      await Promise.all([poolA.end(), poolB.end()])
    }
  })
})
