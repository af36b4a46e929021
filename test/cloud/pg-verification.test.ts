/**
 * Periodic chain verification of a deployment of two `careledger cloud start --database …`
 * processes on one PostgreSQL: the sealer lease holder verifies the shared chain for both and keeps
 * its runs in the shared verification log (cloud/store/pg/verification.ts); the other process does
 * not verify again (only once at a first start, when no run exists yet) and answers
 * GET /v1/chain/verification and its verification metrics from the holder's newest run.
 */
import { describe, expect, it } from 'vitest'
import { careledger } from '../helpers/cloud-process.ts'
import { usePgClouds } from '../helpers/pg-clouds.ts'
import { usePostgres } from '../helpers/postgres.ts'
import { waitFor } from '../helpers/system.ts'

const postgres = usePostgres()
const { startPair } = usePgClouds(postgres.server)

describe('chain verification of two cloud processes on one PostgreSQL', () => {
  it('the lease holder verifies for both; the other serves the shared result', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const { url, a, b } = await startPair('verification_two_clouds', ['--verify-interval-s', '1'])
    const admin = JSON.parse((await careledger(['cloud', 'token', 'create', '--role', 'admin', '--name', 'ops', '--json', '--database', url])).stdout).token as string
    const get = async (p: typeof a, path: string): Promise<any> => (await fetch(`${p.url}${path}`, { headers: { authorization: `Bearer ${admin}` } })).json()
    const holder = await waitFor('one process to hold the sealer lease', () => [a, b].find((p) => p.logs.some((l) => l.event === 'sealer_lease_acquired')))
    const other = holder === a ? b : a
    const verified = (p: typeof a): number => p.logs.filter((l) => l.event === 'chain_verified').length
    await waitFor('the holder to verify three times', () => verified(holder) >= 3, { timeoutMs: 30_000 })
    const before = verified(other)
    await waitFor('the holder to verify three times more', () => verified(holder) >= before + 6, { timeoutMs: 30_000 })
    expect(verified(other)).toBeLessThanOrEqual(Math.max(before, 1)) // at most its start-up run, when no run existed yet
    // Both answer the shared newest run.
    const [va, vb] = await Promise.all([get(a, '/v1/chain/verification'), get(b, '/v1/chain/verification')])
    expect(va.ok).toBe(true)
    expect(Math.abs(va.checkedAt - vb.checkedAt)).toBeLessThan(2_000)
    const metric = async (p: typeof a): Promise<number> => Number((await (await fetch(`${p.url}/metrics`, { headers: { authorization: `Bearer ${admin}` } })).text()).match(/^careledger_cloud_verification_ok (\S+)$/m)?.[1])
    expect(await metric(other)).toBe(1)
  }, 120_000)
})
