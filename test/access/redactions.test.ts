/**
 * Reads and exports over a chain a supervisory authority redacted (issue 9 × issue 10), against a
 * real cloud (HTTP service, chain, blockstore, supervision) behind a real rewriting proxy; the
 * regulator's, requester's and reader's sides are `careledger` processes of their own. One
 * regulator (1 of 1, the trapdoor file) corrects one batch and deletes another; then:
 *
 *   honest        `research export` and `access read` show the corrected readings (status
 *                 amended, with the entry's request, reason, approvers and time) and the deleted
 *                 batch as a tombstone (status deleted, no readings); every stream still proves
 *                 complete; the FHIR output (Observations and Provenance) validates (@medplum/core,
 *                 the R4 definitions and vital-signs profiles); a version-1 answer still verifies
 *                 when nothing was redacted
 *   misbehaving   a hidden redaction log entry (corrected or deleted record), an altered entry, a
 *                 forged one (hashes recomputed), the pre-redaction record served beside its
 *                 entry, the old ciphertext for the new CID, the pre-redaction record (old content,
 *                 old opening: still an opening of the unchanged chameleon hash) served WITHOUT its
 *                 entry, an entry dropped from the plan's log, a plan without the log: each caught,
 *                 named, nothing written
 *
 * All of it twice: on the embedded SQLite cloud and on a cloud with `--database postgres://…`
 * (the evidence, the redaction log and the policies then come from PostgreSQL,
 * cloud/store/pg/retrieval.ts), unless PostgreSQL is unavailable here (test/helpers/postgres.ts).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { validateResource } from '@medplum/core'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, concatBytes, hexToBytes } from '@noble/hashes/utils.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeMasterPublicKey, encodeUserKey } from '../../shared/crypto/abe/codec.ts'
import type { Cloud } from '../../cloud/runtime.ts'
import type { SealedReading } from '../../shared/protocol/batch.ts'
import { redactionLogEntryHash, type RedactionLogEntry } from '../../shared/protocol/redaction-log.ts'
import { VITALS, type VitalType } from '../../shared/schema/vitals.ts'
import { currentKey } from '../helpers/authority.ts'
import { batchBody, sealTestBatch, signedPost, testAuthority, testAuthoritySecret, registerTestGateway, testStream, type TestStream } from '../helpers/cloud-batches.ts'
import { startTestCloud, tempDataDir } from '../helpers/cloud-process.ts'
import { careledger } from '../helpers/gateway-process.ts'
import { expectExportCaught, indexFhirR4 } from '../helpers/export-checks.ts'
import { RewritingProxy, rewriteJson, type Answer } from '../helpers/rewriting-proxy.ts'
import { testWallet } from '../vectors/supervision.ts'
import { blocksCar, carBlocks } from '../../shared/protocol/car.ts'
import { parseSupervisoryPolicy } from '../../shared/protocol/supervisory-policy.ts'
import { signDecision } from '../helpers/supervision.ts'
import { usePostgres } from '../helpers/postgres.ts'

const MIN = 60_000
const T = Date.now() - 4 * 3600_000
const TYPES: VitalType[] = ['heart_rate', 'spo2']
/** Batch k: readings at T + 10k min, sealed a minute later. */
const batchReadings = (k: number): SealedReading[] =>
  [0, 1, 2].flatMap((i) => TYPES.map((type, j) => ({ seq: k * 6 + i * 2 + j, ts: T + k * 10 * MIN + i * 1000, rx: T + k * 10 * MIN + i * 1000 + 30, type, unit: VITALS[type].unit, value: type === 'heart_rate' ? 60 + k : 95 })))
const FROM = T
const TO = T + 75 * MIN
const CORRECTED = 2
const DELETED = 4

const postgres = usePostgres()
const STORES = postgres.skip ? (['sqlite'] as const) : (['sqlite', 'postgres'] as const)

