/**
 * The cloud's keys, under `<data>/keys/`:
 *
 *   cloud-signing.key     Ed25519 seed (RFC 8032 §5.1.5), 0600, sealed under the cloud's passphrase
 *                         (CARELEDGER_PASSPHRASE*, shared/cli/secret-files.ts; a raw 32-byte file from
 *                         before sealed secrets is still read, with a warning): signs block headers.
 *                         Created on first start.
 *   cloud-signing.pub     its public key, 32 raw bytes, 0644: for auditors and `chain verify`.
 *   chameleon-public.key  the regulator's chameleon-hash public key (careledger key format,
 *                         chameleon.ts), pinned: records are hashed under it, so a later start
 *                         with a different key is refused rather than silently forking the chain.
 *
 * The chameleon key comes from CARELEDGER_CHAMELEON_PUBLIC_KEY (a file). Without one: development
 * mode — a regulator key pair is generated under `<data>/regulator/` (trapdoor sealed, 0600) and its public
 * key pinned as above, with a loud warning on every start while the trapdoor is on this host: whoever
 * holds it can rewrite records, which is the regulator's power alone.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../shared/errors.ts'
import { writeKeyFile } from '../shared/cli/files.ts'
import { Keyring, warnTo } from '../shared/cli/secret-files.ts'
import { checkSigningPublicKey, generateSigningKey, signingKeyId, signingPublicKey, SIGNING_SECRET_KEY_BYTES } from '../shared/crypto/sign.ts'
import { chameleonKeyGen, chameleonKeyId, decodeChameleonPublicKey, encodeChameleonPublicKey, encodeChameleonSecretKey } from '../shared/crypto/chameleon.ts'

export interface CloudKeys {
  readonly signingSecretKey: Uint8Array
  readonly signingPublicKey: Uint8Array
  /** signingKeyId(signingPublicKey) */
  readonly signingKeyId: string
  /** Raw 32-byte ristretto255 encoding. */
  readonly chameleonPublicKey: Uint8Array
  readonly chameleonKeyId: string
  /** True while the regulator's trapdoor sits in `<data>/regulator/` on this host. */
  readonly developmentRegulator: boolean
  readonly files: {
    readonly signingKey: string
    readonly signingPublicKey: string
    readonly chameleonPublicKey: string
    readonly regulatorSecretKey: string | null
  }
}

export interface KeyPaths {
  readonly keys: string
  readonly regulator: string
}

export const keyFiles = (paths: KeyPaths) => ({
  signingKey: join(paths.keys, 'cloud-signing.key'),
  signingPublicKey: join(paths.keys, 'cloud-signing.pub'),
  chameleonPublicKey: join(paths.keys, 'chameleon-public.key'),
  regulatorSecretKey: join(paths.regulator, 'chameleon-secret.key'),
  regulatorPublicKey: join(paths.regulator, 'chameleon-public.key'),
})

function readFile(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path))
  } catch (e) {
    throw new CareLedgerError('INVALID_ARGUMENT', `cannot read the ${what} ${path}: ${(e as Error).message}`, { path })
  }
}

/** Write a public key file that must not exist yet (never overwrite a key), atomically. */
const writeNew = (path: string, bytes: Uint8Array): void => writeKeyFile(path, bytes, { secret: false })

/** The keyring the cloud seals its secrets with: CARELEDGER_PASSPHRASE* (docs/operations.md §Passphrases). */
export const cloudKeyring = (paths: KeyPaths, env: NodeJS.ProcessEnv = process.env, logger?: Logger): Keyring =>
  Keyring.forService('cloud', keyFiles(paths).signingKey, env, { warn: warnTo(logger) })

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i])

/**
 * Load the cloud's keys, creating what a first start needs (`create: false` — for CLI tools —
 * never writes and fails if something is missing).
 */
