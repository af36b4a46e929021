/**
 * The regulator's (and requester's) EVM wallet file goes through the sealed-secret keyring like the
 * trapdoor and the shares (clients/supervision-keys.ts readWallet; docs/crypto.md §Sealed secrets).
 */
import { describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet } from 'ethers'
import { readWallet } from '../../clients/supervision-keys.ts'
import { writeTestSecret } from '../helpers/test-keys.ts'

const KEY = '0x' + '11'.repeat(32)
const ADDRESS = new Wallet(KEY).address

/** readWallet in a fresh process, so its keyring comes from the environment given here. */
function readInChild(path: string, env: Record<string, string>): { code: number; out: string } {
  const script = `import('./clients/supervision-keys.ts').then((m) => console.log(m.readWallet(process.argv[1]).address)).catch((e) => { console.error(e.message); process.exit(3) })`
  try {
    return { code: 0, out: execFileSync(process.execPath, ['-e', script, path], { cwd: process.cwd(), env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) }
  } catch (e) {
    const err = e as { status: number; stderr: string }
    return { code: err.status, out: err.stderr }
  }
}

describe('wallet key files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'careledger-wallet-'))

  it('a sealed wallet opens under the passphrase and signs as its address', () => {
    const path = join(dir, 'sealed.key')
    writeTestSecret(path, new TextEncoder().encode(KEY), 'regulator wallet')
    expect(readWallet(path).address).toBe(ADDRESS)
  })

  it('a raw wallet file is still read', () => {
    const path = join(dir, 'raw.key')
    writeFileSync(path, `${KEY}\n`, { mode: 0o600 })
    expect(readWallet(path).address).toBe(ADDRESS)
  })

  it('a wrong passphrase is a clear error naming the file, and no wallet', () => {
    const path = join(dir, 'sealed-2.key')
    writeTestSecret(path, new TextEncoder().encode(KEY), 'regulator wallet')
    const right = readInChild(path, {})
    expect(right.code).toBe(0)
    expect(right.out.trim()).toBe(ADDRESS)
    const wrong = readInChild(path, { CARELEDGER_PASSPHRASE: 'not the passphrase' })
    expect(wrong.code).toBe(3)
    expect(wrong.out).toMatch(/passphrase/i)
    expect(wrong.out).toContain('sealed-2.key')
  })

  it('cleans up', () => rmSync(dir, { recursive: true, force: true }))
})
