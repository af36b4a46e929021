/**
 * Enrolled devices, their secrets and their bed-change history.
 *
 * Secrets: 32 random bytes, base64url (43 characters), shown once at enrolment. Stored as
 * `scrypt$N$r$p$salt$hash` (16-byte salt, 32-byte hash, base64url), verified with timingSafeEqual.
 * The parameters are part of every stored hash, so each hash is verified with its own: hashes
 * written before issue 11 (N=2^14, r=8: 16 MiB and ~50 ms a login) keep verifying; new ones use
 * N=2^11, r=8 (2 MiB, ~6 ms). A memory-hard cost protects low-entropy passwords; these secrets
 * carry 256 random bits, so no guessing attack on a stolen hash is within reach at any cost setting
 * (the salt still makes every hash unique), while each login's 16 MiB was the gateway's RSS peak at
 * a ward's connect (docs/security.md §Device secrets). The gateway verifies asynchronously (libuv
 * thread pool) so a connect storm does not stall ingest.
 *
 * `DeviceDirectory` is the gateway's in-memory view (device → current patient) kept correct while
 * the CLI changes the database from another process: `PRAGMA data_version` tells when another
 * connection committed, and then the cache is dropped.
 */
import { createHash, randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto'
import type Database from 'better-sqlite3'
import { CareLedgerError } from '../../shared/errors.ts'
import { assertDeviceId, assertPatientId } from '../../shared/schema/device.ts'

export const SCRYPT = { N: 2 ** 11, r: 8, p: 1, saltBytes: 16, keyBytes: 32 } as const
/** The parameters of hashes written before issue 11: still verified (each hash names its own). */
export const SCRYPT_V1 = { N: 2 ** 14, r: 8, p: 1 } as const

export interface DeviceRecord {
  readonly deviceId: string
  readonly patientId: string
  readonly createdAt: number
  readonly updatedAt: number
  readonly disabled: boolean
}

export interface DeviceWithSecret extends DeviceRecord {
  readonly secretHash: string
}

export interface Assignment {
  readonly deviceId: string
  readonly patientId: string
  readonly fromTs: number
  readonly toTs: number | null
}

export interface Enrolment {
  readonly device: DeviceRecord
  /** The plaintext secret: shown once, never stored. */
  readonly secret: string
  /** Highest seq stored from an earlier enrolment of the same id (the device must continue above it). */
  readonly previousMaxSeq: number | null
}

const b64u = (b: Buffer): string => b.toString('base64url')

export function generateSecret(): string {
  return b64u(randomBytes(32))
}

export function hashSecret(secret: string, salt: Buffer = randomBytes(SCRYPT.saltBytes)): string {
  const { N, r, p, keyBytes } = SCRYPT
  const hash = scryptSync(secret, salt, keyBytes, { N, r, p })
  return `scrypt$${N}$${r}$${p}$${b64u(salt)}$${b64u(hash)}`
}

interface ParsedHash {
  N: number
  r: number
  p: number
  salt: Buffer
  hash: Buffer
}

function parseHash(encoded: string): ParsedHash | null {
  const parts = encoded.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])]
  if (![N, r, p].every((x) => Number.isSafeInteger(x) && x > 0) || N > 2 ** 20 || r > 32 || p > 16) return null
  return { N, r, p, salt: Buffer.from(parts[4]!, 'base64url'), hash: Buffer.from(parts[5]!, 'base64url') }
}

/**
 * One scrypt at a time: each holds 128·N·r bytes (2 MiB at today's parameters, 16 MiB for a hash
 * written before issue 11) on a libuv thread, so a ward of monitors reconnecting at once after a
 * gateway restart would otherwise add 4 × that to the gateway's RSS (measured with 16 MiB hashes:
 * 200 → 278 MB for 10 simultaneous connects). Serialised, never more than one scrypt's memory.
 */
let scryptBusy = false
const scryptQueue: Array<() => void> = []

/** Verifications waiting for the running one (for tests and diagnostics). */
export const scryptWaiting = (): number => scryptQueue.length

function scryptOneAtATime(presented: Uint8Array, h: ParsedHash): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const run = (): void => {
      scryptBusy = true
      scrypt(presented, h.salt, h.hash.length, { N: h.N, r: h.r, p: h.p, maxmem: 256 * h.N * h.r + 1024 * 1024 }, (err, key) => {
        scryptBusy = false
        scryptQueue.shift()?.()
        resolve(err ? null : key)
      })
    }
    if (scryptBusy) scryptQueue.push(run)
    else run()
  })
}

/** Constant-time check of a presented secret against a stored scrypt hash. Never throws. */
export async function verifySecret(presented: Uint8Array, encoded: string): Promise<boolean> {
  const h = parseHash(encoded)
  if (!h || h.hash.length === 0) return false
  const key = await scryptOneAtATime(presented, h)
  return key !== null && timingSafeEqual(key, h.hash)
}

