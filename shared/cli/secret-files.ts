/**
 * Secret key files on disk, sealed under a passphrase (shared/crypto/sealed-secret.ts): the one
 * place that reads and writes them. For a command that handles one or two secrets:
 *
 *   const secret = await readSecretKeyFile(path, { passphrase: opts })      // opts: the command's --passphrase-* flags
 *   await writeSecretKeyFile(path, bytes, { label: 'FROST key share 2 of 3', passphrase: opts, force })
 *
 * For several files under one passphrase (one prompt, one scrypt) or a service, a Keyring:
 *
 *   const keyring = Keyring.forCommand(opts)                 // flags > environment > terminal prompt
 *   await keyring.write(a, …); await keyring.write(b, …)
 *
 * A raw (unsealed) key file from before sealed secrets is still read, with a warning that names
 * `careledger keys encrypt <file>`. New files are always sealed; only a service whose data
 * directory predates sealed secrets, running without a passphrase, writes raw ones (and says so).
 */
import { existsSync, readFileSync } from 'node:fs'
import { CareLedgerError } from '../errors.ts'
import {
  deriveSealingKey,
  isSealedSecret,
  newSealingKey,
  openSealedSecret,
  readSealedHeader,
  sealSecret,
  type ScryptParams,
  type SealedHeader,
  type SealingKey,
} from '../crypto/sealed-secret.ts'
import { writeFileAtomic } from './files.ts'
import { noPassphraseHint, passphraseSource, scryptParamsFrom, type Env, type PassphraseFlags, type PassphraseSource } from './passphrase.ts'

export type Warn = (event: string, message: string, info: Record<string, unknown>) => void
const stderrWarn: Warn = (_event, message) => void process.stderr.write(`warning: ${message}\n`)
/** Warnings as log lines of a service's logger (pino's shape), or on stderr without one. */
export const warnTo = (logger?: { warn(obj: object, msg: string): void }): Warn =>
  logger ? (event, message, info) => logger.warn({ event, ...info }, message) : stderrWarn

export interface KeyringOptions {
  /** Scrypt cost of newly sealed files (default: CARELEDGER_SCRYPT_LOG2N, else 2^17). */
  readonly params?: ScryptParams
  readonly warn?: Warn
  /** No passphrase: write new secrets unsealed instead of refusing (a data directory from before sealed secrets). */
  readonly allowUnsealed?: boolean
}

/** What a Keyring hands a worker thread (structured-clonable): the passphrase and the derived keys. */
export interface KeyringTransfer {
  readonly passphrase: string | null
  readonly describe: string | null
  readonly keys: readonly SealingKey[]
  readonly params: ScryptParams
  readonly allowUnsealed: boolean
}

export class Keyring {
  readonly #source: PassphraseSource | null
  readonly #params: ScryptParams
  readonly #warn: Warn
  readonly #allowUnsealed: boolean
  #passphrase: string | null = null
  /** Derived keys by salt and parameters: one scrypt per (salt, params) per process. */
  readonly #keys: SealingKey[] = []
  readonly #warned = new Set<string>()

  constructor(source: PassphraseSource | null, opts: KeyringOptions = {}) {
    this.#source = source
    this.#params = opts.params ?? scryptParamsFrom(process.env)
    this.#warn = opts.warn ?? stderrWarn
    this.#allowUnsealed = opts.allowUnsealed ?? false
  }

  /** A CLI command: its --passphrase-* flags, else the environment, else a prompt on a terminal. */
  static forCommand(flags: PassphraseFlags = {}, env: Env = process.env, opts: KeyringOptions = {}): Keyring {
    return new Keyring(passphraseSource(flags, env, { interactive: true }), { params: scryptParamsFrom(env), ...opts })
  }

  /**
   * A service (gateway, cloud): the environment only, never a prompt. With no passphrase configured
   * it starts only on a data directory whose `mainKeyFile` is a raw key file from before sealed
   * secrets (and keeps writing raw ones, warning at every start); otherwise it refuses to start.
   */
  static forService(what: string, mainKeyFile: string, env: Env = process.env, opts: Omit<KeyringOptions, 'allowUnsealed'> = {}): Keyring {
    const source = passphraseSource({}, env, { interactive: false })
    const params = opts.params ?? scryptParamsFrom(env)
    if (source !== null) return new Keyring(source, { ...opts, params })
    const legacy = existsSync(mainKeyFile) && !isSealedSecret(new Uint8Array(readFileSync(mainKeyFile)))
    if (!legacy) {
      throw new CareLedgerError('INVALID_ARGUMENT', `no passphrase for the ${what}'s keys: ${noPassphraseHint(false)}. They are sealed under it at rest`, { reason: 'NO_PASSPHRASE' })
    }
    const keyring = new Keyring(null, { ...opts, params, allowUnsealed: true })
    keyring.#warn('no_passphrase', `no passphrase is configured, so the ${what}'s keys stay UNSEALED on disk (a data directory from before sealed secrets); ${noPassphraseHint(false)} and run \`careledger keys encrypt\` on them`, { mainKeyFile })
    return keyring
  }

