/**
 * The gateway's long-lived secrets and trust anchors, all under `<data>/keys/` (0600):
 *
 *   gateway.key            Ed25519 seed: signs batch manifests and cloud requests (created on first start)
 *   pseudonym.key          32 bytes: HMAC key of patient pseudonyms (or CARELEDGER_PSEUDONYM_KEY_FILE,
 *                          so that every gateway of a hospital gives a patient the same pseudonym)
 *   abe-master-public.key  the attribute authority's FABEO public key (or CARELEDGER_ABE_PUBLIC_KEY);
 *                          if none is configured the gateway creates a development authority beside
 *                          itself and says so loudly — a clinic installs the authority's real key
 *   abe-authority.id       the id of the authority this gateway seals to, pinned at first start: a
 *                          public key swapped later is refused (or CARELEDGER_ABE_AUTHORITY_ID, the id
 *                          the authority published, which also allows a deliberate move to a new one)
 *   cloud.json             where to ship batches, written by `careledger gateway register`
 *
 * Secrets (gateway.key, pseudonym.key, the development authority's master secret) are sealed under
 * the gateway's passphrase (CARELEDGER_PASSPHRASE*, shared/cli/secret-files.ts); raw files from
 * before sealed secrets are still read, with a warning.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { CareLedgerError } from '../shared/errors.ts'
import { decodeMasterPublicKey, encodeMasterPublicKey, encodeMasterSecretKey } from '../shared/crypto/abe/codec.ts'
import { setup, type MasterPublicKey } from '../shared/crypto/abe/fabeo.ts'
import { generateSigningKey, signingKeyId, signingPublicKey } from '../shared/crypto/sign.ts'
import { writeFileAtomic, writeKeyFile } from '../shared/cli/files.ts'
import type { Keyring } from '../shared/cli/secret-files.ts'
import { gatewayKeyring } from './keyring.ts'

export interface CloudRegistration {
  readonly url: string
  readonly gatewayId: string
  readonly name: string
  /** Hex Ed25519 key the cloud signs blocks with. */
  readonly cloudSigningKey: string
  /** Hex chameleon-hash public key of the chain. */
  readonly chameleonKey: string
  readonly registeredAt: number
}

export interface GatewayIdentity {
  readonly secretKey: Uint8Array
  readonly publicKey: Uint8Array
  /** signingKeyId(publicKey): what manifests and the cloud call this gateway. */
  readonly gatewayId: string
  readonly pseudonymKey: Uint8Array
  readonly mpk: MasterPublicKey
  readonly cloud: CloudRegistration | null
}

export const keysDir = (dataDir: string): string => join(dataDir, 'keys')
export const keysFile = (dataDir: string, name: 'gateway.key' | 'pseudonym.key'): string => join(keysDir(dataDir), name)
export const cloudFile = (dataDir: string): string => join(dataDir, 'cloud.json')

export const LABELS = {
  signingKey: 'gateway signing key (Ed25519 seed)',
  pseudonymKey: 'patient pseudonym key (HMAC-SHA256)',
  devAuthority: 'FABEO master secret key of the gateway\'s DEVELOPMENT authority',
} as const

function readOrCreateSecret(keyring: Keyring, path: string, label: string, create: () => Uint8Array): Uint8Array {
  if (existsSync(path)) return keyring.readSync(path)
  const bytes = create()
  keyring.writeSync(path, bytes, { label })
  return bytes
}

export const AUTHORITY_ID_ENV = 'CARELEDGER_ABE_AUTHORITY_ID'
export const authorityPinFile = (dataDir: string): string => join(keysDir(dataDir), 'abe-authority.id')
const idHex = (mpk: MasterPublicKey): string => Buffer.from(mpk.id).toString('hex')

/**
 * Item 13: a master public key swapped under the gateway must not silently re-target every batch.
 * The key's id (SHA-256 of the key, docs/crypto.md) must equal CARELEDGER_ABE_AUTHORITY_ID when
 * that is set, and the id pinned at first start in keys/abe-authority.id — unless the pinned one is
 * the development authority's (installing the clinic's key is the expected move away from it) or
 * CARELEDGER_ABE_AUTHORITY_ID names the new key (a deliberate change of authority).
 */
