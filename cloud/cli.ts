/**
 * `careledger cloud …`: run the cloud service and manage who may use it. The token and gateway
 * commands work on the database while the service runs (SQLite: WAL + busy_timeout; or the shared
 * PostgreSQL with --database postgres://…); a revocation takes effect on the next request to any
 * process of the deployment.
 */
import { Command, Option } from 'commander'
import { SETTINGS, cloudDbPath, getPath, loadCloudConfig, resolveCloudDataDir } from './config.ts'
import { ROLES } from './access/roles.ts'
import type { TokenInfo } from './access/tokens.ts'
import { INVITE_TTL_MS } from './access/enrolment.ts'
import { openAccessStores, type AccessStores } from './access/store.ts'
import { keyFiles, readCloudPublicKeys } from './keys.ts'
import { bytesToHex } from '@noble/hashes/utils.js'
import { ANCHOR_SECONDS } from './anchor/config.ts'
import { join } from 'node:path'
import { redactDatabaseUrl } from './store/chain-backend.ts'

const dataOption = (): Option => new Option('--data <dir>', 'cloud data directory (env CARELEDGER_CLOUD_DATA, default ./.careledger/cloud)')
const iso = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z'))
const out = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : `${s}\n`)

const databaseOption = (): Option => new Option('--database <url>', "the deployment's shared PostgreSQL (env CARELEDGER_CLOUD_DATABASE; unset: <data>/cloud.db)")

/** The access stores the running cloud uses: the shared PostgreSQL of `--database`, else the data directory's cloud.db. */
async function withAccess<T>(opts: { data?: string; database?: string }, f: (a: AccessStores) => T | Promise<T>): Promise<T> {
  const database = opts.database ?? (process.env.CARELEDGER_CLOUD_DATABASE || null)
  const access = await openAccessStores(database, cloudDbPath(resolveCloudDataDir(opts.data)))
  try {
    return await f(access)
  } finally {
    await access.close()
  }
}

function table(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  for (const r of rows) out(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd())
}

