/**
 * `npm start` on a fresh machine (issue 8 item 12): no passphrase configured, no terminal — it must
 * not ask for anything. It writes a development passphrase file, seals every key under it, and the
 * readings reach the chain. Run in a network namespace of its own (`unshare -n`), because
 * `careledger start` listens on fixed ports (8080, 1883, 8883, 9464) that other processes on a
 * shared machine may hold; skipped where namespaces cannot be made.
 */
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { isSealedSecret } from '../../shared/crypto/sealed-secret.ts'
import { BIN, REPO } from '../helpers/careledger-process.ts'
import { tempDirs } from '../helpers/temp-dirs.ts'
import { NO_PASSPHRASE } from '../helpers/test-passphrase.ts'

const temp = tempDirs()
const canUnshare = spawnSync('unshare', ['-n', 'true']).status === 0

it.skipIf(!canUnshare)('npm start asks for nothing, seals every key under a development passphrase, and readings reach the chain', async () => {
  const home = temp('npm-start')
  const child = spawn('unshare', ['-n', 'sh', '-c', `ip link set lo up && exec "${process.execPath}" "${BIN}" start --monitors 2 --rate 2`], {
    cwd: REPO,
    env: { ...process.env, ...NO_PASSPHRASE, CARELEDGER_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'], // no terminal: a prompt would hang, so the test would time out
  })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c))
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c))
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)))
  try {
    // A status line every 10 s: wait for records on the chain.
    const deadline = Date.now() + 240_000
    while (!/chain: [1-9]\d* records in [1-9]\d* blocks/.test(out)) {
      if (child.exitCode !== null) throw new Error(`careledger start exited (${child.exitCode}):\n${out}`)
      if (Date.now() > deadline) throw new Error(`no records on the chain within 240 s:\n${out}`)
      await new Promise((r) => setTimeout(r, 1000))
    }
  } finally {
    if (child.exitCode === null) process.kill(child.pid!, 'SIGINT')
  }
  expect(await exited).toBe(0)
  expect(out).toContain(`key passphrase      ${join(home, 'dev-passphrase')} (DEVELOPMENT ONLY`)
  expect(out).not.toMatch(/Passphrase for/)
  expect(statSync(join(home, 'dev-passphrase')).mode & 0o777).toBe(0o600)
  for (const f of ['authority/master-secret.key', 'cloud/keys/cloud-signing.key', 'cloud/regulator/chameleon-secret.key', 'gateway/keys/gateway.key', 'gateway/keys/pseudonym.key', 'gateway/tls/ca.key', 'gateway/tls/server.key']) {
    expect(isSealedSecret(new Uint8Array(readFileSync(join(home, f)))), f).toBe(true)
  }
  // The gateway pinned the authority npm start made.
  const id = /authority id ([0-9a-f]{32})/.exec(out)![1]
  expect(readFileSync(join(home, 'gateway/keys/abe-authority.id'), 'utf8').trim()).toBe(id)
}, 300_000)
