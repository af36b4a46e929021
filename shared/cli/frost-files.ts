/**
 * A regulator's FROST files on disk, through the key-file helpers (files.ts: secrets 0600, never
 * silently overwritten). Encodings: shared/crypto/frost-codec.ts.
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
import { readKeyFile, writeKeyFile } from './files.ts'

export function writeShareFile(path: string, group: FrostGroup, share: FrostShare, opts: { force?: boolean } = {}): void {
  writeKeyFile(path, encodeFrostShareFile(group, share), { secret: true, force: opts.force })
}

export const readShareFile = (path: string): { group: FrostGroup; share: FrostShare } => decodeFrostShareFile(readKeyFile(path))

/** Round one: keep the nonces until round two. Refuses to overwrite (two nonce sets for one session is a bug). */
export function writeNonceFile(path: string, file: NonceFile): void {
  writeKeyFile(path, encodeFrostNonceFile(file), { secret: true })
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
export function takeNonceFile(path: string, label: string): NonceFile {
  const file = decodeFrostNonceFile(readKeyFile(path))
  if (file.label !== label) {
    throw new CareLedgerError('INVALID_ARGUMENT', `${path} holds nonces for ${JSON.stringify(file.label)}, not ${JSON.stringify(label)}`, { reason: 'WRONG_SESSION', path, label: file.label })
  }
  removeDurably(path)
  return file
}

export function writeDkgStateFile(path: string, state: DkgState, opts: { force?: boolean } = {}): void {
  writeKeyFile(path, encodeDkgStateFile(state), { secret: true, force: opts.force })
}

export const readDkgStateFile = (path: string): DkgState => decodeDkgStateFile(readKeyFile(path))

/** After round 3 the polynomial must not survive: delete the state file. */
export const deleteDkgStateFile = (path: string): void => removeDurably(path)