export function cloudCommand(): Command {
  const cmd = new Command('cloud').description('cloud service: batch ingest from gateways, the redactable chain, the read API and the admin console')

  // ── start ─────────────────────────────────────────────────────────────────────────────────
  const start = cmd.command('start').description('run the cloud service (API and console on http://127.0.0.1:8080 by default); SIGINT/SIGTERM stop it gracefully')
  for (const s of SETTINGS) start.addOption(new Option(s.flag, `${s.doc} (env ${s.env}${s.default ? `, default ${s.default}` : ''})`))
  start.action(async (opts: Record<string, unknown>) => {
    const { config } = loadCloudConfig(opts)
    const { startCloud } = await import('./runtime.ts')
    const cloud = await startCloud(config)
    let signalled = false
    const shutdown = (signal: string): void => {
      if (signalled) return
      signalled = true
      // Last resort: a stop that hangs (a stuck job, a worker thread) must not leave the process running.
      // Exiting is safe: accepted batches are committed, pending records are sealed at the next start.
      // The default 25 s is short of the 30 s stop_grace_period docker-compose.yml gives a container,
      // so the exit is logged rather than a SIGKILL.
      const boundS = config.stopTimeoutMs / 1000
      setTimeout(() => {
        cloud.logger.fatal({ event: 'stop_timeout', afterS: boundS }, `graceful stop did not finish within ${boundS} s: exiting`)
        process.exit(1)
      }, config.stopTimeoutMs).unref()
      cloud.logger.info({ event: 'signal', signal }, `received ${signal}`)
      cloud.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          cloud.logger.fatal({ err }, 'graceful stop failed')
          process.exit(1)
        },
      )
    }
    process.once('SIGINT', () => shutdown('SIGINT'))
    process.once('SIGTERM', () => shutdown('SIGTERM'))
    process.on('uncaughtException', (err) => {
      cloud.logger.fatal({ err, event: 'uncaught_exception' }, 'uncaught exception: exiting (accepted batches are committed)')
      process.exit(1)
    })
  })

  cmd
    .command('config')
    .description('print the effective configuration and where each value came from')
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }) => {
      const { config, sources } = loadCloudConfig({})
      const printable = { ...config, database: config.database === null ? null : redactDatabaseUrl(config.database) }
      if (opts.json) return out(JSON.stringify({ config: printable, sources }, null, 2))
      for (const s of SETTINGS) {
        const src = sources[s.path]!
        // Settings in seconds are held in ms.
        const inMs: Record<string, string> = { 'chain.blockIntervalS': 'chain.blockIntervalMs', 'chain.verifyIntervalS': 'chain.verifyIntervalMs', ...ANCHOR_SECONDS }
        const value = s.path === 'database' ? printable.database : s.path === 'blocksDir' ? config.paths.blocks : s.path.startsWith('tls.')
          ? (config.tls ? getPath(config.tls, s.path.slice(4)) : null)
          : inMs[s.path]
            ? (getPath(config, inMs[s.path]!) as number) / 1000
            : getPath(config, s.path)
        out(`${s.env.padEnd(36)} ${JSON.stringify(value ?? null).padEnd(36)} ${src.kind === 'default' ? '(default)' : `(${src.kind} ${src.name})`}`)
      }
    })

  cmd
    .command('keys')
    .description("print the cloud's public keys (block signing, chameleon hash) as hex")
    .addOption(dataOption())
    .option('--json', 'machine-readable output')
    .action((opts: { data?: string; json?: boolean }) => {
      const dir = resolveCloudDataDir(opts.data)
      const k = readCloudPublicKeys({ keys: join(dir, 'keys'), regulator: join(dir, 'regulator') })
      const v = { signingKey: bytesToHex(k.signingPublicKey), signingKeyId: k.signingKeyId, chameleonKey: bytesToHex(k.chameleonPublicKey), chameleonKeyId: k.chameleonKeyId, developmentRegulator: k.developmentRegulator }
      if (opts.json) return out(JSON.stringify(v))
      out(`block-signing key  ${v.signingKey}  (id ${v.signingKeyId}, ${keyFiles({ keys: join(dir, 'keys'), regulator: '' }).signingPublicKey})`)
      out(`chameleon key      ${v.chameleonKey}  (id ${v.chameleonKeyId})${v.developmentRegulator ? '  DEVELOPMENT: the trapdoor is on this host' : ''}`)
    })

  // ── tokens ────────────────────────────────────────────────────────────────────────────────
  const token = cmd.command('token').description('API tokens of people: admin, regulator, researcher, doctor')

  token
    .command('create')
    .description('create a token and print it (shown once; the cloud keeps only its SHA-256)')
    .addOption(new Option('--role <role>', 'what the token may reach').choices([...ROLES]).makeOptionMandatory())
    .requiredOption('--name <name>', 'who holds it (unique among live tokens)')
    .option('--json', 'print {"name","role","token"} for scripts')
    .addOption(dataOption())
    .addOption(databaseOption())
    .action(async (opts: { role: string; name: string; json?: boolean; data?: string; database?: string }) => {
      const { token: secret, info } = await withAccess(opts, (a) => a.tokens.create(opts.role, opts.name))
      if (opts.json) return out(JSON.stringify({ name: info.name, role: info.role, token: secret }))
      out(`created ${info.role} token for ${info.name} (shown once — hand it over now):\n${secret}\nuse it as: Authorization: Bearer ${secret.slice(0, 8)}…`)
    })

  token
    .command('list')
    .description('list tokens (never the secrets)')
    .option('--json', 'machine-readable output')
    .addOption(dataOption())
    .addOption(databaseOption())
    .action(async (opts: { json?: boolean; data?: string; database?: string }) => {
      const list = await withAccess(opts, (a) => a.tokens.list())
      if (opts.json) return out(JSON.stringify(list))
      if (list.length === 0) return out('no tokens (careledger cloud token create --role admin --name <who>)')
      table([['NAME', 'ROLE', 'STATUS', 'CREATED', 'LAST USED'], ...list.map((t: TokenInfo) => [t.name, t.role, t.revokedAt === null ? 'live' : `revoked ${iso(t.revokedAt)}`, iso(t.createdAt), iso(t.lastUsedAt)])])
    })

  token
    .command('revoke')
    .description('revoke the live token with this name (effective on its next request)')
    .argument('<name>')
    .addOption(dataOption())
    .addOption(databaseOption())
    .action(async (name: string, opts: { data?: string; database?: string }) => {
      const t = await withAccess(opts, (a) => a.tokens.revoke(name))
      out(`revoked the ${t.role} token of ${t.name}`)
    })

  // ── gateways ──────────────────────────────────────────────────────────────────────────────
  const gateway = cmd.command('gateway').description('enrol and manage edge gateways')

  gateway
    .command('invite')
    .description(`issue a one-time enrolment token for a gateway (valid ${INVITE_TTL_MS / 3600_000} h, shown once)`)
    .requiredOption('--name <name>', 'the gateway name, e.g. ward-3')
    .option('--json', 'print {"name","token","expiresAt"} for scripts')
    .addOption(dataOption())
    .addOption(databaseOption())
    .action(async (opts: { name: string; json?: boolean; data?: string; database?: string }) => {
      const { token: secret, invite } = await withAccess(opts, (a) => a.enrolment.invite(opts.name))
      if (opts.json) return out(JSON.stringify({ name: invite.name, token: secret, expiresAt: invite.expiresAt }))
      out(
        [
          `enrolment token for gateway ${invite.name} (one use, valid until ${iso(invite.expiresAt)}; shown once):`,
          secret,
          `on the gateway: careledger gateway register --cloud <this cloud's URL> --token ${secret.slice(0, 8)}… --name ${invite.name}`,
        ].join('\n'),
      )
    })

  gateway
    .command('list')
    .description('list registered gateways and their last sync')
    .option('--json', 'machine-readable output')
    .addOption(dataOption())
    .addOption(databaseOption())
    .action(async (opts: { json?: boolean; data?: string; database?: string }) => {
      const list = await withAccess(opts, (a) => a.gateways.list())
      if (opts.json) return out(JSON.stringify(list.map((g) => ({ ...g, publicKey: bytesToHex(g.publicKey) }))))
      if (list.length === 0) return out('no gateways registered (careledger cloud gateway invite --name <name>)')
      table([['NAME', 'ID', 'STATUS', 'REGISTERED', 'LAST SYNC'], ...list.map((g) => [g.name, g.gatewayId, g.revokedAt === null ? 'live' : `revoked ${iso(g.revokedAt)}`, iso(g.registeredAt), iso(g.lastSyncAt)])])
    })

  gateway
    .command('revoke')
    .description('revoke a gateway (by name or id): its requests are refused from now on; its batches stay on the chain')
    .argument('<nameOrId>')
    .addOption(dataOption())
    .addOption(databaseOption())
    .action(async (nameOrId: string, opts: { data?: string; database?: string }) => {
      const g = await withAccess(opts, (a) => a.gateways.revoke(nameOrId))
      out(`revoked gateway ${g.name} (${g.gatewayId})`)
    })

  return cmd
}
