/**
 * The gateway's own certificate authority for the MQTTS listener.
 *
 * <data>/tls/ca.key, ca.crt      ECDSA P-256 CA, 10 years, created on first start, reused after.
 * <data>/tls/server.key, .crt    ECDSA P-256 server certificate signed by the CA, 1 year; SANs
 *                                localhost, 127.0.0.1, ::1, os.hostname() and the configured
 *                                extra names. Reissued when it expires within 30 days, when the
 *                                wanted names change, or when key and certificate do not match.
 * Keys are sealed under the gateway's passphrase (gateway/keyring.ts) and written 0600, atomically
 * (temporary file, fsync, rename: a crash never leaves half a key).
 *
 * Devices pin ca.crt (`careledger gateway ca` prints it). notBefore is back-dated one day so a
 * device whose clock lags the gateway's a little still accepts a fresh certificate.
 */
import type * as X509 from '@peculiar/x509'
import { X509Certificate as NodeX509, createPrivateKey, webcrypto } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { isIP } from 'node:net'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { CareLedgerError } from '../shared/errors.ts'
import { writeFileAtomic } from '../shared/cli/files.ts'
import type { Keyring } from '../shared/cli/secret-files.ts'
import { gatewayKeyring } from './keyring.ts'

let x509Lib: Promise<typeof X509> | undefined
/**
 * @peculiar/x509 (with tsyringe, reflect-metadata and its ASN.1 schemas) is loaded only when a
 * certificate is issued: a running gateway merely checks its certificate, with node:crypto, and
 * would otherwise keep ~0.5 MB of source text and its objects in the heap for nothing (issue 11).
 */
function loadX509(): Promise<typeof X509> {
  return (x509Lib ??= (async () => {
    await import('reflect-metadata') // @peculiar/x509 (tsyringe) needs the Reflect metadata polyfill loaded first
    const x509 = await import('@peculiar/x509')
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])
    return x509
  })())
}

type CryptoKeyPair = webcrypto.CryptoKeyPair
type CryptoKey = webcrypto.CryptoKey

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const DAY = 86_400_000
export const CA_VALIDITY_DAYS = 3650
export const SERVER_VALIDITY_DAYS = 365
export const RENEW_BEFORE_DAYS = 30

export const TLS_DIR = 'tls'
const FILES = { caKey: 'ca.key', caCert: 'ca.crt', serverKey: 'server.key', serverCert: 'server.crt' } as const
const LABELS = { caKey: 'gateway MQTTS CA private key (PKCS#8 PEM)', serverKey: 'gateway MQTTS server private key (PKCS#8 PEM)' } as const
const utf8 = new TextEncoder()
const text = (b: Uint8Array): string => new TextDecoder().decode(b)

export interface ServerCredentials {
  /** PEM of the server private key. */
  readonly key: string
  /** PEM chain: server certificate then the CA certificate. */
  readonly cert: string
  readonly caPem: string
  readonly notAfter: Date
  readonly names: readonly string[]
}

export interface EnsureResult extends ServerCredentials {
  readonly caCreated: boolean
  /** Why the server certificate was (re)issued this call, or null if reused. */
  readonly issued: null | 'missing' | 'expiring' | 'names-changed' | 'key-mismatch'
}

/** The names every server certificate carries, plus the configured extras (deduplicated). */
export function serverNames(extra: readonly string[] = []): string[] {
  return [...new Set(['localhost', '127.0.0.1', '::1', hostname(), ...extra].filter(Boolean))]
}

/** Create the CA if it does not exist; return its PEM. */
export async function ensureCa(dataDir: string, now = new Date(), keyring?: Keyring): Promise<{ caPem: string; created: boolean }> {
  const dir = tlsDir(dataDir)
  const keyPath = join(dir, FILES.caKey)
  const certPath = join(dir, FILES.caCert)
  if (existsSync(keyPath) && existsSync(certPath)) return { caPem: readFileSync(certPath, 'utf8'), created: false }
  if (existsSync(keyPath) !== existsSync(certPath)) {
    throw new CareLedgerError('INVALID_ARGUMENT', `${dir} holds only half of the gateway CA (${existsSync(keyPath) ? FILES.caKey : FILES.caCert}); restore the other file or move both away to create a new CA (devices must then be given the new CA)`, { dir })
  }
  const x509 = await loadX509()
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair
  const name = `CN=CareLedger gateway CA ${hostname()}, O=CareLedger`
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name,
    notBefore: new Date(now.getTime() - DAY),
    notAfter: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  const caPem = cert.toString('pem')
  ;(keyring ?? gatewayKeyring(dataDir)).writeSync(keyPath, utf8.encode(await privatePem(keys.privateKey)), { label: LABELS.caKey, force: true })
  writeFileAtomic(certPath, caPem + '\n', { mode: 0o644, overwrite: true })
  return { caPem: readFileSync(certPath, 'utf8'), created: true }
}

/** The CA certificate PEM, or a clear error if the gateway has not created it yet. */
export function readCaPem(dataDir: string): string {
  const path = join(tlsDir(dataDir), FILES.caCert)
  try {
    return readFileSync(path, 'utf8')
  } catch {
    throw new CareLedgerError('INVALID_ARGUMENT', `no gateway CA at ${path}; start the gateway once (or run "careledger gateway ca") to create it`, { path })
  }
}

