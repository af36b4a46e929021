/**
 * Issue 8 item 10, real processes: a corrupted or missing envelope block in the cloud's blockstore
 * is found, named and repaired.
 *
 *   1. a ward runs: monitors → `careledger gateway start` → `careledger cloud start` (scrub every 2 s)
 *   2. one stored block (a row of cloud.db's envelope table) gets a flipped byte, another is deleted, a third is deleted on the cloud AND
 *      on the gateway (no copy left to resend)
 *   3. `careledger chain verify --data` exits 1 naming ENVELOPE_CORRUPT / ENVELOPE_MISSING and the
 *      records; `--skip-envelopes` skips that stage (exit 0)
 *   4. the service's scrub raises the alert naming the records: /healthz "degraded", the
 *      careledger_cloud_envelopes_damaged metric, /v1/stats, /v1/chain/verification,
 *      /v1/envelopes/damaged; a damaged envelope is not served (503 DAMAGED)
 *   5. the gateway fetches its `resend-block` instructions (the cloud's bulk answer says some wait),
 *      resends the blocks it still holds, acknowledges each: those two records are repaired; for the
 *      third it acknowledges `failed` (NOT_HELD) and the alert stays — until the block is restored
 *      from a backup, which the next scrub notices
 *   6. afterwards the chain verifies with every envelope re-hashed, and the doctor decrypts the repaired one
 */
import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { careledger } from '../helpers/cloud-process.ts'
import { storedEnvelopes } from '../helpers/envelopes.ts'
import { openBatch, startMonitors, TestSystem, waitFor, ward, type AckedMonitor } from '../helpers/system.ts'

let sys: TestSystem
let monitors: AckedMonitor[] = []

beforeAll(async () => {
  sys = await TestSystem.start({ label: 'repair', devices: ward(2), sealIntervalS: 1, blockIntervalS: 0.5, cloudArgs: ['--scrub-interval-s', '2', '--verify-interval-s', '3600'] })
  monitors = await startMonitors(sys.gateway.mqttUrl, sys.monitors, 1)
}, 60_000)

afterAll(async () => {
  await Promise.all(monitors.map((m) => m.stop()))
  await sys?.destroy()
})

