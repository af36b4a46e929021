/**
 * The simulator end to end: real monitors, real MQTT connections, real sequence files, against
 * test/helpers/mini-broker.ts (which validates and stores like the gateway contract says).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { devicesCommand } from '../../devices/cli.ts'
import { FAULT_CODES } from '../../devices/simulator/faults.ts'
import { startSimulation, type SimulationOptions } from '../../devices/simulator/simulation.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { startMiniBroker, waitUntil, type MiniBroker } from '../helpers/mini-broker.ts'

const DEVICES = Array.from({ length: 4 }, (_, i) => ({ deviceId: `bed-0${i + 1}`, secret: `secret-${i + 1}` }))
const SECRETS = Object.fromEntries(DEVICES.map((d) => [d.deviceId, d.secret]))
const quiet = pino({ level: 'silent' })

const cleanup: (() => Promise<unknown> | void)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'careledger-sim-'))
  cleanup.push(() => rmSync(d, { recursive: true, force: true }))
  return d
}
async function broker(port = 0): Promise<MiniBroker> {
  const b = await startMiniBroker({ devices: SECRETS, port })
  cleanup.push(() => b.close())
  return b
}
function simulate(opts: Partial<SimulationOptions> & { gateway: string }) {
  const sim = startSimulation({ devices: DEVICES, logger: quiet, summaryIntervalS: 0, drainMs: 3000, backoff: { initialMs: 50, maxMs: 300 }, ...opts })
  cleanup.push(() => sim.stop())
  return sim
}
const stored = (b: MiniBroker, id: string): number[] => (b.stored.get(id) ?? []).map((r) => r.seq)
const increasing = (xs: number[]): boolean => xs.every((x, i) => i === 0 || x > xs[i - 1]!)
/** Every copy of a seq the broker received carried the same reading: a seq was never reused. */
function expectNoReuse(b: MiniBroker): void {
  const bySeq = new Map<string, string>()
  for (const m of b.received) {
    const payload = JSON.parse(m.payload) as unknown[]
    for (const r of payload as { seq: number }[]) {
      const key = `${m.deviceId}/${r.seq}`
      const text = JSON.stringify(r)
      expect(bySeq.get(key) ?? text, `seq ${key} reused`).toBe(text)
      bySeq.set(key, text)
    }
  }
}