/**
 * Make sure a valid server certificate exists for `extraNames`: create the CA and/or (re)issue the
 * server certificate as needed. Cheap when nothing is due (reads and parses two PEM files).
 */
export async function ensureServerCertificate(
  dataDir: string,
  opts: { extraNames?: readonly string[]; now?: Date; renewBeforeDays?: number; logger?: Logger; keyring?: Keyring } = {},
): Promise<EnsureResult> {
  const now = opts.now ?? new Date()
  const keyring = opts.keyring ?? gatewayKeyring(dataDir, process.env, opts.logger)
  const { caPem, created: caCreated } = await ensureCa(dataDir, now, keyring)
  const dir = tlsDir(dataDir)
  const names = serverNames(opts.extraNames)
  const keyPath = join(dir, FILES.serverKey)
  const certPath = join(dir, FILES.serverCert)
  const issued = whyIssue(keyring, keyPath, certPath, names, now, opts.renewBeforeDays ?? RENEW_BEFORE_DAYS)
  if (issued !== null) {
    await issueServerCertificate(keyring, dir, names, now)
    opts.logger?.info({ event: 'tls_server_cert_issued', reason: issued, names }, `issued the MQTTS server certificate (${issued})`)
  }
  const key = text(keyring.readSync(keyPath))
  const serverPem = readFileSync(certPath, 'utf8')
  return { key, cert: serverPem.trimEnd() + '\n' + caPem, caPem, notAfter: new Date(new NodeX509(serverPem).validTo), names, caCreated, issued }
}

function whyIssue(keyring: Keyring, keyPath: string, certPath: string, names: readonly string[], now: Date, renewBeforeDays: number): EnsureResult['issued'] {
  if (!existsSync(keyPath) || !existsSync(certPath)) return 'missing'
  let cert: NodeX509
  // A wrong passphrase is an error, not a reason to replace the key.
  const key = keyring.readSync(keyPath)
  try {
    cert = new NodeX509(readFileSync(certPath))
    if (!cert.checkPrivateKey(createPrivateKey(Buffer.from(key)))) return 'key-mismatch'
  } catch {
    return 'key-mismatch'
  }
  if (new Date(cert.validTo).getTime() - now.getTime() < renewBeforeDays * DAY) return 'expiring'
  const have = new Set(
    (cert.subjectAltName ?? '')
      .split(', ')
      .map((s) => s.replace(/^(DNS|IP Address):/, ''))
      .map((s) => (isIP(s) === 6 ? normalizeV6(s) : s)),
  )
  if (!names.every((n) => have.has(isIP(n) === 6 ? normalizeV6(n) : n))) return 'names-changed'
  return null
}

async function issueServerCertificate(keyring: Keyring, dir: string, names: readonly string[], now: Date): Promise<void> {
  const x509 = await loadX509()
  const caKey = await webcrypto.subtle.importKey('pkcs8', pemBody(text(keyring.readSync(join(dir, FILES.caKey)))), ALG, false, ['sign'])
  const caCert = new x509.X509Certificate(readFileSync(join(dir, FILES.caCert), 'utf8'))
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${hostname() || 'careledger-gateway'}`,
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - DAY),
    notAfter: new Date(now.getTime() + SERVER_VALIDITY_DAYS * DAY),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names.map((n) => ({ type: isIP(n) ? ('ip' as const) : ('dns' as const), value: n }))),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  })
  // Key first, then certificate: a crash in between leaves a mismatched pair, which the next
  // start detects ('key-mismatch') and repairs.
  keyring.writeSync(join(dir, FILES.serverKey), utf8.encode(await privatePem(keys.privateKey)), { label: LABELS.serverKey, force: true })
  writeFileAtomic(join(dir, FILES.serverCert), cert.toString('pem') + '\n', { mode: 0o644, overwrite: true })
}

function tlsDir(dataDir: string): string {
  const dir = join(dataDir, TLS_DIR)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  return dir
}

async function privatePem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key)
  return (await loadX509()).PemConverter.encode(der, 'PRIVATE KEY') + '\n'
}

function pemBody(pem: string): ArrayBuffer {
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' })
  return der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer
}

function randomSerial(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16))
  b[0] = b[0]! & 0x7f // positive INTEGER
  return Buffer.from(b).toString('hex')
}

function normalizeV6(ip: string): string {
  // Node prints "::1" as "0:0:0:0:0:0:0:1" in subjectAltName; compare in expanded form.
  const [head = '', tail = ''] = ip.includes('::') ? ip.split('::') : [ip, '']
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const mid = ip.includes('::') ? Array(8 - h.length - t.length).fill('0') : []
  return [...h, ...mid, ...t].map((x) => parseInt(x, 16).toString(16)).join(':')
}

/** SHA-256 fingerprint of a certificate, as devices display it (for logs and `careledger gateway ca`). */
export function certFingerprint(certPem: string): string {
  return new NodeX509(certPem).fingerprint256
}
