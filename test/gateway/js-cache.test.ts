/**
 * The gateway process runs its modules stripped in advance (gateway/js-cache.ts, issue 11): Node's
 * TypeScript stripper never loads in it. A real `gateway start` (which re-executes itself).
 */
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { prepareJsCache } from '../../gateway/js-cache.ts'
import { GatewayProcess, tempDataDir } from '../helpers/gateway-process.ts'
import { testAuthorityFile } from '../helpers/backoffice.ts'

const dirs: Array<{ cleanup: () => void }> = []
afterAll(() => {
  for (const d of dirs) d.cleanup()
})

it('strips every gateway module into a private directory, keeping each line where it was, and reuses it while the sources are unchanged', () => {
  const dir = prepareJsCache()!
  expect(dir).toBeTruthy()
  const st = statSync(dir)
  expect(st.uid).toBe(process.getuid!())
  expect(st.mode & 0o777).toBe(0o700)
  const src = readFileSync(new URL('../../gateway/seal/sealer.ts', import.meta.url), 'utf8')
  const js = readFileSync(join(dir, 'gateway/seal/sealer.ts.js'), 'utf8')
  expect(js.split('\n').length).toBe(src.split('\n').length)
  expect(js).not.toContain('Database.Database')
  expect(existsSync(join(dir, 'bin/careledger.ts.js'))).toBe(true)
  expect(existsSync(join(dir, 'shared/crypto/envelope.ts.js'))).toBe(true)
  expect(prepareJsCache()).toBe(dir)
})

it('a gateway started twice loads its modules from that directory', async () => {
  const data = tempDataDir('js-cache')
  const keys = tempDataDir('js-cache-authority')
  dirs.push(data, keys)
  const dir = prepareJsCache()!
  const gw = await GatewayProcess.start({ dataDir: data.dir, args: ['--mqtts-port', '0'], env: { CARELEDGER_ABE_PUBLIC_KEY: testAuthorityFile(keys.dir).mpkFile }, readyTimeoutMs: 60_000 })
  try {
    const environ = readFileSync(`/proc/${gw.pid}/environ`, 'utf8').split('\0')
    expect(environ).toContain(`CARELEDGER_GATEWAY_JS_CACHE=${dir}`)
    expect(readFileSync(`/proc/${gw.pid}/cmdline`, 'utf8')).toContain('js-cache-hook.mjs')
    const health = (await (await fetch(`${gw.httpUrl}/healthz`)).json()) as { status: string }
    expect(health.status).toBe('ok')
    await gw.restart()
    expect(readFileSync(`/proc/${gw.pid}/environ`, 'utf8').split('\0')).toContain(`CARELEDGER_GATEWAY_JS_CACHE=${dir}`)
  } finally {
    await gw.stop()
  }
})
