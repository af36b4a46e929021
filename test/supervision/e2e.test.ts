/**
 * Supervision end to end with real processes: monitors → `careledger gateway start` → `careledger
 * cloud start`; a doctor requests a correction and a deletion with `careledger supervision request`
 * (decrypting and re-sealing on their side), three regulators review (evidence opened with their
 * role:regulator key), two approve and run the FROST rounds with `careledger regulator approve /
 * sign`, and the cloud applies: the corrected record decrypts to the corrected readings, the old
 * CID is gone from the cloud's blockstore and the gateway's, the redaction log entry is there,
 * `careledger chain verify` passes, no block moved and the stream shows no gap. Then 1 of 1.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeUserKey } from '../../shared/crypto/abe/codec.ts'
import { pgStoredEnvelopes, storedEnvelopes } from '../helpers/envelopes.ts'
import { careledger } from '../helpers/gateway-process.ts'
import { openBatch, sleep, startMonitors, TestSystem, waitFor, ward } from '../helpers/system.ts'
import { testWallet } from '../vectors/supervision.ts'
import { usePostgres } from '../helpers/postgres.ts'

let sys: TestSystem
let dir: string
const wallets = [1, 2, 3].map(testWallet)

beforeAll(async () => {
  sys = await TestSystem.start({ label: 'supervision-e2e', devices: ward(2), sealIntervalS: 1, blockIntervalS: 0.5 })
  dir = join(sys.root.dir, 'people')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'doctor.key'), encodeUserKey(sys.authority.key(['role:doctor', 'hospital:h1'])), { mode: 0o600 })
  writeFileSync(join(dir, 'regulator.key'), encodeUserKey(sys.authority.key(['role:regulator'])), { mode: 0o600 })
  wallets.forEach((w, i) => writeFileSync(join(dir, `wallet-${i + 1}`), w.privateKey + '\n', { mode: 0o600 }))
  writeFileSync(join(dir, 'requester-wallet'), testWallet(9).privateKey + '\n', { mode: 0o600 }) // the doctor signs requests
  await loadAndSettle(sys, 5000)
}, 150_000)

/** The ward's monitors publish for `ms` (load duration, not a timing assertion); then everything is sealed and shipped. */
async function loadAndSettle(on: TestSystem, ms: number): Promise<void> {
  const monitors = await startMonitors(on.gateway.mqttUrl, on.monitors, 2)
  await sleep(ms)
  await Promise.all(monitors.map((m) => m.stop()))
  await on.settled(60_000)
}

afterAll(async () => {
  await sys?.destroy()
})

const as = (token: string, on: TestSystem = sys) => ({ CARELEDGER_CLOUD_URL: on.cloud.url, CARELEDGER_TOKEN: token })
async function run(args: readonly string[], token: string, on: TestSystem = sys): Promise<string> {
  const r = await careledger(args, as(token, on))
  if (r.code !== 0) throw new Error(`careledger ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`)
  return r.stdout
}
const requestId = (stdout: string): string => /request ([0-9a-f]{64})/.exec(stdout)![1]!

/** A record of bed-01's stream that has a neighbour on each side. */
async function middleRecord(skip: number, device = 'bed-01'): Promise<number> {
  const recs = (await sys.records()).filter((r) => r.device === device).sort((a, b) => a.seq - b.seq)
  expect(recs.length).toBeGreaterThan(skip + 2)
  return recs[1 + skip]!.id
}

async function verifyCli(policies: readonly string[] = [], on: { sys: TestSystem; database?: string } = { sys }): Promise<{ code: number; report: { ok: boolean; failures: unknown[]; recordsChecked: number; redactionLog?: { entries: number; committed: number } } }> {
  const r = await careledger(['chain', 'verify', '--data', on.sys.dirs.cloud, ...(on.database ? ['--database', on.database] : []), '--json', ...policies.flatMap((p) => ['--supervisory-policy', p])], {})
  return { code: r.code ?? -1, report: JSON.parse(r.stdout) }
}