describe('simulate against a gateway', () => {
  it('every generated reading is acknowledged; exactly the injected faults come back as device errors', async () => {
    const b = await broker()
    const sim = simulate({ gateway: b.url, count: 3, rate: 10, ecg: true, faultRate: 0.05, nibpIntervalS: 1, stateDir: tempDir(), durationS: 2.5, seed: 7 })
    const final = await sim.finished
    expect(final.monitors).toBe(3)
    // Readings come on wall-clock timers, so how many depends on the machine's load (≈ 3 × 25 × 2.5 when
    // quiet): ask for some from every monitor, not for a rate — what matters is that each is acknowledged.
    expect(final.generated).toBeGreaterThan(3 * 10)
    expect([final.acked, final.sent, final.inFlight, final.queued, final.dropped]).toEqual([final.generated, final.generated, 0, 0, 0])
    expect(final.faults).toBeGreaterThan(0)
    expect(final.deviceErrors).toBe(final.faults)
    // The broker judged them with the gateway's validator: rejections are the faults, code for code.
    expect(b.rejected).toHaveLength(final.faults)
    const codes: Record<string, number> = {}
    for (const r of b.rejected) codes[r.code] = (codes[r.code] ?? 0) + 1
    expect(final.errorsByCode).toEqual(codes)
    expect(Object.keys(codes).every((c) => Object.values(FAULT_CODES).includes(c as never))).toBe(true)
    for (const d of DEVICES.slice(0, 3)) {
      const ok = stored(b, d.deviceId)
      const bad = b.rejected.filter((r) => r.deviceId === d.deviceId).map((r) => r.seq!)
      expect(increasing(ok)).toBe(true)
      // A fresh device counts from 0, without gaps: each seq was either stored or quarantined.
      expect([...ok, ...bad].sort((x, y) => x - y)).toEqual(Array.from({ length: ok.length + bad.length }, (_, i) => i))
    }
    const types = new Set([...b.stored.values()].flat().map((r) => r.type))
    expect([...types].sort()).toEqual(['body_temp', 'bp_diastolic', 'bp_systolic', 'ecg', 'heart_rate', 'resp_rate', 'spo2'])
    expect(b.stored.has('bed-04')).toBe(false) // --count 3
  })

  it('a restarted simulation continues above every seq it used before', async () => {
    const b = await broker()
    const stateDir = tempDir()
    const first = await simulate({ gateway: b.url, count: 2, rate: 20, stateDir, durationS: 0.6, seed: 1 }).finished
    const before = new Map(DEVICES.slice(0, 2).map((d) => [d.deviceId, Math.max(...stored(b, d.deviceId))]))
    const second = await simulate({ gateway: b.url, count: 2, rate: 20, stateDir, durationS: 0.6, seed: 1 }).finished
    for (const d of DEVICES.slice(0, 2)) {
      const all = stored(b, d.deviceId)
      expect(increasing(all)).toBe(true)
      expect(all.length).toBe(first.devices.find((x) => x.deviceId === d.deviceId)!.acked + second.devices.find((x) => x.deviceId === d.deviceId)!.acked)
      expect(all.filter((s) => s > before.get(d.deviceId)!).length).toBeGreaterThan(0)
    }
    expectNoReuse(b)
  })

  it('rides out a gateway restart: readings queue, then drain in order, no seq reused', async () => {
    const b = await broker()
    const sim = simulate({ gateway: b.url, count: 2, rate: 20, stateDir: tempDir(), seed: 3 })
    await waitUntil(() => sim.stats().acked > 20, 'traffic')
    await b.restart(1000)
    await waitUntil(() => sim.stats().online === 2 && sim.stats().queued === 0, 'reconnect and drain', 15_000)
    const final = await sim.stop()
    expect(final.reconnects).toBeGreaterThanOrEqual(2)
    expect(final.dropped).toBe(0)
    expect(final.acked).toBe(final.generated)
    for (const d of DEVICES.slice(0, 2)) {
      const seqs = stored(b, d.deviceId)
      expect(increasing(seqs)).toBe(true) // first copies arrived in seq order
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i)) // none lost
    }
    expect([...b.stored.values()].flat().length).toBe(final.generated)
    expectNoReuse(b)
  })

  it('keeps a bounded outbox while the gateway is unreachable: drops the oldest, counts them, drains the rest', async () => {
    const probe = await startMiniBroker({ devices: SECRETS })
    const port = probe.port
    await probe.close() // nothing listens there now
    const sim = simulate({ gateway: `mqtt://127.0.0.1:${port}`, count: 1, rate: 50, queueLimit: 10, maxInflight: 2, stateDir: tempDir(), seed: 5 })
    await waitUntil(() => sim.stats().dropped > 0, 'drops')
    const b = await broker(port)
    await waitUntil(() => sim.stats().online === 1, 'connection', 10_000)
    const final = await sim.stop()
    expect(final.dropped).toBeGreaterThan(0)
    expect(final.acked + final.dropped).toBe(final.generated)
    const seqs = stored(b, 'bed-01')
    expect(increasing(seqs)).toBe(true)
    expect(seqs.length).toBe(final.acked)
    expect(Math.max(...seqs) + 1).toBe(final.generated) // the newest survived; the gaps are the dropped oldest
  })

  it('gives up on a device whose credentials are refused, and says so', async () => {
    const b = await broker()
    const sim = simulate({ gateway: b.url, devices: [{ deviceId: 'bed-01', secret: 'wrong' }, DEVICES[1]!], rate: 10, stateDir: tempDir() })
    await waitUntil(() => sim.stats().failed === 1 && sim.stats().online === 1, 'one failed, one online')
    const s = sim.stats().devices.find((d) => d.deviceId === 'bed-01')!
    expect(s.failed).toMatch(/Bad username or password/)
    await sim.stop()
  })

  it('gives up on a device the gateway stops accepting mid-run (secret rotated, device removed)', async () => {
    const secrets: Record<string, string> = { ...SECRETS }
    const b = await startMiniBroker({ devices: secrets })
    cleanup.push(() => b.close())
    const sim = simulate({ gateway: b.url, count: 2, rate: 10, stateDir: tempDir() })
    await waitUntil(() => sim.stats().acked > 0 && sim.stats().online === 2, 'traffic')
    delete secrets['bed-01']
    await b.restart()
    await waitUntil(() => sim.stats().failed === 1, 'bed-01 to give up')
    const generated = sim.stats().devices[0]!.generated
    await new Promise((r) => setTimeout(r, 300))
    expect(sim.stats().devices[0]!.generated).toBe(generated) // it stopped measuring
    await waitUntil(() => sim.stats().online === 1, 'bed-02 back online')
  })

  it('stops by itself when every monitor is refused', async () => {
    const b = await broker()
    const sim = simulate({ gateway: b.url, devices: DEVICES.map((d) => ({ ...d, secret: 'wrong' })), stateDir: tempDir() })
    const final = await sim.finished
    expect([final.failed, final.monitors, final.acked]).toEqual([4, 4, 0])
  })
})

