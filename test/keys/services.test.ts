/**
 * The services' secrets at rest (issue 8 items 12 and 13), with real gateway and cloud processes:
 *
 *   - a fresh gateway or cloud without a passphrase refuses to start, creating nothing;
 *   - with one (here through CARELEDGER_PASSPHRASE_FD, as a service manager hands it over) every
 *     secret it creates is sealed and 0600 — one scrypt per process: the files share one salt —
 *     and a restart with a wrong passphrase is refused;
 *   - a data directory from before sealed secrets still starts (with warnings); `careledger keys
 *     encrypt` migrates it and it keeps its identity;
 *   - the gateway pins its attribute authority's id: a swapped master public key stops it with a
 *     clear error; CARELEDGER_ABE_AUTHORITY_ID is the deliberate way to move;
 *   - cloud.db and gateway.db (and -wal, -shm) are 0600 even in a directory that already existed,
 *     and narrowed when an older version left them wider.
 */
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { encodeMasterPublicKey } from '../../shared/crypto/abe/codec.ts'
import { setup } from '../../shared/crypto/abe/fabeo.ts'
import { isSealedSecret, readSealedHeader } from '../../shared/crypto/sealed-secret.ts'
import { errorOf } from '../helpers/errors.ts'
import { loadIdentity } from '../../gateway/identity.ts'
import { openGatewayDb } from '../../gateway/store/db.ts'
import { openCloudDb } from '../../cloud/store/db.ts'
import { Keyring } from '../../shared/cli/secret-files.ts'
import { givenPassphrase } from '../../shared/cli/passphrase.ts'
import { BIN, careledger, freePorts, GatewayProcess, REPO, type LogLine } from '../helpers/gateway-process.ts'
import { tempDirs } from '../helpers/temp-dirs.ts'
import { NO_PASSPHRASE } from '../helpers/test-passphrase.ts'
import { CloudProcess } from '../helpers/cloud-process.ts'

const PASS = 'the gateway passphrase from a balena device variable'
/** Ready timeout: these start gateways on a machine shared by many test workers. */
const SLOW = 90_000
const NONE = NO_PASSPHRASE
const mode = (path: string): number => statSync(path).mode & 0o777
const sealed = (path: string): boolean => isSealedSecret(new Uint8Array(readFileSync(path)))
const temp = tempDirs()

function authorityFile(dir: string, name: string): { file: string; id: string } {
  const msk = setup()
  const file = join(dir, `${name}.key`)
  writeFileSync(file, encodeMasterPublicKey(msk.mpk))
  return { file, id: Buffer.from(msk.mpk.id).toString('hex') }
}

/** `careledger gateway start` with the passphrase on file descriptor 3 (CARELEDGER_PASSPHRASE_FD=3); resolves with its log once ready. */
async function startWithFd(dataDir: string, passphrase: string, env: Record<string, string>): Promise<{ logs: LogLine[]; stderr(): string; stop(): Promise<void> }> {
  const [mqtt, mqtts, http] = await freePorts(3)
  const child = spawn(process.execPath, [BIN, 'gateway', 'start', '--data', dataDir, '--mqtt-host', '127.0.0.1', '--mqtt-port', String(mqtt), '--mqtts-port', String(mqtts), '--http-port', String(http)], {
    cwd: REPO,
    env: { ...process.env, ...NONE, ...env, CARELEDGER_PASSPHRASE_FD: '3' },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  })
  const fd3 = child.stdio[3] as import('node:net').Socket
  fd3.on('error', () => {}) // the gateway closes its end once it has read the passphrase
  fd3.end(`${passphrase}\n`)
  const logs: LogLine[] = []
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()))
  await new Promise<void>((ok, fail) => {
    let buf = ''
    const timer = setTimeout(() => fail(new Error(`gateway not ready in 60 s: ${stderr}`)), 60_000)
    child.once('exit', (code) => fail(new Error(`gateway exited (${code}): ${stderr}`)))
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      buf += c
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = JSON.parse(buf.slice(0, nl)) as LogLine
        buf = buf.slice(nl + 1)
        logs.push(line)
        if (line.event === 'gateway_ready') {
          clearTimeout(timer)
          ok()
        }
      }
    })
  })
  return {
    logs,
    stderr: () => stderr,
    stop: async () => {
      process.kill(child.pid!, 'SIGTERM')
      await exited
    },
  }
}

