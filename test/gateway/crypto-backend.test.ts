/**
 * The pairing backend in a real gateway process (issue #13): chosen by configuration, loaded by the
 * back office that seals, its WebAssembly memory reported for the memory budget. That envelopes a
 * gateway seals with mcl open with noble is shown by seal.test.ts (the gateway runs under the
 * default `auto`, the test decrypts in-process with noble) and, primitive by primitive, by
 * test/crypto/backends.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { GatewayProcess, careledger, tempDataDir } from '../helpers/gateway-process.ts'
import { metric, metricsOf, testAuthorityFile, waitFor } from '../helpers/backoffice.ts'
import { MCL_PLATFORMS } from '../../shared/crypto/abe/select.ts'

const platform = `${process.platform}-${process.arch}`
const dirs: { cleanup: () => void }[] = []
afterAll(() => dirs.forEach((d) => d.cleanup()))

/** The back office's WebAssembly gauge once it satisfies `ok` (0 is a value, hence the box). */
const wasmGauge = async (gw: GatewayProcess, ok: (v: number) => boolean): Promise<number> =>
  (
    await waitFor('the WebAssembly gauge', async () => {
      const v = metric(await metricsOf(gw.httpUrl), 'careledger_gateway_backoffice_wasm_bytes')
      return v === undefined || !ok(v) ? null : { v }
    }, 60_000)
  ).v

/** The back office logs its backend once loaded (it loads while the gateway starts). */
const backendLine = (gw: GatewayProcess) => waitFor('the crypto_backend log line', async () => gw.logs.find((l) => l.event === 'crypto_backend') ?? null, 60_000)

async function startWith(env: Record<string, string>): Promise<GatewayProcess> {
  const data = tempDataDir('crypto-backend')
  dirs.push(data)
  const { mpkFile } = testAuthorityFile(data.dir)
  return GatewayProcess.start({ dataDir: data.dir, env: { CARELEDGER_ABE_PUBLIC_KEY: mpkFile, ...env }, readyTimeoutMs: 60_000 })
}

describe('pairing backend of the gateway', () => {
  it('auto: the back office loads mcl-wasm (on linux-x64/arm64), logs why, and reports its WebAssembly memory', async () => {
    const gw = await startWith({})
    try {
      const expected = MCL_PLATFORMS.includes(platform) ? 'mcl' : 'noble'
      expect(await backendLine(gw)).toMatchObject({ backend: expected, requested: 'auto', thread: 'backoffice' })
      if (expected === 'mcl') expect(await wasmGauge(gw, (v) => v > 0)).toBeGreaterThanOrEqual(2 * 2 ** 20)
      else expect(await wasmGauge(gw, () => true)).toBe(0)
    } finally {
      await gw.stop()
    }
  })

  it('noble when configured (CARELEDGER_CRYPTO_BACKEND=noble): no WebAssembly memory', async () => {
    const gw = await startWith({ CARELEDGER_CRYPTO_BACKEND: 'noble' })
    try {
      expect(await backendLine(gw)).toMatchObject({ backend: 'noble', requested: 'noble', reason: 'configured' })
      expect(await wasmGauge(gw, () => true)).toBe(0)
    } finally {
      await gw.stop()
    }
  })

  it('an unknown backend is refused before anything starts, naming the variable or the flag', async () => {
    const byEnv = await careledger(['gateway', 'config'], { CARELEDGER_CRYPTO_BACKEND: 'fastest' })
    expect(byEnv.code).toBe(2)
    expect(byEnv.stderr).toMatch(/^error INVALID_ARGUMENT: CARELEDGER_CRYPTO_BACKEND="fastest": the pairing backend must be one of auto, noble, mcl/)
    const byFlag = await careledger(['--crypto-backend', 'blst', 'gateway', 'config'])
    expect(byFlag.code).toBe(2)
    expect(byFlag.stderr).toMatch(/^error INVALID_ARGUMENT: --crypto-backend="blst"/)
  })
})
