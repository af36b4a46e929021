/**
 * Record formats and batch verification: a chain written in record format v1 (opening r ‖ s) by
 * the code before format 2 (test/vectors/chain-v1/, kept byte for byte) still verifies, through
 * verifyChain and `careledger chain verify`; new v2 records appended to it and an old record
 * redacted into v2 verify beside the old ones; and checkRecordRows, which checks a chunk's
 * format-2 openings as one batch, names every bad record among thousands — bad openings and bad
 * gateway manifest signatures, each with its kind (properties).
 */
import { spawnSync } from 'node:child_process'
import { copyFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import Database from 'better-sqlite3'
import { bytesToHex } from '@noble/hashes/utils.js'
import { chameleonAdapt, decodeChameleonPublicKey } from '../../shared/crypto/chameleon.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { manifestCommitment } from '../../shared/protocol/manifest.ts'
import { openCloudDb } from '../../cloud/store/db.ts'
import { ChainStore } from '../../cloud/chain/store.ts'
import { checkRecordRows, commitRecord, decodeRecordContent, encodeRecordContent, type RecordRow } from '../../cloud/chain/record.ts'
import { verifyChain } from '../../cloud/chain/verify.ts'
import { chainTestKeys, tempDir, testFleet } from './chain-helpers.ts'

const ROOT = join(import.meta.dirname, '..', '..')
const FIXTURE = join(ROOT, 'test', 'vectors', 'chain-v1')
const tmp = tempDir('chain-formats')
afterAll(() => tmp.cleanup())
const v1Keys = chainTestKeys('chain v1 fixture')
const chameleonPk = decodeChameleonPublicKey(new Uint8Array(readFileSync(join(FIXTURE, 'chameleon-public.key'))))

let copies = 0
function fixtureCopy(): string {
  const path = join(tmp.dir, `v1-${++copies}.db`)
  copyFileSync(join(FIXTURE, 'cloud.db'), path)
  return path
}
const verify = (path: string, workers = 2, chunkSize?: number) =>
  verifyChain(path, { chameleonPublicKey: chameleonPk, signingPublicKey: v1Keys.signing.publicKey, workers, ...(chunkSize ? { chunkSize } : {}) })

describe('a chain written in record format v1', () => {
  it('the fixture is what the old code wrote: v1 contents, r ‖ s openings, under the fixture keys', () => {
    expect(bytesToHex(chameleonPk)).toBe(bytesToHex(v1Keys.chameleon.publicKey))
    const sql = new Database(join(FIXTURE, 'cloud.db'), { readonly: true })
    const contents = sql.prepare('SELECT content FROM records ORDER BY id').pluck().all() as Buffer[]
    sql.close()
    expect(contents).toHaveLength(50)
    expect(new Set(contents.map((c) => decodeRecordContent(new Uint8Array(c)).v))).toEqual(new Set([1]))
  })

  it('verifies, on worker threads and on the calling thread, at any batch size', async () => {
    const path = fixtureCopy()
    for (const [workers, chunk] of [[2, undefined], [0, undefined], [1, 7]] as const) {
      const r = await verify(path, workers, chunk)
      expect(r.failures, `workers ${workers}`).toEqual([])
      expect(r).toMatchObject({ ok: true, records: 50, recordsChecked: 50, blocks: 4 })
    }
  })

  it('`careledger chain verify` reads it: exit 0, and exit 1 naming an old record whose opening was damaged', () => {
    const cli = (db: string) =>
      spawnSync(process.execPath, [join(ROOT, 'bin', 'careledger.ts'), 'chain', 'verify', '--db', db, '--chameleon-key', join(FIXTURE, 'chameleon-public.key'), '--signing-key', join(FIXTURE, 'cloud-signing.pub')], {
        encoding: 'utf8',
        cwd: ROOT,
      })
    const good = cli(fixtureCopy())
    expect(good.status, good.stderr).toBe(0)
    expect(good.stdout).toContain('INTACT')
    const path = fixtureCopy()
    const sql = new Database(path)
    // One bit of s: the opening of record 12 (height 0) no longer opens its hash.
    const opening = new Uint8Array(sql.prepare('SELECT opening FROM records WHERE id = 12').pluck().get() as Buffer)
    opening[40]! ^= 1
    sql.prepare('UPDATE records SET opening = ? WHERE id = 12').run(opening)
    sql.close()
    const bad = cli(path)
    expect(bad.status, bad.stderr).toBe(1)
    expect(bad.stdout).toMatch(/RECORD_OPENING\s+height 0\s+record 12\b/)
  })

  it('grows in format v2: new records appended and sealed, an old record redacted into v2; old and new verify together', async () => {
    const path = fixtureCopy()
    const db = openCloudDb(path)
    const store = new ChainStore(db, v1Keys.store, { workers: 0 })
    const fleet = testFleet(3, 4, 'chain-v1') // the fixture's streams: continue them
    for (const s of fleet) for (let seq = 0; seq <= (fleet.indexOf(s) < 2 ? 4 : 3); seq++) s.manifest(seq) // rebuild the link commitments
    for (const s of fleet.slice(2)) expect(store.appendBatch(s.batch(4)).status).toBe('created')
    for (const s of fleet) expect(store.appendBatch(s.batch(5)).status).toBe('created')
    store.sealBlock(1_760_000_100_000)
    // Block header v2 (with the redaction log state, empty here) after the fixture's four v1 blocks.
    expect(store.listBlocks({ limit: 10 }).map((b) => [b.version, b.redactions?.count ?? null])).toEqual([[1, null], [1, null], [1, null], [1, null], [2, 0]])
    // Redact old record 20 (v1) with the trapdoor: new content in v2, a format-2 opening of the same hash.
    const row = db.prepare('SELECT content, hash FROM records WHERE id = 20').get() as { content: Buffer; hash: Buffer }
    const rec = decodeRecordContent(new Uint8Array(row.content))
    expect(rec.v).toBe(1)
    const corrected = encodeRecordContent({ ...rec, receivedAt: rec.receivedAt - 60_000 })
    db.prepare('UPDATE records SET content = ?, opening = ?, received_at = ? WHERE id = 20').run(
      corrected,
      chameleonAdapt(v1Keys.chameleon.secretKey, corrected, new Uint8Array(row.hash)),
      rec.receivedAt - 60_000,
    )
    const versions = (db.prepare('SELECT content FROM records ORDER BY id').pluck().all() as Buffer[]).map((c) => decodeRecordContent(new Uint8Array(c)).v)
    expect(versions.filter((v) => v === 1)).toHaveLength(49)
    expect(versions.filter((v) => v === 2)).toHaveLength(23) // 22 appended + the redacted one
    await store.close()
    db.close()
    const r = await verify(path)
    expect(r.failures).toEqual([])
    expect(r).toMatchObject({ ok: true, records: 72, blocks: 5 })
  })
})

describe('checkRecordRows: the openings of a chunk as one batch', () => {
  const keys = chainTestKeys('batch property')
  const N = 2000
  const fleet = testFleet(4, 25, 'batch property')
  const batches = Array.from({ length: N }, (_, i) => fleet[i % fleet.length]!.batch(Math.floor(i / fleet.length)))
  /** Row i, its content committed with `signature` (default: the gateway's own) under a fresh opening. */
  const rowOf = (i: number, signature: Uint8Array = batches[i]!.signature): RecordRow => {
    const b = batches[i]!
    const m = b.manifest
    const { content, hash, opening } = commitRecord(keys.chameleon.publicKey, {
      id: i + 1,
      stream: m.stream,
      seq: m.seq,
      gateway: m.gateway,
      gatewayKey: b.gatewayKey,
      manifest: m,
      signature,
      receivedAt: b.receivedAt,
    })
    return { id: i + 1, stream: m.stream, seq: m.seq, gatewayId: m.gateway, content, hash, opening, manifestCommitment: manifestCommitment(m), prevCommitment: m.prev, cid: m.cid, receivedAt: b.receivedAt, blockHeight: Math.floor(i / 500) }
  }
  /** N valid v2 rows over 100 streams, made once. */
  const rows: RecordRow[] = Array.from({ length: N }, (_, i) => rowOf(i))

  /** Damage that touches only what the chameleon check reads (so RECORD_OPENING is the one failure). */
  function damage(row: RecordRow, how: number, other: RecordRow): RecordRow {
    const flip = (b: Uint8Array, i: number): Uint8Array => {
      const c = b.slice()
      c[i]! ^= 1
      return c
    }
    switch (how % 4) {
      case 0:
        return { ...row, opening: flip(row.opening, 32) } // s
      case 1:
        return { ...row, opening: Uint8Array.from([...other.opening.subarray(0, 32), ...row.opening.subarray(32)]) } // another record's P
      case 2:
        return { ...row, hash: flip(row.hash, 0) } // C
      default:
        return { ...row, opening: flip(row.opening, 1) } // P: another point, or no encoding at all
    }
  }

  it(`names every record whose opening fails among ${N.toLocaleString('en-US')}, one or several (property)`, () => {
    expect(checkRecordRows(rows, keys.chameleon.publicKey)).toMatchObject({ failures: [] })
    fc.assert(
      fc.property(fc.uniqueArray(fc.nat(N - 1), { minLength: 1, maxLength: 8 }), fc.nat(), fc.integer(), (bad, how, seed) => {
        const batch = rows.map((r, i) => (bad.includes(i) ? damage(r, how + i, rows[(i + 7) % N]!) : r))
        const { failures, passed } = checkRecordRows(batch, keys.chameleon.publicKey, deterministicRng(`weights ${seed}`))
        const named = failures.map((f) => f.recordId).sort((a, b) => a - b)
        expect(named).toEqual(bad.map((i) => i + 1).sort((a, b) => a - b))
        expect(new Set(failures.map((f) => f.kind))).toEqual(new Set(['RECORD_OPENING']))
        expect(passed).toHaveLength(N - bad.length)
      }),
      { numRuns: Number(process.env.CARELEDGER_BATCH_PROPERTY_RUNS ?? 6) },
    )
  })

  /**
   * A bad gateway signature inside content the regulator's hash commits to (the opening is
   * valid): R or S altered, S pushed to a non-canonical S + ℓ, another manifest's signature, the
   * all-zero signature.
   */
  function badSignature(i: number, how: number): Uint8Array {
    const sig = batches[i]!.signature.slice()
    switch (how % 5) {
      case 0:
        sig[3]! ^= 0x10 // R
        return sig
      case 1:
        sig[40]! ^= 0x01 // S
        return sig
      case 2: {
        // S + ℓ: the same S mod ℓ, refused by strict verification (RFC 8032 §5.1.7: S < ℓ)
        const ℓ = 2n ** 252n + 27742317777372353535851937790883648493n
        let S = 0n
        for (let k = 63; k >= 32; k--) S = (S << 8n) | BigInt(sig[k]!)
        S += ℓ
        for (let k = 32; k < 64; k++, S >>= 8n) sig[k] = Number(S & 0xffn)
        return sig
      }
      case 3:
        return batches[(i + 1) % N]!.signature.slice() // a valid signature, on another manifest
      default:
        return new Uint8Array(64)
    }
  }

  it(`names every bad gateway signature and every bad opening among ${N.toLocaleString('en-US')}, each with its kind (property)`, () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.nat(N - 1), { minLength: 1, maxLength: 8 }),
        fc.uniqueArray(fc.nat(N - 1), { minLength: 0, maxLength: 4 }),
        fc.nat(),
        fc.integer(),
        (badSigs, badOpenings, how, seed) => {
          const openings = badOpenings.filter((i) => !badSigs.includes(i))
          const batch = rows.map((r, i) =>
            badSigs.includes(i) ? rowOf(i, badSignature(i, how + i)) : openings.includes(i) ? damage(r, how + i, rows[(i + 7) % N]!) : r,
          )
          const { failures, passed } = checkRecordRows(batch, keys.chameleon.publicKey, deterministicRng(`weights ${seed}`))
          const named = (kind: string): number[] => failures.filter((f) => f.kind === kind).map((f) => f.recordId).sort((a, b) => a - b)
          expect(named('MANIFEST_SIGNATURE')).toEqual(badSigs.map((i) => i + 1).sort((a, b) => a - b))
          expect(named('RECORD_OPENING')).toEqual(openings.map((i) => i + 1).sort((a, b) => a - b))
          expect(failures).toHaveLength(badSigs.length + openings.length)
          expect(passed).toHaveLength(N - badSigs.length - openings.length)
        },
      ),
      { numRuns: Number(process.env.CARELEDGER_BATCH_PROPERTY_RUNS ?? 6) },
    )
  })
})