export function loadCloudKeys(
  paths: KeyPaths,
  chameleonPublicKeyFile: string | null,
  opts: { logger?: Logger; create?: boolean; keyring?: Keyring } = {},
): CloudKeys {
  const create = opts.create ?? true
  const f = keyFiles(paths)
  const keyring = opts.keyring ?? cloudKeyring(paths, process.env, opts.logger)
  if (create) mkdirSync(paths.keys, { recursive: true, mode: 0o700 })

  // ── block-signing key ──────────────────────────────────────────────────────────────────────
  let signingSecretKey: Uint8Array
  if (existsSync(f.signingKey)) {
    signingSecretKey = keyring.readSync(f.signingKey)
    if (signingSecretKey.length !== SIGNING_SECRET_KEY_BYTES) {
      throw new CareLedgerError('INVALID_ENCODING', `${f.signingKey} must hold a ${SIGNING_SECRET_KEY_BYTES}-byte Ed25519 seed, it holds ${signingSecretKey.length} bytes`, { path: f.signingKey })
    }
  } else if (create) {
    signingSecretKey = generateSigningKey().secretKey
    keyring.writeSync(f.signingKey, signingSecretKey, { label: 'cloud block-signing key (Ed25519 seed)' })
    opts.logger?.info({ event: 'signing_key_created', path: f.signingKey }, 'created the block-signing key')
  } else {
    throw new CareLedgerError('INVALID_ARGUMENT', `${f.signingKey} does not exist: start the cloud once to create its keys`, { path: f.signingKey })
  }
  const signingPk = signingPublicKey(signingSecretKey)
  if (create) {
    if (!existsSync(f.signingPublicKey)) writeNew(f.signingPublicKey, signingPk)
    else if (!sameBytes(readFile(f.signingPublicKey, 'block-signing public key'), signingPk)) {
      throw new CareLedgerError('INVALID_ARGUMENT', `${f.signingPublicKey} does not match ${f.signingKey}; delete the .pub file to have it rewritten`, { path: f.signingPublicKey })
    }
  }

  // ── chameleon public key ───────────────────────────────────────────────────────────────────
  let chameleonPk: Uint8Array
  let regulatorSecret: string | null = null
  if (chameleonPublicKeyFile !== null) {
    chameleonPk = decodeChameleonPublicKey(readFile(chameleonPublicKeyFile, 'chameleon public key (CARELEDGER_CHAMELEON_PUBLIC_KEY)'))
  } else if (existsSync(f.chameleonPublicKey)) {
    chameleonPk = decodeChameleonPublicKey(readFile(f.chameleonPublicKey, 'pinned chameleon public key'))
  } else if (create) {
    mkdirSync(paths.regulator, { recursive: true, mode: 0o700 })
    const pair = chameleonKeyGen()
    keyring.writeSync(f.regulatorSecretKey, encodeChameleonSecretKey(pair.secretKey), { label: `DEVELOPMENT chameleon-hash trapdoor of regulator key ${chameleonKeyId(pair.publicKey)}` })
    writeNew(f.regulatorPublicKey, encodeChameleonPublicKey(pair.publicKey))
    chameleonPk = pair.publicKey
  } else {
    throw new CareLedgerError('INVALID_ARGUMENT', `no chameleon public key: set CARELEDGER_CHAMELEON_PUBLIC_KEY or start the cloud once`, {})
  }
  // Pin it: the chain's records are hashed under this key.
  if (existsSync(f.chameleonPublicKey)) {
    const pinned = decodeChameleonPublicKey(readFile(f.chameleonPublicKey, 'pinned chameleon public key'))
    if (!sameBytes(pinned, chameleonPk)) {
      throw new CareLedgerError(
        'INVALID_ARGUMENT',
        `the chain in ${paths.keys}/.. was built under chameleon key ${chameleonKeyId(pinned)}, but ${chameleonPublicKeyFile} holds ${chameleonKeyId(chameleonPk)}; ` +
          'refusing to start (records hashed under one key cannot be verified under another)',
        { pinned: chameleonKeyId(pinned), configured: chameleonKeyId(chameleonPk) },
      )
    }
  } else if (create) {
    writeNew(f.chameleonPublicKey, encodeChameleonPublicKey(chameleonPk))
  }
  if (existsSync(f.regulatorSecretKey)) regulatorSecret = f.regulatorSecretKey
  if (regulatorSecret !== null) {
    opts.logger?.warn(
      { event: 'development_regulator', trapdoor: regulatorSecret, chameleonKey: chameleonKeyId(chameleonPk) },
      `DEVELOPMENT MODE: the regulator's chameleon-hash trapdoor is on the cloud host (${regulatorSecret}). ` +
        'Whoever holds it can rewrite chain records. Move it to the regulator, delete it here, and set CARELEDGER_CHAMELEON_PUBLIC_KEY to the public key.',
    )
  }

  return {
    signingSecretKey,
    signingPublicKey: signingPk,
    signingKeyId: signingKeyId(signingPk),
    chameleonPublicKey: chameleonPk,
    chameleonKeyId: chameleonKeyId(chameleonPk),
    developmentRegulator: regulatorSecret !== null,
    files: { signingKey: f.signingKey, signingPublicKey: f.signingPublicKey, chameleonPublicKey: f.chameleonPublicKey, regulatorSecretKey: regulatorSecret },
  }
}

/** The public half, for `careledger cloud keys`: from cloud-signing.pub and the pinned chameleon key, no passphrase. */
export function readCloudPublicKeys(paths: KeyPaths): Pick<CloudKeys, 'signingPublicKey' | 'signingKeyId' | 'chameleonPublicKey' | 'chameleonKeyId' | 'developmentRegulator'> {
  const f = keyFiles(paths)
  for (const path of [f.signingPublicKey, f.chameleonPublicKey]) {
    if (!existsSync(path)) throw new CareLedgerError('INVALID_ARGUMENT', `${path} does not exist: start the cloud once to create its keys`, { path })
  }
  const signingPk = checkSigningPublicKey(readFile(f.signingPublicKey, 'block-signing public key'))
  const chameleonPk = decodeChameleonPublicKey(readFile(f.chameleonPublicKey, 'pinned chameleon public key'))
  return { signingPublicKey: signingPk, signingKeyId: signingKeyId(signingPk), chameleonPublicKey: chameleonPk, chameleonKeyId: chameleonKeyId(chameleonPk), developmentRegulator: existsSync(f.regulatorSecretKey) }
}

/** What `POST /v1/gateways/register` hands a gateway. */
export const publicKeysHex = (k: CloudKeys): { signingKey: string; chameleonKey: string } => ({
  signingKey: bytesToHex(k.signingPublicKey),
  chameleonKey: bytesToHex(k.chameleonPublicKey),
})
