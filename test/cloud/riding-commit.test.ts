/**
 * cloud/store/riding-commit.ts: a riding write commits with synchronous=NORMAL and leaves the
 * connection at FULL (every other commit keeps its own fsync), also when the write throws; inside
 * an enclosing transaction it changes nothing (that transaction's commit decides).
 */
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { openCloudDb } from '../../cloud/store/db.ts'
import { ridingCommit } from '../../cloud/store/riding-commit.ts'
import { tempDir } from './chain-helpers.ts'

const tmp = tempDir('riding-commit')
afterAll(() => tmp.cleanup())
const FULL = 2
const NORMAL = 1

it('commits without its own fsync and restores synchronous=FULL', () => {
  const db = openCloudDb(join(tmp.dir, 'cloud.db'))
  try {
    db.exec('CREATE TABLE t (x INTEGER)')
    const level = () => db.pragma('synchronous', { simple: true })
    expect(level()).toBe(FULL)
    expect(ridingCommit(db, () => (db.prepare('INSERT INTO t VALUES (1)').run(), level()))).toBe(NORMAL)
    expect(level()).toBe(FULL)
    expect(() => ridingCommit(db, () => db.prepare('INSERT INTO nowhere VALUES (1)').run())).toThrow()
    expect(level()).toBe(FULL)
    db.transaction(() => ridingCommit(db, () => expect(level()).toBe(FULL)))()
    expect(db.prepare('SELECT count(*) FROM t').pluck().get()).toBe(1)
  } finally {
    db.close()
  }
})
