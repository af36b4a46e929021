/**
 * `careledger chain verify` — check the whole chain from the cloud's database (or ask a running
 * cloud for its latest result) — and `careledger regulator keygen` — the regulator's chameleon
 * key pair. Exit codes of verify: 0 intact, 1 not intact, 2 usage or I/O error (shared/cli/run.ts).
 *
 * File names follow cloud/keys.ts: <data>/cloud.db, <data>/keys/cloud-signing.pub (32 raw bytes),
 * <data>/keys/chameleon-public.key (careledger key format); <data> is --data, else
 * CARELEDGER_CLOUD_DATA, else ./.careledger/cloud.
 */
import os from 'node:os'
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { Command, Option } from 'commander'
import { hexToBytes } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../../shared/errors.ts'
import { parseSupervisoryPolicy } from '../../shared/protocol/supervisory-policy.ts'
import { chameleonKeyGen, chameleonKeyId, decodeChameleonPublicKey, encodeChameleonPublicKey, encodeChameleonSecretKey } from '../../shared/crypto/chameleon.ts'
import { checkSigningPublicKey } from '../../shared/crypto/sign.ts'
import { readKeyFile, writeKeyFile } from '../../shared/cli/files.ts'
import { addPassphraseOptions, type PassphraseFlags } from '../../shared/cli/passphrase.ts'
import { writeSecretKeyFile } from '../../shared/cli/secret-files.ts'
import { DEFAULT_BATCH_SIZE, verifyChain, type VerificationFailure, type VerificationReport, type VerifyOptions } from './verify.ts'
import { isPostgresUrl, redactDatabaseUrl } from '../store/chain-backend.ts'
import { addAnchorVerifyOptions, anchorCommands, verifyAnchorFlags, type AnchorVerifyFlags } from '../anchor/cli.ts'

const DEFAULT_DATA = './.careledger/cloud'
const out = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : `${s}\n`)
const warn = (s: string): void => void process.stderr.write(`${s}\n`)
const n = (x: number): string => x.toLocaleString('en-US')

/** 64 hex digits, or a file holding 32 raw bytes or 64 hex digits. */
export function readSigningPublicKey(arg: string): Uint8Array {
  let key: Uint8Array
  if (/^[0-9a-fA-F]{64}$/.test(arg)) key = hexToBytes(arg.toLowerCase())
  else {
    const bytes = readKeyFile(arg)
    const text = bytes.length === 32 ? null : Buffer.from(bytes).toString('utf8').trim()
    if (text === null) key = bytes
    else if (/^[0-9a-fA-F]{64}$/.test(text)) key = hexToBytes(text.toLowerCase())
    else throw new CareLedgerError('INVALID_ENCODING', `${arg}: expected a 32-byte Ed25519 public key (raw, or 64 hex digits)`, { path: arg })
  }
  return checkSigningPublicKey(key)
}

function formatFailure(f: VerificationFailure): string {
  const where = [f.height === undefined ? '' : `height ${f.height}`, f.recordId === undefined ? '' : `record ${f.recordId}`].filter(Boolean).join('  ')
  return `  ${f.kind.padEnd(18)} ${where.padEnd(26)} ${f.message}`
}

/** How far the block-signing key can be trusted, by where it came from (issue: an auditor must see when it is not independent). */
const KEY_SOURCE: Record<string, string> = {
  argument: 'given with --signing-key: independent of the audited data',
  'data-directory': 'NOT INDEPENDENT: read from the audited data directory itself (keys/cloud-signing.pub), so whoever could rewrite the chain could replace it too — pass --signing-key with a key obtained outside this cloud',
  database: 'UNTRUSTED: read from the database itself — pass --signing-key to check against a key you trust',
}