describe.each(STORES)('on %s', (store) => {
  let data: ReturnType<typeof tempDataDir>
  let cloud: Cloud
  let proxy: RewritingProxy
  let dir: string
  let stream: TestStream
  let tokens: { researcher: string; admin: string; regulator: string; doctor: string }
  const records = new Map<number, number>() // seq → record id
  let preRedaction: unknown // the corrected record's proof as served before the redaction
  let preDeletion: unknown // the deleted record's proof as served before the deletion
  let oldCid: string
  let requestIds: { correct: string; delete: string }
  const regulator = testWallet(1)

  beforeAll(async () => {
    data = tempDataDir('access-redactions')
    const database: Record<string, string> = store === 'postgres' ? { database: await postgres.server().createDatabase('access_redactions') } : {}
    // On PostgreSQL the sealer lease seals (every 0.2 s); on SQLite the test seals after each upload.
    cloud = await startTestCloud(data.dir, { blockIntervalS: store === 'postgres' ? '0.2' : '3600', verifyIntervalS: '0', ...database })
    tokens = { researcher: (await cloud.tokens.create('researcher', 'lab')).token, admin: (await cloud.tokens.create('admin', 'ops')).token, regulator: (await cloud.tokens.create('regulator', 'reg')).token, doctor: (await cloud.tokens.create('doctor', 'dr')).token }
    const gw = await registerTestGateway(cloud)
    stream = testStream(gw, 'bed-01', 'P-1', '(role:researcher AND consent:research) OR patient:{patient}')
    let prev: string | null = null
    for (let k = 0; k < 8; k++) {
      const b = await sealTestBatch(stream, k, prev, { readings: batchReadings(k), now: T + k * 10 * MIN + MIN })
      prev = b.commitment
      const { res } = await signedPost(cloud.url, gw, '/v1/batches', await batchBody(b))
      expect(res.status).toBe(201)
      records.set(k, ((await res.json()) as { record: { id: number } }).record.id)
      cloud.sealNow()
    }
    for (let i = 0; i < 300 && (await cloud.backend.stats()).pendingRecords > 0; i++) await new Promise((r) => setTimeout(r, 100))
    expect((await cloud.backend.stats()).pendingRecords).toBe(0)
    proxy = await RewritingProxy.start(cloud.url)
    dir = mkdtempSync(join(tmpdir(), 'careledger-redactions-'))
    writeFileSync(join(dir, 'lab.key'), encodeUserKey(currentKey(testAuthoritySecret(), ['role:researcher', 'consent:research'])), { mode: 0o600 })
    writeFileSync(join(dir, 'authority.pub'), encodeMasterPublicKey(testAuthority()))
    writeFileSync(join(dir, 'wallet'), regulator.privateKey + '\n', { mode: 0o600 })
    writeFileSync(join(dir, 'requester-wallet'), testWallet(9).privateKey + '\n', { mode: 0o600 })
  }, 120_000)

  afterAll(async () => {
    await proxy?.close()
    await cloud?.stop()
    data?.cleanup()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  async function run(args: readonly string[], token: string): Promise<string> {
    const r = await careledger(args, { CARELEDGER_CLOUD_URL: cloud.url, CARELEDGER_TOKEN: token })
    if (r.code !== 0) throw new Error(`careledger ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`)
    return r.stdout
  }
  const requestId = (stdout: string): string => /request ([0-9a-f]{64})/.exec(stdout)![1]!

  let runs = 0
  async function exportVia(url: string, state = 'state') {
    const out = join(dir, `out-${++runs}`)
    const r = await careledger(['research', 'export', '--type', 'spo2,heart_rate', '--from', String(FROM), '--to', String(TO), '--lateness-min', '5', '--key', join(dir, 'lab.key'), '--out', out, '--block-timeout-s', '5'], {
      CARELEDGER_CLOUD_URL: url,
      CARELEDGER_TOKEN: tokens.researcher,
      CARELEDGER_CLIENT_STATE: join(dir, state),
    })
    return { ...r, out }
  }

  const expectCaught = expectExportCaught

  const recordsPath = (p: string) => p.startsWith('/v1/evidence/records')
  type Proof = { record: { id: number; seq: number; content: string }; redaction: { seq: number; entry: RedactionLogEntry; hash: string; prevLogHash: string; logHash: string } | null }
  const rewriteRecord = (seq: number, f: (p: Proof) => Proof | void) => (p: string, a: Answer) =>
    recordsPath(p)
      ? rewriteJson<{ records: Proof[] }>(a, (b) => {
          b.records = b.records.map((x) => (x.record.seq === seq ? (f(x) ?? x) : x))
        })
      : a
  /** A v1 cloud: the plan without policies, the records without redactions. */
  const asVersion1 = (p: string, a: Answer): Answer =>
    p.startsWith('/v1/evidence?')
      ? rewriteJson<Record<string, unknown>>(a, (b) => {
          delete b.policies
          delete b.log
          return { ...b, v: 1, redactions: [] }
        })
      : recordsPath(p)
        ? rewriteJson<{ records: Record<string, unknown>[] }>(a, (b) => void b.records.forEach((x) => delete x.redaction))
        : a

  describe('before any redaction', () => {
    it('a version-1 answer (a cloud from before supervision) still verifies', async () => {
      proxy.rewrite = asVersion1
      const r = await exportVia(proxy.url)
      expect(r.code, r.stderr).toBe(0)
      const manifest = JSON.parse(readFileSync(join(r.out, 'manifest.json'), 'utf8'))
      expect(manifest.readings).toBe(8 * 6)
      // Keep the corrected-to-be record's proof as the cloud served it before the redaction.
      const auth = { headers: { authorization: `Bearer ${tokens.researcher}` } }
      const plan = (await (await fetch(`${cloud.url}/v1/evidence?from=${FROM}&to=${TO}`, auth)).json()) as { v: number; head: { height: number } }
      expect(plan.v).toBe(2)
      const page = (await (await fetch(`${cloud.url}/v1/evidence/records?stream=${stream.streamId}&fromSeq=0&toSeq=7&head=${plan.head.height}`, auth)).json()) as { records: Proof[] }
      preRedaction = page.records.find((x) => x.record.seq === CORRECTED)
      expect(preRedaction).toMatchObject({ redaction: null })
      preDeletion = page.records.find((x) => x.record.seq === DELETED)
      expect(preDeletion).toMatchObject({ redaction: null })
      oldCid = (preRedaction as { record: { cid: string } }).record.cid
      // …and its ciphertext (the cloud deletes it when the correction is applied).
      const old = await fetch(`${cloud.url}/ipfs/${oldCid}?format=raw`, auth)
      expect(old.status).toBe(200)
      writeFileSync(join(dir, 'old-envelope'), Buffer.from(await old.arrayBuffer()))
    })
  })

  describe('a regulator corrects one batch and deletes another (1 of 1)', () => {
    const fixed = batchReadings(CORRECTED).map((r) => (r.type === 'heart_rate' ? { ...r, value: 123 } : r))

    it('setup, requests, approvals: applied', async () => {
      await run(['regulator', 'setup', '--threshold', '1', '--of', '1', '--cloud-id', 'redactions-test', '--trapdoor', join(data.dir, 'regulator', 'chameleon-secret.key'), '--out', join(dir, 'committee'), '--install', '--regulator', `Sole Regulator=${regulator.address}`], tokens.admin)
      writeFileSync(join(dir, 'fixed.json'), JSON.stringify(fixed))
      const common = ['--key', join(dir, 'lab.key'), '--authority', join(dir, 'authority.pub'), '--wallet', join(dir, 'requester-wallet')]
      requestIds = {
        correct: requestId(await run(['supervision', 'request', 'correct', String(records.get(CORRECTED)), '--readings', join(dir, 'fixed.json'), '--reason', 'heart rate probe mis-calibrated', ...common], tokens.doctor)),
        delete: requestId(await run(['supervision', 'request', 'delete', String(records.get(DELETED)), '--reason', 'recorded on the wrong patient', ...common], tokens.doctor)),
      }
      for (const rid of Object.values(requestIds)) {
        expect(await run(['regulator', 'approve', rid, '--wallet', join(dir, 'wallet'), '--trapdoor', join(data.dir, 'regulator', 'chameleon-secret.key'), '--comment', 'checked'], tokens.regulator)).toMatch(/applied/)
      }
    }, 120_000)

    it('research export: the corrected readings with their entry, the deleted batch as a tombstone; FHIR validates', async () => {
      proxy.rewrite = (_p, a) => a
      const r = await exportVia(proxy.url)
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toMatch(/1 corrected, 1 deleted by verified redactions/)
      const manifest = JSON.parse(readFileSync(join(r.out, 'manifest.json'), 'utf8'))
      expect(manifest.format).toBe('careledger-export/2')
      expect(manifest.readings).toBe(7 * 6) // one batch deleted
      expect(manifest.verified.streams).toEqual([expect.objectContaining({ firstSeq: 0, lastSeq: 7, records: 8, deleted: 1, gaps: [] })])
      expect(manifest.redactions).toEqual([
        expect.objectContaining({ record: records.get(CORRECTED), seq: CORRECTED, status: 'corrected', requestId: requestIds.correct, reason: 'heart rate probe mis-calibrated', approvers: [expect.objectContaining({ name: 'Sole Regulator', address: regulator.address, comment: 'checked' })], entry: expect.objectContaining({ action: 'correct' }) }),
      ])
      expect(manifest.tombstones).toEqual([expect.objectContaining({ record: records.get(DELETED), seq: DELETED, status: 'deleted', device: 'bed-01', requestId: requestIds.delete, reason: 'recorded on the wrong patient' })])
      // CSV: the corrected batch's readings are the corrected ones, marked amended with the entry; none of the deleted batch.
      const csv = readFileSync(join(r.out, 'readings.csv'), 'utf8').trim().split('\n')
      const header = csv[0]!.split(',')
      const rows = csv.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, i) => [header[i], v])))
      const ofBatch = (k: number) => rows.filter((x) => batchReadings(k).some((b) => new Date(b.ts).toISOString() === x.time))
      expect(ofBatch(DELETED)).toEqual([])
      expect(ofBatch(CORRECTED).filter((x) => x.type === 'heart_rate').map((x) => x.value)).toEqual(['123', '123', '123'])
      for (const x of ofBatch(CORRECTED)) expect(x).toMatchObject({ status: 'amended', redaction_request: requestIds.correct, redaction_reason: 'heart rate probe mis-calibrated', redaction_approvers: `Sole Regulator (${regulator.address})` })
      expect(rows.filter((x) => x.status === 'final')).toHaveLength(6 * 6)

      // FHIR: amended Observations with a note, and a Provenance per redaction; all validate.
      const byUrl = indexFhirR4()
      const observations = readFileSync(join(r.out, 'observations.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
      const amended = observations.filter((o) => o.status === 'amended')
      expect(amended).toHaveLength(6)
      expect(amended[0].note[0].text).toMatch(new RegExp(`^Corrected by CareLedger redaction request ${requestIds.correct}: heart rate probe mis-calibrated`))
      for (const obs of observations) {
        expect(validateResource(obs)).toEqual([])
        for (const url of obs.meta.profile) expect(validateResource(obs, { profile: byUrl.get(url) as never })).toEqual([])
      }
      const provenance = readFileSync(join(r.out, 'provenance.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
      expect(provenance.map((p) => [p.id, p.activity.coding[0].code])).toEqual([[requestIds.correct, 'UPDATE'], [requestIds.delete, 'DELETE']])
      expect(provenance[0].target).toHaveLength(6)
      for (const p of provenance) expect(validateResource(p)).toEqual([])
    })

    it('access read: corrected readings (amended) and the tombstone, in JSON and as a table', async () => {
      const read = (format: string) =>
        careledger(['access', 'read', '--patient', stream.pseudonym, '--from', String(FROM), '--to', String(TO), '--key', join(dir, 'lab.key'), '--format', format], {
          CARELEDGER_CLOUD_URL: cloud.url,
          CARELEDGER_TOKEN: tokens.researcher,
          CARELEDGER_CLIENT_STATE: join(dir, 'state-read'),
        })
      const r = await read('json')
      expect(r.code, r.stderr).toBe(0)
      const out = JSON.parse(r.stdout) as { readings: { record: number; status: string; redaction: string | null; type: string; value: number }[]; corrected: { requestId: string }[]; deleted: { record: number; status: string; requestId: string }[] }
      expect(out.readings.filter((x) => x.record === records.get(DELETED))).toEqual([])
      expect(out.readings.filter((x) => x.record === records.get(CORRECTED) && x.type === 'heart_rate').map((x) => [x.value, x.status, x.redaction])).toEqual(Array.from({ length: 3 }, () => [123, 'amended', requestIds.correct]))
      expect(out.corrected.map((c) => c.requestId)).toEqual([requestIds.correct])
      expect(out.deleted).toEqual([expect.objectContaining({ record: records.get(DELETED), status: 'deleted', requestId: requestIds.delete })])
      const table = await read('table')
      expect(table.stdout).toMatch(new RegExp(`record ${records.get(DELETED)} \\(bed-01 #${DELETED}\\): deleted by request ${requestIds.delete.slice(0, 16)}… at .*reason "recorded on the wrong patient".*approved by Sole Regulator \\(${regulator.address}\\) — tombstone, no readings`))
      expect(table.stdout).toMatch(new RegExp(`record ${records.get(CORRECTED)} \\(bed-01 #${CORRECTED}\\): corrected by request`))
    })
  })

  describe('a misbehaving cloud over redacted records: caught, named, nothing written', () => {
    it('hides the redaction log entry of the corrected record', async () => {
      proxy.rewrite = rewriteRecord(CORRECTED, (p) => void (p.redaction = null))
      expectCaught(await exportVia(proxy.url), 'REDACTION', new RegExp(`record ${records.get(CORRECTED)} \\([0-9a-f]{32}#${CORRECTED}\\) was changed under its unchanged chameleon hash .* no redaction log entry for it: a hidden redaction`))
    })

    it('hides the redaction log entry of the deleted record (a tombstone without its entry)', async () => {
      proxy.rewrite = rewriteRecord(DELETED, (p) => void (p.redaction = null))
      expectCaught(await exportVia(proxy.url), 'REDACTION', new RegExp(`record ${records.get(DELETED)} .* a hidden redaction`))
    })

    it('answers as a version-1 cloud (no entries at all)', async () => {
      proxy.rewrite = asVersion1
      expectCaught(await exportVia(proxy.url), 'REDACTION', /a hidden redaction/)
    })

    it('alters the entry (another reason), leaving its hash', async () => {
      proxy.rewrite = rewriteRecord(CORRECTED, (p) => void (p.redaction!.entry.reason = 'nothing to see'))
      expectCaught(await exportVia(proxy.url), 'REDACTION', /its redaction log entry hashes to [0-9a-f]{64}, the cloud says [0-9a-f]{64} \(altered\)/)
    })

    /** Change the corrected record's entry and recompute its hash and log link, as a forger would. */
    const forge = (change: (e: RedactionLogEntry) => void) =>
      rewriteRecord(CORRECTED, (p) => {
        const r = p.redaction!
        change(r.entry)
        r.hash = bytesToHex(redactionLogEntryHash(r.entry))
        r.logHash = bytesToHex(sha256(concatBytes(hexToBytes(r.prevLogHash), hexToBytes(r.hash))))
      })

    it('forges the entry (another reason, hashes and log link recomputed): the requester\'s signature does not follow', async () => {
      proxy.rewrite = forge((e) => void (e.reason = 'nothing to see'))
      expectCaught(await exportVia(proxy.url), 'REDACTION', new RegExp(`record ${records.get(CORRECTED)} \\([0-9a-f]{32}#${CORRECTED}\\): .*(signature|requester)`))
    })

    it('forges the approval (signed by a wallet that is not a regulator of the policy)', async () => {
      const policy = parseSupervisoryPolicy(JSON.parse(readFileSync(join(dir, 'committee', 'policy.json'), 'utf8')))
      const stranger = testWallet(5)
      let forged: Record<string, unknown> | null = null
      proxy.rewrite = async (p, a, up) => {
        if (recordsPath(p) && !forged) {
          const e = (JSON.parse(a.body.toString('utf8')) as { records: Proof[] }).records.find((x) => x.record.seq === CORRECTED)!.redaction!.entry
          forged = await signDecision(policy, stranger, { requestId: e.requestId, record: e.record, action: e.action, oldContent: e.oldContent, newContent: e.newContent }, 'approve', 'checked')
        }
        return recordsPath(p) ? forge((e) => void (e.approvals = [{ regulator: stranger.address, decision: 'approve', comment: 'checked', signature: String(forged!.signature).toLowerCase() }]))(p, a) : a
      }
      expectCaught(await exportVia(proxy.url), 'REDACTION', new RegExp(`record ${records.get(CORRECTED)} \\([0-9a-f]{32}#${CORRECTED}\\): .*${stranger.address}`))
    })

    it('forges the entry as a deletion (action changed, hashes recomputed): the approvals do not cover it', async () => {
      proxy.rewrite = forge((e) => void (e.action = 'delete'))
      expectCaught(await exportVia(proxy.url), 'REDACTION', new RegExp(`record ${records.get(CORRECTED)} \\([0-9a-f]{32}#${CORRECTED}\\): `))
    })

    it('serves the pre-redaction record beside its entry', async () => {
      proxy.rewrite = rewriteRecord(CORRECTED, (p) => ({ ...(preRedaction as Proof), redaction: p.redaction }))
      expectCaught(await exportVia(proxy.url), 'REDACTION', new RegExp(`REDACTION: record ${records.get(CORRECTED)}: its content \\(digest [0-9a-f]{64}\\) is not what redaction ${requestIds.correct} made it`))
    })

    // The pre-redaction row is still a valid opening of the unchanged chameleon hash, and its block
    // hash is unchanged: only the redaction log the head block commits (plan `log`) gives it away.
    const readVia = (url: string) =>
      careledger(['access', 'read', '--patient', stream.pseudonym, '--from', String(FROM), '--to', String(TO), '--key', join(dir, 'lab.key'), '--format', 'json'], {
        CARELEDGER_CLOUD_URL: url,
        CARELEDGER_TOKEN: tokens.researcher,
        CARELEDGER_CLIENT_STATE: join(dir, 'state-read-proxy'),
      })
    const planPath = (p: string) => p.startsWith('/v1/evidence?')

    it('the plan carries the redaction log the head block commits', async () => {
      const auth = { headers: { authorization: `Bearer ${tokens.researcher}` } }
      const plan = (await (await fetch(`${cloud.url}/v1/evidence?from=${FROM}&to=${TO}`, auth)).json()) as { log: RedactionLogEntry[] }
      expect(plan.log.map((e) => [e.record, e.requestId])).toEqual([
        [records.get(CORRECTED), requestIds.correct],
        [records.get(DELETED), requestIds.delete],
      ])
    })

    /** Serve record `seq` as it was before its redaction, without its entry: export and read both fail, naming it and its request. */
    const servePreRedaction = async (seq: number, before: unknown, entry: number, request: () => string, action: string) => {
      proxy.rewrite = rewriteRecord(seq, () => ({ ...(before as Proof), redaction: null }))
      const what = new RegExp(`record ${records.get(seq)} \\([0-9a-f]{32}#${seq}\\): the redaction log the head commits names it \\(entry ${entry}, request ${request()}, ${action}\\), but the cloud serves it without that entry: a hidden redaction`)
      expectCaught(await exportVia(proxy.url), 'REDACTION', what)
      const r = await readVia(proxy.url)
      expect(r.code, r.stderr).toBe(2)
      expect(r.stdout).toBe('')
      expect(r.stderr).toMatch(new RegExp(`^error VERIFICATION_FAILED: the cloud's answer does not verify \\(REDACTION\\): ${what.source}`))
    }

    it('serves the corrected record in its pre-redaction form (old content, old opening) without its entry: export and read fail', () => servePreRedaction(CORRECTED, preRedaction, 1, () => requestIds.correct, 'correct'))

    it('serves the deleted record in its pre-deletion form without its entry: export and read fail', () => servePreRedaction(DELETED, preDeletion, 2, () => requestIds.delete, 'delete'))

    it('drops an entry from the plan\'s redaction log: it does not match the head block', async () => {
      proxy.rewrite = (p, a) => (planPath(p) ? rewriteJson<{ log: unknown[] }>(a, (b) => void b.log.splice(0, 1)) : a)
      expectCaught(await exportVia(proxy.url), 'REDACTION', /the redaction log in the plan \(1 entries, head [0-9a-f]{64}\) is not the one the head \(block \d+\) commits \(2 entries, head [0-9a-f]{64}\)/)
    })

    it('drops the entry from the plan\'s log and serves the pre-redaction record: still caught', async () => {
      proxy.rewrite = (p, a) => {
        if (planPath(p)) return rewriteJson<{ log: RedactionLogEntry[] }>(a, (b) => void (b.log = b.log.filter((e) => e.record !== records.get(CORRECTED))))
        return rewriteRecord(CORRECTED, () => ({ ...(preRedaction as Proof), redaction: null }))(p, a)
      }
      expectCaught(await exportVia(proxy.url), 'REDACTION', /is not the one the head \(block \d+\) commits/)
    })

    it('answers with a plan without the redaction log while the head commits entries', async () => {
      proxy.rewrite = (p, a) => (planPath(p) ? rewriteJson<Record<string, unknown>>(a, (b) => void delete b.log) : a)
      expectCaught(await exportVia(proxy.url), 'REDACTION', /the head \(block \d+\) commits a redaction log of 2 entries, but the cloud's plan carries no redaction log/)
      const r = await readVia(proxy.url)
      expect(r.code, r.stderr).toBe(2)
      expect(r.stdout).toBe('')
      expect(r.stderr).toMatch(/VERIFICATION_FAILED.*\(REDACTION\): the head \(block \d+\) commits a redaction log of 2 entries, but the cloud's plan carries no redaction log/)
    })

    it('serves the old ciphertext for the corrected record\'s new CID', async () => {
      const oldBytes = readFileSync(join(dir, 'old-envelope'))
      const newCid = ((await (await fetch(`${cloud.url}/v1/records/${records.get(CORRECTED)}`, { headers: { authorization: `Bearer ${tokens.researcher}` } })).json()) as { cid: string }).cid
      expect(newCid).not.toBe(oldCid)
      // The bulk answer leaves the block out (so it is asked for by CID), and the trustless gateway answers with the old bytes.
      proxy.rewrite = async (p, a) => {
        if (p === '/v1/blocks') {
          const blocks = (await carBlocks(new Uint8Array(a.body))).filter((b) => b.cid.toString() !== newCid)
          return { ...a, body: Buffer.from(await blocksCar(blocks.map((b) => b.cid), blocks)) }
        }
        if (p.startsWith(`/ipfs/${newCid}`)) return { ...a, status: 200, body: oldBytes }
        return a
      }
      const r = await exportVia(proxy.url)
      expect(r.code, r.stderr).toBe(1)
      expect(r.stderr).toMatch(new RegExp(`SUBSTITUTED\\s+record ${records.get(CORRECTED)} .*block ${newCid} was answered by .* bytes that hash to ${oldCid}`))
      expect(existsSync(r.out)).toBe(false)
    })
  })
})