  /** For a worker thread of the same process (gateway/backoffice): the same passphrase and derived keys, no second scrypt. */
  static fromTransfer(t: KeyringTransfer, warn?: Warn): Keyring {
    const source = t.passphrase === null ? null : { describe: t.describe ?? 'the main thread', interactive: false, read: () => t.passphrase! }
    const k = new Keyring(source, { params: t.params, allowUnsealed: t.allowUnsealed, ...(warn ? { warn } : {}) })
    k.#passphrase = t.passphrase
    k.#keys.push(...t.keys)
    return k
  }

  transfer(): KeyringTransfer {
    const passphrase = this.#source === null ? null : this.#passphraseSync('the back office')
    return { passphrase, describe: this.#source?.describe ?? null, keys: [...this.#keys], params: this.#params, allowUnsealed: this.#allowUnsealed }
  }

  /** Where the passphrase comes from (null: none configured). */
  get source(): string | null {
    return this.#source?.describe ?? null
  }

  /** Obtain the passphrase now (a prompt asks; `confirm` asks twice, for sealing). */
  async unlock(purpose: string, confirm = false): Promise<void> {
    if (this.#passphrase !== null) return
    if (this.#source === null) throw this.#noPassphrase(purpose)
    this.#passphrase = await this.#source.read({ confirm, purpose })
  }

  /**
   * Obtain the passphrase if `path` will need it: it is sealed, or missing (it will be created and
   * sealed: a prompt asks twice). A raw file needs none. For CLI code about to call the sync methods.
   */
  async unlockFor(path: string): Promise<void> {
    if (!existsSync(path)) {
      if (!(this.#source === null && this.#allowUnsealed)) await this.unlock(path, true)
    } else if (isSealedSecret(readBytes(path))) await this.unlock(path)
  }

  #noPassphrase(purpose: string): CareLedgerError {
    return new CareLedgerError('INVALID_ARGUMENT', `${purpose} needs the key-file passphrase: ${noPassphraseHint(true)}`, { reason: 'NO_PASSPHRASE' })
  }

  #passphraseSync(purpose: string): string {
    if (this.#passphrase !== null) return this.#passphrase
    if (this.#source === null) throw this.#noPassphrase(purpose)
    const p = this.#source.read({ confirm: false, purpose })
    if (typeof p !== 'string') throw new CareLedgerError('INVALID_ARGUMENT', `${purpose} needs the passphrase, which ${this.#source.describe} gives only when asked (call unlock first)`, {})
    this.#passphrase = p
    return p
  }

  #keyFor(h: SealedHeader, purpose: string): SealingKey {
    const same = (k: SealingKey) => k.params.log2N === h.params.log2N && k.params.r === h.params.r && k.params.p === h.params.p && Buffer.from(k.salt).equals(h.salt)
    let k = this.#keys.find(same)
    if (!k) {
      k = deriveSealingKey(this.#passphraseSync(purpose), h.salt, h.params)
      this.#keys.push(k)
    }
    return k
  }

  /** Files sealed by one process share one salt and key (one scrypt); each has its own nonce. */
  #sealingKey(purpose: string): SealingKey {
    const p = this.#params
    let k = this.#keys.find((x) => x.params.log2N === p.log2N && x.params.r === p.r && x.params.p === p.p)
    if (!k) {
      k = newSealingKey(this.#passphraseSync(purpose), p)
      this.#keys.push(k)
    }
    return k
  }

  /** Sealed bytes → the secret; raw bytes are returned as they are (with a warning unless `warnIfUnsealed: false`). */
  open(bytes: Uint8Array, path: string, opts: { warnIfUnsealed?: boolean } = {}): Uint8Array {
    if (!isSealedSecret(bytes)) {
      if ((opts.warnIfUnsealed ?? true) && !this.#warned.has(path)) {
        this.#warned.add(path)
        this.#warn('unsealed_key_file', `${path} is not sealed under a passphrase (a key file from before sealed secrets): seal it with \`careledger keys encrypt ${path}\``, { path })
      }
      return bytes
    }
    try {
      return openSealedSecret(bytes, (h) => this.#keyFor(h, path))
    } catch (e) {
      if (e instanceof CareLedgerError) throw new CareLedgerError(e.code, `${path}: ${e.message}${e.info.reason === 'WRONG_PASSPHRASE' && this.#source ? ` (passphrase from ${this.#source.describe})` : ''}`, { ...e.info, path }, { cause: e })
      throw e
    }
  }

  /** Read a secret key file, sealed or raw. */
  readSync(path: string, opts: { warnIfUnsealed?: boolean } = {}): Uint8Array {
    return this.open(readBytes(path), path, opts)
  }

  /** Like readSync, asking on the terminal first if the file is sealed and the passphrase still unknown. */
  async read(path: string, opts: { warnIfUnsealed?: boolean } = {}): Promise<Uint8Array> {
    await this.unlockFor(path)
    return this.readSync(path, opts)
  }

  /** The bytes of `secret` sealed for a file (raw only for a service allowed to stay unsealed). */
  seal(secret: Uint8Array, label: string, path: string): Uint8Array {
    if (this.#source === null && this.#allowUnsealed) {
      this.#warn('unsealed_key_written', `${path} written UNSEALED: no passphrase is configured`, { path })
      return secret
    }
    return sealSecret(secret, this.#sealingKey(path), label)
  }

  /** Write a secret key file atomically, 0600, sealed; an existing file only with `force`. */
  writeSync(path: string, secret: Uint8Array, opts: { label: string; force?: boolean }): void {
    if (!opts.force && existsSync(path)) throw exists(path)
    writeSecretBytes(path, this.seal(secret, opts.label, path), opts.force ?? false)
  }

  /** Like writeSync, asking on the terminal (twice) first if the passphrase is still unknown. */
  async write(path: string, secret: Uint8Array, opts: { label: string; force?: boolean }): Promise<void> {
    if (!opts.force && existsSync(path)) throw exists(path)
    if (!(this.#source === null && this.#allowUnsealed)) await this.unlock(path, true)
    this.writeSync(path, secret, opts)
  }
}

const exists = (path: string): CareLedgerError => new CareLedgerError('INVALID_ARGUMENT', `${path} already exists; refusing to overwrite a key (use --force)`, { path })

function readBytes(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path))
  } catch (e) {
    throw new CareLedgerError('INVALID_ARGUMENT', `cannot read ${path}: ${(e as Error).message}`, { path })
  }
}

function writeSecretBytes(path: string, bytes: Uint8Array, overwrite: boolean): void {
  try {
    writeFileAtomic(path, bytes, { mode: 0o600, overwrite })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw exists(path)
    throw e
  }
}

let commandKeyring: Keyring | undefined
/**
 * One keyring for the whole CLI process, from the environment (CARELEDGER_PASSPHRASE_FILE / _FD /
 * CARELEDGER_PASSPHRASE), for synchronous readers (FROST files, the pseudonym key) whose callers
 * pass no keyring of their own; `await processKeyring().unlockFor(path)` first lets a terminal ask.
 */
export const processKeyring = (): Keyring => (commandKeyring ??= Keyring.forCommand())

/** Read one secret key file (sealed or raw) for a CLI command; `passphrase` is the command's --passphrase-* flags. */
export async function readSecretKeyFile(path: string, opts: { passphrase?: PassphraseFlags; keyring?: Keyring; warnIfUnsealed?: boolean } = {}): Promise<Uint8Array> {
  return (opts.keyring ?? Keyring.forCommand(opts.passphrase)).read(path, { warnIfUnsealed: opts.warnIfUnsealed ?? true })
}

/** Write one secret key file, sealed, 0600, atomically, for a CLI command (a prompt asks twice). */
export async function writeSecretKeyFile(path: string, secret: Uint8Array, opts: { label: string; force?: boolean; passphrase?: PassphraseFlags; keyring?: Keyring }): Promise<void> {
  return (opts.keyring ?? Keyring.forCommand(opts.passphrase)).write(path, secret, { label: opts.label, ...(opts.force === undefined ? {} : { force: opts.force }) })
}

/** The public header of a sealed file (no passphrase needed), or null for a raw file. */
export function sealedFileHeader(path: string): SealedHeader | null {
  const bytes = readBytes(path)
  return isSealedSecret(bytes) ? readSealedHeader(bytes) : null
}
