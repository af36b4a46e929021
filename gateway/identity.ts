/**
 * The gateway's long-lived secrets and trust anchors, all under `<data>/keys/` (0600):
 *
 *   gateway.key            Ed25519 seed: signs batch manifests and cloud requests (created on first start)
 *   pseudonym.key          32 bytes: HMAC key of patient pseudonyms (or CARELEDGER_PSEUDONYM_KEY_FILE,
 *                          so that every gateway of a hospital gives a patient the same pseudonym)
 *   abe-master-public.key  the attribute authority's FABEO public key (or CARELEDGER_ABE_PUBLIC_KEY);
 *                          if none is configured the gateway creates a development authority beside
 *                          itself and says so loudly — a clinic installs the authority's real key
 *   cloud.json             where to ship batches, written by `careledger gateway register`
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { CareLedgerError } from '../shared/errors.ts'
import { decodeMasterPublicKey, encodeMasterPublicKey, encodeMasterSecretKey } from '../shared/crypto/abe/codec.ts'
import { setup, type MasterPublicKey } from '../shared/crypto/abe/fabeo.ts'
import { generateSigningKey, signingKeyId, signingPublicKey } from '../shared/crypto/sign.ts'

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
export const cloudFile = (dataDir: string): string => join(dataDir, 'cloud.json')

function readOrCreateSecret(path: string, create: () => Uint8Array): Uint8Array {
  if (existsSync(path)) return new Uint8Array(readFileSync(path))
  const bytes = create()
  writeFileSync(path, bytes, { mode: 0o600, flag: 'wx' })
  return bytes
}

/**
 * Load (creating on first start) the identity. `env` supplies CARELEDGER_PSEUDONYM_KEY_FILE and
 * CARELEDGER_ABE_PUBLIC_KEY; `create: false` (CLI tools) never writes anything.
 */
export function loadIdentity(dataDir: string, opts: { env?: NodeJS.ProcessEnv; logger?: Logger; create?: boolean } = {}): GatewayIdentity {
  const env = opts.env ?? process.env
  const dir = keysDir(dataDir)
  const create = opts.create ?? true
  if (create) mkdirSync(dir, { recursive: true, mode: 0o700 })
  const need = (path: string): Uint8Array => {
    if (!existsSync(path)) throw new CareLedgerError('INVALID_ARGUMENT', `${path} does not exist: start the gateway once to create its keys`, { path })
    return new Uint8Array(readFileSync(path))
  }

  const { secretKey, publicKey, gatewayId } = loadSigningKey(dataDir, { create })

  const pseudonymPath = env.CARELEDGER_PSEUDONYM_KEY_FILE || join(dir, 'pseudonym.key')
  const pseudonymKey = create && !env.CARELEDGER_PSEUDONYM_KEY_FILE ? readOrCreateSecret(pseudonymPath, () => randomBytes(32)) : need(pseudonymPath)
  if (pseudonymKey.length < 32) throw new CareLedgerError('INVALID_ARGUMENT', `${pseudonymPath} must hold at least 32 bytes`, { path: pseudonymPath })

  const mpkPath = env.CARELEDGER_ABE_PUBLIC_KEY || join(dir, 'abe-master-public.key')
  const devDir = join(dataDir, 'dev-authority')
  if (!existsSync(mpkPath) && create && !env.CARELEDGER_ABE_PUBLIC_KEY) {
    mkdirSync(devDir, { recursive: true, mode: 0o700 })
    const msk = setup()
    writeFileSync(join(devDir, 'master-secret.key'), encodeMasterSecretKey(msk), { mode: 0o600 })
    writeFileSync(join(devDir, 'master-public.key'), encodeMasterPublicKey(msk.mpk), { mode: 0o644 })
    writeFileSync(mpkPath, encodeMasterPublicKey(msk.mpk), { mode: 0o644 })
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

  const cloud = existsSync(cloudFile(dataDir)) ? (JSON.parse(readFileSync(cloudFile(dataDir), 'utf8')) as CloudRegistration) : null
  return { secretKey, publicKey, gatewayId, pseudonymKey, mpk, cloud }
}

/**
 * Only the gateway's Ed25519 key (created if missing unless `create: false`): what
 * `careledger gateway register` needs. Unlike loadIdentity it never creates an attribute
 * authority, so registering before the first start cannot leave a development authority behind.
 */
export function loadSigningKey(dataDir: string, opts: { create?: boolean } = {}): { secretKey: Uint8Array; publicKey: Uint8Array; gatewayId: string } {
  const dir = keysDir(dataDir)
  const seedPath = join(dir, 'gateway.key')
  let secretKey: Uint8Array
  if (opts.create ?? true) {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    secretKey = readOrCreateSecret(seedPath, () => generateSigningKey().secretKey)
  } else {
    if (!existsSync(seedPath)) throw new CareLedgerError('INVALID_ARGUMENT', `${seedPath} does not exist: start the gateway once to create its keys`, { path: seedPath })
    secretKey = new Uint8Array(readFileSync(seedPath))
  }
  const publicKey = signingPublicKey(secretKey)
  return { secretKey, publicKey, gatewayId: signingKeyId(publicKey) }
}

export function saveCloudRegistration(dataDir: string, reg: CloudRegistration): void {
  writeFileSync(cloudFile(dataDir), JSON.stringify(reg, null, 2) + '\n', { mode: 0o600 })
}
