/**
 * The gateway process runs its modules stripped in advance (gateway/js-cache.ts, issue 11): Node's
 * TypeScript stripper never loads in it. A real `gateway start` (which re-executes itself).
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { prepareJsCache } from '../../gateway/js-cache.ts'
import { GatewayProcess, tempDataDir } from '../helpers/gateway-process.ts'
import { testAuthorityFile } from '../helpers/backoffice.ts'

const dirs: Array<{ cleanup: () => void }> = []
afterAll(() => {
  for (const d of dirs) d.cleanup()
})

it('strips every gateway module into a private directory, keeping each line where it was', () => {
  const dir = prepareJsCache()!
  try {
    expect(dir).toBeTruthy()
    const src = readFileSync(new URL('../../gateway/seal/sealer.ts', import.meta.url), 'utf8')
    const js = readFileSync(join(dir, 'gateway/seal/sealer.ts.js'), 'utf8')
    expect(js.split('\n').length).toBe(src.split('\n').length)
    expect(js).not.toContain('Database.Database')
    expect(existsSync(join(dir, 'bin/careledger.ts.js'))).toBe(true)
    expect(existsSync(join(dir, 'shared/crypto/envelope.ts.js'))).toBe(true)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

it('a running gateway has its own stripped modules, removed when it stops', async () => {
  const data = tempDataDir('js-cache')
  const keys = tempDataDir('js-cache-authority')
  dirs.push(data, keys)
  const gw = await GatewayProcess.start({ dataDir: data.dir, args: ['--mqtts-port', '0'], env: { CARELEDGER_ABE_PUBLIC_KEY: testAuthorityFile(keys.dir).mpkFile }, readyTimeoutMs: 60_000 })
  const mine = () => readdirSync(tmpdir()).filter((n) => n.startsWith(`careledger-gw-js-${gw.pid}-`))
  const running = mine()
  expect(running).toHaveLength(1)
  expect(existsSync(join(tmpdir(), running[0]!, 'gateway/runtime.ts.js'))).toBe(true)
  const health = (await (await fetch(`${gw.httpUrl}/healthz`)).json()) as { status: string }
  expect(health.status).toBe('ok')
  await gw.stop()
  expect(mine()).toEqual([])
})
