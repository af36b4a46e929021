/**
 * Crash test with the back office running: devices publish at full speed (a window of
 * un-acknowledged QoS 1 messages each) while the gateway — ingest AND its sealer, 1 s seal
 * interval — is SIGKILLed at random moments and restarted, several times. A final clean run lets
 * the sealer finish, then the gateway stops (SIGTERM). Afterwards:
 *
 *   - every acknowledged reading is stored exactly once (as in crash.test.ts), and
 *   - sealed exactly once: every reading row has a batch_id naming an existing batch; each batch's
 *     manifest count equals its readings; each stream's batches are seq 0..n with correct prev links
 *     and the stream row points past the last one; each batch is in the outbox; each envelope block
 *     exists and decrypts to exactly its readings (all batches, or an even sample when there are many);
 *     and no envelope block is left that no batch names (orphans of interrupted seals are deleted at start).
 */
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { bytesToHex } from '@noble/hashes/utils.js'
import { afterAll, expect, it } from 'vitest'
import { Publisher } from '../../bench/lib/ingest-publisher.ts'
import { currentKey } from '../helpers/authority.ts'
import { openEnvelope } from '../../shared/crypto/envelope.ts'
import { decodeBatchBody, readingsTree } from '../../shared/protocol/batch.ts'
import { manifestAad, manifestCommitment, verifyManifest } from '../../shared/protocol/manifest.ts'
import { patientPseudonym } from '../../shared/protocol/pseudonym.ts'
import { rawCid } from '../../gateway/seal/seal.ts'
import { enrolInStore, GatewayProcess, tempDataDir } from '../helpers/gateway-process.ts'
import { batchesOf, gatewayIdentity, sleep, testAuthorityFile, waitFor, withBlocks } from '../helpers/backoffice.ts'
import { readTestSecret } from '../helpers/test-keys.ts'

const DEVICES = 4
/** Un-acknowledged messages in flight per device: full speed, but a backlog the sealer (sharing 2 cores with ingest) clears in seconds. */
const WINDOW = 8
const KILLS = 4
/** Most readings decrypted and re-validated (~30 µs each, plus ~40 ms of pairings per envelope); beyond this an even sample of batches. */
const MAX_DECRYPTED_READINGS = 60_000

const data = tempDataDir('crash-seal')
const authorityDir = tempDataDir('crash-seal-authority')
let gw: GatewayProcess | undefined
const publishers: Publisher[] = []

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.end().catch(() => {})))
  await gw?.kill('SIGKILL')
  data.cleanup()
  authorityDir.cleanup()
})