function checkAuthority(dataDir: string, mpk: MasterPublicKey, mpkPath: string, env: NodeJS.ProcessEnv, create: boolean, logger?: Logger): void {
  const id = idHex(mpk)
  const expected = env[AUTHORITY_ID_ENV]?.trim().toLowerCase()
  if (expected) {
    if (!/^[0-9a-f]{32}$/.test(expected)) throw new CareLedgerError('INVALID_ARGUMENT', `${AUTHORITY_ID_ENV}=${JSON.stringify(env[AUTHORITY_ID_ENV])}: an authority id is 32 hex digits (\`careledger authority show master-public.key\` prints it)`, { variable: AUTHORITY_ID_ENV })
    if (expected !== id) {
      throw new CareLedgerError('INVALID_ARGUMENT', `${mpkPath} is the public key of authority ${id}, but ${AUTHORITY_ID_ENV} says the gateway seals to authority ${expected}: refusing a swapped attribute-authority key (install the authority's own master-public.key)`, { reason: 'AUTHORITY_MISMATCH', expected, actual: id, path: mpkPath })
    }
  }
  const pinPath = authorityPinFile(dataDir)
  const pinned = existsSync(pinPath) ? readFileSync(pinPath, 'utf8').trim() : null
  if (pinned === id) return
  const devPublic = join(dataDir, 'dev-authority', 'master-public.key')
  const pinnedIsDev = pinned !== null && existsSync(devPublic) && idHex(decodeMasterPublicKey(new Uint8Array(readFileSync(devPublic)))) === pinned
  if (pinned !== null && !pinnedIsDev && expected !== id) {
    throw new CareLedgerError(
      'INVALID_ARGUMENT',
      `the attribute authority's public key changed: this gateway seals to authority ${pinned} (pinned in ${pinPath}), but ${mpkPath} holds authority ${id}. ` +
        `Refusing to encrypt to a key that may have been swapped. If the clinic really moved to a new authority, set ${AUTHORITY_ID_ENV}=${id}`,
      { reason: 'AUTHORITY_CHANGED', pinned, actual: id, path: mpkPath },
    )
  }
  if (!create) return
  writeFileAtomic(pinPath, `${id}\n`, { mode: 0o644, overwrite: true })
  if (pinned !== null) logger?.warn({ event: 'authority_changed', from: pinned, to: id }, `batches are sealed to authority ${id} from now on (was ${pinned}${pinnedIsDev ? ', the development authority' : ''})`)
}

/**
 * Load (creating on first start) the identity. `env` supplies CARELEDGER_PSEUDONYM_KEY_FILE and
 * CARELEDGER_ABE_PUBLIC_KEY; `create: false` (CLI tools) never writes anything.
 */
