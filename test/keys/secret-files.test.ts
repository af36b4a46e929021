/**
 * Issue 8 item 12 / issue 9: long-lived secrets are sealed under a passphrase at rest, the
 * passphrase comes from a flag, the environment, a file descriptor or a terminal prompt, key
 * files are written atomically and owner-only (also when --force replaces a 0644 file), and raw key
 * files from before are still read, with a warning naming `careledger keys encrypt`, which
 * migrates them. Real CLI processes on real files.
 */
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { decodeMasterSecretKey, encodeMasterSecretKey } from '../../shared/crypto/abe/codec.ts'
import { isSealedSecret, openWithPassphrase, readSealedHeader } from '../../shared/crypto/sealed-secret.ts'
import { givenPassphrase, passphraseSource } from '../../shared/cli/passphrase.ts'
import { Keyring, readSecretKeyFile, writeSecretKeyFile } from '../../shared/cli/secret-files.ts'
import { writeKeyFile } from '../../shared/cli/files.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { BIN, careledger, REPO } from '../helpers/gateway-process.ts'
import { tempDirs } from '../helpers/temp-dirs.ts'
import { NO_PASSPHRASE } from '../helpers/test-passphrase.ts'
import { msk } from '../helpers/authority.ts'
import { epochOf } from '../../shared/protocol/epoch.ts'

const PASS = 'a passphrase for the authority, long enough'
/** Attribute keys carry a validity since epochs (issue 9): a few months ahead. */
const UNTIL = epochOf(Date.now() + 100 * 86_400_000)
const mode = (path: string): number => statSync(path).mode & 0o777
const temp = tempDirs()
const NONE = NO_PASSPHRASE
const WITH = { ...NONE, CARELEDGER_PASSPHRASE: PASS }

/** The CLI with `passphrase` written to its file descriptor 3 (a pipe). */
function withFd3(args: string[], passphrase: string, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((ok) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO, env: { ...process.env, ...NONE, ...env }, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c))
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c))
    const fd3 = child.stdio[3] as import('node:net').Socket
    fd3.on('error', () => {}) // the CLI may close its end first
    fd3.end(`${passphrase}\n`)
    child.once('close', (code) => ok({ code, stdout, stderr }))
  })
}

