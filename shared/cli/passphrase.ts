/**
 * Where the passphrase of sealed key files comes from (docs/operations.md §Passphrases). In order:
 *
 *   1. a flag of the command:  --passphrase-file <file> | --passphrase-fd <n>
 *   2. the environment:        CARELEDGER_PASSPHRASE_FILE (a file holding it) | CARELEDGER_PASSPHRASE_FD
 *                              (a file descriptor to read it from) | CARELEDGER_PASSPHRASE (the value)
 *   3. a prompt on the terminal (CLI commands only, when stdin is a TTY; never for services)
 *
 * At most one source per level (two are an error, not a guess). A file's or descriptor's content
 * loses one trailing newline ("\n" or "\r\n"), so `echo secret > file` works; nothing else is trimmed.
 */
import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { CareLedgerError } from '../errors.ts'
import { checkScryptParams, DEFAULT_SCRYPT, type ScryptParams } from '../crypto/sealed-secret.ts'

export const PASSPHRASE_ENV = 'CARELEDGER_PASSPHRASE'
export const PASSPHRASE_FILE_ENV = 'CARELEDGER_PASSPHRASE_FILE'
export const PASSPHRASE_FD_ENV = 'CARELEDGER_PASSPHRASE_FD'
/** scrypt cost (log2 N) of newly sealed files; default 17. Lower only for tests or a device that cannot spare 128 MiB. */
export const SCRYPT_COST_ENV = 'CARELEDGER_SCRYPT_LOG2N'

export type Env = Readonly<Record<string, string | undefined>>

/** The commander options (`addPassphraseOptions`). */
export interface PassphraseFlags {
  readonly passphraseFile?: string
  readonly passphraseFd?: string
}

export interface PassphraseSource {
  /** For messages: "CARELEDGER_PASSPHRASE_FILE (/run/secrets/careledger)", "the terminal". */
  readonly describe: string
  /** A person types it (the answer may be asked twice when sealing). */
  readonly interactive: boolean
  /** The passphrase; synchronous for every source but the terminal. */
  read(opts: { readonly confirm: boolean; readonly purpose: string }): string | Promise<string>
}

const set = (v: string | undefined): v is string => v !== undefined && v !== ''
const chompOne = (s: string): string => s.replace(/\r?\n$/, '')

function fromFile(path: string, describe: string): PassphraseSource {
  return {
    describe: `${describe} (${path})`,
    interactive: false,
    read: () => {
      let text: string
      try {
        text = readFileSync(path, 'utf8')
      } catch (e) {
        throw new CareLedgerError('INVALID_ARGUMENT', `cannot read the passphrase file ${path} (${describe}): ${(e as Error).message}`, { path })
      }
      return chompOne(text)
    },
  }
}

function fromFd(raw: string, describe: string): PassphraseSource {
  const fd = /^\d{1,9}$/.test(raw) ? Number(raw) : Number.NaN
  if (!Number.isSafeInteger(fd)) throw new CareLedgerError('INVALID_ARGUMENT', `${describe} must be a file descriptor number, got ${JSON.stringify(raw)}`, { value: raw })
  let cached: string | null = null
  return {
    describe: `${describe} (${fd})`,
    interactive: false,
    // A pipe can be read once: keep what was read.
    read: () => {
      if (cached !== null) return cached
      try {
        cached = chompOne(readFileSync(fd, 'utf8'))
      } catch (e) {
        throw new CareLedgerError('INVALID_ARGUMENT', `cannot read the passphrase from file descriptor ${fd} (${describe}): ${(e as Error).message}`, { fd })
      }
      return cached
    },
  }
}

const fromValue = (value: string, describe: string): PassphraseSource => ({ describe, interactive: false, read: () => value })

/** The terminal: asks on stderr, reads stdin in raw mode without echo. */
export const terminalSource: PassphraseSource = {
  describe: 'the terminal',
  interactive: true,
  async read({ confirm, purpose }) {
    const first = await promptHidden(`Passphrase for ${purpose}: `)
    if (confirm) {
      const again = await promptHidden('Repeat the passphrase: ')
      if (again !== first) throw new CareLedgerError('INVALID_ARGUMENT', 'the two passphrases differ; nothing was written', { reason: 'PASSPHRASE_MISMATCH' })
    }
    return first
  },
}

/** A passphrase given by the program itself (tests, `npm start`'s development passphrase). */
export const givenPassphrase = (value: string, describe = 'the caller'): PassphraseSource => fromValue(value, describe)

/**
 * The configured source, or null if none is. `interactive`: fall back to the terminal when stdin
 * is a TTY (CLI commands); services pass false.
 */
