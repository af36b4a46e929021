/**
 * `careledger chain verify` as a real process names the same bad records with the native
 * ristretto255 addon (shared/crypto/ristretto-native.ts, when `npm run build:native` built it) and
 * without it (CARELEDGER_NO_RISTRETTO_NATIVE=1): a real chain in SQLite whose stored openings were
 * damaged in every way that reaches the batch check (wrong s, another record's P, the identity as
 * P) and in the ways refused before it (P + p, P ≥ p), in worker threads and in the calling thread.
 */
import { spawnSync } from 'node:child_process'
import { copyFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import Database from 'better-sqlite3'
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { encodeChameleonPublicKey } from '../../shared/crypto/chameleon.ts'
import { ristrettoBatchLibrary } from '../../shared/crypto/ristretto-native.ts'
import { openCloudDb } from '../../cloud/store/db.ts'
import { ChainStore } from '../../cloud/chain/store.ts'
import { chainTestKeys, tempDir, testFleet } from './chain-helpers.ts'

const tmp = tempDir('chain-verify-native')
afterAll(() => tmp.cleanup())
const keys = chainTestKeys('native verify tests')
const pristine = join(tmp.dir, 'pristine.db')
const chameleonKeyFile = join(tmp.dir, 'chameleon-public.key')
const ROOT = join(import.meta.dirname, '..', '..')
const fleet = testFleet(3, 4, 'native')
const SEQS = 8
const p = 2n ** 255n - 19n

beforeAll(async () => {
  const db = openCloudDb(pristine)
  const store = new ChainStore(db, keys.store, { workers: 0 })
  for (let seq = 0; seq < SEQS; seq++) {
    for (const s of fleet) store.appendBatch(s.batch(seq))
    store.sealBlock(1_760_000_000_000 + seq * 5000)
  }
  await store.close()
  db.pragma('wal_checkpoint(TRUNCATE)')
  db.close()
  writeFileSync(chameleonKeyFile, encodeChameleonPublicKey(keys.chameleon.publicKey))
})

/** Record id → how its opening (encode(P) ‖ s) is damaged. */
const DAMAGE: Record<number, (opening: Uint8Array, other: Uint8Array) => void> = {
  3: (o) => void (o[40]! ^= 0x01), // wrong s
  17: (o, other) => o.set(other.subarray(0, 32), 0), // another record's P
  18: (o) => o.fill(0, 0, 32), // the identity as P
  40: (o) => void (o[33]! ^= 0x80), // wrong s again, in another block
  41: (o) => o.set(numberToBytesLE((bytesToNumberLE(o.subarray(0, 32)) + p) % 2n ** 256n, 32), 0), // P + p: not canonical (or ≥ 2^256 wrapped: invalid)
  77: (o) => o.set(numberToBytesLE(p + 1n, 32), 0), // an encoding ≥ p
}

const cli = (db: string, env: Record<string, string>, extra: string[] = []) =>
  spawnSync(process.execPath, [join(ROOT, 'bin', 'careledger.ts'), 'chain', 'verify', '--db', db, '--chameleon-key', chameleonKeyFile, '--signing-key', bytesToHex(keys.signing.publicKey), '--json', ...extra], {
    encoding: 'utf8',
    cwd: ROOT,
    env: { ...process.env, ...env },
  })

describe(`chain verify with and without the native addon (${ristrettoBatchLibrary()} here)`, () => {
  it('names the same damaged records, exactly those, in workers and in the calling thread', () => {
    const path = join(tmp.dir, 'damaged.db')
    copyFileSync(pristine, path)
    const sql = new Database(path)
    const read = sql.prepare('SELECT opening FROM records WHERE id = ?').pluck()
    const other = read.get(60) as Uint8Array
    for (const [id, damage] of Object.entries(DAMAGE)) {
      const o = Uint8Array.from(read.get(Number(id)) as Uint8Array)
      damage(o, other)
      expect(sql.prepare('UPDATE records SET opening = ? WHERE id = ?').run(o, Number(id)).changes).toBe(1)
    }
    sql.close()
    const expected = Object.keys(DAMAGE).map(Number)
    const runs = [
      ['addon', {}, []],
      ['noble', { CARELEDGER_NO_RISTRETTO_NATIVE: '1' }, []],
      ['addon, no workers', {}, ['--workers', '0']],
      ['noble, no workers', { CARELEDGER_NO_RISTRETTO_NATIVE: '1' }, ['--workers', '0']],
    ] as const
    const failures = runs.map(([name, env, extra]) => {
      const r = cli(path, env, [...extra])
      expect(r.status, `${name}: ${r.stderr}`).toBe(1)
      const out = JSON.parse(r.stdout) as { failures: { kind: string; recordId?: number; height?: number }[] }
      expect(out.failures.map((f) => [f.kind, f.recordId]), name).toEqual(expected.map((id) => ['RECORD_OPENING', id]))
      return out.failures
    })
    for (const f of failures.slice(1)) expect(f).toEqual(failures[0])
  })

  it('the untouched chain verifies either way', () => {
    for (const env of [{}, { CARELEDGER_NO_RISTRETTO_NATIVE: '1' }] as Record<string, string>[]) {
      const r = cli(pristine, env)
      expect(r.status, r.stderr).toBe(0)
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, recordsChecked: fleet.length * SEQS })
    }
  })
})