describe('the attribute authority keeps its master secret sealed (careledger authority setup / keygen)', () => {
  it('seals master-secret.key under the passphrase (0600, the key bytes nowhere in the file) and keygen opens it', async () => {
    const dir = temp('authority')
    const setup = await careledger(['authority', 'setup', '-d', dir], WITH)
    expect(setup.code, setup.stderr).toBe(0)
    const id = /authority ([0-9a-f]{32}):/.exec(setup.stdout)![1]!
    expect(setup.stdout).toContain(`publish the authority id ${id}`)
    const file = join(dir, 'master-secret.key')
    const bytes = new Uint8Array(readFileSync(file))
    expect(isSealedSecret(bytes)).toBe(true)
    expect(mode(file)).toBe(0o600)
    expect(readSealedHeader(bytes).label).toBe(`FABEO master secret key of authority ${id}`)
    const inside = decodeMasterSecretKey(openWithPassphrase(bytes, PASS))
    expect(Buffer.from(inside.mpk.id).toString('hex')).toBe(id)
    // The scalar α is not in the file in any form a grep would find.
    expect(Buffer.from(bytes).includes(Buffer.from(encodeMasterSecretKey(inside).subarray(-32)))).toBe(false)

    const show = await careledger(['keys', 'show', file, join(dir, 'master-public.key')], NONE)
    expect(show.stdout).toContain(`sealed secret "FABEO master secret key of authority ${id}"`)
    expect(show.stdout).toContain(`master public key of authority ${id}`)
    expect((await careledger(['authority', 'show', join(dir, 'master-public.key')], NONE)).stdout).toContain(id)

    const kg = await careledger(['authority', 'keygen', '--valid-until', UNTIL, '-m', file, '-a', 'role:doctor', '-o', join(dir, 'd.key')], WITH)
    expect(kg.code, kg.stderr).toBe(0)
    expect(kg.stdout).toContain(`from authority ${id}`)

    const wrong = await careledger(['authority', 'keygen', '--valid-until', UNTIL, '-m', file, '-a', 'role:doctor', '-o', join(dir, 'e.key')], { ...WITH, CARELEDGER_PASSPHRASE: 'not it' })
    expect(wrong.code).toBe(2)
    expect(wrong.stderr).toMatch(/^error DECRYPTION_FAILED: .*master-secret\.key: wrong passphrase .*\(passphrase from CARELEDGER_PASSPHRASE\)\n$/)
    expect(existsSync(join(dir, 'e.key'))).toBe(false)
  })

  it('without any passphrase (and no terminal) writes nothing and says how to give one', async () => {
    const dir = temp('authority-none')
    const r = await careledger(['authority', 'setup', '-d', join(dir, 'a')], NONE)
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/needs the key-file passphrase: pass --passphrase-file or --passphrase-fd, set CARELEDGER_PASSPHRASE_FILE/)
    expect(existsSync(join(dir, 'a'))).toBe(false)
  })

  it('takes the passphrase from --passphrase-file, --passphrase-fd and CARELEDGER_PASSPHRASE_FD (one trailing newline dropped)', async () => {
    const dir = temp('authority-sources')
    const passFile = join(dir, 'passphrase')
    writeFileSync(passFile, `${PASS}\n`, { mode: 0o600 })
    expect((await careledger(['authority', 'setup', '-d', join(dir, 'a'), '--passphrase-file', passFile], NONE)).code).toBe(0)
    expect(openWithPassphrase(new Uint8Array(readFileSync(join(dir, 'a', 'master-secret.key'))), PASS).length).toBeGreaterThan(0)

    const viaFlag = await withFd3(['authority', 'setup', '-d', join(dir, 'b'), '--passphrase-fd', '3'], PASS)
    expect(viaFlag.code, viaFlag.stderr).toBe(0)
    const viaEnv = await withFd3(['authority', 'keygen', '--valid-until', UNTIL, '-m', join(dir, 'b', 'master-secret.key'), '-a', 'role:x', '-o', join(dir, 'x.key')], PASS, { CARELEDGER_PASSPHRASE_FD: '3' })
    expect(viaEnv.code, viaEnv.stderr).toBe(0)

    const both = await careledger(['authority', 'keygen', '--valid-until', UNTIL, '-m', join(dir, 'b', 'master-secret.key'), '-a', 'role:x', '-o', join(dir, 'y.key')], { ...WITH, CARELEDGER_PASSPHRASE_FILE: passFile })
    expect(both.code).toBe(2)
    expect(both.stderr).toMatch(/CARELEDGER_PASSPHRASE_FILE and CARELEDGER_PASSPHRASE are all set: set only one/)
  })

  const script = spawnSync('script', ['--version'], { encoding: 'utf8' })
  it.skipIf(script.status !== 0)('asks on a terminal — twice when sealing, without echo — and refuses two different answers', async () => {
    const dir = temp('authority-tty')
    const tty = (cmd: string, lines: string[]): Promise<string> =>
      new Promise((ok) => {
        // util-linux script gives the command a pseudo-terminal; --echo never: what we see is what the program printed.
        const child = spawn('script', ['-qfec', cmd, '--echo', 'never', '/dev/null'], { cwd: REPO, env: { ...process.env, ...NONE }, stdio: ['pipe', 'pipe', 'pipe'] })
        let out = ''
        const queue = [...lines]
        child.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c
          // Answer each prompt as it appears.
          if (/Passphrase for .*: $|Repeat the passphrase: $/.test(out.trimEnd() + ' ') && queue.length > 0) child.stdin.write(`${queue.shift()}\r`)
        })
        child.once('close', () => ok(out))
      })
    const node = `${process.execPath} ${BIN}`
    const differ = await tty(`${node} authority setup -d ${join(dir, 'a')}`, ['one passphrase', 'another one'])
    expect(differ).toMatch(/the two passphrases differ; nothing was written/)
    expect(existsSync(join(dir, 'a', 'master-secret.key'))).toBe(false)

    const made = await tty(`${node} authority setup -d ${join(dir, 'b')}`, ['typed on a terminal', 'typed on a terminal'])
    expect(made).toMatch(/Passphrase for .*master-secret\.key: \r?\nRepeat the passphrase: \r?\nauthority [0-9a-f]{32}: wrote/)
    expect(made).not.toContain('typed on a terminal')
    expect(openWithPassphrase(new Uint8Array(readFileSync(join(dir, 'b', 'master-secret.key'))), 'typed on a terminal').length).toBeGreaterThan(0)
    const used = await tty(`${node} authority keygen --valid-until ${UNTIL} -m ${join(dir, 'b', 'master-secret.key')} -a role:x -o ${join(dir, 'x.key')}`, ['typed on a terminal'])
    expect(used).toMatch(/wrote .*x\.key: key for \[role:x\]/)
  })
})

