/**
 * Who may connect and what they may see (MQTT 3.1.1).
 *
 * Identity: the CONNECT username is the device id and the password its enrolment secret. The
 * client identifier MUST equal the username: aedes closes an existing session when a new CONNECT
 * carries the same client id [MQTT-3.1.4-2], so a free-form client id would let one device
 * disconnect another. `client.id` is therefore the device identity used by every ACL below.
 *
 * CONNACK return codes: 2 (identifier rejected) when client id ≠ username; 3 (server unavailable)
 * when the login queue is full (login-queue.ts); 4 (bad user name or password) for an unknown
 * device or a wrong secret — indistinguishable, and an unknown id still costs one scrypt so timing
 * does not tell either; 5 (not authorized) for a disabled device (only after its secret verified).
 *
 * Cheaper checks first (issue 8, item 4): a user name that cannot be a device id, or a missing
 * password, is refused without scrypt (nothing secret to protect: the id syntax is public); a
 * device that logged in since the gateway started is checked against a cached digest; logins for
 * enrolled ids are served before logins for unknown ids (login-queue.ts). Under a login flood that
 * priority shows in the timing whether an id is enrolled; device ids are not secrets (they are in
 * every batch manifest), the device secrets are.
 */
import type { Aedes, AuthenticateError, Client, Subscription } from 'aedes'
import type { Logger } from 'pino'
import { DEVICE_ID, errorsTopic } from '../../shared/schema/device.ts'
import { DUMMY_HASH, verifySecret, type DeviceDirectory, type VerifiedSecrets } from '../store/devices.ts'
import type { GatewayMetrics } from '../metrics.ts'
import { clipForLog } from '../log.ts'
import { LoginQueueFull, type LoginQueue } from './login-queue.ts'

/** What the gateway remembers about an authenticated connection. */
export interface DeviceSession {
  readonly deviceId: string
  /** The secret hash the device authenticated against: a rotation invalidates the session. */
  readonly secretHash: string
  readonly connectedAt: number
}

export interface AuthDeps {
  readonly directory: DeviceDirectory
  readonly verified: VerifiedSecrets
  readonly sessions: WeakMap<Client, DeviceSession>
  readonly metrics: GatewayMetrics
  readonly logger: Logger
  /** Where logins wait for their scrypt check. */
  readonly loginQueue: LoginQueue
  /** Called on success, before aedes sends CONNACK 0. */
  readonly onAuthenticated?: (client: Client) => void
}

type AuthFailure = 'BAD_CREDENTIALS' | 'DISABLED' | 'CLIENT_ID_MISMATCH' | 'BUSY'
const RETURN_CODE: Record<AuthFailure, 2 | 3 | 4 | 5> = { CLIENT_ID_MISMATCH: 2, BUSY: 3, BAD_CREDENTIALS: 4, DISABLED: 5 }
const MESSAGE: Record<AuthFailure, string> = {
  CLIENT_ID_MISMATCH: 'client identifier must equal the device id (username)',
  BUSY: 'too many logins waiting; retry with backoff',
  BAD_CREDENTIALS: 'bad device id or secret',
  DISABLED: 'device is disabled',
}

function refusal(reason: AuthFailure): AuthenticateError {
  return Object.assign(new Error(MESSAGE[reason]), { returnCode: RETURN_CODE[reason] }) as AuthenticateError
}

const remoteOf = (client: Client): string | undefined => (client.conn as { remoteAddress?: string }).remoteAddress

export function createAuthenticate(deps: AuthDeps) {
  const { directory, verified, sessions, metrics, logger, loginQueue } = deps
  const fail = (client: Client, username: string | undefined, reason: AuthFailure, done: (e: AuthenticateError, ok: false) => void): void => {
    metrics.authFailures.inc({ reason })
    const who = { username: username === undefined ? undefined : clipForLog(String(username), 80), clientId: client.id === null ? null : clipForLog(String(client.id), 80) }
    logger.warn({ event: 'auth_refused', reason, ...who, remote: remoteOf(client) }, `MQTT connection refused: ${reason}`)
    done(refusal(reason), false)
  }

  return function authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    if (typeof username !== 'string' || !DEVICE_ID.test(username) || !password) return fail(client, username, 'BAD_CREDENTIALS', done)
    if (client.id !== username) return fail(client, username, 'CLIENT_ID_MISMATCH', done)
    directory.refreshIfChanged()
    const device = directory.lookup(username)
    const secretHash = device?.secretHash ?? DUMMY_HASH
    const accept = (ok: boolean): void => {
      if (!ok || !device) return fail(client, username, 'BAD_CREDENTIALS', done)
      if (device.disabled) return fail(client, username, 'DISABLED', done)
      verified.add(username, secretHash, password)
      sessions.set(client, { deviceId: username, secretHash, connectedAt: Date.now() })
      deps.onAuthenticated?.(client)
      done(null, true)
    }
    if (device && verified.has(username, secretHash, password)) return accept(true)
    const check = loginQueue.submit(remoteOf(client) ?? '?', device ? 'enrolled' : 'unknown', () => verifySecret(password, secretHash))
    if (!check) return fail(client, username, 'BUSY', done)
    void check.then(accept, (e) => (e instanceof LoginQueueFull ? fail(client, username, 'BUSY', done) : accept(false)))
  }
}

/** A device may subscribe to its own errors topic only; anything else gets SUBACK return code 0x80 (Failure, MQTT 3.1.1 §3.9.3). */
export function createAuthorizeSubscribe(deps: Pick<AuthDeps, 'metrics' | 'logger'>) {
  return function authorizeSubscribe(client: Client, sub: Subscription, done: (err: Error | null, sub?: Subscription | null) => void): void {
    if (sub.topic === errorsTopic(client.id)) return done(null, sub)
    deps.metrics.subscribeRefused.inc()
    deps.logger.warn({ event: 'subscribe_refused', deviceId: client.id, topic: sub.topic }, `device ${client.id} may subscribe only to ${errorsTopic(client.id)}`)
    done(null, null) // negated subscription: return code 0x80 (Failure) in the SUBACK
  }
}

/** Defence in depth: nothing but a device's own errors reaches it, whatever is subscribed. */
export function authorizeForward<P extends { topic: string }>(client: Client, packet: P): P | null {
  return packet.topic === errorsTopic(client.id) ? packet : null
}

/**
 * Close connections whose enrolment changed underneath them (removed, disabled, secret rotated),
 * as soon as the CLI's commit is seen. Returns a stop function.
 */
export function watchEnrolment(broker: Aedes, deps: Pick<AuthDeps, 'directory' | 'sessions' | 'logger'>, intervalMs = 1000): () => void {
  let seen = deps.directory.generation
  const timer = setInterval(() => {
    deps.directory.refreshIfChanged()
    if (deps.directory.generation === seen) return
    seen = deps.directory.generation
    for (const client of Object.values((broker as unknown as { clients: Record<string, Client> }).clients)) {
      const s = deps.sessions.get(client)
      if (!s) continue
      const d = deps.directory.lookup(s.deviceId)
      const why = !d ? 'removed' : d.disabled ? 'disabled' : d.secretHash !== s.secretHash ? 'secret rotated' : null
      if (why) {
        deps.logger.warn({ event: 'device_disconnected', deviceId: s.deviceId, why }, `closing the connection of device ${s.deviceId}: ${why}`)
        client.close()
      }
    }
  }, intervalMs).unref()
  return () => clearInterval(timer)
}
