/**
 * The whole system for end-to-end tests and the backlog benchmark, as real processes on free ports
 * in a throw-away directory — wired the way bin/start.ts wires it:
 *
 *   authority   the test owns the FABEO authority (setup → master-public.key; user keys valid this month by currentKey)
 *   cloud       `careledger cloud start` (CloudProcess); tokens by `careledger cloud token create`
 *   gateway     devices enrolled straight into its store (as bin/start.ts does), registered with
 *               the cloud by `careledger cloud gateway invite` + `careledger gateway register`,
 *               then `careledger gateway start` (GatewayProcess) with CARELEDGER_ABE_PUBLIC_KEY
 *               and CARELEDGER_DEFAULT_POLICY
 *   relay       optional: a transparent TCP relay between gateway and cloud (the gateway's
 *               --cloud-url points at it). It records every byte of the gateway ↔ cloud traffic,
 *               parses the HTTP/1.1 exchanges (bulk uploads and their per-batch verdicts), and can
 *               SIGKILL the cloud at a chosen point of a bulk upload.
 *
 * Also: monitors on the reference client (devices/sdk/client.ts) that record, on the client side,
 * exactly which (deviceId, seq) got a PUBACK and when; polling with deadlines; the cloud read API.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { CID } from 'multiformats/cid'
import { encodeMasterPublicKey } from '../../shared/crypto/abe/codec.ts'
import { setup, type MasterSecretKey, type UserKey } from '../../shared/crypto/abe/fabeo.ts'
import { currentKey } from './authority.ts'
import { openEnvelope } from '../../shared/crypto/envelope.ts'
import { decodeCanonical } from '../../shared/encoding/canonical.ts'
import { decodeBatchBody, type BatchBody } from '../../shared/protocol/batch.ts'
import { checkBody } from '../../clients/decrypt.ts'
import { manifestAad, type BatchManifest } from '../../shared/protocol/manifest.ts'
import { connectDevice, DeviceClientError, type DeviceClient, type DeviceReading } from '../../devices/sdk/client.ts'
import { openGatewayDb } from '../../gateway/store/db.ts'
import { blockFilePath } from '../../cloud/service/blockstore.ts'
import { DeviceStore } from '../../gateway/store/devices.ts'
import { CloudProcess, careledger, tempDataDir } from './cloud-process.ts'
import { GatewayProcess, cli } from './gateway-process.ts'
import type { RecordSummary } from '../../cloud/chain/record.ts'


/** Where a gateway built before schema v3 kept a sealed envelope as a block file. */
const gatewayBlockFile = (gatewayDir: string, cid: string): string => blockFilePath(join(gatewayDir, 'blocks'), CID.parse(cid))

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** bin/start.ts's policy: doctors of hospital h1, the patient, consenting researchers. */
export const WARD_POLICY = '(role:doctor AND hospital:h1) OR patient:{patient} OR (role:researcher AND consent:research)'