/**
 * A hash to verify against when the device is unknown, so that timing does not reveal which ids
 * exist. A constant (the hash of a random secret nobody kept) rather than computed at start-up.
 * Same parameters as SCRYPT, so an unknown id costs what a newly enrolled device's login costs.
 */
export const DUMMY_HASH = 'scrypt$2048$8$1$B1jOsyNC5ex6s9JcBiqo2w$1u03w7aZkS1K2rzTxmJDLCxhAp_-AfYu1pA_IswBBMA'

interface DeviceRow {
  device_id: string
  patient_id: string
  secret_hash: string
  created_at: number
  updated_at: number
  disabled: number
}

const toRecord = (r: DeviceRow): DeviceWithSecret => ({
  deviceId: r.device_id,
  patientId: r.patient_id,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  disabled: r.disabled === 1,
  secretHash: r.secret_hash,
})

const notEnrolled = (deviceId: string): CareLedgerError =>
  new CareLedgerError('INVALID_ARGUMENT', `device "${deviceId}" is not enrolled (see: careledger gateway device list)`, { deviceId, reason: 'UNKNOWN_DEVICE' })

export class DeviceStore {
  readonly #db: Database.Database
  readonly #get: Database.Statement<[string], DeviceRow>

  constructor(db: Database.Database) {
    this.#db = db
    this.#get = db.prepare('SELECT * FROM devices WHERE device_id = ?')
  }

  get(deviceId: string): DeviceWithSecret | undefined {
    const row = this.#get.get(deviceId)
    return row ? toRecord(row) : undefined
  }

  list(): DeviceRecord[] {
    const rows = this.#db.prepare<[], DeviceRow>('SELECT * FROM devices ORDER BY device_id').all()
    return rows.map((r) => {
      const { secretHash: _omit, ...rest } = toRecord(r)
      return rest
    })
  }

  /** Enrol a device for a patient; returns the plaintext secret (once). */
  add(deviceId: string, patientId: string, now = Date.now()): Enrolment {
    assertDeviceId(deviceId)
    assertPatientId(patientId)
    const secret = generateSecret()
    const secretHash = hashSecret(secret)
    return this.#db
      .transaction((): Enrolment => {
        const existing = this.get(deviceId)
        if (existing) {
          throw new CareLedgerError(
            'INVALID_ARGUMENT',
            `device "${deviceId}" is already enrolled (patient ${existing.patientId}); use "device rotate-secret" for a new secret or "device move" for another patient`,
            { deviceId, reason: 'DEVICE_EXISTS' },
          )
        }
        this.#db
          .prepare('INSERT INTO devices (device_id, patient_id, secret_hash, created_at, updated_at, disabled) VALUES (?, ?, ?, ?, ?, 0)')
          .run(deviceId, patientId, secretHash, now, now)
        this.#openAssignment(deviceId, patientId, now)
        const max = this.#db.prepare<[string], { m: number | null }>('SELECT max(seq) AS m FROM readings WHERE device_id = ?').get(deviceId)
        return { device: this.#require(deviceId), secret, previousMaxSeq: max?.m ?? null }
      })
      .immediate()
  }

  /** Remove a device: it can no longer connect. Its readings and assignment history stay. */
  remove(deviceId: string, now = Date.now()): DeviceRecord {
    assertDeviceId(deviceId)
    return this.#db
      .transaction(() => {
        const d = this.#require(deviceId)
        this.#closeAssignment(deviceId, now)
        this.#db.prepare('DELETE FROM devices WHERE device_id = ?').run(deviceId)
        return d
      })
      .immediate()
  }

  /**
   * Bed change: the device now measures another patient. Readings already stored keep the patient
   * they were received under; readings committed after this belong to the new patient.
   */
  move(deviceId: string, patientId: string, now = Date.now()): { readonly from: string; readonly to: string } {
    assertDeviceId(deviceId)
    assertPatientId(patientId)
    return this.#db
      .transaction(() => {
        const d = this.#require(deviceId)
        if (d.patientId === patientId) {
          throw new CareLedgerError('INVALID_ARGUMENT', `device "${deviceId}" is already assigned to patient ${patientId}`, { deviceId, patientId, reason: 'NO_CHANGE' })
        }
        // Assignments are keyed by (device, from_ts): two moves in the same millisecond get distinct keys.
        const last = this.#db.prepare<[string], { f: number | null }>('SELECT max(from_ts) AS f FROM device_assignments WHERE device_id = ?').get(deviceId)
        const at = Math.max(now, (last?.f ?? -1) + 1)
        this.#closeAssignment(deviceId, at)
        this.#openAssignment(deviceId, patientId, at)
        this.#db.prepare('UPDATE devices SET patient_id = ?, updated_at = ? WHERE device_id = ?').run(patientId, at, deviceId)
        return { from: d.patientId, to: patientId }
      })
      .immediate()
  }

  /** Issue a new secret; the old one stops working (a connected device is disconnected by the gateway). */
  rotateSecret(deviceId: string, now = Date.now()): string {
    assertDeviceId(deviceId)
    const secret = generateSecret()
    const secretHash = hashSecret(secret)
    this.#db
      .transaction(() => {
        this.#require(deviceId)
        this.#db.prepare('UPDATE devices SET secret_hash = ?, updated_at = ? WHERE device_id = ?').run(secretHash, now, deviceId)
      })
      .immediate()
    return secret
  }

  /** Disable (or re-enable) a device without forgetting it. */
  setDisabled(deviceId: string, disabled: boolean, now = Date.now()): DeviceRecord {
    assertDeviceId(deviceId)
    return this.#db
      .transaction(() => {
        this.#require(deviceId)
        this.#db.prepare('UPDATE devices SET disabled = ?, updated_at = ? WHERE device_id = ?').run(disabled ? 1 : 0, now, deviceId)
        return this.#require(deviceId)
      })
      .immediate()
  }

  assignments(deviceId: string): Assignment[] {
    return this.#db
      .prepare<[string], { device_id: string; patient_id: string; from_ts: number; to_ts: number | null }>(
        'SELECT * FROM device_assignments WHERE device_id = ? ORDER BY from_ts',
      )
      .all(deviceId)
      .map((a) => ({ deviceId: a.device_id, patientId: a.patient_id, fromTs: a.from_ts, toTs: a.to_ts }))
  }

  #require(deviceId: string): DeviceWithSecret {
    const d = this.get(deviceId)
    if (!d) throw notEnrolled(deviceId)
    return d
  }