/** The report as people read it. */
export function formatReport(r: VerificationReport, source: string, mainThreadChecked = false): string {
  const lines: string[] = []
  const total = r.failures.length + r.failuresOmitted
  lines.push(`CareLedger chain verification: ${r.ok ? 'INTACT' : `NOT INTACT (${n(total)} failure${total === 1 ? '' : 's'})`}`)
  lines.push(`  source     ${source}`)
  lines.push(`  blocks     ${n(r.blocks)}${r.head ? ` (head: height ${r.head.height}, hash ${r.head.hash})` : ''}`)
  lines.push(`  records    ${n(r.records)}: ${n(r.sealedRecords)} sealed, ${n(r.pendingRecords)} pending; ${n(r.streams)} streams`)
  lines.push(`  keys       chameleon ${r.chameleonKey}; block signing ${r.signingKeys.ids.join(', ') || 'none'} (${KEY_SOURCE[r.signingKeys.source] ?? r.signingKeys.source})`)
  const log = r.redactionLog
  if (log && (log.entries > 0 || log.committedAt !== null)) {
    lines.push(
      `  redactions ${n(log.entries)} log entr${log.entries === 1 ? 'y' : 'ies'}: ${n(log.committed)} committed by block ${log.committedAt ?? '(none: v1 blocks only)'}` +
        (log.uncommitted > 0 ? `; ${n(log.uncommitted)} applied since, not yet committed by a block` : ''),
    )
  }
  lines.push(`  envelopes  ${r.envelopes ? `${n(r.envelopes.checked)} blocks re-hashed against their CIDs (${n(Math.round(r.envelopes.bytes / 1024))} KiB)` : 'not checked (--skip-envelopes, or no blockstore)'}`)
  const rate = r.durationMs > 0 ? ` (${n(Math.round((r.recordsChecked / r.durationMs) * 1000))} records/s)` : ''
  lines.push(`  checked    ${n(r.recordsChecked)} records${r.recordsCached ? ` (+${n(r.recordsCached)} unchanged since a previous run)` : ''} in ${(r.durationMs / 1000).toFixed(2)} s on ${r.workers || 'no'} worker thread${r.workers === 1 ? '' : 's'}${mainThreadChecked && r.workers > 0 ? ' and the main thread' : ''}${rate}`)
  if (!r.ok) {
    lines.push('failures:')
    for (const f of r.failures) lines.push(formatFailure(f))
    if (r.failuresOmitted > 0) lines.push(`  … and ${n(r.failuresOmitted)} more`)
    lines.push(`by kind: ${Object.entries(r.failureCounts).map(([k, c]) => `${k} ${n(c!)}`).join(', ')}`)
  }
  return lines.join('\n')
}

interface VerifyFlags extends AnchorVerifyFlags {
  data?: string
  db?: string
  database?: string
  chameleonKey?: string
  signingKey?: string
  workers?: string
  batchSize?: string
  expectHead?: string
  json?: boolean
  url?: string
  token?: string
  blocks?: string
  skipEnvelopes?: boolean
  supervisoryPolicy?: string[]
}