/** Poll `f` until it returns something other than undefined/false; fail after `timeoutMs`, saying what was awaited. */
export async function waitFor<T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await f()
      if (v !== undefined && v !== false) return v
      last = v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : String(last)})`)
    await sleep(opts.intervalMs ?? 200)
  }
}

// ---- the authority ---------------------------------------------------------------------------------

/** A FABEO authority owned by the test: its public key in a file for CARELEDGER_ABE_PUBLIC_KEY, user keys on demand. */
export class TestAuthority {
  readonly msk: MasterSecretKey
  readonly publicKeyFile: string
  readonly #keys = new Map<string, UserKey>()

  /** A new authority, or an existing one (`msk`), with its public key written into `dir`. */
  constructor(dir: string, msk: MasterSecretKey = setup()) {
    this.msk = msk
    mkdirSync(dir, { recursive: true })
    this.publicKeyFile = join(dir, 'master-public.key')
    writeFileSync(this.publicKeyFile, encodeMasterPublicKey(this.msk.mpk))
  }

  key(attributes: readonly string[]): UserKey {
    const k = [...attributes].sort().join(',')
    let key = this.#keys.get(k)
    if (!key) this.#keys.set(k, (key = currentKey(this.msk, attributes)))
    return key
  }

  /** role:doctor AND hospital:h1 — satisfies WARD_POLICY. */
  get doctor(): UserKey {
    return this.key(['role:doctor', 'hospital:h1'])
  }
}

/** Decrypt an envelope with `key` under its manifest's associated data, and check the body against the manifest (clients/decrypt.ts). */
export function openBatch(key: UserKey, envelope: Uint8Array, manifest: BatchManifest): BatchBody {
  return checkBody(decodeBatchBody(openEnvelope(key, envelope, manifestAad(manifest))), manifest)
}

// ---- the relay -------------------------------------------------------------------------------------

export interface HttpExchange {
  readonly connection: number
  readonly method: string
  readonly path: string
  readonly requestBody: Buffer
  /** Set when the answer came back through the relay. */
  status: number | null
  responseBody: Buffer | null
  /** The relay cut this exchange and killed the cloud (armKill). */
  killed: boolean
}

export interface UploadItem {
  readonly manifest: BatchManifest
  readonly signature: Uint8Array
  readonly car: Uint8Array
}

/** The batches of a captured POST /v1/batches/bulk body. */
export const bulkItems = (x: HttpExchange): UploadItem[] => (decodeCanonical(x.requestBody) as unknown as { batches: UploadItem[] }).batches

/** Per-batch statuses of a bulk answer (201 created, 200 duplicate, …); null when no answer reached the gateway. */
export function bulkStatuses(x: HttpExchange): number[] | null {
  if (x.status !== 200 || !x.responseBody) return null
  return (JSON.parse(x.responseBody.toString('utf8')) as { results: Array<{ status: number }> }).results.map((r) => r.status)
}

export type KillPoint =
  /** As soon as the last byte of the bulk request is handed to the cloud's socket: the cloud dies while reading or judging it. */
  | 'request-sent'
  /**
   * When the first envelope of the request appears in the cloud's envelope table (cloud.db, polled
   * every millisecond): the cloud dies while storing envelopes, before (usually) or after (rarely)
   * it commits the records. Needs `cloudDir`.
   */
  | 'envelope-stored'
  /** When the cloud's answer starts to arrive (it has committed): the answer is withheld, so the gateway never learns it. */
  | 'answer-ready'

interface Parser {
  buf: Buffer
  /** Body bytes still expected; -1 while reading a head. */
  remaining: number
  head: string | null
  body: Buffer[]
}

const newParser = (): Parser => ({ buf: Buffer.alloc(0), remaining: -1, head: null, body: [] })

/** Feed bytes of one direction of an HTTP/1.1 connection; `done` gets every complete message (content-length bodies). */
function feed(p: Parser, chunk: Buffer, done: (startLine: string, body: Buffer) => void): void {
  p.buf = p.buf.length ? Buffer.concat([p.buf, chunk]) : chunk
  for (;;) {
    if (p.remaining < 0) {
      const end = p.buf.indexOf('\r\n\r\n')
      if (end < 0) return
      const lines = p.buf.subarray(0, end).toString('latin1').split('\r\n')
      let length = 0
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':')
        const name = l.slice(0, i).trim().toLowerCase()
        if (name === 'content-length') length = Number(l.slice(i + 1).trim())
        if (name === 'transfer-encoding') throw new Error(`relay: chunked HTTP bodies are not parsed (${lines[0]})`)
      }
      p.head = lines[0]!
      p.remaining = length
      p.body = []
      p.buf = p.buf.subarray(end + 4)
    }
    const take = Math.min(p.remaining, p.buf.length)
    if (take > 0) {
      p.body.push(p.buf.subarray(0, take))
      p.buf = p.buf.subarray(take)
      p.remaining -= take
    }
    if (p.remaining > 0) return
    const head = p.head!
    const body = Buffer.concat(p.body)
    p.remaining = -1
    p.head = null
    p.body = []
    done(head, body)
  }
}

interface Arm {
  readonly point: KillPoint
  readonly cloudDir?: string
  readonly minBatches: number
  readonly kill: () => Promise<void>
  readonly resolve: (x: HttpExchange) => void
  readonly reject: (e: unknown) => void
}

/**
 * A TCP relay in front of the cloud. Nothing is changed on the way: bytes are forwarded as they
 * come, and recorded. `armKill` is the one intervention: at the chosen point of the next bulk
 * upload of at least `minBatches` batches it runs `kill` (SIGKILL the cloud) and cuts the
 * gateway's connection, so that, seen from the gateway, the cloud died with the upload in flight.
 */
export class CloudRelay {
  readonly port: number
  readonly #server: Server
  readonly #upstreamPort: number
  readonly #sockets = new Set<Socket>()
  /** Every byte the gateway sent to the cloud, and received from it. */
  readonly toCloud: Buffer[] = []
  readonly fromCloud: Buffer[] = []
  readonly exchanges: HttpExchange[] = []
  #arm: Arm | null = null
  #connections = 0

  private constructor(server: Server, port: number, upstreamPort: number) {
    this.#server = server
    this.port = port
    this.#upstreamPort = upstreamPort
  }

  static async start(upstreamPort: number): Promise<CloudRelay> {
    const server = createServer()
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()))
    const relay = new CloudRelay(server, (server.address() as { port: number }).port, upstreamPort)
    server.on('connection', (c) => relay.#relay(c))
    return relay
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** The bulk uploads seen so far. */
  bulks(): HttpExchange[] {
    return this.exchanges.filter((x) => x.method === 'POST' && x.path === '/v1/batches/bulk')
  }

  /** Kill the cloud at `point` of the next bulk upload of ≥ minBatches batches; resolves with that exchange once killed. */
  armKill(point: KillPoint, minBatches: number, kill: () => Promise<void>, opts: { cloudDir?: string } = {}): Promise<HttpExchange> {
    if (this.#arm) throw new Error('relay: already armed')
    if (point === 'envelope-stored' && !opts.cloudDir) throw new Error('relay: envelope-stored needs cloudDir')
    return new Promise((resolve, reject) => (this.#arm = { point, minBatches, kill, resolve, reject, ...(opts.cloudDir ? { cloudDir: opts.cloudDir } : {}) }))
  }

  #relay(client: Socket): void {
    const id = ++this.#connections
    const upstream = tcpConnect(this.#upstreamPort, '127.0.0.1')
    this.#sockets.add(client).add(upstream)
    const requests = newParser()
    const responses = newParser()
    const open: HttpExchange[] = []
    let withheld: { exchange: HttpExchange; arm: Arm } | null = null
    let unfired: Arm | null = null
    let cut = false
    const trigger = (exchange: HttpExchange, arm: Arm): void => {
      if (cut) return
      cut = true
      unfired = null
      withheld = null
      exchange.killed = true
      arm.kill().then(
        () => {
          client.destroy()
          upstream.destroy()
          arm.resolve(exchange)
        },
        (e: unknown) => arm.reject(e),
      )
    }
    client.on('data', (chunk: Buffer) => {
      if (cut) return
      this.toCloud.push(chunk)
      let complete: HttpExchange | null = null
      feed(requests, chunk, (line, body) => {
        const [method = '', path = ''] = line.split(' ')
        const x: HttpExchange = { connection: id, method, path, requestBody: body, status: null, responseBody: null, killed: false }
        this.exchanges.push(x)
        open.push(x)
        complete = x
      })
      const x = complete as HttpExchange | null
      const arm = this.#arm && x && x.path === '/v1/batches/bulk' && bulkItems(x).length >= this.#arm.minBatches ? this.#arm : null
      if (arm) {
        this.#arm = null
        if (arm.point === 'answer-ready') withheld = { exchange: x!, arm }
        else unfired = arm
      }
      upstream.write(chunk, (err) => {
        // Fire only for a request the cloud really received (not one refused at connect while it is down).
        if (!arm || err || upstream.destroyed) return
        if (arm.point === 'request-sent') trigger(x!, arm)
        if (arm.point === 'envelope-stored') {
          withheld = { exchange: x!, arm } // should the answer come first, the cloud had committed: withhold it and kill then
          // Rows of cloud.db's envelope table (cloud/service/envelope-table.ts) newer than now, one of them this request's.
          const cids = new Set(bulkItems(x!).map((b) => Buffer.from(CID.parse(b.manifest.cid).bytes).toString('hex')))
          const db = new Database(join(arm.cloudDir!, 'cloud.db'), { readonly: true, fileMustExist: true })
          const newer = db.prepare<[number], { id: number; cid: Buffer }>('SELECT id, cid FROM envelope_blocks WHERE id > ? ORDER BY id')
          let seen = (db.prepare('SELECT coalesce(max(id), 0) FROM envelope_blocks').pluck().get() as number) ?? 0
          const poll = setInterval(() => {
            if (cut || upstream.destroyed) {
              clearInterval(poll)
              return void db.close()
            }
            const rows = newer.all(seen)
            if (rows.length > 0) seen = rows.at(-1)!.id
            if (rows.some((r) => cids.has(r.cid.toString('hex')))) {
              clearInterval(poll)
              db.close()
              trigger(x!, arm)
            }
          }, 1)
        }
      })
    })
    upstream.on('data', (chunk: Buffer) => {
      if (cut) return
      if (withheld) return trigger(withheld.exchange, withheld.arm)
      this.fromCloud.push(chunk)
      feed(responses, chunk, (line, body) => {
        const x = open.shift()
        if (!x) return
        x.status = Number(line.split(' ')[1])
        x.responseBody = body
      })
      client.write(chunk)
    })
    const close = (): void => {
      // An armed upload that never reached a live cloud: arm the next one instead.
      const pending = unfired ?? (withheld as { arm: Arm } | null)?.arm ?? null
      if (pending && !cut) this.#arm ??= pending
      unfired = null
      withheld = null
      client.destroy()
      upstream.destroy()
      this.#sockets.delete(client)
      this.#sockets.delete(upstream)
    }
    client.on('error', close).on('close', close)
    upstream.on('error', close).on('close', close)
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy()
    await new Promise((ok) => this.#server.close(ok))
  }
}

// ---- monitors on the reference client ---------------------------------------------------------------

/** One message's readings, numbered from seq0, measured at `t` (epoch ms); `tick` counts messages. */
export type TickReadings = (seq0: number, t: number, tick: number) => DeviceReading[]

/** Heart rate, SpO2 and respiratory rate, as a bedside monitor sends them every tick. */
export const vitalsTick: TickReadings = (seq0, t, tick) => [
  { seq: seq0, ts: t, type: 'heart_rate', unit: '/min', value: 60 + (tick % 40) },
  { seq: seq0 + 1, ts: t, type: 'spo2', unit: '%', value: 94 + (tick % 6) },
  { seq: seq0 + 2, ts: t, type: 'resp_rate', unit: '/min', value: 12 + (tick % 8) },
]

export interface AckedMonitorOptions {
  readonly url: string
  readonly deviceId: string
  readonly secret: string
  /** Messages per second. */
  readonly rate: number
  readonly readings?: TickReadings
  /** First seq (default 0: a new device); a monitor started again continues above its last seq. */
  readonly firstSeq?: number
}

/**
 * A bedside monitor on the reference client that remembers, per seq, when its PUBACK arrived.
 * A message whose PUBACK does not come (ACK_TIMEOUT) is sent again — same seqs, same content —
 * until it is acknowledged, so once stop() returns everything generated has been acknowledged.
 */
export class AckedMonitor {
  readonly deviceId: string
  /** seq → epoch ms of its PUBACK. */
  readonly acked = new Map<number, number>()
  /** Every message as published, for tests that look for its content. */
  readonly published: DeviceReading[][] = []
  generated = 0
  resends = 0
  readonly #opts: AckedMonitorOptions
  #client: DeviceClient | null = null
  #timer: NodeJS.Timeout | null = null
  readonly #pending = new Set<Promise<void>>()
  #tick = 0
  #nextSeq = 0

  constructor(opts: AckedMonitorOptions) {
    this.#opts = opts
    this.deviceId = opts.deviceId
    this.#nextSeq = opts.firstSeq ?? 0
  }

  async start(): Promise<void> {
    this.#client = await connectDevice({ url: this.#opts.url, deviceId: this.#opts.deviceId, secret: this.#opts.secret, backoff: { initialMs: 100, maxMs: 2000 } })
    this.#timer = setInterval(() => this.#send(), 1000 / this.#opts.rate)
  }

  #send(): void {
    const readings = (this.#opts.readings ?? vitalsTick)(this.#nextSeq, Date.now(), this.#tick++)
    this.#nextSeq += readings.length
    this.generated += readings.length
    this.published.push(readings)
    const p: Promise<void> = this.#deliver(readings).finally(() => this.#pending.delete(p))
    this.#pending.add(p)
  }

  async #deliver(readings: DeviceReading[]): Promise<void> {
    for (;;) {
      try {
        await this.#client!.publish(readings)
        const at = Date.now()
        for (const r of readings) this.acked.set(r.seq, at)
        return
      } catch (e) {
        if (e instanceof DeviceClientError && e.code === 'ACK_TIMEOUT') {
          this.resends++
          continue
        }
        throw e
      }
    }
  }

  /** Stop measuring; wait until every message is acknowledged; disconnect. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    await Promise.all(this.#pending)
    await this.#client?.close()
  }
}

/** Start monitors for `devices` on the gateway, each at `rate` messages/s. */
export async function startMonitors(url: string, devices: readonly { deviceId: string; secret: string }[], rate: number, readings?: (deviceId: string) => TickReadings | undefined): Promise<AckedMonitor[]> {
  const monitors = devices.map((d) => new AckedMonitor({ url, deviceId: d.deviceId, secret: d.secret, rate, readings: readings?.(d.deviceId) }))
  await Promise.all(monitors.map((m) => m.start()))
  return monitors
}

// ---- the system ------------------------------------------------------------------------------------

export interface DeviceSpec {
  readonly deviceId: string
  readonly patientId: string
}

export interface EnrolledMonitor extends DeviceSpec {
  readonly secret: string
}

/** bed-01 … bed-NN for patient-01 … patient-NN. */
export const ward = (n: number, prefix = 'bed'): DeviceSpec[] =>
  Array.from({ length: n }, (_, i) => ({ deviceId: `${prefix}-${String(i + 1).padStart(2, '0')}`, patientId: `patient-${String(i + 1).padStart(2, '0')}` }))

export interface SystemOptions {
  readonly label: string
  readonly devices: readonly DeviceSpec[]
  /** Gateway seal interval, whole seconds (default 1). */
  readonly sealIntervalS?: number
  /** Cloud block interval, seconds (default 0.5). */
  readonly blockIntervalS?: number
  /** Put a CloudRelay between gateway and cloud. */
  readonly relay?: boolean
  readonly policy?: string
  readonly cloudArgs?: readonly string[]
  readonly gatewayArgs?: readonly string[]
  readonly gatewayEnv?: Readonly<Record<string, string>>
  /** Environment of the cloud process (e.g. CARELEDGER_LOG_LEVEL). */
  readonly cloudEnv?: Readonly<Record<string, string>>
  /** A PostgreSQL URL: the cloud runs with --database, and the tokens and the gateway's invite are made there. */
  readonly database?: string
}

export interface Tokens {
  readonly admin: string
  readonly regulator: string
  readonly researcher: string
  readonly doctor: string
}

export { cli }

/**
 * Back-office settings every test system passes to the gateway. CARELEDGER_SYNC_BACKOFF_MAX_S caps
 * the outbox's retry backoff (jittered exponential, up to 5 min by default: gateway/outbox/sync.ts)
 * once the gateway supports it; a gateway that does not know it ignores it.
 */
export const GATEWAY_ENV: Readonly<Record<string, string>> = { CARELEDGER_SYNC_BACKOFF_MAX_S: '1' }

interface SystemParts {
  readonly root: ReturnType<typeof tempDataDir>
  readonly dirs: { readonly cloud: string; readonly gateway: string; readonly authority: string }
  readonly authority: TestAuthority
  readonly cloud: CloudProcess
  readonly relay: CloudRelay | null
  readonly tokens: Tokens
  readonly monitors: readonly EnrolledMonitor[]
  readonly gatewayId: string
  readonly gateway: GatewayProcess
}

/** A record as GET /v1/records lists it (the service's own type). */
export type ListedRecord = RecordSummary

export class TestSystem {
  readonly root: SystemParts['root']
  readonly dirs: SystemParts['dirs']
  readonly authority: TestAuthority
  readonly cloud: CloudProcess
  readonly relay: CloudRelay | null
  readonly tokens: Tokens
  readonly monitors: readonly EnrolledMonitor[]
  readonly gatewayId: string
  readonly gateway: GatewayProcess

  private constructor(p: SystemParts) {
    this.root = p.root
    this.dirs = p.dirs
    this.authority = p.authority
    this.cloud = p.cloud
    this.relay = p.relay
    this.tokens = p.tokens
    this.monitors = p.monitors
    this.gatewayId = p.gatewayId
    this.gateway = p.gateway
  }

  static async start(o: SystemOptions): Promise<TestSystem> {
    const root = tempDataDir(o.label)
    const dirs = { cloud: join(root.dir, 'cloud'), gateway: join(root.dir, 'gateway'), authority: join(root.dir, 'authority') }
    let cloud: CloudProcess | null = null
    let relay: CloudRelay | null = null
    try {
      const authority = new TestAuthority(dirs.authority)
      const cloudStore = o.database ? ['--database', o.database] : ['--data', dirs.cloud]
      cloud = await CloudProcess.start({ dataDir: dirs.cloud, args: ['--block-interval-s', String(o.blockIntervalS ?? 0.5), ...(o.database ? cloudStore : []), ...(o.cloudArgs ?? [])], env: { ...o.cloudEnv }, readyTimeoutMs: 60_000 })
      const token = async (role: string): Promise<string> => (JSON.parse(await cli(['cloud', 'token', 'create', '--role', role, '--name', `${role}-1`, '--json', ...cloudStore])) as { token: string }).token
      const [admin, regulator, researcher, doctor, invite] = await Promise.all([
        token('admin'),
        token('regulator'),
        token('researcher'),
        token('doctor'),
        cli(['cloud', 'gateway', 'invite', '--name', 'ward-1', '--json', ...cloudStore]).then((s) => (JSON.parse(s) as { token: string }).token),
      ])
      const abeEnv = { CARELEDGER_ABE_PUBLIC_KEY: authority.publicKeyFile }
      await cli(['gateway', 'register', '--data', dirs.gateway, '--cloud', cloud.url, '--token', invite, '--name', 'ward-1'], abeEnv)
      const gatewayId = (JSON.parse(readFileSync(join(dirs.gateway, 'cloud.json'), 'utf8')) as { gatewayId: string }).gatewayId
      // Enrolment as bin/start.ts does it: straight into the gateway's store, before it starts.
      const { db } = openGatewayDb(dirs.gateway)
      const store = new DeviceStore(db)
      const monitors = o.devices.map((d) => ({ ...d, secret: store.add(d.deviceId, d.patientId).secret }))
      db.close()
      if (o.relay) relay = await CloudRelay.start(cloud.port)
      const gateway = await GatewayProcess.start({
        dataDir: dirs.gateway,
        args: ['--mqtts-port', '0', '--seal-interval-s', String(o.sealIntervalS ?? 1), ...(relay ? ['--cloud-url', relay.url] : []), ...(o.gatewayArgs ?? [])],
        env: { ...abeEnv, CARELEDGER_DEFAULT_POLICY: o.policy ?? WARD_POLICY, ...GATEWAY_ENV, ...o.gatewayEnv },
        readyTimeoutMs: 60_000, // a shared machine may take longer than the default 20 s to start a process
      })
      return new TestSystem({ root, dirs, authority, cloud, relay, tokens: { admin, regulator, researcher, doctor }, monitors, gatewayId, gateway })
    } catch (e) {
      await cloud?.kill('SIGKILL')
      await relay?.close()
      root.cleanup()
      throw e
    }
  }

  /** GET a cloud API path as JSON (admin token by default); throws on a non-2xx answer. */
  async api<T = unknown>(path: string, token: string = this.tokens.admin): Promise<T> {
    const res = await fetch(new URL(path, this.cloud.url), { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(20_000) })
    if (!res.ok) throw new Error(`GET ${path} → ${res.status} ${await res.text()}`)
    return (await res.json()) as T
  }

  /** Every record's metadata, paged through GET /v1/records. */
  async records(token: string = this.tokens.admin): Promise<ListedRecord[]> {
    const out: ListedRecord[] = []
    let after = 0
    for (;;) {
      const page = await this.api<{ records: ListedRecord[]; next: number | null }>(`/v1/records?after=${after}&limit=1000`, token)
      out.push(...page.records)
      if (page.next === null) return out
      after = page.next
    }
  }

  /** GET /v1/records/:id: the record with its manifest. */
  record(id: number, token: string = this.tokens.admin): Promise<ListedRecord & { manifest: BatchManifest; manifestCommitment: string; prevCommitment: string | null }> {
    return this.api(`/v1/records/${id}`, token)
  }

  /** GET /v1/records/:id/envelope (doctor token by default). */
  async envelope(id: number, token: string = this.tokens.doctor): Promise<Uint8Array> {
    const res = await fetch(new URL(`/v1/records/${id}/envelope`, this.cloud.url), { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(20_000) })
    if (res.status !== 200) throw new Error(`envelope of record ${id}: ${res.status} ${await res.text()}`)
    return new Uint8Array(await res.arrayBuffer())
  }

  async streams(): Promise<Array<{ stream: string; gateway: string; device: string; patient: string; batches: number; lastSeq: number; ranges: [number, number][]; gaps: [number, number][] }>> {
    return (await this.api<{ streams: Awaited<ReturnType<TestSystem['streams']>> }>('/v1/streams')).streams
  }

  /** Every block (GET /v1/blocks, paged). */
  async blocks(): Promise<Array<{ height: number; hash: string; time: number; count: number; firstRecord: number; lastRecord: number }>> {
    type B = Awaited<ReturnType<TestSystem['blocks']>>[number]
    const out: B[] = []
    let after = -1
    for (;;) {
      const page = await this.api<{ blocks: B[]; next: number | null }>(`/v1/blocks?after=${after}&limit=1000`)
      out.push(...page.blocks)
      if (page.next === null) return out
      after = page.next
    }
  }

  async stats(): Promise<{ records: number; pendingRecords: number; blocks: number; height: number; streams: number; gaps: number; missingBatches: number; equivocations: number }> {
    return this.api('/v1/stats')
  }

  /** A careledger_gateway_* metric from the gateway's /metrics. */
  async gatewayMetric(name: string): Promise<number> {
    const text = await (await fetch(`${this.gateway.httpUrl}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
    const m = text.match(new RegExp(`^careledger_gateway_${name} (\\S+)$`, 'm'))
    if (!m) throw new Error(`gateway metric ${name} not found`)
    return Number(m[1])
  }

  /** The gateway's database, read-only (it may be running: WAL). Close it after use. */
  gatewayDb(): Database.Database {
    return openGatewayDb(this.dirs.gateway, { readonly: true }).db
  }

  /** Whether the gateway still holds a batch's sealed envelope: in gateway.db (schema v3) or as a block file an earlier build wrote. */
  gatewayHoldsEnvelope(cid: string): boolean {
    const db = this.gatewayDb()
    try {
      if (db.prepare('SELECT 1 FROM envelope_blocks WHERE cid = ?').get(cid) !== undefined) return true
    } finally {
      db.close()
    }
    return existsSync(gatewayBlockFile(this.dirs.gateway, cid))
  }

  /** Remove a sealed envelope from the gateway (both places), as a lost disk sector or a careless operator would. */
  dropGatewayEnvelope(cid: string): void {
    const { db } = openGatewayDb(this.dirs.gateway)
    try {
      db.prepare('DELETE FROM envelope_blocks WHERE cid = ?').run(cid)
    } finally {
      db.close()
    }
    rmSync(gatewayBlockFile(this.dirs.gateway, cid), { force: true })
  }

  /** The gateway's outbox: batches waiting, refused for good, sealed in all. */
  outbox(): { pending: number; rejected: number; batches: number; unsealed: number } {
    const db = this.gatewayDb()
    try {
      const n = (sql: string): number => db.prepare(sql).pluck().get() as number
      return {
        pending: n("SELECT count(*) FROM outbox WHERE state = 'pending'"),
        rejected: n("SELECT count(*) FROM outbox WHERE state = 'rejected'"),
        batches: n('SELECT count(*) FROM batches'),
        unsealed: n('SELECT count(*) FROM readings WHERE batch_id IS NULL'),
      }
    } finally {
      db.close()
    }
  }

  /** Wait until the gateway has sealed every reading and shipped every batch, and the cloud has sealed every record into a block. */
  async settled(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      'the gateway to seal and ship everything and the cloud to seal it into blocks',
      async () => {
        const o = this.outbox()
        if (o.unsealed > 0 || o.pending > 0) return false
        const s = await this.stats()
        return s.records > 0 && s.pendingRecords === 0
      },
      { timeoutMs, intervalMs: 250 },
    )
  }

  /** `careledger chain verify --data <cloud> --json [--expect-head h:hash]`, a process of its own. */
  async chainVerify(expectHead?: { height: number; hash: string }): Promise<{ code: number | null; report: { ok: boolean; records: number; blocks: number; failures: unknown[] } | null; stdout: string; stderr: string }> {
    const r = await careledger(['chain', 'verify', '--data', this.dirs.cloud, '--json', ...(expectHead ? ['--expect-head', `${expectHead.height}:${expectHead.hash}`] : [])])
    let report = null
    try {
      report = JSON.parse(r.stdout)
    } catch {
      /* reported via stdout */
    }
    return { code: r.code, report, stdout: r.stdout, stderr: r.stderr }
  }

  /** Kill whatever still runs and delete everything. */
  async destroy(): Promise<void> {
    await this.gateway.kill('SIGKILL').catch(() => {})
    await this.cloud.kill('SIGKILL').catch(() => {})
    await this.relay?.close().catch(() => {})
    this.root.cleanup()
  }
}
