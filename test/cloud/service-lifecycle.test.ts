/**
 * The cloud as a process on its embedded defaults: keys created on first start (secrets 0600)
 * and kept across restarts; development mode (a regulator key pair generated, with a loud
 * warning) versus a configured regulator key; a pinned chameleon key that refuses to change;
 * configuration errors naming their source; HTTPS; a graceful SIGTERM that seals what is pending.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'node:https'
import { bytesToHex } from '@noble/hashes/utils.js'
import { chameleonKeyGen, decodeChameleonPublicKey, encodeChameleonPublicKey } from '../../shared/crypto/chameleon.ts'
import { signingPublicKey } from '../../shared/crypto/sign.ts'
import { ensureServerCertificate } from '../../gateway/tls.ts'
import { batchBody, sealChain, signedPost, testGateway, testStream } from '../helpers/cloud-batches.ts'
import { CloudProcess, careledger, freePorts, json, tempDataDir } from '../helpers/cloud-process.ts'
import { readTestSecret } from '../helpers/test-keys.ts'
import { isSealedSecret } from '../../shared/crypto/sealed-secret.ts'

const dirs: Array<ReturnType<typeof tempDataDir>> = []
const procs: CloudProcess[] = []
const temp = (label: string) => {
  const d = tempDataDir(label)
  dirs.push(d)
  return d.dir
}
const start = async (o: Parameters<typeof CloudProcess.start>[0]) => {
  const p = await CloudProcess.start(o)
  procs.push(p)
  return p
}
const mode = (path: string) => statSync(path).mode & 0o777

afterEach(async () => {
  for (const p of procs.splice(0)) await p.kill('SIGKILL')
  for (const d of dirs.splice(0)) d.cleanup()
})

async function registerVia(baseUrl: string, dataDir: string, name: string) {
  const invited = await careledger(['cloud', 'gateway', 'invite', '--name', name, '--json', '--data', dataDir])
  const gw = testGateway()
  const res = await fetch(`${baseUrl}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: JSON.parse(invited.stdout).token, publicKey: bytesToHex(gw.publicKey), name }) })
  expect(res.status).toBe(201)
  return { gw, body: await json(res) }
}

describe('keys', () => {
  it('first start creates the block-signing key and, in development mode, a regulator key pair with a loud warning', async () => {
    const dir = temp('cloud-keys')
    const cloud = await start({ dataDir: dir })
    const keys = join(dir, 'keys')
    expect(isSealedSecret(new Uint8Array(readFileSync(join(keys, 'cloud-signing.key'))))).toBe(true)
    const sk = readTestSecret(join(keys, 'cloud-signing.key'))
    expect(sk.length).toBe(32)
    expect(mode(join(keys, 'cloud-signing.key'))).toBe(0o600)
    expect(Buffer.compare(readFileSync(join(keys, 'cloud-signing.pub')), signingPublicKey(sk))).toBe(0)
    expect(mode(join(dir, 'regulator', 'chameleon-secret.key'))).toBe(0o600)
    const chameleonPk = decodeChameleonPublicKey(readFileSync(join(keys, 'chameleon-public.key')))
    const warning = cloud.logs.find((l) => l.event === 'development_regulator')!
    expect(warning.level).toBe(40)
    expect(warning.msg).toMatch(/DEVELOPMENT MODE.*trapdoor.*Move it to the regulator/)
    expect(cloud.logs.find((l) => l.event === 'cloud_ready')).toMatchObject({ developmentRegulator: true })

    const { body } = await registerVia(cloud.url, dir, 'ward-k')
    expect(body.cloud).toEqual({ signingKey: bytesToHex(signingPublicKey(sk)), chameleonKey: bytesToHex(chameleonPk) })

    // A restart keeps every key.
    await cloud.restart()
    expect(Buffer.compare(readTestSecret(join(keys, 'cloud-signing.key')), sk)).toBe(0)
    const { body: again } = await registerVia(cloud.url, dir, 'ward-k2')
    expect(again.cloud).toEqual(body.cloud)
    const printed = await careledger(['cloud', 'keys', '--json', '--data', dir])
    expect(JSON.parse(printed.stdout)).toMatchObject({ signingKey: body.cloud.signingKey, chameleonKey: body.cloud.chameleonKey, developmentRegulator: true })
  })

  it('CARELEDGER_CHAMELEON_PUBLIC_KEY: the regulator key is used and pinned, no trapdoor on the host; another key later is refused', async () => {
    const dir = temp('cloud-regkey')
    const regulator = chameleonKeyGen()
    const file = join(temp('regulator'), 'chameleon-public.key')
    writeFileSync(file, encodeChameleonPublicKey(regulator.publicKey))
    const cloud = await start({ dataDir: dir, env: { CARELEDGER_CHAMELEON_PUBLIC_KEY: file } })
    expect(existsSync(join(dir, 'regulator'))).toBe(false)
    expect(cloud.logs.some((l) => l.event === 'development_regulator')).toBe(false)
    const { body } = await registerVia(cloud.url, dir, 'ward-r')
    expect(body.cloud.chameleonKey).toBe(bytesToHex(regulator.publicKey))
    await cloud.stop()

    const other = join(temp('regulator2'), 'other.key')
    writeFileSync(other, encodeChameleonPublicKey(chameleonKeyGen().publicKey))
    await expect(start({ dataDir: dir, env: { CARELEDGER_CHAMELEON_PUBLIC_KEY: other } })).rejects.toThrow(/was built under chameleon key .* refusing to start/)
  })
})

describe('configuration', () => {
  it('a bad value names the variable or flag it came from', async () => {
    const bad = await careledger(['cloud', 'start', '--data', temp('cloud-cfg')], { CARELEDGER_CLOUD_PORT: 'eighty' })
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/error INVALID_ARGUMENT: invalid cloud configuration: CARELEDGER_CLOUD_PORT="eighty"/)
    const half = await careledger(['cloud', 'start', '--data', temp('cloud-cfg2'), '--tls-cert', '/nonexistent.pem'])
    expect(half.stderr).toMatch(/--tls-cert="\/nonexistent.pem": TLS needs both a certificate and a key/)
    const shown = await careledger(['cloud', 'config', '--json'], { CARELEDGER_CLOUD_BLOCK_INTERVAL_S: '5' })
    expect(JSON.parse(shown.stdout)).toMatchObject({ config: { chain: { blockIntervalMs: 5000 } }, sources: { 'chain.blockIntervalS': { kind: 'env', name: 'CARELEDGER_CLOUD_BLOCK_INTERVAL_S' } } })
  })

  it('serves HTTPS with CARELEDGER_CLOUD_TLS_CERT and _KEY', async () => {
    const tlsDir = temp('cloud-tls')
    const creds = await ensureServerCertificate(tlsDir)
    writeFileSync(join(tlsDir, 'cert.pem'), creds.cert)
    writeFileSync(join(tlsDir, 'key.pem'), creds.key, { mode: 0o600 })
    const [port] = await freePorts(1)
    const cloud = await start({ dataDir: temp('cloud-https'), port, env: { CARELEDGER_CLOUD_TLS_CERT: join(tlsDir, 'cert.pem'), CARELEDGER_CLOUD_TLS_KEY: join(tlsDir, 'key.pem') } })
    expect(cloud.logs.find((l) => l.event === 'cloud_ready')!.url).toBe(`https://127.0.0.1:${port}`)
    const body = await new Promise<string>((ok, fail) => {
      const req = request({ host: '127.0.0.1', port, path: '/healthz', ca: creds.caPem }, (res) => {
        let s = ''
        res.setEncoding('utf8').on('data', (c: string) => (s += c)).on('end', () => ok(s))
      })
      req.on('error', fail).end()
    })
    expect(JSON.parse(body)).toMatchObject({ status: 'ok', db: true })
  })
})

describe('stopping', () => {
  it('SIGTERM stops gracefully: exit 0, pending records sealed into a block first', async () => {
    const dir = temp('cloud-stop')
    const cloud = await start({ dataDir: dir, args: ['--block-interval-s', '3600', '--verify-interval-s', '0'] })
    const { gw } = await registerVia(cloud.url, dir, 'ward-s')
    const [b] = await sealChain(testStream(gw), 1)
    expect((await signedPost(cloud.url, gw, '/v1/batches', await batchBody(b!))).res.status).toBe(201)
    expect((await json(fetch(`${cloud.url}/healthz`))).pendingRecords).toBe(1)
    expect(await cloud.stop()).toEqual({ code: 0, signal: null })
    expect(cloud.logs.at(-1)).toMatchObject({ event: 'cloud_stopped' })
    await cloud.restart()
    expect(await json(fetch(`${cloud.url}/healthz`))).toMatchObject({ height: 0, records: 1, pendingRecords: 0 })
  })
})