export function loadIdentity(dataDir: string, opts: { env?: NodeJS.ProcessEnv; logger?: Logger; create?: boolean; keyring?: Keyring } = {}): GatewayIdentity {
  const env = opts.env ?? process.env
  const dir = keysDir(dataDir)
  const create = opts.create ?? true
  const keyring = opts.keyring ?? gatewayKeyring(dataDir, process.env, opts.logger)
  if (create) mkdirSync(dir, { recursive: true, mode: 0o700 })
  const need = (path: string, read: (p: string) => Uint8Array = (p) => new Uint8Array(readFileSync(p))): Uint8Array => {
    if (!existsSync(path)) throw new CareLedgerError('INVALID_ARGUMENT', `${path} does not exist: start the gateway once to create its keys`, { path })
    return read(path)
  }
  const secret = (p: string): Uint8Array => keyring.readSync(p)

  const { secretKey, publicKey, gatewayId } = loadSigningKey(dataDir, { create, keyring })

  const pseudonymPath = env.CARELEDGER_PSEUDONYM_KEY_FILE || join(dir, 'pseudonym.key')
  const pseudonymKey = create && !env.CARELEDGER_PSEUDONYM_KEY_FILE ? readOrCreateSecret(keyring, pseudonymPath, LABELS.pseudonymKey, () => randomBytes(32)) : need(pseudonymPath, secret)
  if (pseudonymKey.length < 32) throw new CareLedgerError('INVALID_ARGUMENT', `${pseudonymPath} must hold at least 32 bytes`, { path: pseudonymPath })

  const mpkPath = env.CARELEDGER_ABE_PUBLIC_KEY || join(dir, 'abe-master-public.key')
  const devDir = join(dataDir, 'dev-authority')
  if (!existsSync(mpkPath) && create && !env.CARELEDGER_ABE_PUBLIC_KEY) {
    mkdirSync(devDir, { recursive: true, mode: 0o700 })
    const msk = setup()
    keyring.writeSync(join(devDir, 'master-secret.key'), encodeMasterSecretKey(msk), { label: LABELS.devAuthority, force: true })
    writeKeyFile(join(devDir, 'master-public.key'), encodeMasterPublicKey(msk.mpk), { secret: false, force: true })
    writeKeyFile(mpkPath, encodeMasterPublicKey(msk.mpk), { secret: false })
    opts.logger?.warn(
      { event: 'dev_authority_created', dir: devDir },
      `DEVELOPMENT MODE: no attribute-authority key was configured, so a development authority was created in ${devDir}. ` +
        'Batches are encrypted to it. A clinic sets CARELEDGER_ABE_PUBLIC_KEY to its authority\'s master-public.key instead.',
    )
  } else if (create && !env.CARELEDGER_ABE_PUBLIC_KEY && existsSync(mpkPath) && existsSync(join(devDir, 'master-public.key')) && readFileSync(mpkPath).equals(readFileSync(join(devDir, 'master-public.key')))) {
    // Not only on the first start: a gateway that stays on the development authority says so every time.
    opts.logger?.warn(
      { event: 'dev_authority_in_use', dir: devDir },
      `DEVELOPMENT MODE: CARELEDGER_ABE_PUBLIC_KEY is not set, so batches are encrypted to the development authority in ${devDir}, ` +
        'whose master secret is on this gateway. A clinic sets CARELEDGER_ABE_PUBLIC_KEY to its authority\'s master-public.key.',
    )
  }
  const mpk = decodeMasterPublicKey(need(mpkPath))
  checkAuthority(dataDir, mpk, mpkPath, env, create, opts.logger)

  const cloud = existsSync(cloudFile(dataDir)) ? (JSON.parse(readFileSync(cloudFile(dataDir), 'utf8')) as CloudRegistration) : null
  return { secretKey, publicKey, gatewayId, pseudonymKey, mpk, cloud }
}

/**
 * Only the gateway's Ed25519 key (created if missing unless `create: false`): what
 * `careledger gateway register` needs. Unlike loadIdentity it never creates an attribute
 * authority, so registering before the first start cannot leave a development authority behind.
 */
export function loadSigningKey(dataDir: string, opts: { create?: boolean; keyring: Keyring }): { secretKey: Uint8Array; publicKey: Uint8Array; gatewayId: string } {
  const dir = keysDir(dataDir)
  const seedPath = join(dir, 'gateway.key')
  let secretKey: Uint8Array
  if (opts.create ?? true) {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    secretKey = readOrCreateSecret(opts.keyring, seedPath, LABELS.signingKey, () => generateSigningKey().secretKey)
  } else {
    if (!existsSync(seedPath)) throw new CareLedgerError('INVALID_ARGUMENT', `${seedPath} does not exist: start the gateway once to create its keys`, { path: seedPath })
    secretKey = opts.keyring.readSync(seedPath)
  }
  if (secretKey.length !== 32) throw new CareLedgerError('INVALID_ENCODING', `${seedPath} must hold a 32-byte Ed25519 seed, it holds ${secretKey.length} bytes`, { path: seedPath })
  const publicKey = signingPublicKey(secretKey)
  return { secretKey, publicKey, gatewayId: signingKeyId(publicKey) }
}

export function saveCloudRegistration(dataDir: string, reg: CloudRegistration): void {
  writeFileAtomic(cloudFile(dataDir), JSON.stringify(reg, null, 2) + '\n', { mode: 0o600, overwrite: true })
}
