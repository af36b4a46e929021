/**
 * Registration while the gateway runs, and the outbox's one setting of its own:
 *
 *   - a gateway that started without a cloud seals and keeps its batches; `careledger gateway
 *     register` while it runs makes the back office ship them at its next pass — no restart;
 *   - `careledger gateway register` before the first start needs (and creates) only the signing
 *     key — never a development attribute authority; a gateway that is on the development
 *     authority warns at every start;
 *   - CARELEDGER_SYNC_BACKOFF_MAX_S (the cap of the outbox's jittered backoff) is validated at
 *     start, naming the variable.
 *
 * A real cloud process, real gateway processes, a real device over MQTT.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { openGatewayDb } from '../../gateway/store/db.ts'
import { DeviceStore } from '../../gateway/store/devices.ts'
import { CloudProcess, careledger } from '../helpers/cloud-process.ts'
import { connectDevice, GatewayProcess, tempDataDir } from '../helpers/gateway-process.ts'
import { healthOf, metric, metricsOf, openReadonly, testAuthorityFile, waitFor } from '../helpers/backoffice.ts'

const dirs = { cloud: tempDataDir('register-cloud'), authority: tempDataDir('register-authority') }
const { mpkFile } = testAuthorityFile(dirs.authority.dir)
let cloud: CloudProcess | undefined
const pending = (m: string) => metric(m, 'careledger_gateway_outbox_depth') ?? NaN

beforeAll(async () => {
  cloud = await CloudProcess.start({ dataDir: dirs.cloud.dir, args: ['--block-interval-s', '0.5', '--verify-interval-s', '0'], env: { CARELEDGER_LOG_LEVEL: 'info' } })
})

afterAll(async () => {
  await cloud?.kill('SIGKILL')
  for (const d of Object.values(dirs)) d.cleanup()
})

it('starts shipping when `careledger gateway register` runs while the gateway is up (no restart)', async () => {
  const c = cloud!
  const dir = tempDataDir('offline-late')
  try {
    const env = { CARELEDGER_ABE_PUBLIC_KEY: mpkFile, CARELEDGER_SYNC_BACKOFF_MAX_S: '1' }
    const { db: setup } = openGatewayDb(dir.dir)
    const cred = { deviceId: 'late-1', secret: new DeviceStore(setup).add('late-1', 'P-late').secret }
    setup.close()
    const late = await GatewayProcess.start({ dataDir: dir.dir, args: ['--mqtts-port', '0', '--seal-interval-s', '1'], env })
    try {
      const dev = await connectDevice(late.mqttUrl, cred, { subscribe: false })
      for (let seq = 1; seq <= 5; seq++) await dev.publish({ seq, ts: Date.now(), type: 'heart_rate', unit: '/min', value: 70 })
      await dev.end()
      // Not registered: sealed and kept.
      await waitFor('a batch waiting in the outbox', async () => pending(await metricsOf(late.httpUrl)) >= 1)
      expect((await healthOf(late.httpUrl)).components.backoffice.cloud).toBeNull()
      const invite = JSON.parse((await careledger(['cloud', 'gateway', 'invite', '--name', 'ward-late', '--json', '--data', dirs.cloud.dir])).stdout).token as string
      const reg = await careledger(['gateway', 'register', '--cloud', c.url, '--token', invite, '--name', 'ward-late', '--data', dir.dir], env)
      expect(reg.code, reg.stderr).toBe(0)
      await waitFor('the outbox shipped after registration', async () => pending(await metricsOf(late.httpUrl)) === 0, 15_000)
      expect((await healthOf(late.httpUrl)).components.backoffice.cloud).toBe(new URL(c.url).origin)
      const ldb = openReadonly(dir.dir)
      try {
        expect(ldb.prepare('SELECT count(*) FROM batches WHERE record_id IS NULL').pluck().get()).toBe(0)
      } finally {
        ldb.close()
      }
    } finally {
      await late.stop()
    }
  } finally {
    dir.cleanup()
  }
})

it('registers before the first start without creating an attribute authority; the gateway then ships under that identity', async () => {
  const c = cloud!
  const dir = tempDataDir('register-first')
  try {
    const invite = JSON.parse((await careledger(['cloud', 'gateway', 'invite', '--name', 'ward-first', '--json', '--data', dirs.cloud.dir])).stdout).token as string
    // No CARELEDGER_ABE_PUBLIC_KEY here: registration needs only the gateway's signing key.
    const reg = await careledger(['gateway', 'register', '--cloud', c.url, '--token', invite, '--name', 'ward-first', '--data', dir.dir], { CARELEDGER_ABE_PUBLIC_KEY: '' })
    expect(reg.code, reg.stderr).toBe(0)
    expect(existsSync(join(dir.dir, 'dev-authority'))).toBe(false)
    expect(existsSync(join(dir.dir, 'keys', 'abe-master-public.key'))).toBe(false)
    const gatewayId = reg.stdout.match(/registered gateway ([0-9a-f]{16})/)![1]
    // `gateway identity` right away, still without the authority key in this shell: id and key, and what it does not know.
    const who = await careledger(['gateway', 'identity', '--data', dir.dir], { CARELEDGER_ABE_PUBLIC_KEY: '' })
    expect(who.code, who.stderr).toBe(0)
    expect(who.stdout).toMatch(new RegExp(`^gateway ${gatewayId}\\npublic key [0-9a-f]{64}\\nauthority \\(unknown here`))
    const { db: setup } = openGatewayDb(dir.dir)
    const cred = { deviceId: 'first-1', secret: new DeviceStore(setup).add('first-1', 'P-first').secret }
    setup.close()
    const env = { CARELEDGER_ABE_PUBLIC_KEY: mpkFile, CARELEDGER_SYNC_BACKOFF_MAX_S: '1' }
    const g = await GatewayProcess.start({ dataDir: dir.dir, args: ['--mqtts-port', '0', '--seal-interval-s', '1'], env })
    try {
      expect(g.logs.some((l) => l.event === 'dev_authority_created' || l.event === 'dev_authority_in_use')).toBe(false)
      const dev = await connectDevice(g.mqttUrl, cred, { subscribe: false })
      await dev.publish({ seq: 1, ts: Date.now(), type: 'spo2', unit: '%', value: 98 })
      await dev.end()
      await waitFor('shipped', async () => {
        const h = await healthOf(g.httpUrl)
        return h.components.backoffice.gatewayId === gatewayId && h.components.backoffice.lastSyncAt !== null && h.components.backoffice.outboxPending === 0
      }, 15_000)
    } finally {
      await g.stop()
    }
  } finally {
    dir.cleanup()
  }
})

it('a gateway left on the development authority says so at every start, not only the first', async () => {
  const dir = tempDataDir('register-dev')
  try {
    const g = await GatewayProcess.start({ dataDir: dir.dir, args: ['--mqtts-port', '0'], env: { CARELEDGER_ABE_PUBLIC_KEY: '' } })
    try {
      expect(g.logs.find((l) => l.event === 'dev_authority_created')?.level).toBe(40)
      await g.restart()
      const again = g.logs.filter((l) => l.event === 'dev_authority_in_use')
      expect(again).toHaveLength(1)
      expect(again[0]!.level).toBe(40)
      expect(again[0]!.msg).toMatch(/DEVELOPMENT MODE.*master secret is on this gateway/)
    } finally {
      await g.stop()
    }
  } finally {
    dir.cleanup()
  }
})

it('refuses to start with an unusable CARELEDGER_SYNC_BACKOFF_MAX_S, naming the variable', async () => {
  const fresh = tempDataDir('offline-badenv')
  const r = await careledger(['gateway', 'start', '--data', fresh.dir, '--mqtt-port', '0', '--mqtts-port', '0', '--http-port', '0'], { CARELEDGER_ABE_PUBLIC_KEY: mpkFile, CARELEDGER_SYNC_BACKOFF_MAX_S: 'soon' })
  expect(r.code).not.toBe(0)
  fresh.cleanup()
  expect(r.stderr + r.stdout).toContain('CARELEDGER_SYNC_BACKOFF_MAX_S="soon"')
})