describe('key files are written atomically and owner-only', () => {
  it('--force over an existing 0644 file leaves it 0600 (authority keygen, regulator keygen, sealed files)', async () => {
    const dir = temp('force')
    await writeSecretKeyFile(join(dir, 'master-secret.key'), encodeMasterSecretKey(msk), { label: 'test master', keyring: new Keyring(givenPassphrase(PASS)) })
    for (const f of ['d.key', 'chameleon-secret.key', 'master2.key']) {
      writeFileSync(join(dir, f), 'an old file a careless umask made world-readable')
      chmodSync(join(dir, f), 0o644)
    }
    const kg = await careledger(['authority', 'keygen', '--valid-until', UNTIL, '-m', join(dir, 'master-secret.key'), '-a', 'role:doctor', '-o', join(dir, 'd.key'), '--force'], WITH)
    expect(kg.code, kg.stderr).toBe(0)
    expect(mode(join(dir, 'd.key'))).toBe(0o600)
    const reg = await careledger(['regulator', 'keygen', '-o', dir, '--force'], WITH)
    expect(reg.code, reg.stderr).toBe(0)
    expect(mode(join(dir, 'chameleon-secret.key'))).toBe(0o600)
    expect(isSealedSecret(new Uint8Array(readFileSync(join(dir, 'chameleon-secret.key'))))).toBe(true)
    expect(readSealedHeader(new Uint8Array(readFileSync(join(dir, 'chameleon-secret.key')))).label).toMatch(/^chameleon-hash trapdoor of regulator key [0-9a-f]+$/)
    await writeSecretKeyFile(join(dir, 'master2.key'), new Uint8Array(32), { label: 'x', force: true, keyring: new Keyring(givenPassphrase(PASS)) })
    expect(mode(join(dir, 'master2.key'))).toBe(0o600)
    // No temporary files left behind.
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([])
  })

  it('never overwrites without --force, and says so', async () => {
    const dir = temp('noforce')
    writeKeyFile(join(dir, 'k'), new Uint8Array([1]), { secret: true })
    expect(() => writeKeyFile(join(dir, 'k'), new Uint8Array([2]), { secret: true })).toThrow(/already exists; refusing to overwrite a key \(use --force\)/)
    await expect(writeSecretKeyFile(join(dir, 'k'), new Uint8Array([2]), { label: 'x', keyring: new Keyring(givenPassphrase(PASS)) })).rejects.toThrow(/already exists/)
    expect([...readFileSync(join(dir, 'k'))]).toEqual([1])
  })
})

describe('a Keyring (the API frost-supervision and access use)', () => {
  it('reads sealed and raw files; a raw one once with a warning that names `careledger keys encrypt`', async () => {
    const dir = temp('keyring')
    const warnings: string[] = []
    const keyring = new Keyring(givenPassphrase(PASS), { warn: (event, message) => warnings.push(`${event}: ${message}`) })
    keyring.writeSync(join(dir, 'a.key'), new Uint8Array([1, 2, 3]), { label: 'share 1 of 3' })
    writeFileSync(join(dir, 'old.key'), Uint8Array.of(9, 9), { mode: 0o600 })
    expect([...keyring.readSync(join(dir, 'a.key'))]).toEqual([1, 2, 3])
    expect([...keyring.readSync(join(dir, 'old.key'))]).toEqual([9, 9])
    keyring.readSync(join(dir, 'old.key'))
    expect(warnings).toEqual([`unsealed_key_file: ${join(dir, 'old.key')} is not sealed under a passphrase (a key file from before sealed secrets): seal it with \`careledger keys encrypt ${join(dir, 'old.key')}\``])
    // readSecretKeyFile for people's attribute keys, which stay unsealed by default: no warning.
    expect([...(await readSecretKeyFile(join(dir, 'old.key'), { warnIfUnsealed: false, keyring: new Keyring(null, { warn: () => warnings.push('x') }) }))]).toEqual([9, 9])
    expect(warnings).toHaveLength(1)
  })

  it('files sealed by one keyring share one salt (one scrypt), each with its own nonce', () => {
    const dir = temp('keyring-salt')
    const keyring = new Keyring(givenPassphrase(PASS))
    keyring.writeSync(join(dir, 'a'), new Uint8Array(32), { label: 'a' })
    keyring.writeSync(join(dir, 'b'), new Uint8Array(32), { label: 'b' })
    const [a, b] = ['a', 'b'].map((f) => readSealedHeader(new Uint8Array(readFileSync(join(dir, f)))))
    expect(Buffer.from(a!.salt).equals(b!.salt)).toBe(true)
    expect(Buffer.from(a!.nonce).equals(b!.nonce)).toBe(false)
    // A worker thread gets the derived key with the passphrase: it opens both without deriving again.
    const worker = Keyring.fromTransfer(keyring.transfer())
    expect(worker.readSync(join(dir, 'b')).length).toBe(32)
  })

  it('the cost of new files comes from CARELEDGER_SCRYPT_LOG2N (17 by default), validated', () => {
    const dir = temp('keyring-cost')
    new Keyring(givenPassphrase(PASS), { params: { log2N: 11, r: 8, p: 1 } }).writeSync(join(dir, 'a'), new Uint8Array(1), { label: 'a' })
    expect(readSealedHeader(new Uint8Array(readFileSync(join(dir, 'a')))).params).toEqual({ log2N: 11, r: 8, p: 1 })
    expect(() => Keyring.forCommand({}, { CARELEDGER_PASSPHRASE: 'x', CARELEDGER_SCRYPT_LOG2N: '40' })).toThrow(/CARELEDGER_SCRYPT_LOG2N="40": log2N must be an integer 10–20/)
    expect(passphraseSource({}, {}, { interactive: false })).toBeNull()
  })

  it('a service without a passphrase refuses a fresh data directory but keeps running one from before sealed secrets', () => {
    const dir = temp('keyring-service')
    const main = join(dir, 'gateway.key')
    let e: unknown
    try {
      Keyring.forService('gateway', main, {})
    } catch (err) {
      e = err
    }
    expect(isCareLedgerError(e, 'INVALID_ARGUMENT') && e.info.reason).toBe('NO_PASSPHRASE')
    writeFileSync(main, new Uint8Array(32), { mode: 0o600 })
    const warnings: string[] = []
    const legacy = Keyring.forService('gateway', main, {}, { warn: (event) => warnings.push(event) })
    legacy.writeSync(join(dir, 'new.key'), Uint8Array.of(7), { label: 'x' })
    expect([...readFileSync(join(dir, 'new.key'))]).toEqual([7])
    expect(warnings).toEqual(['no_passphrase', 'unsealed_key_written'])
  })
})