/** From the back office's start line, logged before `gateway_ready`. */
const gatewayIdOf = (logs: readonly LogLine[]): unknown => logs.find((l) => l.event === 'backoffice_started')?.gatewayId

describe('the gateway seals its secrets under its passphrase', () => {
  it('refuses to start on a fresh data directory without a passphrase, creating nothing', async () => {
    const dir = join(temp('gw-nopass'), 'data')
    await expect(GatewayProcess.start({ dataDir: dir, readyTimeoutMs: SLOW, env: NONE })).rejects.toThrow(/error INVALID_ARGUMENT: no passphrase for the gateway's keys: set CARELEDGER_PASSPHRASE_FILE/)
    expect(existsSync(dir)).toBe(false)
  })

  it('creates every secret sealed and 0600 from a passphrase on a file descriptor (one scrypt: one salt); a wrong one is refused', async () => {
    const dir = temp('gw-fd')
    const first = await startWithFd(dir, PASS, {})
    const id = gatewayIdOf(first.logs)
    // process.execve would close descriptor 3: the gateway keeps the passphrase and says it starts untuned.
    expect(first.stderr()).toMatch(/CARELEDGER_PASSPHRASE_FD=3 would not survive re-executing with the memory limits/)
    await first.stop()
    const secrets = ['keys/gateway.key', 'keys/pseudonym.key', 'tls/ca.key', 'tls/server.key', 'dev-authority/master-secret.key'].map((f) => join(dir, f))
    for (const f of secrets) {
      expect(sealed(f), f).toBe(true)
      expect(mode(f), f).toBe(0o600)
    }
    const salts = new Set(secrets.map((f) => Buffer.from(readSealedHeader(new Uint8Array(readFileSync(f))).salt).toString('hex')))
    expect(salts.size).toBe(1)
    expect(readSealedHeader(new Uint8Array(readFileSync(secrets[0]!))).label).toBe('gateway signing key (Ed25519 seed)')
    for (const f of ['gateway.db', 'gateway.db-wal', 'gateway.db-shm']) if (existsSync(join(dir, f))) expect(mode(join(dir, f)), f).toBe(0o600)

    // The same passphrase from the environment: the same gateway.
    const again = await GatewayProcess.start({ dataDir: dir, readyTimeoutMs: SLOW, env: { ...NONE, CARELEDGER_PASSPHRASE: PASS } })
    expect(gatewayIdOf(again.logs)).toBe(id)
    expect(again.logs.some((l) => l.event === 'unsealed_key_file')).toBe(false)
    await again.stop()

    await expect(GatewayProcess.start({ dataDir: dir, readyTimeoutMs: SLOW, env: { ...NONE, CARELEDGER_PASSPHRASE: 'not the passphrase' } })).rejects.toThrow(/error DECRYPTION_FAILED: .*: wrong passphrase for the sealed secret/)
  })

  it('runs a data directory from before sealed secrets (warning), and `careledger keys encrypt` migrates it keeping its identity', async () => {
    const dir = temp('gw-legacy')
    const authority = authorityFile(temp('gw-legacy-authority'), 'a')
    mkdirSync(join(dir, 'keys'), { recursive: true, mode: 0o700 })
    writeFileSync(join(dir, 'keys', 'gateway.key'), randomBytes(32), { mode: 0o600 })
    writeFileSync(join(dir, 'keys', 'pseudonym.key'), randomBytes(32), { mode: 0o600 })
    const env = { CARELEDGER_ABE_PUBLIC_KEY: authority.file }
    const legacy = await GatewayProcess.start({ dataDir: dir, readyTimeoutMs: SLOW, args: ['--mqtts-port', '0'], env: { ...NONE, ...env } })
    const id = gatewayIdOf(legacy.logs)
    await legacy.stop()
    const events = legacy.logs.filter((l) => l.level >= 40).map((l) => `${l.event}:${String(l.path ?? '')}`)
    expect(events).toContain('no_passphrase:')
    expect(events).toContain(`unsealed_key_file:${join(dir, 'keys', 'gateway.key')}`)
    expect(events).toContain(`unsealed_key_file:${join(dir, 'keys', 'pseudonym.key')}`)
    expect(legacy.logs.find((l) => l.event === 'unsealed_key_file')?.msg).toContain('careledger keys encrypt')

    const enc = await careledger(['keys', 'encrypt', join(dir, 'keys', 'gateway.key'), join(dir, 'keys', 'pseudonym.key')], { ...NONE, CARELEDGER_PASSPHRASE: PASS })
    expect(enc.code, enc.stderr).toBe(0)
    const migrated = await GatewayProcess.start({ dataDir: dir, readyTimeoutMs: SLOW, args: ['--mqtts-port', '0'], env: { ...NONE, ...env, CARELEDGER_PASSPHRASE: PASS } })
    expect(gatewayIdOf(migrated.logs)).toBe(id)
    expect(migrated.logs.filter((l) => l.level >= 40).map((l) => l.event)).not.toContain('unsealed_key_file')
    await migrated.stop()
  })
})

describe('the gateway pins its attribute authority (item 13)', () => {
  it('stops with a clear error when the master public key is swapped; CARELEDGER_ABE_AUTHORITY_ID moves it deliberately', async () => {
    const dir = temp('gw-pin')
    const keys = temp('gw-pin-authorities')
    const a = authorityFile(keys, 'a')
    const b = authorityFile(keys, 'b')
    const first = await GatewayProcess.start({ dataDir: dir, readyTimeoutMs: SLOW, args: ['--mqtts-port', '0'], env: { CARELEDGER_ABE_PUBLIC_KEY: a.file } })
    await first.stop()
    expect(readFileSync(join(dir, 'keys', 'abe-authority.id'), 'utf8')).toBe(`${a.id}\n`)
    expect((await careledger(['gateway', 'identity', '--data', dir], { CARELEDGER_ABE_PUBLIC_KEY: a.file })).stdout).toContain(`authority ${a.id}`)

    await expect(GatewayProcess.start({ dataDir: dir, readyTimeoutMs: SLOW, args: ['--mqtts-port', '0'], env: { CARELEDGER_ABE_PUBLIC_KEY: b.file } })).rejects.toThrow(
      new RegExp(`error INVALID_ARGUMENT: the attribute authority's public key changed: this gateway seals to authority ${a.id} .*but ${b.file} holds authority ${b.id}.*set CARELEDGER_ABE_AUTHORITY_ID=${b.id}`),
    )
    expect(readFileSync(join(dir, 'keys', 'abe-authority.id'), 'utf8')).toBe(`${a.id}\n`)

    const moved = await GatewayProcess.start({ dataDir: dir, readyTimeoutMs: SLOW, args: ['--mqtts-port', '0'], env: { CARELEDGER_ABE_PUBLIC_KEY: b.file, CARELEDGER_ABE_AUTHORITY_ID: b.id } })
    // Logged by the back office before the gateway is ready.
    expect(moved.logs.find((l) => l.event === 'authority_changed')).toMatchObject({ from: a.id, to: b.id })
    await moved.stop()
    expect(readFileSync(join(dir, 'keys', 'abe-authority.id'), 'utf8')).toBe(`${b.id}\n`)
  })

  it('refuses a key that is not the one CARELEDGER_ABE_AUTHORITY_ID names, and lets a gateway leave its development authority', () => {
    const keys = temp('pin-inprocess-authorities')
    const a = authorityFile(keys, 'a')
    const b = authorityFile(keys, 'b')
    const keyring = new Keyring(givenPassphrase(PASS), { params: { log2N: 10, r: 8, p: 1 } })
    const reasonOf = (f: () => unknown): unknown => errorOf(f)?.reason
    const fresh = temp('pin-inprocess')
    expect(reasonOf(() => loadIdentity(fresh, { keyring, env: { CARELEDGER_ABE_PUBLIC_KEY: b.file, CARELEDGER_ABE_AUTHORITY_ID: a.id } }))).toBe('AUTHORITY_MISMATCH')
    expect(() => loadIdentity(fresh, { keyring, env: { CARELEDGER_ABE_PUBLIC_KEY: b.file, CARELEDGER_ABE_AUTHORITY_ID: 'not-hex' } })).toThrow(/an authority id is 32 hex digits/)

    // Development authority first (nothing configured), then the clinic installs its authority: allowed, re-pinned.
    const dev = temp('pin-dev')
    const devId = Buffer.from(loadIdentity(dev, { keyring, env: {} }).mpk.id).toString('hex')
    expect(readFileSync(join(dev, 'keys', 'abe-authority.id'), 'utf8').trim()).toBe(devId)
    expect(sealed(join(dev, 'dev-authority', 'master-secret.key'))).toBe(true)
    expect(Buffer.from(loadIdentity(dev, { keyring, env: { CARELEDGER_ABE_PUBLIC_KEY: a.file } }).mpk.id).toString('hex')).toBe(a.id)
    expect(readFileSync(join(dev, 'keys', 'abe-authority.id'), 'utf8').trim()).toBe(a.id)
    // …but from the clinic's authority to another, only with CARELEDGER_ABE_AUTHORITY_ID.
    expect(reasonOf(() => loadIdentity(dev, { keyring, env: { CARELEDGER_ABE_PUBLIC_KEY: b.file } }))).toBe('AUTHORITY_CHANGED')
  })
})

describe('the cloud seals its secrets; databases are owner-only', () => {
  it('refuses a fresh data directory without a passphrase; with one, cloud.db is 0600 in an existing directory and the keys are sealed', async () => {
    const noPass = join(temp('cloud-nopass'), 'data')
    await expect(CloudProcess.start({ dataDir: noPass, readyTimeoutMs: SLOW, env: NONE })).rejects.toThrow(/error INVALID_ARGUMENT: no passphrase for the cloud's keys/)
    expect(existsSync(join(noPass, 'cloud.db'))).toBe(false)

    // The directory exists already (a Docker volume), with the usual 0755.
    const dir = temp('cloud-volume')
    chmodSync(dir, 0o755)
    const cloud = await CloudProcess.start({ dataDir: dir, readyTimeoutMs: SLOW, env: { ...NONE, CARELEDGER_PASSPHRASE: PASS } })
    await cloud.stop()
    for (const f of readdirSync(dir).filter((n) => n.startsWith('cloud.db'))) expect(mode(join(dir, f)), f).toBe(0o600)
    for (const f of ['keys/cloud-signing.key', 'regulator/chameleon-secret.key']) {
      expect(sealed(join(dir, f)), f).toBe(true)
      expect(mode(join(dir, f)), f).toBe(0o600)
    }
    // Public keys need no passphrase.
    const keys = await careledger(['cloud', 'keys', '--data', dir, '--json'], NONE)
    expect(keys.code, keys.stderr).toBe(0)
    expect(JSON.parse(keys.stdout)).toMatchObject({ developmentRegulator: true })
  })

  it('narrows a cloud.db or gateway.db an older version (or a restore) left 0644, with its -wal and -shm', () => {
    const c = temp('cloud-narrow')
    openCloudDb(join(c, 'cloud.db')).close()
    const g = temp('gateway-narrow')
    openGatewayDb(g).db.close()
    const files = [join(c, 'cloud.db'), join(g, 'gateway.db')]
    for (const f of files) for (const side of ['', '-wal', '-shm']) writeFileSync(f + side, side ? '' : readFileSync(f), { flag: 'a' })
    for (const f of files) for (const side of ['', '-wal', '-shm']) chmodSync(f + side, 0o644)
    openCloudDb(join(c, 'cloud.db')).close()
    openGatewayDb(g).db.close()
    for (const f of files) for (const side of ['', '-wal', '-shm']) if (existsSync(f + side)) expect(mode(f + side), f + side).toBe(0o600)
  })
})