const gatewayBatch = (cid: string, on: TestSystem = sys) => {
  const db = on.gatewayDb()
  try {
    const b = db.prepare('SELECT batch_id, pruned_at FROM batches WHERE cid = ?').get(cid) as { batch_id: number; pruned_at: number | null }
    return { ...b, readings: db.prepare('SELECT count(*) FROM readings WHERE batch_id = ?').pluck().get(b.batch_id) as number }
  } finally {
    db.close()
  }
}

describe('2 of 3 regulators (trusted dealer split of the chain trapdoor)', () => {
  const committee = () => join(dir, 'committee')

  it('regulator setup writes the policy and the shares and installs the policy', async () => {
    const out = await run(
      ['regulator', 'setup', '--threshold', '2', '--of', '3', '--cloud-id', 'e2e-cloud', '--trapdoor', join(sys.dirs.cloud, 'regulator', 'chameleon-secret.key'), '--out', committee(), '--install',
        ...wallets.flatMap((w, i) => ['--regulator', `Regulator ${i + 1}=${w.address}`])],
      sys.tokens.admin,
    )
    expect(out).toMatch(/2 of 3, key generation dealer/)
    for (const i of [1, 2, 3]) expect(existsSync(join(committee(), `regulator-${i}.share`))).toBe(true)
    const { policy } = await sys.api<{ policy: { threshold: number; regulators: unknown[] } }>('/v1/supervision/policy')
    expect(policy.threshold).toBe(2)
  })

  it('correction: request → review → 2 approvals → FROST → applied; decrypts to the corrected readings; old CID gone; chain verify passes', async () => {
    const id = await middleRecord(0)
    const before = await sys.record(id)
    const blocksBefore = await sys.blocks()
    const old = openBatch(sys.authority.doctor, await sys.envelope(id), before.manifest).readings
    const fixed = old.map((r, i) => (i === 0 ? { ...r, value: (r.value ?? 0) + 1 } : r))
    writeFileSync(join(dir, 'fixed.json'), JSON.stringify(fixed))

    const req = await run(['supervision', 'request', 'correct', String(id), '--readings', join(dir, 'fixed.json'), '--reason', 'first reading mis-calibrated', '--key', join(dir, 'doctor.key'), '--authority', sys.authority.publicKeyFile, '--wallet', join(dir, 'requester-wallet')], sys.tokens.doctor)
    const rid = requestId(req)
    expect(req).toMatch(/evidence sealed for role:regulator/)

    // The regulator opens the evidence: old and new readings side by side; the cloud's copy is ciphertext.
    const review = JSON.parse(await run(['regulator', 'review', '--key', join(dir, 'regulator.key'), '--json'], sys.tokens.regulator)) as { id: string; evidence: { old: unknown[]; new: unknown[]; reason: string } }[]
    const mine = review.find((r) => r.id === rid)!
    expect(mine.evidence.old).toEqual(JSON.parse(JSON.stringify(old)))
    expect(mine.evidence.new).toEqual(JSON.parse(JSON.stringify(fixed)))
    // A doctor's key does not open the evidence.
    const doctorView = JSON.parse(await run(['regulator', 'review', '--key', join(dir, 'doctor.key'), '--json'], sys.tokens.regulator)) as { id: string; evidence: { error?: string } }[]
    expect(doctorView.find((r) => r.id === rid)!.evidence.error).toMatch(/does not open/)

    for (const i of [1, 3]) await run(['regulator', 'approve', rid, '--wallet', join(dir, `wallet-${i}`), '--share', join(committee(), `regulator-${i}.share`), '--nonces', join(dir, `nonces-${i}`), '--comment', `checked by ${i}`], sys.tokens.regulator)
    await run(['regulator', 'sign', rid, '--share', join(committee(), 'regulator-1.share'), '--nonces', join(dir, 'nonces-1')], sys.tokens.regulator)
    const last = await run(['regulator', 'sign', rid, '--share', join(committee(), 'regulator-3.share'), '--nonces', join(dir, 'nonces-3')], sys.tokens.regulator)
    expect(last).toMatch(/applied/)

    const after = await sys.record(id)
    expect(before).toMatchObject({ redacted: false })
    expect(after).toMatchObject({ redacted: true })
    expect(after.cid).not.toBe(before.cid)
    expect(after.commitment).toBe(before.commitment) // the chameleon hash C: unchanged
    expect(openBatch(sys.authority.doctor, await sys.envelope(id), after.manifest).readings).toEqual(fixed)
    expect(storedEnvelopes(sys.dirs.cloud).has(after.cid)).toBe(true)
    expect(storedEnvelopes(sys.dirs.cloud).has(before.cid)).toBe(false)
    expect((await sys.blocks()).slice(0, blocksBefore.length)).toEqual(blocksBefore) // no block moved (newer ones may have been sealed)
    const { entries } = await sys.api<{ entries: { record: number; logHash: string; entry: { requestId: string; signers: number[]; approvals: unknown[] } }[] }>('/v1/supervision/log')
    expect(entries.at(-1)).toMatchObject({ record: id, entry: { requestId: rid, signers: [1, 3] } })
    expect(entries.at(-1)!.entry.approvals).toHaveLength(2)
    // The entry is on the chain: the block sealed in the applying transaction commits the log (header v2).
    expect((await sys.blocks()).at(-1)).toMatchObject({ version: 2, redactions: { count: entries.length, head: entries.at(-1)!.logHash } })
    // Verified against the policy file the regulators hold (not the database's copy).
    const v = await verifyCli([join(committee(), 'policy.json')])
    expect(v.report.failures).toEqual([])
    expect(v.code).toBe(0)
    expect((await sys.streams()).find((s) => s.stream === before.stream)!.gaps).toEqual([])

    // The gateway is told (signed delete-batch instruction): its copy and the plaintext readings go.
    expect(gatewayBatch(before.cid).readings).toBeGreaterThan(0)
    expect(sys.gatewayHoldsEnvelope(before.cid)).toBe(true)
    const monitors = await startMonitors(sys.gateway.mqttUrl, sys.monitors.slice(0, 1), 2) // new uploads carry the "instructions waiting" hint
    try {
      await waitFor('the gateway deletes its copy', () => gatewayBatch(before.cid).pruned_at !== null, { timeoutMs: 180_000 })
    } finally {
      await Promise.all(monitors.map((m) => m.stop()))
    }
    expect(gatewayBatch(before.cid).readings).toBe(0)
    expect(sys.gatewayHoldsEnvelope(before.cid)).toBe(false)
    await sys.settled(60_000)
  }, 480_000)

  it('deletion: a tombstone keeps the stream whole; a wrong share is refused naming the regulator; the other regulators finish', async () => {
    const id = await middleRecord(2)
    const before = await sys.record(id)
    const rid = requestId(await run(['supervision', 'request', 'delete', String(id), '--reason', 'recorded on the wrong patient', '--key', join(dir, 'doctor.key'), '--authority', sys.authority.publicKeyFile, '--wallet', join(dir, 'requester-wallet')], sys.tokens.doctor))
    // Not a regulator: a doctor's token cannot decide; an outsider's wallet is refused by name.
    const forbidden = await careledger(['regulator', 'approve', rid, '--wallet', join(dir, 'wallet-1')], as(sys.tokens.doctor))
    expect(forbidden.stderr).toMatch(/403/)
    writeFileSync(join(dir, 'wallet-x'), '0x' + '22'.repeat(32))
    const outsider = await careledger(['regulator', 'approve', rid, '--wallet', join(dir, 'wallet-x')], as(sys.tokens.regulator))
    expect(outsider.code).toBe(2)
    expect(outsider.stderr).toMatch(/NOT_A_REGULATOR/)
    // One approval is not enough to sign.
    await run(['regulator', 'approve', rid, '--wallet', join(dir, 'wallet-2'), '--share', join(committee(), 'regulator-2.share'), '--nonces', join(dir, 'nonces-2')], sys.tokens.regulator)
    const early = await careledger(['regulator', 'sign', rid, '--share', join(committee(), 'regulator-2.share'), '--nonces', join(dir, 'nonces-2')], as(sys.tokens.regulator))
    expect(early.stderr).toMatch(/not fixed yet/)
    await run(['regulator', 'approve', rid, '--wallet', join(dir, 'wallet-3'), '--share', join(committee(), 'regulator-3.share'), '--nonces', join(dir, 'nonces-3')], sys.tokens.regulator)
    // A wrong signature share for signer 3 (sent straight to the API): refused, Regulator 3 named, nothing applied.
    const bad = await fetch(new URL(`/v1/supervision/requests/${rid}/shares`, sys.cloud.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${sys.tokens.regulator}`, 'content-type': 'application/json' },
      body: JSON.stringify({ index: 3, share: '01'.padEnd(64, '0') }),
    })
    expect(bad.status).toBe(400)
    const err = ((await bad.json()) as { error: { message: string; details: { reason: string; regulator: string } } }).error
    expect(err.details).toMatchObject({ reason: 'BAD_SIGNATURE_SHARE', regulator: wallets[2]!.address })
    expect(err.message).toMatch(/Regulator 3/)
    expect((await sys.record(id)).cid).toBe(before.cid)
    // Regulator 3's client refuses to sign with someone else's share file; its nonces are spent, so the session restarts.
    const wrongFile = await careledger(['regulator', 'sign', rid, '--share', join(committee(), 'regulator-1.share'), '--nonces', join(dir, 'nonces-3')], as(sys.tokens.regulator))
    expect(wrongFile.stderr).toMatch(/nonces belong to participant 3, not 1/)
    await run(['regulator', 'restart', rid], sys.tokens.regulator)
    for (const i of [2, 3]) await run(['regulator', 'commit', rid, '--share', join(committee(), `regulator-${i}.share`), '--nonces', join(dir, `nonces-${i}`)], sys.tokens.regulator)
    await run(['regulator', 'sign', rid, '--share', join(committee(), 'regulator-2.share'), '--nonces', join(dir, 'nonces-2')], sys.tokens.regulator)
    expect(await run(['regulator', 'sign', rid, '--share', join(committee(), 'regulator-3.share'), '--nonces', join(dir, 'nonces-3')], sys.tokens.regulator)).toMatch(/applied/)

    const after = await sys.record(id)
    expect(after.commitment).toBe(before.commitment)
    expect(storedEnvelopes(sys.dirs.cloud).has(before.cid)).toBe(false)
    const v = await verifyCli()
    expect(v.report.failures).toEqual([])
    expect(v.code).toBe(0)
    const stream = (await sys.streams()).find((s) => s.stream === before.stream)!
    expect(stream.gaps).toEqual([])
    const refusals = await sys.api<{ refusals: { reason: string }[] }>('/v1/supervision/refusals')
    expect(refusals.refusals.map((r) => r.reason)).toEqual(expect.arrayContaining(['NOT_A_REGULATOR', 'BAD_SIGNATURE_SHARE']))
  }, 480_000)
})

describe('1 of 1: one regulator with the trapdoor file', () => {
  it('setup, request, approve with --trapdoor: applied, chain verify passes', async () => {
    const one = join(dir, 'single')
    // Installed straight into the running cloud's cloud.db (--data), not over the API.
    await run(['regulator', 'setup', '--threshold', '1', '--of', '1', '--cloud-id', 'e2e-cloud', '--trapdoor', join(sys.dirs.cloud, 'regulator', 'chameleon-secret.key'), '--out', one, '--install', '--data', sys.dirs.cloud, '--regulator', `Sole Regulator=${wallets[0]!.address}`], sys.tokens.admin)
    const id = await middleRecord(0, 'bed-02')
    const before = await sys.record(id)
    const rid = requestId(await run(['supervision', 'request', 'delete', String(id), '--reason', 'duplicate', '--wallet', join(dir, 'requester-wallet')], sys.tokens.doctor))
    expect(await run(['supervision', 'list', '--status', 'pending', '--data', sys.dirs.cloud], sys.tokens.doctor)).toMatch(new RegExp(`^${rid}  pending `))
    expect(await run(['regulator', 'approve', rid, '--wallet', join(dir, 'wallet-1'), '--trapdoor', join(sys.dirs.cloud, 'regulator', 'chameleon-secret.key')], sys.tokens.regulator)).toMatch(/applied/)
    expect((await sys.record(id)).commitment).toBe(before.commitment)
    expect(storedEnvelopes(sys.dirs.cloud).has(before.cid)).toBe(false)
    const v = await verifyCli([join(dir, 'committee', 'policy.json'), join(one, 'policy.json')])
    expect(v.report.failures).toEqual([])
    expect(v.code).toBe(0)
    // Given only the old policy, the 1-of-1 entry is not trusted: named.
    const partial = await verifyCli([join(dir, 'committee', 'policy.json')])
    expect(partial.code).toBe(1)
    expect(partial.report.failures).toEqual([expect.objectContaining({ kind: 'REDACTION_LOG', recordId: id })])
  }, 240_000)
})

describe('1 of 1 on PostgreSQL: a cloud started with --database, a real gateway and monitors', () => {
  const postgres = usePostgres()
  let pg: TestSystem | undefined
  let database: string
  beforeAll(async () => {
    if (postgres.skip) return
    database = await postgres.server().createDatabase('supervision_e2e')
    pg = await TestSystem.start({ label: 'supervision-e2e-pg', devices: ward(1), sealIntervalS: 1, blockIntervalS: 0.5, database })
    await loadAndSettle(pg, 4000)
  }, 150_000)
  afterAll(async () => {
    await pg?.destroy()
  })

  it('setup --install --database, request, approve with --trapdoor: applied; old CID gone; the gateway deletes its copy; chain verify --database passes', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const s = pg!
    const one = join(s.root.dir, 'single')
    const trapdoor = join(s.dirs.cloud, 'regulator', 'chameleon-secret.key')
    const go = (args: readonly string[], token: string): Promise<string> => run(args, token, s)
    await go(['regulator', 'setup', '--threshold', '1', '--of', '1', '--cloud-id', 'e2e-pg', '--trapdoor', trapdoor, '--out', one, '--install', '--database', database, '--regulator', `Sole Regulator=${wallets[0]!.address}`], s.tokens.admin)
    const recs = (await s.records()).sort((a, b) => a.seq - b.seq)
    expect(recs.length).toBeGreaterThan(2)
    const id = recs[1]!.id
    const before = await s.record(id)
    const rid = requestId(await go(['supervision', 'request', 'delete', String(id), '--reason', 'duplicate', '--wallet', join(dir, 'requester-wallet')], s.tokens.doctor))
    expect(await go(['regulator', 'approve', rid, '--wallet', join(dir, 'wallet-1'), '--trapdoor', trapdoor], s.tokens.regulator)).toMatch(/applied/)
    expect((await s.record(id)).commitment).toBe(before.commitment)
    expect(await pgStoredEnvelopes(database).has(before.cid)).toBe(false)
    const entries = (await s.api<{ entries: { logHash: string }[] }>('/v1/supervision/log')).entries
    expect((await s.blocks()).at(-1)).toMatchObject({ version: 2, redactions: { count: 1, head: entries[0]!.logHash } })

    // The gateway is told (the delete-batch instruction of the process that applied it).
    const monitors = await startMonitors(s.gateway.mqttUrl, s.monitors, 2)
    try {
      await waitFor('the gateway deletes its copy', () => gatewayBatch(before.cid, s).pruned_at !== null, { timeoutMs: 180_000 })
    } finally {
      await Promise.all(monitors.map((m) => m.stop()))
    }
    expect(gatewayBatch(before.cid, s).readings).toBe(0)
    await s.settled(60_000)
    const v = await verifyCli([join(one, 'policy.json')], { sys: s, database })
    expect(v.report.failures).toEqual([])
    expect(v.code).toBe(0)
    expect(v.report.redactionLog).toMatchObject({ entries: 1, committed: 1 })
  }, 300_000)
})
