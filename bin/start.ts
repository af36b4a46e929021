/**
 * `careledger start` (`npm start`): the whole system on localhost with embedded defaults —
 * a cloud, one gateway registered to it and 20 simulated bedside monitors — as three child
 * processes, the same commands an operator would run by hand:
 *
 *   prepare:  authority keys → cloud token and gateway invitation → 20 enrolled monitors → gateway registered
 *   run:      careledger cloud start → careledger gateway start → careledger devices simulate
 *   stop:     Ctrl-C stops the monitors, then the gateway (it commits what is pending), then the cloud
 *
 * Everything lives under ./.careledger (CARELEDGER_HOME); running it again resumes where it stopped.
 *
 * Key files are sealed under a passphrase (docs/operations.md §Passphrases). So that nothing asks
 * for one, the first run writes a random DEVELOPMENT passphrase to .careledger/dev-passphrase and
 * hands it to every process as CARELEDGER_PASSPHRASE_FILE — unless a CARELEDGER_PASSPHRASE* variable
 * is already set. It sits beside the keys it opens: it protects nothing; production never does this.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, openSync, readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Command } from 'commander'
import { decodeMasterPublicKey, encodeMasterPublicKey, encodeMasterSecretKey, encodeUserKey } from '../shared/crypto/abe/codec.ts'
import { writeFileAtomic, writeKeyFile } from '../shared/cli/files.ts'
import { PASSPHRASE_ENV, PASSPHRASE_FD_ENV, PASSPHRASE_FILE_ENV, passphraseSource } from '../shared/cli/passphrase.ts'
import { Keyring } from '../shared/cli/secret-files.ts'
import { keyGen, setup } from '../shared/crypto/abe/fabeo.ts'
import { epochOf, keyAttributes } from '../shared/protocol/epoch.ts'
import { openGatewayDb } from '../gateway/store/db.ts'
import { DeviceStore } from '../gateway/store/devices.ts'

const CLI = new URL('./careledger.ts', import.meta.url).pathname
const POLICY = '(role:doctor AND hospital:h1) OR patient:{patient} OR (role:researcher AND consent:research)'

interface Layout {
  home: string
  authority: string
  cloud: string
  gateway: string
  simulator: string
  logs: string
  devicesFile: string
  adminTokenFile: string
  devPassphraseFile: string
}

function layout(home: string): Layout {
  return {
    home,
    authority: join(home, 'authority'),
    cloud: join(home, 'cloud'),
    gateway: join(home, 'gateway'),
    simulator: join(home, 'simulator'),
    logs: join(home, 'logs'),
    devicesFile: join(home, 'devices.json'),
    adminTokenFile: join(home, 'admin.token'),
    devPassphraseFile: join(home, 'dev-passphrase'),
  }
}

/** Run a careledger subcommand to completion; returns stdout, throws with its stderr. */
function careledger(args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } })
  if (r.status !== 0) throw new Error(`careledger ${args.join(' ')} failed:\n${r.stderr || r.stdout}`)
  return r.stdout
}

/**
 * The passphrase variables every child gets: the user's own CARELEDGER_PASSPHRASE* if set, else the
 * development passphrase file (created on first run: 32 random bytes, base64url, 0600).
 */
function passphraseEnv(l: Layout): NodeJS.ProcessEnv {
  // A descriptor is not passed on to the three processes: read it once, hand them the value.
  if (process.env[PASSPHRASE_FD_ENV]) return { [PASSPHRASE_ENV]: passphraseSource({}, process.env, { interactive: false })!.read({ confirm: false, purpose: 'npm start' }) as string, [PASSPHRASE_FD_ENV]: '' }
  if ([PASSPHRASE_ENV, PASSPHRASE_FILE_ENV].some((v) => process.env[v])) return {}
  if (!existsSync(l.devPassphraseFile)) writeFileAtomic(l.devPassphraseFile, randomBytes(32).toString('base64url') + '\n', { mode: 0o600 })
  return { [PASSPHRASE_FILE_ENV]: l.devPassphraseFile }
}

