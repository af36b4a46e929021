/**
 * The blockstore scrub and repair on a PostgreSQL cloud (`careledger cloud start --database …`),
 * real processes: the scrub re-hashes the envelopes of the records in the shared chain
 * (ChainBackend.envelopeRefs), raises the alert naming the damaged record, asks its gateway for
 * the block through the shared instruction table, and the gateway's resend is accepted
 * (ChainBackend.recordsWithEnvelope) and repairs it. Before, the scrub read the process's own
 * empty cloud.db on PostgreSQL and checked nothing, and a resend was refused NOT_FOUND.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pgStoredEnvelopes } from '../helpers/envelopes.ts'
import { usePostgres } from '../helpers/postgres.ts'
import { startMonitors, TestSystem, waitFor, ward, type AckedMonitor } from '../helpers/system.ts'

const postgres = usePostgres()
let sys: TestSystem | undefined
let database = ''
let monitors: AckedMonitor[] = []

beforeAll(async () => {
  if (postgres.skip) return
  database = await postgres.server().createDatabase('repair_pg')
  sys = await TestSystem.start({ label: 'repair-pg', devices: ward(1), sealIntervalS: 1, blockIntervalS: 0.5, database, cloudArgs: ['--scrub-interval-s', '2', '--verify-interval-s', '3600'] })
  monitors = await startMonitors(sys.gateway.mqttUrl, sys.monitors, 1)
}, 150_000)

afterAll(async () => {
  await Promise.all(monitors.map((m) => m.stop()))
  await sys?.destroy()
})

type Healthz = { status: string; envelopes: { damaged: number; records: number[] } }

describe('a damaged envelope block of a PostgreSQL cloud', () => {
  it('is found by the scrub over the shared chain and repaired from the gateway through the shared instructions', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const s = sys!
    await waitFor('three records', async () => (await s.records()).length >= 3)
    await Promise.all(monitors.splice(0).map((m) => m.stop()))
    await waitFor('the outbox to drain', () => s.outbox().pending === 0 && s.outbox().unsealed === 0)
    const target = (await s.records())[1]!
    // The envelope is a row of the shared database (cloud/store/pg/envelopes.ts): flip one of its bytes.
    const stored = pgStoredEnvelopes(database)
    const original = (await stored.read(target.cid))!
    const flipped = Buffer.from(original)
    flipped[flipped.length >> 1]! ^= 0x01
    await stored.write(target.cid, flipped)

    const healthz = async (): Promise<Healthz> => (await fetch(`${s.cloud.url}/healthz`)).json() as Promise<Healthz>
    const h = await waitFor('the scrub to report the damaged record', async () => {
      const x = await healthz()
      return x.envelopes.damaged === 1 && x
    })
    expect(h.status).toBe('degraded')
    expect(h.envelopes.records).toEqual([target.id])

    // The ward resumes; the gateway's next upload is told instructions wait, it fetches and resends.
    monitors = await startMonitors(s.gateway.mqttUrl, s.monitors, 1)
    type Listed = { open: number; damaged: { recordId: number; repairedAt: number | null; repairedHow: string | null; resend: { state: string } | null }[] }
    const after = await waitFor(
      'the gateway to resend the block',
      async () => {
        const d = await s.api<Listed>('/v1/envelopes/damaged')
        const mine = d.damaged.find((x) => x.recordId === target.id)
        return mine?.repairedAt && mine.resend?.state === 'done' ? mine : undefined
      },
      { timeoutMs: 60_000 },
    )
    expect(after.repairedHow).toBe(`resent by gateway ${s.gatewayId}`)
    expect(await stored.read(target.cid)).toEqual(original)
    await waitFor('the alert to clear', async () => (await healthz()).status === 'ok')
  }, 180_000)
})
