/**
 * Key files and other files that must not be half-written or readable by others.
 *
 * writeFileAtomic: a temporary file beside the target (created 0600 or 0644 with O_EXCL, so a
 * leftover cannot lend it a wider mode), written and fsynced, then renamed over the target, and
 * the directory fsynced: a crash leaves the old file or the new one, never a mix; a replaced file
 * takes the new file's mode (an old 0644 key overwritten with --force becomes 0600).
 * Without `overwrite` the new file is linked into place, which fails if the target exists.
 */
import { chmodSync, closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { basename, dirname, join } from 'node:path'
import { CareLedgerError } from '../errors.ts'

export interface AtomicWriteOptions {
  /** 0o600 for anything secret. */
  readonly mode: number
  /** Replace an existing file (default: refuse with EEXIST). */
  readonly overwrite?: boolean
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/** Write `data` to `path` atomically and durably; throws the fs error (EEXIST without overwrite). */
export function writeFileAtomic(path: string, data: Uint8Array | string, opts: AtomicWriteOptions): void {
  const dir = dirname(path)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`)
  const fd = openSync(tmp, 'wx', opts.mode)
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off)
    fsyncSync(fd)
  } catch (e) {
    closeSync(fd)
    unlinkSync(tmp)
    throw e
  }
  closeSync(fd)
  try {
    if (opts.overwrite) renameSync(tmp, path)
    else {
      linkSync(tmp, path) // EEXIST if the target appeared meanwhile: never overwrite a key by accident
      unlinkSync(tmp)
    }
  } catch (e) {
    if (existsSync(tmp)) unlinkSync(tmp)
    throw e
  }
  fsyncDir(dir)
}

/** Key files: secrets 0600, public keys 0644; an existing file is refused unless `force`. */
export function writeKeyFile(path: string, bytes: Uint8Array, opts: { secret: boolean; force?: boolean }): void {
  try {
    writeFileAtomic(path, bytes, { mode: opts.secret ? 0o600 : 0o644, overwrite: opts.force ?? false })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CareLedgerError('INVALID_ARGUMENT', `${path} already exists; refusing to overwrite a key (use --force)`, { path })
    }
    throw e
  }
}

export function readKeyFile(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path))
  } catch (e) {
    throw new CareLedgerError('INVALID_ARGUMENT', `cannot read ${path}: ${(e as Error).message}`, { path })
  }
}

/**
 * Make `path` owner-only before anything secret goes into it: created 0600 if missing, and an
 * existing file readable by group or others (created by an older version, restored from a backup,
 * or under a permissive umask) is narrowed to 0600. SQLite gives a database's -wal and -shm files
 * the database file's mode, so callers pass the database itself and its side files.
 */
export function ensurePrivateFile(path: string): void {
  if (!existsSync(path)) {
    closeSync(openSync(path, 'a', 0o600))
    return
  }
  const mode = statSync(path).mode & 0o777
  if (mode & 0o077) chmodSync(path, mode & 0o700)
}
