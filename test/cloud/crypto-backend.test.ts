/**
 * The cloud chooses its pairing backend like every process (issue 13): `auto` takes mcl-wasm on
 * linux-x64/arm64 once its self-test passes, CARELEDGER_CRYPTO_BACKEND=noble (or the global
 * --crypto-backend flag) forces the reference, and cloud_ready says which and why.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { CloudProcess, tempDataDir } from '../helpers/cloud-process.ts'

const MCL_PLATFORMS = ['linux-x64', 'linux-arm64']
const platform = `${process.platform}-${process.arch}`
const dirs: Array<ReturnType<typeof tempDataDir>> = []
const procs: CloudProcess[] = []
afterEach(async () => {
  for (const p of procs.splice(0)) await p.kill('SIGKILL')
  for (const d of dirs.splice(0)) d.cleanup()
})

const startWith = async (env: Record<string, string>): Promise<CloudProcess> => {
  const d = tempDataDir('cloud-crypto-backend')
  dirs.push(d)
  const p = await CloudProcess.start({ dataDir: d.dir, env, args: ['--verify-interval-s', '0'], readyTimeoutMs: 60_000 })
  procs.push(p)
  return p
}
const readyCrypto = (p: CloudProcess): unknown => p.logs.find((l) => l.event === 'cloud_ready')!.crypto

describe('pairing backend of the cloud', () => {
  it('auto: mcl-wasm on linux-x64/arm64 (noble elsewhere), named in cloud_ready', async () => {
    const cloud = await startWith({})
    expect(readyCrypto(cloud)).toMatchObject({ backend: MCL_PLATFORMS.includes(platform) ? 'mcl' : 'noble', requested: 'auto' })
  })

  it('CARELEDGER_CRYPTO_BACKEND=noble: the reference, "configured"', async () => {
    const cloud = await startWith({ CARELEDGER_CRYPTO_BACKEND: 'noble' })
    expect(readyCrypto(cloud)).toMatchObject({ backend: 'noble', requested: 'noble', reason: 'configured' })
  })
})
