/**
 * `careledger regulator keygen` and `careledger chain verify --url`, as real processes.
 * (`chain verify` on a database, intact and tampered, is in chain-tamper.test.ts.)
 */
import { spawn } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { chameleonAdapt, chameleonHash, chameleonPublicKey, chameleonVerify, decodeChameleonPublicKey, decodeChameleonSecretKey } from '../../shared/crypto/chameleon.ts'
import { isSealedSecret } from '../../shared/crypto/sealed-secret.ts'
import { readSecretKeyFile } from '../../shared/cli/secret-files.ts'
import { tempDir } from './chain-helpers.ts'

const ROOT = join(import.meta.dirname, '..', '..')
const tmp = tempDir('chain-cli')
afterAll(() => tmp.cleanup())

function careledger(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [join(ROOT, 'bin', 'careledger.ts'), ...args], { cwd: ROOT, env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    c.on('exit', (status) => resolve({ status, stdout, stderr }))
  })
}

describe('regulator keygen', () => {
  it('writes a working chameleon key pair, the trapdoor sealed and 0600, and never overwrites without --force', async () => {
    const dir = join(tmp.dir, 'regulator')
    const r = await careledger(['regulator', 'keygen', '--out', dir])
    expect(r.status, r.stderr).toBe(0)
    const pub = decodeChameleonPublicKey(new Uint8Array(readFileSync(join(dir, 'chameleon-public.key'))))
    // Sealed under the passphrase (here the tests' CARELEDGER_PASSPHRASE: test/helpers/test-passphrase.ts).
    const trapdoor = () => readSecretKeyFile(join(dir, 'chameleon-secret.key'), { warnIfUnsealed: false }).then(decodeChameleonSecretKey)
    expect(isSealedSecret(new Uint8Array(readFileSync(join(dir, 'chameleon-secret.key'))))).toBe(true)
    const sec = await trapdoor()
    expect(statSync(join(dir, 'chameleon-secret.key')).mode & 0o777).toBe(0o600)
    expect(chameleonPublicKey(sec)).toEqual(pub)
    // The pair works: a hash under the public key is opened to new content by the trapdoor.
    const { hash } = chameleonHash(pub, new TextEncoder().encode('record'))
    const corrected = new TextEncoder().encode('record, corrected')
    expect(chameleonVerify(pub, corrected, hash, chameleonAdapt(sec, corrected, hash))).toBe(true)
    expect(r.stdout).toContain('chameleon-public.key')

    const again = await careledger(['regulator', 'keygen', '--out', dir])
    expect(again.status).toBe(2)
    expect(again.stderr).toContain('already exists')
    expect(await trapdoor()).toEqual(sec)
    const forced = await careledger(['regulator', 'keygen', '--out', dir, '--force'])
    expect(forced.status).toBe(0)
    expect(await trapdoor()).not.toEqual(sec)
  })
})

describe('chain verify --url', () => {
  let server: Server
  let answer: { status: number; body: unknown } = { status: 200, body: {} }
  let seenAuth = ''
  afterAll(() => server?.close())

  it('prints the cloud’s latest verification and exits 0 / 1 by its verdict, 2 when refused', async () => {
    server = createServer((req, res) => {
      seenAuth = req.headers.authorization ?? ''
      res.writeHead(req.url === '/v1/chain/verification' ? answer.status : 404, { 'content-type': 'application/json' })
      res.end(JSON.stringify(answer.body))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
    const report = {
      ok: true,
      startedAt: 1,
      checkedAt: 1_760_000_000_000,
      durationMs: 12,
      blocks: 3,
      head: { height: 2, hash: 'ab'.repeat(32) },
      records: 30,
      sealedRecords: 30,
      pendingRecords: 0,
      streams: 2,
      recordsChecked: 30,
      recordsCached: 0,
      workers: 2,
      chameleonKey: '0011223344556677',
      signingKeys: { ids: ['8899aabbccddeeff'], source: 'argument' },
      failures: [],
      failureCounts: {},
      failuresOmitted: 0,
    }
    answer = { status: 200, body: report }
    const ok = await careledger(['chain', 'verify', '--url', url, '--token', 'clt_test'])
    expect(ok.status, ok.stderr).toBe(0)
    expect(seenAuth).toBe('Bearer clt_test')
    expect(ok.stdout).toContain('INTACT')

    answer = {
      status: 200,
      body: { ...report, ok: false, failures: [{ kind: 'RECORD_OPENING', height: 1, recordId: 17, message: 'record 17: the chameleon opening does not open …' }], failureCounts: { RECORD_OPENING: 1 } },
    }
    const bad = await careledger(['chain', 'verify', '--url', url], { CARELEDGER_TOKEN: 'clt_env' })
    expect(bad.status).toBe(1)
    expect(seenAuth).toBe('Bearer clt_env')
    expect(bad.stdout).toMatch(/RECORD_OPENING\s+height 1\s+record 17/)

    answer = { status: 401, body: { error: { code: 'UNAUTHENTICATED', message: 'no such token' } } }
    const refused = await careledger(['chain', 'verify', '--url', url, '--token', 'clt_wrong'])
    expect(refused.status).toBe(2)
    expect(refused.stderr).toContain('UNAUTHENTICATED')
  })
})