  #openAssignment(deviceId: string, patientId: string, at: number): void {
    this.#db.prepare('INSERT INTO device_assignments (device_id, patient_id, from_ts, to_ts) VALUES (?, ?, ?, NULL)').run(deviceId, patientId, at)
  }

  #closeAssignment(deviceId: string, at: number): void {
    this.#db.prepare('UPDATE device_assignments SET to_ts = ? WHERE device_id = ? AND to_ts IS NULL').run(at, deviceId)
  }
}

/**
 * The gateway's cached view of the devices table. Correct across processes: `refreshIfChanged()`
 * (cheap: one PRAGMA) drops the cache when another connection has committed since the last call.
 * Call it inside the write transaction before relying on `patientOf` for a commit.
 */
export class DeviceDirectory {
  readonly #store: DeviceStore
  readonly #dataVersion: Database.Statement<[], number>
  #version = -1
  #generation = 0
  #cache = new Map<string, DeviceWithSecret | null>()

  constructor(db: Database.Database, store = new DeviceStore(db)) {
    this.#store = store
    this.#dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck()
  }

  /** True when the cache was dropped because the database changed underneath. */
  refreshIfChanged(): boolean {
    const v = this.#dataVersion.get()!
    if (v === this.#version) return false
    this.#version = v
    this.invalidate()
    return true
  }

  /** Drop the cache (after a change made through this same connection). */
  invalidate(): void {
    this.#cache.clear()
    this.#generation++
  }

  /** Increases every time the cache is dropped: watchers compare it to notice enrolment changes. */
  get generation(): number {
    return this.#generation
  }

  lookup(deviceId: string): DeviceWithSecret | undefined {
    let d = this.#cache.get(deviceId)
    if (d === undefined) {
      d = this.#store.get(deviceId) ?? null
      this.#cache.set(deviceId, d)
    }
    return d ?? undefined
  }

  /** The patient a reading from this device belongs to now, or undefined if it may not send. */
  patientOf(deviceId: string): string | undefined {
    const d = this.lookup(deviceId)
    return d && !d.disabled ? d.patientId : undefined
  }
}

/**
 * Remembers which (device, secret) pairs verified recently, so a device reconnecting in a loop
 * (e.g. while storage is full) does not cost an scrypt each time. Keyed by the stored hash: a
 * rotated secret never matches an old entry. Holds SHA-256 of 256-bit random secrets only.
 */
export class VerifiedSecrets {
  readonly #entries = new Map<string, { secretHash: string; digest: Buffer }>()
  readonly #max: number

  constructor(max = 4096) {
    this.#max = max
  }

  has(deviceId: string, secretHash: string, presented: Uint8Array): boolean {
    const e = this.#entries.get(deviceId)
    if (!e || e.secretHash !== secretHash) return false
    return timingSafeEqual(e.digest, sha256(presented))
  }

  add(deviceId: string, secretHash: string, presented: Uint8Array): void {
    if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!)
    this.#entries.set(deviceId, { secretHash, digest: sha256(presented) })
  }
}

const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest()