it(`seals every acknowledged reading exactly once across ${KILLS} SIGKILLs of a sealing gateway under load`, async () => {
  const t0 = Date.now()
  const { msk, mpkFile } = testAuthorityFile(authorityDir.dir)
  const env = { CARELEDGER_ABE_PUBLIC_KEY: mpkFile, CARELEDGER_DEFAULT_POLICY: 'role:doctor OR patient:{patient}' }
  const creds = enrolInStore(data.dir, DEVICES, 'crash')

  gw = await GatewayProcess.start({ dataDir: data.dir, args: ['--mqtts-port', '0', '--seal-interval-s', '1'], env })
  const g = gw
  for (const c of creds) publishers.push(new Publisher({ url: g.mqttUrl, ...c, window: WINDOW, reconnectPeriod: 50, trackAcked: true }))
  await Promise.all(publishers.map((p) => p.connect()))
  const running = publishers.map((p) => p.run())

  const acked = () => publishers.reduce((n, p) => n + p.ackedCount, 0)
  const sealedBatches = (): number => {
    const db = new Database(join(data.dir, 'gateway.db'), { readonly: true })
    try {
      return db.prepare('SELECT count(*) FROM batches').pluck().get() as number
    } finally {
      db.close()
    }
  }
  let rnd = 0x5eed1234
  const random = () => ((rnd = (rnd * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff)
  const batchesAtKill: number[] = []
  for (let k = 0; k < KILLS; k++) {
    // Ingest flowing again and at least one seal pass done since the restart, then a random moment
    // (a pass takes a few hundred ms of every second here, so many kills land inside one).
    const since = acked()
    const sealedBefore = k === 0 ? 0 : batchesAtKill[k - 1]!
    const deadline = Date.now() + 15_000
    while ((acked() < since + 1000 || sealedBatches() <= sealedBefore) && Date.now() < deadline) await sleep(25)
    await sleep(random() * 1000)
    batchesAtKill.push(sealedBatches())
    expect((await g.kill('SIGKILL')).signal).toBe('SIGKILL')
    await sleep(random() * 300)
    await g.restart()
  }
  await sleep(500)
  await Promise.all(publishers.map((p) => p.stop(20_000)))
  await Promise.all(running)
  const ackedTotal = acked()
  // The sealer really ran between the kills.
  for (let k = 1; k < batchesAtKill.length; k++) expect(batchesAtKill[k]!).toBeGreaterThan(batchesAtKill[k - 1]!)

  // Final clean run: the sealer finishes what is left, then a graceful stop.
  {
    const db = new Database(join(data.dir, 'gateway.db'), { readonly: true })
    try {
      await waitFor('every stored reading sealed', () => (db.prepare('SELECT count(*) FROM readings WHERE batch_id IS NULL').pluck().get() as number) === 0, 30_000)
    } catch (e) {
      const problems = g.logs.filter((l) => l.level >= 40).slice(-10)
      throw new Error(`${(e as Error).message}; gateway warnings and errors: ${JSON.stringify(problems, null, 1)}`, { cause: e })
    } finally {
      db.close()
    }
  }
  const stopped = await g.stop()
  expect(stopped.code).toBe(0)
  const tRun = Date.now()

  const identity = await gatewayIdentity(data.dir, env)
  const pseudonymKey = readTestSecret(join(data.dir, 'keys', 'pseudonym.key')) // sealed under the tests' passphrase
  const db = new Database(join(data.dir, 'gateway.db'), { readonly: true })
  try {
    // Stored exactly once.
    const total = db.prepare('SELECT count(*) FROM readings').pluck().get() as number
    expect(db.prepare('SELECT count(*) FROM (SELECT DISTINCT device_id, seq FROM readings)').pluck().get()).toBe(total)
    const missing: string[] = []
    for (const p of publishers) {
      const stored = new Set(db.prepare('SELECT seq FROM readings WHERE device_id = ?').pluck().all(p.o.deviceId) as number[])
      for (const seq of p.acked!) if (!stored.has(seq)) missing.push(`${p.o.deviceId}#${seq}`)
    }
    expect(missing, `acknowledged but not stored: ${missing.slice(0, 10).join(', ')}`).toEqual([])

    // Sealed exactly once: no unsealed reading, no reading pointing at a batch that does not exist.
    expect(db.prepare('SELECT count(*) FROM readings WHERE batch_id IS NULL').pluck().get()).toBe(0)
    expect(db.prepare('SELECT count(*) FROM readings r LEFT JOIN batches b USING (batch_id) WHERE b.batch_id IS NULL').pluck().get()).toBe(0)
    const perBatch = new Map(
      (db.prepare('SELECT batch_id, count(*) AS n, min(id) AS lo, max(id) AS hi, min(device_id) AS dev, max(device_id) AS dev2, min(patient_id) AS pat, max(patient_id) AS pat2 FROM readings GROUP BY batch_id').all() as Array<{
        batch_id: number
        n: number
        lo: number
        hi: number
        dev: string
        dev2: string
        pat: string
        pat2: string
      }>).map((r) => [r.batch_id, r]),
    )
    const batches = batchesOf(db)
    expect(batches.length).toBeGreaterThan(KILLS)
    expect(batches.reduce((n, b) => n + b.count, 0)).toBe(total)
    for (const b of batches) {
      const r = perBatch.get(b.batch_id)
      expect(r, `batch ${b.batch_id} has no readings`).toBeDefined()
      expect([b.m.count, b.count]).toEqual([r!.n, r!.n])
      expect([b.first_reading, b.last_reading]).toEqual([r!.lo, r!.hi])
      expect(r!.dev).toBe(r!.dev2) // one stream: one device …
      expect(r!.pat).toBe(r!.pat2) // … and one patient
      expect(b.m.device).toBe(r!.dev)
      expect(b.m.patient).toBe(patientPseudonym(pseudonymKey, r!.pat))
      expect(b.commitment).toBe(manifestCommitment(b.m))
      expect(verifyManifest(identity.publicKey, b.m, b.signature)).toBe(true)
    }
    // Each stream: seq 0..n, each prev the commitment of the one before, the stream row past the last.
    const streams = db.prepare('SELECT stream_id, device_id, next_seq, last_commitment FROM streams').all() as Array<{ stream_id: string; device_id: string; next_seq: number; last_commitment: string | null }>
    expect(streams).toHaveLength(DEVICES)
    for (const s of streams) {
      const chain = batches.filter((b) => b.stream_id === s.stream_id).sort((a, b) => a.seq - b.seq)
      expect(chain.map((b) => b.seq)).toEqual(chain.map((_, i) => i))
      chain.forEach((b, i) => expect(b.m.prev).toBe(i === 0 ? null : chain[i - 1]!.commitment))
      expect(s.next_seq).toBe(chain.length)
      expect(s.last_commitment).toBe(chain.at(-1)!.commitment)
      // Batch ids (the outbox's shipping order) follow seq order.
      chain.forEach((b, i) => i > 0 && expect(b.batch_id).toBeGreaterThan(chain[i - 1]!.batch_id))
    }
    // Every batch waits in the outbox (no cloud here), nothing else does.
    expect(db.prepare('SELECT count(*) FROM outbox').pluck().get()).toBe(batches.length)
    expect(db.prepare("SELECT count(*) FROM outbox o JOIN batches b USING (batch_id) WHERE o.state = 'pending'").pluck().get()).toBe(batches.length)

    // Envelopes: every block exists with its CID; all (or an even sample) decrypt to exactly their readings.
    const doctor = currentKey(msk, ['role:doctor'])
    const step = Math.max(1, Math.ceil(total / MAX_DECRYPTED_READINGS))
    let decrypted = 0
    const readingsOf = db.prepare('SELECT seq, ts, received_at AS rx, type, unit, value FROM readings WHERE batch_id = ? ORDER BY id')
    await withBlocks(data.dir, async (_node, get) => {
      for (const [i, b] of batches.entries()) {
        const envelope = await get(b.cid)
        expect((await rawCid(envelope)).toString()).toBe(b.m.cid)
        expect(b.m.authority).toBe(bytesToHex(msk.mpk.id))
        if (i % step !== 0 && i !== batches.length - 1) continue
        const body = decodeBatchBody(openEnvelope(doctor, envelope, manifestAad(b.m)))
        expect(body.seq).toBe(b.seq)
        expect(bytesToHex(readingsTree(body.readings).root)).toBe(b.m.merkleRoot)
        expect(body.readings.map((r) => ({ seq: r.seq, ts: r.ts, rx: r.rx, type: r.type, unit: r.unit, value: r.value }))).toEqual(readingsOf.all(b.batch_id))
        decrypted++
      }
    })
    // Exactly one block per batch and none that no batch names: the blocks are committed with their
    // batches (gateway schema v3), so a kill mid-pass leaves neither a block nor a batch behind.
    expect(db.prepare('SELECT count(*) FROM envelope_blocks').pluck().get()).toBe(batches.length)
    expect(db.prepare('SELECT count(*) FROM envelope_blocks WHERE cid NOT IN (SELECT cid FROM batches)').pluck().get()).toBe(0)
    const blockFiles = existsSync(join(data.dir, 'blocks')) ? readdirSync(join(data.dir, 'blocks'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length : 0
    expect(blockFiles).toBe(0)
    const orphansDeleted = g.logs.filter((l) => l.event === 'orphan_blocks_deleted').reduce((n, l) => n + (l.blocks as number), 0)
    console.log(
      `crash-seal test: ${KILLS} SIGKILLs, ${ackedTotal} readings acknowledged, ${total} stored, ${batches.length} batches in ${streams.length} streams ` +
        `(${orphansDeleted} orphan envelope blocks of interrupted seals deleted at restarts) ` +
        `(${batchesAtKill.join(', ')} at the kills), ${decrypted} envelopes decrypted; run ${((tRun - t0) / 1000).toFixed(1)} s, checks ${((Date.now() - tRun) / 1000).toFixed(1)} s`,
    )
  } finally {
    db.close()
  }
}, 90_000)