async function verifyRemote(url: string, token: string | undefined, json: boolean): Promise<boolean> {
  if (!token) throw new CareLedgerError('INVALID_ARGUMENT', '--url needs --token (an admin or regulator API token), or CARELEDGER_TOKEN', {})
  const endpoint = new URL('/v1/chain/verification', url)
  let res: Response
  try {
    res = await fetch(endpoint, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } })
  } catch (e) {
    throw new CareLedgerError('INVALID_ARGUMENT', `cannot reach ${endpoint}: ${(e as Error).message}`, { url: String(endpoint) })
  }
  const body = (await res.json().catch(() => null)) as (VerificationReport & { error?: { code: string; message: string } }) | null
  if (!res.ok || body === null || typeof body.ok !== 'boolean') {
    const why = body?.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${res.status}`
    throw new CareLedgerError('INVALID_ARGUMENT', `${endpoint} answered ${why}`, { status: res.status })
  }
  if (json) out(JSON.stringify(body, null, 2))
  else if (Array.isArray(body.failures) && body.signingKeys) out(formatReport(body, `${endpoint} (checked at ${new Date(body.checkedAt).toISOString()})`))
  else out(`${endpoint}: ${body.ok ? 'INTACT' : 'NOT INTACT'} (checked at ${new Date(body.checkedAt).toISOString()})\n${JSON.stringify(body, null, 2)}`)
  return body.ok
}

export function chainCommand(): Command {
  const cmd = new Command('chain').description('the redactable chain: verify blocks, records and stream links')
  const verify = cmd
    .command('verify')
    .description('check every block and record of the chain (hashes, links, signatures, Merkle roots, chameleon openings, gateway signatures); exit 0 if intact, 1 if not')
    .addOption(new Option('--data <dir>', `cloud data directory: <dir>/cloud.db and <dir>/keys/ (env CARELEDGER_CLOUD_DATA, default ${DEFAULT_DATA})`))
    .option('--db <file>', 'the cloud database (default <data>/cloud.db)')
    .option('--database <url>', "a chain on PostgreSQL (postgres://…, env CARELEDGER_CLOUD_DATABASE): checked from one consistent snapshot")
    .option('--chameleon-key <file>', "the regulator's chameleon public key file (default <data>/keys/chameleon-public.key)")
    .option('--signing-key <hex|file>', "the cloud's block-signing public key you trust: 64 hex digits or a file (default <data>/keys/cloud-signing.pub)")
    .option('--workers <n>', 'record-checking worker threads beside the main thread, which checks records too (default: one per core but one; 0 = the main thread alone)')
    .option('--batch-size <n>', `records whose chameleon openings are checked as one batch (default ${DEFAULT_BATCH_SIZE})`)
    .option('--expect-head <height:hash>', 'a block hash known from elsewhere; detects truncation and rewritten history')
    .option('--blocks <dir>', 'envelope blocks stored as files (by earlier versions), re-hashed with the rows of the database (default <data>/blocks, or blocks/ beside --db; with --database: none unless given)')
    .option('--skip-envelopes', 'do not re-hash the envelope blocks (faster: reads no ciphertext)')
    .option('--supervisory-policy <file...>', 'the supervisory policy (policy.json of `regulator setup`) you trust for the redaction log (default: the policies the database holds)')
    .option('--json', 'print the report as JSON')
    .option('--url <cloud>', "ask a running cloud for its latest verification (GET /v1/chain/verification) instead of reading a database")
    .option('--token <token>', 'API token for --url (env CARELEDGER_TOKEN)')
  addAnchorVerifyOptions(verify)
  verify.action(async (opts: VerifyFlags) => {
      if (opts.url && opts.anchors) throw new CareLedgerError('INVALID_ARGUMENT', '--anchors checks a database: use it with --data or --db, not --url', {})
      if (opts.url) {
        process.exitCode = (await verifyRemote(opts.url, opts.token ?? process.env.CARELEDGER_TOKEN, opts.json ?? false)) ? 0 : 1
        return
      }
      const data = resolve(opts.data ?? (process.env.CARELEDGER_CLOUD_DATA || DEFAULT_DATA))
      const pgUrl = opts.database ?? (process.env.CARELEDGER_CLOUD_DATABASE || undefined)
      if (pgUrl !== undefined && !isPostgresUrl(pgUrl)) throw new CareLedgerError('INVALID_ARGUMENT', '--database must be a postgres:// or postgresql:// URL', { reason: 'DATABASE_URL' })
      // The report names the database without its password.
      const dbPath = pgUrl ? redactDatabaseUrl(pgUrl) : resolve(opts.db ?? join(data, 'cloud.db'))
      if (!pgUrl && !existsSync(dbPath)) throw new CareLedgerError('INVALID_ARGUMENT', `no database at ${dbPath} (use --db or --data)`, { path: dbPath })
      const chameleonPublicKey = decodeChameleonPublicKey(readKeyFile(opts.chameleonKey ?? join(data, 'keys', 'chameleon-public.key')))
      let signingPublicKey: Uint8Array | undefined
      let keyFromDataDir: string | null = null
      if (opts.signingKey) signingPublicKey = readSigningPublicKey(opts.signingKey)
      else if ((opts.data !== undefined || opts.db === undefined) && existsSync(join(data, 'keys', 'cloud-signing.pub'))) {
        keyFromDataDir = join(data, 'keys', 'cloud-signing.pub')
        signingPublicKey = readSigningPublicKey(keyFromDataDir)
      }
      let blocksDir: string | null = null
      // A SQLite chain since "envelopes/001" holds its envelopes itself; block files are the older ones.
      const envelopeTable = !pgUrl && !opts.skipEnvelopes && (await import('../service/envelope-table.ts')).sqliteHasEnvelopeTable(dbPath) // loaded only when asked: the blockstore code costs ~0.07 s to load
      if (!opts.skipEnvelopes && pgUrl && opts.blocks === undefined && opts.data === undefined) {
        // A PostgreSQL chain's envelopes are rows of its database (ops/005), copied with the snapshot.
        // Block files of earlier versions only with --blocks: never guessed from a local default data
        // directory (it may hold another chain's blocks, e.g. of `npm start`).
      } else if (!opts.skipEnvelopes) {
        const candidate = resolve(opts.blocks ?? (opts.db !== undefined && opts.data === undefined ? join(dirname(dbPath), 'blocks') : join(data, 'blocks')))
        if (existsSync(candidate)) blocksDir = candidate
        else if (opts.blocks !== undefined) throw new CareLedgerError('INVALID_ARGUMENT', `--blocks ${candidate}: no such directory`, { path: candidate })
        else if (!envelopeTable) warn(`warning: no blockstore at ${candidate}: envelope blocks not checked (pass --blocks <dir>, or --skip-envelopes to silence this)`)
      }
      let expectHead: { height: number; hash: string } | undefined
      if (opts.expectHead) {
        const m = /^(\d+):([0-9a-fA-F]{64})$/.exec(opts.expectHead)
        if (!m) throw new CareLedgerError('INVALID_ARGUMENT', '--expect-head must be <height>:<64 hex digits>', { value: opts.expectHead })
        expectHead = { height: Number(m[1]), hash: m[2]!.toLowerCase() }
      }
      let workers: number | undefined
      if (opts.workers !== undefined) {
        workers = Number(opts.workers)
        if (!Number.isSafeInteger(workers) || workers < 0 || workers > 64) throw new CareLedgerError('INVALID_ARGUMENT', '--workers must be an integer 0–64', { value: opts.workers })
      }
      let chunkSize: number | undefined
      if (opts.batchSize !== undefined) {
        chunkSize = Number(opts.batchSize)
        if (!Number.isSafeInteger(chunkSize) || chunkSize < 1 || chunkSize > 65536) throw new CareLedgerError('INVALID_ARGUMENT', '--batch-size must be an integer 1–65536', { value: opts.batchSize })
      }
      const supervisoryPolicies = opts.supervisoryPolicy?.map((f) => parseSupervisoryPolicy(JSON.parse(new TextDecoder().decode(readKeyFile(f)))))
      // The main thread checks records too (it has nothing else to serve): one thread fewer to start.
      workers ??= Math.max(0, os.availableParallelism() - 1)
      // On PostgreSQL the anchors are checked against the same snapshot as the chain.
      let pgAnchors: Awaited<ReturnType<typeof verifyAnchorFlags>> = null
      const verified = await (pgUrl ? async (o: VerifyOptions) => (await import('../store/pg/snapshot.ts')).verifyPgChain(pgUrl, o, async (snapshot) => void (pgAnchors = await verifyAnchorFlags(snapshot, opts))) : (o: VerifyOptions) => verifyChain(dbPath, o))({ chameleonPublicKey, signingPublicKey, workers, callingThreadChecks: true, expectHead, ...(chunkSize ? { chunkSize } : {}), ...(blocksDir ? { envelopes: { blocksDir } } : envelopeTable || (pgUrl && !opts.skipEnvelopes) ? { envelopes: {} } : {}), ...(supervisoryPolicies ? { supervisoryPolicies } : {}) })
      if (pgUrl && !blocksDir && verified.failureCounts.ENVELOPE_MISSING) warn('note: envelope blocks a deployment stored as files before ops/005-envelope-blocks are checked only with --blocks <the shared blockstore>')
      const report = keyFromDataDir ? { ...verified, signingKeys: { ...verified.signingKeys, source: 'data-directory' as const } } : verified
      const anchors = pgUrl ? pgAnchors : await verifyAnchorFlags(dbPath, opts)
      if (!signingPublicKey && !opts.json) warn('warning: no trusted block-signing key given (--signing-key); block signatures were checked against the keys recorded in the database itself')
      if (keyFromDataDir && !opts.json) warn(`warning: the block-signing key was read from ${keyFromDataDir}, inside the data being audited: it is not independent (pass --signing-key <hex|file> obtained outside this cloud)`)
      if (opts.json) out(JSON.stringify(anchors ? { ...report, ok: report.ok && anchors.report.ok, anchors: anchors.report } : report, null, 2))
      else out(formatReport(report, dbPath, true) + (anchors ? `\n${anchors.text}` : ''))
      process.exitCode = report.ok && (anchors?.report.ok ?? true) ? 0 : 1
    })
  cmd
    .command('backup-envelopes')
    .description("copy the envelope blocks a SQLite cloud stored since the last run into a backup directory, one file each (re-hashed, fsynced; incremental: a cursor file there remembers where the last run stopped); runs beside the service")
    .requiredOption('--to <dir>', 'the backup directory (blockstore-fs layout: `chain verify --blocks <dir>` and `chain restore-envelopes --from <dir>` read it)')
    .addOption(new Option('--data <dir>', `cloud data directory (env CARELEDGER_CLOUD_DATA, default ${DEFAULT_DATA})`))
    .option('--db <file>', 'the cloud database (default <data>/cloud.db)')
    .action(async (opts: { to: string; data?: string; db?: string }) => {
      const { backupEnvelopes } = await import('./envelope-backup.ts')
      const dbPath = resolve(opts.db ?? join(opts.data ?? (process.env.CARELEDGER_CLOUD_DATA || DEFAULT_DATA), 'cloud.db'))
      if (!existsSync(dbPath)) throw new CareLedgerError('INVALID_ARGUMENT', `no database at ${dbPath} (use --db or --data)`, { path: dbPath })
      const r = await backupEnvelopes(dbPath, resolve(opts.to))
      out(`backed up ${n(r.copied)} envelope block${r.copied === 1 ? '' : 's'} (${n(Math.round(r.bytes / 1024))} KiB) to ${resolve(opts.to)}; next run starts after row ${r.lastRow}`)
      if (r.damaged.length > 0) {
        warn(`warning: ${r.damaged.length} stored block${r.damaged.length === 1 ? ' is' : 's are'} damaged and not copied (the scrub asks the gateways to resend them): ${r.damaged.slice(0, 20).join(', ')}`)
        process.exitCode = 1
      }
    })
  cmd
    .command('restore-envelopes')
    .description("put a backup's copy of every envelope block the cloud is missing or holds damaged back into cloud.db (each checked against its record's CID); runs beside the service, whose next scrub finds them intact")
    .requiredOption('--from <path>', 'a backup directory of block files (backup-envelopes, or a copy of blocks/), or a copy of cloud.db')
    .addOption(new Option('--data <dir>', `cloud data directory (env CARELEDGER_CLOUD_DATA, default ${DEFAULT_DATA})`))
    .option('--db <file>', 'the cloud database (default <data>/cloud.db)')
    .option('--blocks <dir>', "the cloud's own block files of earlier versions (default <data>/blocks, or blocks/ beside --db)")
    .action(async (opts: { from: string; data?: string; db?: string; blocks?: string }) => {
      const { restoreEnvelopes } = await import('./envelope-backup.ts')
      const data = opts.data ?? (process.env.CARELEDGER_CLOUD_DATA || DEFAULT_DATA)
      const dbPath = resolve(opts.db ?? join(data, 'cloud.db'))
      const legacy = resolve(opts.blocks ?? (opts.db !== undefined && opts.data === undefined ? join(dirname(dbPath), 'blocks') : join(data, 'blocks')))
      const r = await restoreEnvelopes(dbPath, resolve(opts.from), existsSync(legacy) ? legacy : null)
      out(`checked ${n(r.checked)} records' envelope blocks: ${r.restored.length} restored from ${resolve(opts.from)}${r.restored.length ? ` (records ${r.restored.slice(0, 50).join(', ')})` : ''}`)
      if (r.unavailable.length > 0) {
        warn(`error: ${r.unavailable.length} record${r.unavailable.length === 1 ? "'s block is" : "s' blocks are"} missing or damaged and the backup has no good copy: records ${r.unavailable.slice(0, 50).join(', ')}`)
        process.exitCode = 1
      }
    })
  for (const c of anchorCommands()) cmd.addCommand(c)
  return cmd
}