/** The authority's id, pinned by the gateway (CARELEDGER_ABE_AUTHORITY_ID). */
function prepareAuthority(l: Layout, env: NodeJS.ProcessEnv): string {
  const publicFile = join(l.authority, 'master-public.key')
  if (existsSync(publicFile)) return Buffer.from(decodeMasterPublicKey(new Uint8Array(readFileSync(publicFile))).id).toString('hex')
  mkdirSync(l.authority, { recursive: true, mode: 0o700 })
  const msk = setup()
  const id = Buffer.from(msk.mpk.id).toString('hex')
  const keyring = new Keyring(passphraseSource({}, { ...process.env, ...env }, { interactive: false }))
  keyring.writeSync(join(l.authority, 'master-secret.key'), encodeMasterSecretKey(msk), { label: `FABEO master secret key of authority ${id}`, force: true })
  writeKeyFile(publicFile, encodeMasterPublicKey(msk.mpk), { secret: false, force: true })
  // Demo keys so a newcomer can open what the monitors send, valid this month and the next eleven (UTC)
  // (attribute keys stay unsealed: doctors' tools, the browser's doctor view among them, read them).
  const validity = { from: epochOf(Date.now()), until: epochOf(Date.now() + 334 * 86_400_000) }
  writeKeyFile(join(l.authority, 'doctor-h1.key'), encodeUserKey(keyGen(msk, keyAttributes(['role:doctor', 'hospital:h1'], validity))), { secret: true, force: true })
  writeKeyFile(join(l.authority, 'researcher.key'), encodeUserKey(keyGen(msk, keyAttributes(['role:researcher', 'consent:research'], validity))), { secret: true, force: true })
  return id
}

function enrolMonitors(l: Layout, count: number): void {
  const known: { deviceId: string; secret: string }[] = existsSync(l.devicesFile) ? JSON.parse(readFileSync(l.devicesFile, 'utf8')).devices : []
  if (known.length >= count) return
  const { db } = openGatewayDb(l.gateway)
  const store = new DeviceStore(db)
  const devices = [...known]
  for (let i = known.length + 1; i <= count; i++) {
    const id = `bed-${String(i).padStart(2, '0')}`
    if (store.get(id)) store.remove(id)
    devices.push({ deviceId: id, secret: store.add(id, `patient-${String(i).padStart(2, '0')}`).secret })
  }
  db.close()
  writeFileAtomic(l.devicesFile, JSON.stringify({ devices }, null, 2) + '\n', { mode: 0o600, overwrite: true })
}