const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest()

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${sys.cloud.url}/metrics`, { headers: { authorization: `Bearer ${sys.tokens.admin}` } })).text()
  const m = text.match(new RegExp(`^careledger_cloud_${name} (\\S+)$`, 'm'))
  if (!m) throw new Error(`metric ${name} missing`)
  return Number(m[1])
}

const healthz = async (): Promise<{ status: string; envelopes: { damaged: number; records: number[]; lastScrubAt: number | null } }> => (await fetch(`${sys.cloud.url}/healthz`)).json() as never

describe('a damaged envelope block in the cloud', () => {
  it('is found by chain verify and the scrub, named everywhere, and repaired from the gateway that still holds it', async () => {
    await waitFor('six records', async () => (await sys.records()).length >= 6)
    // Quiet the ward, so that the gateway has nothing to upload (and no reason to ask for
    // instructions) until the alert has been checked; it resumes below.
    await Promise.all(monitors.splice(0).map((m) => m.stop()))
    await waitFor('the outbox to drain', () => sys.outbox().pending === 0 && sys.outbox().unsealed === 0)
    const records = await sys.records()
    const [corrupt, missing, lost] = [records[1]!, records[3]!, records[4]!]
    // The cloud's stored copies: rows of cloud.db's envelope table (test/helpers/envelopes.ts).
    const stored = storedEnvelopes(sys.dirs.cloud)
    const original = stored.read(corrupt.cid)!
    const lostBackup = stored.read(lost.cid)!

    // ── the damage ───────────────────────────────────────────────────────────────────────────────
    const flipped = Buffer.from(original)
    flipped[flipped.length >> 1]! ^= 0x01
    stored.write(corrupt.cid, flipped)
    stored.remove(missing.cid)
    stored.remove(lost.cid)
    expect(sys.gatewayHoldsEnvelope(lost.cid)).toBe(true)
    sys.dropGatewayEnvelope(lost.cid)
    expect(sys.gatewayHoldsEnvelope(lost.cid)).toBe(false)

    // ── chain verify ─────────────────────────────────────────────────────────────────────────────
    const verify = await careledger(['chain', 'verify', '--data', sys.dirs.cloud, '--workers', '0'])
    expect(verify.code, verify.stderr).toBe(1)
    expect(verify.stdout).toMatch(new RegExp(`ENVELOPE_CORRUPT\\s+(height \\d+\\s+)?record ${corrupt.id}\\b`))
    expect(verify.stdout).toMatch(new RegExp(`ENVELOPE_MISSING\\s+(height \\d+\\s+)?record ${missing.id}\\b`))
    expect(verify.stdout).toMatch(new RegExp(`ENVELOPE_MISSING\\s+(height \\d+\\s+)?record ${lost.id}\\b`))
    const skipped = await careledger(['chain', 'verify', '--data', sys.dirs.cloud, '--workers', '0', '--skip-envelopes'])
    expect(skipped.code, skipped.stdout).toBe(0)
    expect(skipped.stdout).toContain('envelopes  not checked')

    // ── the scrub's alert ───────────────────────────────────────────────────────────────────────
    const damagedIds = [corrupt.id, missing.id, lost.id].sort((a, b) => a - b)
    const h = await waitFor('the scrub to report three damaged records', async () => {
      const x = await healthz()
      return x.envelopes.damaged === 3 && x
    })
    expect(h.status).toBe('degraded')
    expect(h.envelopes.records).toEqual(damagedIds)
    expect(await metric('envelopes_damaged')).toBe(3)
    expect((await sys.api<{ damagedEnvelopes: number }>('/v1/stats')).damagedEnvelopes).toBe(3)
    const report = await waitFor('a verification report naming them', async () => {
      const v = await sys.api<{ ok: boolean; failures: { kind: string; recordId?: number }[] }>('/v1/chain/verification')
      return !v.ok && v.failures.filter((f) => f.kind.startsWith('ENVELOPE_')).length === 3 && v
    })
    expect(report.failures.find((f) => f.recordId === corrupt.id)?.kind).toBe('ENVELOPE_CORRUPT')
    expect(sys.cloud.logs.some((l) => l.event === 'envelope_damaged' && (l.records as number[]).includes(corrupt.id))).toBe(true)
    const res = await fetch(`${sys.cloud.url}/v1/records/${corrupt.id}/envelope`, { headers: { authorization: `Bearer ${sys.tokens.doctor}` } })
    expect(res.status).toBe(503)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('DAMAGED')

    // ── the repair ───────────────────────────────────────────────────────────────────────────────
    // The ward resumes: the gateway's next upload is answered with "instructions wait", it fetches them.
    monitors = await startMonitors(sys.gateway.mqttUrl, sys.monitors, 1)
    type Listed = { open: number; damaged: { recordId: number; repairedAt: number | null; repairedHow: string | null; resend: { state: string; detail: string | null } | null }[] }
    const after = await waitFor(
      'the gateway to resend the two blocks it holds and fail the third',
      async () => {
        const d = await sys.api<Listed>('/v1/envelopes/damaged')
        const byId = new Map(d.damaged.map((x) => [x.recordId, x]))
        return byId.get(corrupt.id)?.repairedAt && byId.get(missing.id)?.repairedAt && byId.get(lost.id)?.resend?.state === 'failed' ? d : undefined
      },
      { timeoutMs: 60_000 },
    )
    const byId = new Map(after.damaged.map((x) => [x.recordId, x]))
    expect(after.open).toBe(1)
    expect(byId.get(corrupt.id)!.repairedHow).toBe(`resent by gateway ${sys.gatewayId}`)
    expect(byId.get(missing.id)!.resend?.state).toBe('done')
    expect(byId.get(lost.id)!.resend?.detail).toMatch(/^NOT_HELD/)
    expect(sha256(stored.read(corrupt.cid)!)).toEqual(Buffer.from(CID.parse(corrupt.cid).multihash.digest))
    expect(stored.read(corrupt.cid)).toEqual(original)
    expect(sys.gateway.logs.some((l) => l.event === 'instruction' && l.status === 'done')).toBe(true)
    expect((await healthz()).envelopes.records).toEqual([lost.id])

    // The doctor reads the repaired envelope again.
    const manifest = (await sys.record(corrupt.id)).manifest
    expect(openBatch(sys.authority.doctor, await sys.envelope(corrupt.id), manifest).readings.length).toBe(manifest.count)

    // ── the last one comes back from a backup; the next scrub notices ──────────────────────────
    stored.write(lost.cid, lostBackup)
    await waitFor('the alert to clear', async () => (await healthz()).status === 'ok')
    expect(await metric('envelopes_damaged')).toBe(0)
    const healed = (await sys.api<Listed>('/v1/envelopes/damaged')).damaged.find((x) => x.recordId === lost.id)!
    expect(healed.repairedHow).toMatch(/intact at scrub/)
    await waitFor('a clean verification report', async () => (await sys.api<{ ok: boolean }>('/v1/chain/verification')).ok)
    const clean = await careledger(['chain', 'verify', '--data', sys.dirs.cloud, '--workers', '0'])
    expect(clean.code, clean.stdout).toBe(0)
    expect(clean.stdout).toMatch(/envelopes {2}\d+ blocks re-hashed against their CIDs/)
  }, 150_000)
})