export function regulatorCommand(): Command {
  const cmd = new Command('regulator').description("the regulator: the chameleon-hash trapdoor that approves corrections without changing any block hash")
  cmd
    .command('keygen')
    .description('create the chameleon key pair: chameleon-public.key (give it to the cloud) and chameleon-secret.key (the trapdoor, sealed under a passphrase, mode 0600: keep it off the cloud)')
    .requiredOption('-o, --out <dir>', 'directory to write the keys into')
    .option('--force', 'overwrite existing key files')
    .action(async (opts: PassphraseFlags & { out: string; force?: boolean }) => {
      const pair = chameleonKeyGen()
      const pub = join(opts.out, 'chameleon-public.key')
      const sec = join(opts.out, 'chameleon-secret.key')
      const id = chameleonKeyId(pair.publicKey)
      // The trapdoor first: if it cannot be written, no public key exists that nobody can open.
      // Written atomically 0600, also when --force replaces a file that had a wider mode.
      await writeSecretKeyFile(sec, encodeChameleonSecretKey(pair.secretKey), { label: `chameleon-hash trapdoor of regulator key ${id}`, force: opts.force, passphrase: opts })
      writeKeyFile(pub, encodeChameleonPublicKey(pair.publicKey), { secret: false, force: opts.force })
      out(`regulator key ${id}: wrote ${pub} (for the cloud: CARELEDGER_CHAMELEON_PUBLIC_KEY) and ${sec} (sealed under the passphrase, mode 0600, keep offline)`)
    })
  for (const c of cmd.commands) addPassphraseOptions(c)
  return cmd
}
