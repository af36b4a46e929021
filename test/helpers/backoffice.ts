/**
 * Reading back what a real gateway's back office produced: its sealed batches from gateway.db,
 * their envelopes from the gateway's blockstore (gateway/blocks.ts), the gateway's public key
 * (`careledger gateway identity`), a FABEO authority of the test's own (its master public key
 * written to a file for CARELEDGER_ABE_PUBLIC_KEY), /metrics and /healthz, and polling with
 * deadlines instead of fixed sleeps.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { encodeMasterPublicKey } from '../../shared/crypto/abe/codec.ts'
import { setup, type MasterSecretKey } from '../../shared/crypto/abe/fabeo.ts'
import { decodeCanonical } from '../../shared/encoding/canonical.ts'
import { parseManifest, type BatchManifest } from '../../shared/protocol/manifest.ts'
import { openBlockNode, readBlock, type BlockNode } from '../../gateway/blocks.ts'
import { DB_FILE } from '../../gateway/store/db.ts'
import { CID } from 'multiformats/cid'
import { careledger } from './gateway-process.ts'

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Poll `f` until it returns a truthy value (returned) or the deadline passes (throws, naming `what`). */
export async function waitFor<T>(what: string, f: () => T | Promise<T>, timeoutMs = 20_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await f()
      if (v) return v as NonNullable<T>
      last = v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`)
    await sleep(everyMs)
  }
}

/** A fresh attribute authority; its master public key in `<dir>/master-public.key` for CARELEDGER_ABE_PUBLIC_KEY. */
export function testAuthorityFile(dir: string): { msk: MasterSecretKey; mpkFile: string } {
  const msk = setup()
  const mpkFile = join(dir, 'master-public.key')
  writeFileSync(mpkFile, encodeMasterPublicKey(msk.mpk))
  return { msk, mpkFile }
}

/** `careledger gateway identity`: the gateway id and Ed25519 public key it prints. */
export async function gatewayIdentity(dataDir: string, env: Record<string, string> = {}): Promise<{ gatewayId: string; publicKey: Uint8Array; authority: string; cloud: string }> {
  const r = await careledger(['gateway', 'identity', '--data', dataDir], env)
  if (r.code !== 0) throw new Error(`gateway identity failed (${r.code}): ${r.stderr}`)
  const field = (name: string): string => {
    const m = r.stdout.match(new RegExp(`^${name} (.+)$`, 'm'))
    if (!m) throw new Error(`no "${name}" in: ${r.stdout}`)
    return m[1]!.trim()
  }
  return { gatewayId: field('gateway'), publicKey: new Uint8Array(Buffer.from(field('public key'), 'hex')), authority: field('authority'), cloud: field('cloud') }
}

export interface BatchRow {
  readonly batch_id: number
  readonly stream_id: string
  readonly seq: number
  readonly manifest: Buffer
  readonly signature: Buffer
  readonly commitment: string
  readonly cid: string
  readonly count: number
  readonly first_reading: number
  readonly last_reading: number
  readonly sealed_at: number
  readonly synced_at: number | null
  readonly record_id: number | null
  readonly pruned_at: number | null
}

export interface SealedBatchRow extends BatchRow {
  /** The stored manifest, decoded and validated with parseManifest. */
  readonly m: BatchManifest
}

/** A read-only connection to a (possibly running) gateway's database. */
export const openReadonly = (dataDir: string): Database.Database => {
  const db = new Database(join(dataDir, 'gateway.db'), { readonly: true, fileMustExist: true })
  db.pragma('busy_timeout = 5000')
  return db
}

export function batchesOf(db: Database.Database, where = '1 = 1', ...params: unknown[]): SealedBatchRow[] {
  const rows = db.prepare(`SELECT * FROM batches WHERE ${where} ORDER BY batch_id`).all(...params) as BatchRow[]
  return rows.map((r) => ({ ...r, m: parseManifest(decodeCanonical(r.manifest)) }))
}

/** The gateway's blockstore, opened the way the back office opens it (gateway.db's envelope_blocks, and pre-v3 files under <data>/blocks). */
export async function withBlocks<T>(dataDir: string, f: (node: BlockNode, get: (cid: string) => Promise<Uint8Array>) => Promise<T>): Promise<T> {
  const db = new Database(join(dataDir, DB_FILE))
  db.pragma('busy_timeout = 5000')
  const node = await openBlockNode(dataDir, db)
  try {
    return await f(node, (cid) => readBlock(node.blockstore, CID.parse(cid)))
  } finally {
    await node.stop()
    db.close()
  }
}

/** One sample of a Prometheus text exposition, e.g. metric(text, 'careledger_gateway_outbox_depth'). */
export function metric(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

export const metricsOf = async (httpUrl: string): Promise<string> => (await fetch(`${httpUrl}/metrics`)).text()
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const healthOf = async (httpUrl: string): Promise<any> => (await fetch(`${httpUrl}/healthz`)).json()