async function waitHealthy(url: string, child: ChildProcess, what: string, logFile: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}; see ${logFile}`)
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(1000) })).ok) return
    } catch {
      /* not up yet */
    }
    await sleep(100)
  }
  throw new Error(`${what} did not become healthy at ${url}; see ${logFile}`)
}

function launch(l: Layout, name: string, args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; log: string } {
  const log = join(l.logs, `${name}.log`)
  const fd = openSync(log, 'a')
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } })
  return { child, log }
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  child.kill(signal)
  await Promise.race([exited, sleep(timeoutMs)])
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
}

async function status(cloudUrl: string, token: string, gatewayMetrics: string): Promise<string> {
  try {
    const stats = (await (await fetch(`${cloudUrl}/v1/stats`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(2000) })).json()) as Record<string, unknown>
    const metrics = await (await fetch(gatewayMetrics, { signal: AbortSignal.timeout(2000) })).text()
    const metric = (name: string) => Number(metrics.match(new RegExp(`^careledger_gateway_${name} (\\S+)$`, 'm'))?.[1] ?? 0)
    return `readings stored ${metric('readings_accepted_total')}, sealed ${metric('readings_sealed_total')}, batches waiting ${metric('outbox_depth')} | chain: ${stats.records ?? '?'} records in ${stats.blocks ?? '?'} blocks`
  } catch (e) {
    return `status unavailable (${(e as Error).message})`
  }
}

export function startCommand(): Command {
  return new Command('start')
    .description('run the cloud, one gateway and 20 simulated monitors on localhost (data in ./.careledger); Ctrl-C stops')
    .option('--home <dir>', 'where everything is kept (env CARELEDGER_HOME)', process.env.CARELEDGER_HOME ?? '.careledger')
    .option('--monitors <n>', 'simulated bedside monitors', (v) => Number.parseInt(v, 10), 20)
    .option('--rate <hz>', 'vital-sign ticks per second per monitor', (v) => Number(v), 1)
    .option('--cloud-port <port>', 'cloud API and console port', process.env.CARELEDGER_CLOUD_PORT ?? '8080')
    .action(async (opts: { home: string; monitors: number; rate: number; cloudPort: string }) => {
      const l = layout(resolve(opts.home))
      for (const dir of [l.home, l.logs]) mkdirSync(dir, { recursive: true, mode: 0o700 })
      const cloudUrl = `http://127.0.0.1:${opts.cloudPort}`
      const gatewayHttp = 'http://127.0.0.1:9464'
      const out = (s: string) => process.stdout.write(`${s}\n`)

      out('CareLedger — starting the whole system on localhost')
      const keyEnv = passphraseEnv(l)
      const authorityId = prepareAuthority(l, keyEnv)
      out(`  authority keys      ${l.authority} (demo keys: doctor-h1.key, researcher.key; authority id ${authorityId})`)
      if (keyEnv[PASSPHRASE_FILE_ENV]) out(`  key passphrase      ${l.devPassphraseFile} (DEVELOPMENT ONLY: it sits beside the keys it seals)`)

      const cloud = launch(l, 'cloud', ['cloud', 'start', '--data', l.cloud, '--port', opts.cloudPort], keyEnv)
      await waitHealthy(`${cloudUrl}/healthz`, cloud.child, 'the cloud', cloud.log)
      if (!existsSync(l.adminTokenFile)) {
        const { token } = JSON.parse(careledger(['cloud', 'token', 'create', '--role', 'admin', '--name', 'admin', '--json', '--data', l.cloud])) as { token: string }
        writeFileAtomic(l.adminTokenFile, token + '\n', { mode: 0o600, overwrite: true })
      }
      const adminToken = readFileSync(l.adminTokenFile, 'utf8').trim()

      enrolMonitors(l, opts.monitors)
      if (!existsSync(join(l.gateway, 'cloud.json'))) {
        const { token } = JSON.parse(careledger(['cloud', 'gateway', 'invite', '--name', 'ward-1', '--json', '--data', l.cloud])) as { token: string }
        careledger(['gateway', 'register', '--data', l.gateway, '--cloud', cloudUrl, '--token', token, '--name', 'ward-1'], {
          ...keyEnv,
          CARELEDGER_ABE_PUBLIC_KEY: join(l.authority, 'master-public.key'),
        })
      }
      const gateway = launch(l, 'gateway', ['gateway', 'start', '--data', l.gateway], {
        ...keyEnv,
        CARELEDGER_ABE_PUBLIC_KEY: join(l.authority, 'master-public.key'),
        CARELEDGER_ABE_AUTHORITY_ID: authorityId,
        CARELEDGER_DEFAULT_POLICY: POLICY,
      })
      await waitHealthy(`${gatewayHttp}/healthz`, gateway.child, 'the gateway', gateway.log)
      const monitors = launch(l, 'simulator', [
        'devices', 'simulate', '--credentials', l.devicesFile, '--count', String(opts.monitors), '--rate', String(opts.rate), '--state-dir', l.simulator,
      ])

      out(`  cloud API + console ${cloudUrl}/  (admin token: ${adminToken})`)
      out(`  gateway MQTT        mqtt://127.0.0.1:1883, mqtts://127.0.0.1:8883  (CA: npx careledger gateway ca --data ${l.gateway})`)
      out(`  gateway health      ${gatewayHttp}/healthz and /metrics`)
      out(`  monitors            ${opts.monitors} simulated bedside monitors at ${opts.rate} Hz`)
      out(`  logs                ${l.logs}/{cloud,gateway,simulator}.log`)
      out(`  verify the chain    npx careledger chain verify --data ${l.cloud}`)
      out('Ctrl-C stops everything; `npm start` again resumes.\n')

      let stopping = false
      const stop = async (): Promise<void> => {
        if (stopping) return
        stopping = true
        out('\nstopping: monitors, then the gateway, then the cloud …')
        await stopChild(monitors.child, 'SIGINT', 10_000)
        await stopChild(gateway.child, 'SIGTERM', 20_000)
        await stopChild(cloud.child, 'SIGTERM', 20_000)
        out('stopped.')
        process.exit(0)
      }
      process.once('SIGINT', () => void stop())
      process.once('SIGTERM', () => void stop())
      for (const [name, p] of [['cloud', cloud], ['gateway', gateway], ['simulator', monitors]] as const) {
        p.child.once('exit', (code, signal) => {
          if (!stopping) {
            out(`${name} exited (${signal ?? code}); see ${p.log}`)
            void stop()
          }
        })
      }
      while (!stopping) {
        await sleep(10_000)
        if (!stopping) out(`[${new Date().toISOString().slice(11, 19)}] ${await status(cloudUrl, adminToken, `${gatewayHttp}/metrics`)}`)
      }
    })
}
