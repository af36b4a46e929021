/**
 * Every secret the supervision commands read, in one place (so sealed key files can replace plain
 * ones here alone): a regulator's wallet, FROST signing share, the 1-of-1 trapdoor, an attribute
 * key, and the authority's public key for re-sealing.
 */
import { Wallet } from 'ethers'
import { CareLedgerError } from '../shared/errors.ts'
import { readKeyFile } from '../shared/cli/files.ts'
import { readShareFile } from '../shared/cli/frost-files.ts'
import { processKeyring } from '../shared/cli/secret-files.ts'
import { decodeChameleonSecretKey } from '../shared/crypto/chameleon.ts'
import { decodeMasterPublicKey, decodeUserKey } from '../shared/crypto/abe/codec.ts'
import type { MasterPublicKey, UserKey } from '../shared/crypto/abe/fabeo.ts'
import type { FrostGroup, FrostShare } from '../shared/crypto/frost.ts'

export const WALLET_ENV = 'CARELEDGER_REGULATOR_WALLET'
/** The requester's wallet (signs supervision requests) when --wallet is not given. */
export const REQUESTER_WALLET_ENV = 'CARELEDGER_REQUESTER_WALLET'

/**
 * A regulator's (or requester's) EVM wallet: a file holding the 0x-hex private key — sealed under the
 * process's passphrase (`careledger keys encrypt`, docs/crypto.md §Sealed secrets) or raw with a
 * warning, like the trapdoor and the shares — or the environment variable `env`.
 */
export function readWallet(path: string | undefined, env = WALLET_ENV): Wallet {
  const text = path ? new TextDecoder().decode(processKeyring().readSync(path)).trim() : process.env[env]?.trim()
  if (!text) throw new CareLedgerError('INVALID_ARGUMENT', `your wallet is needed to sign: --wallet <file> (a 0x-hex private key) or ${env}`, { field: 'wallet' })
  try {
    return new Wallet(text.startsWith('0x') ? text : `0x${text}`)
  } catch {
    throw new CareLedgerError('INVALID_ARGUMENT', `${path ?? env}: not a secp256k1 private key (0x + 64 hex digits)`, { field: 'wallet' })
  }
}

export const readShare = (path: string): { group: FrostGroup; share: FrostShare } => readShareFile(path)
// Secrets may be sealed at rest (docs/crypto.md §Sealed secrets): opened with the process's passphrase, raw ones still read.
export const readTrapdoor = (path: string): Uint8Array => decodeChameleonSecretKey(processKeyring().readSync(path))
export const readAttributeKey = (path: string): UserKey => decodeUserKey(processKeyring().readSync(path, { warnIfUnsealed: false }))
export const readAuthority = (path: string): MasterPublicKey => decodeMasterPublicKey(readKeyFile(path))
