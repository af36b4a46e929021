/** Key files: raw binary encodings, secrets written 0600 and never silently overwritten. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { CareLedgerError } from '../errors.ts'

export function writeKeyFile(path: string, bytes: Uint8Array, opts: { secret: boolean; force?: boolean }): void {
  mkdirSync(dirname(path), { recursive: true })
  try {
    writeFileSync(path, bytes, { mode: opts.secret ? 0o600 : 0o644, flag: opts.force ? 'w' : 'wx' })
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