export function passphraseSource(flags: PassphraseFlags, env: Env, opts: { interactive: boolean }): PassphraseSource | null {
  if (set(flags.passphraseFile) && set(flags.passphraseFd)) {
    throw new CareLedgerError('INVALID_ARGUMENT', 'give either --passphrase-file or --passphrase-fd, not both', {})
  }
  if (set(flags.passphraseFile)) return fromFile(flags.passphraseFile, '--passphrase-file')
  if (set(flags.passphraseFd)) return fromFd(flags.passphraseFd, '--passphrase-fd')
  const given = [PASSPHRASE_FILE_ENV, PASSPHRASE_FD_ENV, PASSPHRASE_ENV].filter((n) => set(env[n]))
  if (given.length > 1) {
    throw new CareLedgerError('INVALID_ARGUMENT', `${given.join(' and ')} are all set: set only one of them (which passphrase is meant?)`, { variables: given })
  }
  const file = env[PASSPHRASE_FILE_ENV]
  const fd = env[PASSPHRASE_FD_ENV]
  const value = env[PASSPHRASE_ENV]
  if (set(file)) return fromFile(file, PASSPHRASE_FILE_ENV)
  if (set(fd)) return fromFd(fd, PASSPHRASE_FD_ENV)
  if (set(value)) return fromValue(value, PASSPHRASE_ENV)
  if (opts.interactive && process.stdin.isTTY) return terminalSource
  return null
}

/** The scrypt cost of newly sealed files: CARELEDGER_SCRYPT_LOG2N (10–20), else 17. */
export function scryptParamsFrom(env: Env): ScryptParams {
  const raw = env[SCRYPT_COST_ENV]
  if (!set(raw)) return DEFAULT_SCRYPT
  const log2N = /^\d{1,2}$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN
  return checkScryptParams({ ...DEFAULT_SCRYPT, log2N }, (problem) => {
    throw new CareLedgerError('INVALID_ARGUMENT', `${SCRYPT_COST_ENV}=${JSON.stringify(raw)}: ${problem}`, { variable: SCRYPT_COST_ENV, value: raw })
  })
}

/** --passphrase-file / --passphrase-fd on a command that reads or writes sealed key files. */
export function addPassphraseOptions(cmd: Command): Command {
  return cmd
    .option('--passphrase-file <file>', `read the key-file passphrase from a file (else ${PASSPHRASE_FILE_ENV}, ${PASSPHRASE_FD_ENV}, ${PASSPHRASE_ENV}, or a prompt on a terminal)`)
    .option('--passphrase-fd <n>', 'read the key-file passphrase from this file descriptor, e.g. 3 with `3< file` or a pipe')
}

/** What a person should do when a passphrase is needed and none is configured. */
export function noPassphraseHint(interactive: boolean): string {
  const env = `${PASSPHRASE_FILE_ENV} (a file holding it), ${PASSPHRASE_FD_ENV} or ${PASSPHRASE_ENV}`
  return interactive ? `pass --passphrase-file or --passphrase-fd, set ${env}, or run on a terminal to be asked` : `set ${env} (docs/operations.md §Passphrases)`
}

/** What was typed after the Enter that ended the last answer (typed ahead): the start of the next one. */
let typedAhead = ''

/** Read a line from the terminal without echoing it. Ctrl-C cancels (INVALID_ARGUMENT), Backspace edits. */
async function promptHidden(question: string): Promise<string> {
  const input = process.stdin
  if (!input.isTTY) throw new CareLedgerError('INVALID_ARGUMENT', 'cannot ask for a passphrase: stdin is not a terminal', {})
  process.stderr.write(question)
  input.setRawMode(true)
  input.setEncoding('utf8')
  input.resume()
  return new Promise((resolve, reject) => {
    let value = ''
    const finish = (err: Error | null): void => {
      input.removeListener('data', onData)
      input.setRawMode(false)
      input.pause()
      process.stderr.write('\n')
      if (err) reject(err)
      else resolve(value)
    }
    const onData = (chunk: string): void => {
      const chars = [...chunk]
      for (let i = 0; i < chars.length; i++) {
        const ch = chars[i]!
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          typedAhead = chars.slice(i + 1).join('').replace(/^\n/, '')
          return finish(null)
        }
        if (ch === '\u0003') return finish(new CareLedgerError('INVALID_ARGUMENT', 'cancelled at the passphrase prompt', { reason: 'CANCELLED' }))
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('')
        else if (ch === '\u001b') return // an escape sequence (arrow keys …): ignore the rest of this chunk
        else if (ch >= ' ') value += ch
      }
    }
    input.on('data', onData)
    if (typedAhead) {
      const ahead = typedAhead
      typedAhead = ''
      onData(ahead)
    }
  })
}
