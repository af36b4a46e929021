/**
 * A regulator's FROST files on disk. All three kinds are secrets, so they are SEALED under the
 * regulator's passphrase like every other key file (secret-files.ts, docs/crypto.md §Sealed secrets:
 * 0600, written atomically, never silently overwritten); a raw file from before sealed secrets is
 * still read, with a warning naming `careledger keys encrypt`. Encodings: shared/crypto/frost-codec.ts.
 *
 * Every function takes an optional `keyring`; without one, a process-wide `Keyring.forCommand()`
 * (CARELEDGER_PASSPHRASE_FILE / _FD / CARELEDGER_PASSPHRASE). A CLI that may prompt calls
 * `await keyring.unlockFor(path)` (or `unlock`) first and passes its keyring: these are synchronous.
 *
 * Nonces are single-use, and that is enforced here: `takeNonceFile` deletes the file (and syncs
 * the directory) BEFORE handing the nonces to the signer. A crash after that loses the nonces —
 * the regulator runs round one again — but can never let the same nonces sign twice, which would
 * reveal the signing share (docs/crypto.md §FROST, nonce reuse).
 */
import { closeSync, fsyncSync, openSync, unlinkSync } from 'node:fs'
import { dirname } from 'node:path'
import { CareLedgerError } from '../errors.ts'
import type { FrostGroup, FrostShare } from '../crypto/frost.ts'
import type { DkgState } from '../crypto/frost-dkg.ts'
import {
  decodeDkgStateFile,
  decodeFrostNonceFile,
  decodeFrostShareFile,
  encodeDkgStateFile,
  encodeFrostNonceFile,
  encodeFrostShareFile,
  type NonceFile,
} from '../crypto/frost-codec.ts'
import { processKeyring, type Keyring } from './secret-files.ts'

/** Which keyring a call uses: the caller's, else the process's (secret-files.ts processKeyring: the environment). */
export interface FrostFileOptions {
  readonly keyring?: Keyring
}
const keyringOf = (opts: FrostFileOptions): Keyring => opts.keyring ?? processKeyring()

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

export function writeShareFile(path: string, group: FrostGroup, share: FrostShare, opts: FrostFileOptions & { force?: boolean } = {}): void {
  const label = `FROST signing share ${share.index} of ${group.participants} (threshold ${group.threshold}) for group key ${hex(group.groupKey)}`
  keyringOf(opts).writeSync(path, encodeFrostShareFile(group, share), { label, force: opts.force ?? false })
}

export const readShareFile = (path: string, opts: FrostFileOptions = {}): { group: FrostGroup; share: FrostShare } => decodeFrostShareFile(keyringOf(opts).readSync(path))

/** Round one: keep the nonces until round two. Refuses to overwrite (two nonce sets for one session is a bug). */
export function writeNonceFile(path: string, file: NonceFile, opts: FrostFileOptions = {}): void {
  keyringOf(opts).writeSync(path, encodeFrostNonceFile(file), { label: `FROST nonces for ${JSON.stringify(file.label)}` })
}

/** Delete a file and make the deletion durable (fsync of its directory). */
function removeDurably(path: string): void {
  unlinkSync(path)
  const dir = openSync(dirname(path), 'r')
  try {
    fsyncSync(dir)
  } finally {
    closeSync(dir)
  }
}

/**
 * Round two: read the nonces made for `label` and delete them for good before returning them. A
 * file made for another label (request) is refused and left in place.
 */
export function takeNonceFile(path: string, label: string, opts: FrostFileOptions = {}): NonceFile {
  const file = decodeFrostNonceFile(keyringOf(opts).readSync(path)) // a wrong passphrase throws here: the file stays
  if (file.label !== label) {
    throw new CareLedgerError('INVALID_ARGUMENT', `${path} holds nonces for ${JSON.stringify(file.label)}, not ${JSON.stringify(label)}`, { reason: 'WRONG_SESSION', path, label: file.label })
  }
  removeDurably(path)
  return file
}

export function writeDkgStateFile(path: string, state: DkgState, opts: FrostFileOptions & { force?: boolean } = {}): void {
  const label = `FROST DKG state of participant ${state.index} of ${state.participants} (threshold ${state.threshold}), ceremony ${hex(state.ceremony)}`
  keyringOf(opts).writeSync(path, encodeDkgStateFile(state), { label, force: opts.force ?? false })
}

export const readDkgStateFile = (path: string, opts: FrostFileOptions = {}): DkgState => decodeDkgStateFile(keyringOf(opts).readSync(path))

/** After round 3 the polynomial must not survive: delete the state file. */
export const deleteDkgStateFile = (path: string): void => removeDurably(path)