describe('careledger keys encrypt / change-passphrase: the migration path', () => {
  it('seals a raw key file from before sealed secrets in place (0644 → 0600), then only the passphrase opens it', async () => {
    const dir = temp('migrate')
    const raw = encodeMasterSecretKey(msk)
    writeFileSync(join(dir, 'master-secret.key'), raw)
    chmodSync(join(dir, 'master-secret.key'), 0o644)
    const before = await careledger(['authority', 'keygen', '--valid-until', UNTIL, '-m', join(dir, 'master-secret.key'), '-a', 'role:a', '-o', join(dir, 'a.key')], NONE)
    expect(before.code, before.stderr).toBe(0)
    expect(before.stderr).toContain(`seal it with \`careledger keys encrypt ${join(dir, 'master-secret.key')}\``)

    const enc = await careledger(['keys', 'encrypt', join(dir, 'master-secret.key')], WITH)
    expect(enc.code, enc.stderr).toBe(0)
    expect(enc.stdout).toMatch(/master-secret\.key: sealed \("master SECRET key of authority [0-9a-f]{32}"\), mode 0600/)
    expect(mode(join(dir, 'master-secret.key'))).toBe(0o600)
    expect(Buffer.from(openWithPassphrase(new Uint8Array(readFileSync(join(dir, 'master-secret.key'))), PASS)).equals(raw)).toBe(true)
    expect((await careledger(['keys', 'encrypt', join(dir, 'master-secret.key')], WITH)).stdout).toMatch(/already sealed .*left as it is/)

    const after = await careledger(['authority', 'keygen', '--valid-until', UNTIL, '-m', join(dir, 'master-secret.key'), '-a', 'role:b', '-o', join(dir, 'b.key')], WITH)
    expect(after.code, after.stderr).toBe(0)
    expect(after.stderr).toBe('')

    const newPass = join(dir, 'new-passphrase')
    writeFileSync(newPass, 'the NEW passphrase\n', { mode: 0o600 })
    const ch = await careledger(['keys', 'change-passphrase', join(dir, 'master-secret.key'), '--new-passphrase-file', newPass], WITH)
    expect(ch.code, ch.stderr).toBe(0)
    expect((await careledger(['authority', 'keygen', '--valid-until', UNTIL, '-m', join(dir, 'master-secret.key'), '-a', 'role:c', '-o', join(dir, 'c.key')], WITH)).stderr).toMatch(/wrong passphrase/)
    expect((await careledger(['authority', 'keygen', '--valid-until', UNTIL, '-m', join(dir, 'master-secret.key'), '-a', 'role:c', '-o', join(dir, 'c.key'), '--passphrase-file', newPass], NONE)).code).toBe(0)
  })
})