describe('devices simulate (CLI)', () => {
  it('explains when the credentials file has fewer devices than --count', async () => {
    const dir = tempDir()
    const creds = join(dir, 'devices.json')
    writeFileSync(creds, JSON.stringify({ devices: DEVICES.slice(0, 2) }))
    const err = await devicesCommand()
      .exitOverride()
      .parseAsync(['simulate', '--credentials', creds, '--count', '20', '--state-dir', dir], { from: 'user' })
      .catch((e: unknown) => e)
    expect(isCareLedgerError(err, 'INVALID_ARGUMENT')).toBe(true)
    expect((err as Error).message).toMatch(/--count 20 .* lists only 2/)
  })

  it('runs as a process: summaries on stdout, JSON logs on stderr, clean exit on SIGINT', async () => {
    const b = await broker()
    const dir = tempDir()
    const creds = join(dir, 'devices.json')
    writeFileSync(creds, JSON.stringify({ devices: DEVICES }))
    const cli = new URL('../../devices/cli.ts', import.meta.url).pathname
    const code = `const { devicesCommand } = await import(${JSON.stringify(cli)}); await devicesCommand().parseAsync(process.argv.slice(1), { from: 'user' })`
    const child = spawn(process.execPath, ['--input-type=module', '-e', code, 'simulate', '--gateway', b.url, '--credentials', creds, '--count', '2', '--rate', '5', '--state-dir', join(dir, 'state'), '--summary-interval', '0.5', '--fault-rate', '0.1'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d))
    child.stderr.on('data', (d: Buffer) => (err += d))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)))
    cleanup.push(() => void child.kill('SIGKILL'))
    await waitUntil(() => /sim 00:00:0\d \| online 2\/2 .*acked [1-9]/.test(out), 'a summary line with acknowledged readings', 15_000)
    child.kill('SIGINT')
    expect(await exited).toBe(0)
    const final = out.trim().split('\n').at(-1)!
    expect(final).toMatch(/^final \d\d:\d\d:\d\d \| online 0\/2 \| sent (\d+) acked \1 in-flight 0 queued 0 dropped 0 \| device errors/)
    const logs = err.trim().split('\n').map((l) => JSON.parse(l) as { msg: string })
    expect(logs.map((l) => l.msg)).toContain('simulation stopped')
  })
})
