/**
 * `careledger keys show | encrypt | change-passphrase` — sealed key files (docs/crypto.md §Sealed
 * secrets, docs/operations.md §Passphrases): describe any key file without a passphrase, seal raw
 * key files from before sealed secrets in place, and re-seal under a new passphrase.
 */
import { basename } from 'node:path'
import { Command } from 'commander'
import { CareLedgerError } from '../errors.ts'
import { isSealedSecret, readSealedHeader } from '../crypto/sealed-secret.ts'
import { MAGIC } from '../encoding/binary.ts'
import { describeKeyFile } from './describe.ts'
import { readKeyFile, writeFileAtomic } from './files.ts'
import { addPassphraseOptions, passphraseSource, terminalSource, type PassphraseFlags } from './passphrase.ts'
import { Keyring } from './secret-files.ts'

const out = (s: string): void => void process.stdout.write(`${s}\n`)
const isEncoding = (b: Uint8Array): boolean => b.length >= 4 && b[0] === MAGIC[0] && b[1] === MAGIC[1]

/** What a raw file is, as the label of its sealed form: a CareLedger encoding describes itself, anything else goes by its name. */
function labelOf(path: string, bytes: Uint8Array): string {
  if (isEncoding(bytes)) {
    try {
      return describeKeyFile(bytes)
    } catch {
      /* not a valid encoding after all: name it by the file */
    }
  }
  return basename(path)
}

export function keysCommand(): Command {
  const cmd = new Command('keys').description('sealed key files: show what a key file is, seal raw ones under a passphrase, change the passphrase')

  cmd
    .command('show')
    .description('describe key files (a sealed file\'s label and cost need no passphrase)')
    .argument('<files...>')
    .action((files: string[]) => {
      for (const f of files) {
        const bytes = readKeyFile(f)
        const what = isEncoding(bytes) ? describeKeyFile(bytes) : `raw file of ${bytes.length} bytes (not a CareLedger encoding${bytes.length > 0 ? '; UNSEALED if it is a secret' : ''})`
        out(`${f}: ${what}`)
      }
    })

  addPassphraseOptions(
    cmd
      .command('encrypt')
      .description('seal raw (unencrypted) secret key files in place under a passphrase; already sealed files are left as they are')
      .argument('<files...>'),
  ).action(async (files: string[], opts: PassphraseFlags) => {
    const keyring = Keyring.forCommand(opts)
    const raw = files.map((f) => ({ f, bytes: readKeyFile(f) })).filter(({ f, bytes }) => {
      if (isSealedSecret(bytes)) out(`${f}: already sealed ("${readSealedHeader(bytes).label}"), left as it is`)
      return !isSealedSecret(bytes)
    })
    if (raw.length === 0) return
    await keyring.unlock(raw.length === 1 ? raw[0]!.f : `${raw.length} key files`, true)
    for (const { f, bytes } of raw) {
      const label = labelOf(f, bytes)
      writeFileAtomic(f, keyring.seal(bytes, label, f), { mode: 0o600, overwrite: true })
      out(`${f}: sealed ("${label}"), mode 0600`)
    }
  })

  addPassphraseOptions(
    cmd
      .command('change-passphrase')
      .description('re-seal sealed key files under a new passphrase (the old one from --passphrase-*, the environment or a prompt)')
      .argument('<files...>')
      .option('--new-passphrase-file <file>', 'the new passphrase, from a file')
      .option('--new-passphrase-fd <n>', 'the new passphrase, from a file descriptor'),
  ).action(async (files: string[], opts: PassphraseFlags & { newPassphraseFile?: string; newPassphraseFd?: string }) => {
    const current = Keyring.forCommand(opts)
    const newSource = passphraseSource({ passphraseFile: opts.newPassphraseFile, passphraseFd: opts.newPassphraseFd }, {}, { interactive: false }) ?? (process.stdin.isTTY ? terminalSource : null)
    if (newSource === null) throw new CareLedgerError('INVALID_ARGUMENT', 'no new passphrase: pass --new-passphrase-file or --new-passphrase-fd, or run on a terminal to be asked', {})
    const next = new Keyring(newSource)
    const sealed = files.map((f) => ({ f, bytes: readKeyFile(f) }))
    for (const { f, bytes } of sealed) {
      if (!isSealedSecret(bytes)) throw new CareLedgerError('INVALID_ARGUMENT', `${f} is not sealed; seal it with \`careledger keys encrypt ${f}\``, { path: f })
    }
    await current.unlock(sealed.length === 1 ? sealed[0]!.f : `${sealed.length} key files`)
    const opened = sealed.map(({ f, bytes }) => ({ f, secret: current.open(bytes, f), label: readSealedHeader(bytes).label }))
    await next.unlock('the NEW passphrase', true)
    for (const { f, secret, label } of opened) {
      writeFileAtomic(f, next.seal(secret, label, f), { mode: 0o600, overwrite: true })
      out(`${f}: re-sealed under the new passphrase`)
    }
  })

  return cmd
}
