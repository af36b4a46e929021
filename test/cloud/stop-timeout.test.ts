/**
 * The last resort of `careledger cloud start`: a graceful stop that cannot finish (here: the
 * PostgreSQL server is frozen with SIGSTOP, so sealing the pending records and releasing the sealer
 * lease never get an answer) ends after --stop-timeout-s with `stop_timeout` logged and exit code 1,
 * instead of a process left running until the service manager's SIGKILL. Nothing is lost: once the
 * database answers again, the next start serves on and `chain verify` passes.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { usePostgres } from '../helpers/postgres.ts'
import { CloudProcess, careledger, tempDataDir } from '../helpers/cloud-process.ts'

const postgres = usePostgres()
const data = tempDataDir('stop-timeout')
const procs: CloudProcess[] = []
let frozen: number[] = []
const thaw = (): void => {
  for (const pid of frozen.splice(0)) {
    try {
      process.kill(pid, 'SIGCONT')
    } catch {
      // gone
    }
  }
}
afterAll(async () => {
  thaw()
  for (const p of procs) await p.kill('SIGKILL')
  data.cleanup()
})

describe('cloud start: the stop timeout', () => {
  it('a stop stuck on a frozen database exits 1 after --stop-timeout-s with stop_timeout logged; the next start serves and verifies', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const url = await postgres.server().createDatabase('stop_timeout')
    const args = ['--database', url, '--stop-timeout-s', '2', '--block-interval-s', '0.3', '--verify-interval-s', '0']
    const cloud = await CloudProcess.start({ dataDir: data.dir, args, readyTimeoutMs: 60_000 })
    procs.push(cloud)
    // The lease may be taken before start() returns: look at the lines already logged first.
    if (!cloud.logs.some((l) => l.event === 'sealer_lease_acquired')) await cloud.waitForLog((l) => l.event === 'sealer_lease_acquired', 20_000)

    frozen = postgres.server().pids()
    expect(frozen.length).toBeGreaterThan(0)
    for (const pid of frozen) process.kill(pid, 'SIGSTOP')
    try {
      const exit = await cloud.stop()
      expect(exit).toEqual({ code: 1, signal: null })
      expect(cloud.logs.find((l) => l.event === 'stop_timeout')).toMatchObject({ afterS: 2 })
    } finally {
      thaw()
    }

    // The database answers again: the same data directory starts, serves, and its chain verifies.
    await cloud.restart()
    const health = await fetch(`${cloud.url}/healthz`)
    expect(health.status).toBe(200)
    await cloud.stop()
    const verify = await careledger(['chain', 'verify', '--database', url, '--data', data.dir])
    expect(verify.code, verify.stderr).toBe(0)
  })

  it('a stop timeout outside 1–3600 s is refused at start, naming the setting', async () => {
    const r = await careledger(['cloud', 'start', '--data', data.dir, '--stop-timeout-s', '0'])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/CARELEDGER_CLOUD_STOP_TIMEOUT_S|--stop-timeout-s/)
  })
})
