/**
 * `careledger gateway register | policy | batches | identity` — the sealing and shipping side of the
 * gateway's CLI. Like the device commands, they work against the data directory while the gateway runs.
 */
import { Command, Option } from 'commander'
import { CareLedgerError } from '../../shared/errors.ts'

const dataOption = (): Option => new Option('--data <dir>', 'gateway data directory (env CARELEDGER_GATEWAY_DATA, default ./.careledger/gateway)')
const out = (s: string): void => void process.stdout.write(`${s}\n`)

async function withDb<T>(data: string | undefined, f: (db: import('better-sqlite3').Database) => T): Promise<T> {
  const [{ resolveDataDir }, { openGatewayDb }] = await Promise.all([import('../config.ts'), import('../store/db.ts')])
  const { db } = openGatewayDb(resolveDataDir(data))
  try {
    return f(db)
  } finally {
    db.close()
  }
}

export function addBackofficeCommands(cmd: Command): void {
  cmd
    .command('register')
    .description('register this gateway with a cloud using a one-time enrolment token (from: careledger cloud gateway invite)')
    .requiredOption('--cloud <url>', 'cloud base URL, e.g. https://cloud.example.org')
    .option('--token-file <path>', 'read the one-time enrolment token (cle_…) from a file, or from standard input with "-"')
    .option('--token <token>', 'the token on the command line (visible to other users in ps: prefer --token-file or CARELEDGER_ENROLMENT_TOKEN)')
    .option('--name <name>', 'gateway name, as invited')
    .addOption(dataOption())
    .action(async (opts: { cloud: string; token?: string; tokenFile?: string; name?: string; data?: string }) => {
      const [{ resolveDataDir }, { keysFile, loadSigningKey, saveCloudRegistration }, { registerGateway }, { readEnrolmentToken }, { Keyring }] = await Promise.all([
        import('../config.ts'),
        import('../identity.ts'),
        import('../outbox/client.ts'),
        import('./enrolment-token.ts'),
        import('../../shared/cli/secret-files.ts'),
      ])
      const { token, source } = readEnrolmentToken(opts)
      if (source === '--token') process.stderr.write('warning: a token given with --token is visible to other users in ps and kept in shell history; use --token-file or CARELEDGER_ENROLMENT_TOKEN\n')
      const dataDir = resolveDataDir(opts.data)
      // The signing key only: registering never creates an attribute authority. Sealed under the
      // gateway's passphrase (as the running gateway has it: the environment, else a prompt).
      const keyring = Keyring.forCommand()
      await keyring.unlockFor(keysFile(dataDir, 'gateway.key'))
      const identity = loadSigningKey(dataDir, { keyring })
      const reg = await registerGateway(opts.cloud, token, opts.name ?? 'gateway', identity)
      saveCloudRegistration(dataDir, reg)
      out(`registered gateway ${reg.gatewayId} ("${reg.name}") with ${reg.url}; sealed batches will ship there`)
    })

  cmd
    .command('identity')
    .description("print this gateway's id, public key, attribute authority and cloud")
    .addOption(dataOption())
    .action(async (opts: { data?: string }) => {
      const [{ resolveDataDir }, { keysFile, loadIdentity, loadSigningKey }, { Keyring }] = await Promise.all([import('../config.ts'), import('../identity.ts'), import('../../shared/cli/secret-files.ts')])
      const dataDir = resolveDataDir(opts.data)
      // The id and key come from keys/gateway.key alone: this works (e.g. right after `register`)
      // even where the attribute authority's key is not configured for this shell.
      const keyring = Keyring.forCommand()
      await keyring.unlockFor(keysFile(dataDir, 'gateway.key'))
      const key = loadSigningKey(dataDir, { create: false, keyring })
      let authority: string
      let cloud: string
      try {
        const id = loadIdentity(dataDir, { create: false, keyring })
        authority = Buffer.from(id.mpk.id).toString('hex')
        cloud = id.cloud?.url ?? '(not registered)'
      } catch (e) {
        authority = `(unknown here: ${(e as Error).message}; set CARELEDGER_ABE_PUBLIC_KEY as the gateway has it)`
        cloud = '(unknown)'
      }
      out(`gateway ${key.gatewayId}\npublic key ${Buffer.from(key.publicKey).toString('hex')}\nauthority ${authority}\ncloud ${cloud}`)
    })

  const policy = cmd.command('policy').description('per-patient CP-ABE policies of sealed batches ({patient} stands for the patient pseudonym)')
  policy
    .command('set')
    .description('set the policy of a patient\'s future batches')
    .requiredOption('--patient <patientId>', 'patient id')
    .argument('<policy>', 'e.g. "(role:doctor AND dept:cardiology) OR patient:{patient}"')
    .addOption(dataOption())
    .action(async (text: string, opts: { patient: string; data?: string }) => {
      const { compilePolicy } = await import('../../shared/crypto/abe/fabeo.ts')
      const { assertPatientId } = await import('../../shared/schema/device.ts')
      assertPatientId(opts.patient)
      // Check it compiles with a pseudonym in place, so a typo is caught now, not at the next seal.
      const canonical = compilePolicy(text.replaceAll('{patient}', 'p-000000000000000000000000')).text.replaceAll('p-000000000000000000000000', '{patient}')
      const { epochOf, withEpoch } = await import('../../shared/protocol/epoch.ts')
      compilePolicy(withEpoch(canonical.replaceAll('{patient}', 'p-000000000000000000000000'), epochOf(Date.now()))) // the gateway adds the epoch when it seals
      await withDb(opts.data, (db) =>
        db.prepare('INSERT INTO patient_policies (patient_id, policy, updated_at) VALUES (?, ?, ?) ON CONFLICT (patient_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at').run(opts.patient, canonical, Date.now()),
      )
      out(`policy of ${opts.patient}: ${canonical}`)
    })
  policy
    .command('list')
    .description('list per-patient policies (others use CARELEDGER_DEFAULT_POLICY)')
    .addOption(dataOption())
    .action(async (opts: { data?: string }) => {
      const rows = await withDb(opts.data, (db) => db.prepare<[], { patient_id: string; policy: string }>('SELECT patient_id, policy FROM patient_policies ORDER BY patient_id').all())
      for (const r of rows) out(`${r.patient_id}\t${r.policy}`)
      if (rows.length === 0) out('(no per-patient policies)')
    })
  policy
    .command('clear')
    .description('go back to the default policy for a patient')
    .requiredOption('--patient <patientId>', 'patient id')
    .addOption(dataOption())
    .action(async (opts: { patient: string; data?: string }) => {
      const n = await withDb(opts.data, (db) => db.prepare('DELETE FROM patient_policies WHERE patient_id = ?').run(opts.patient).changes)
      if (n === 0) throw new CareLedgerError('INVALID_ARGUMENT', `patient ${opts.patient} has no policy of its own`, { patientId: opts.patient })
      out(`policy of ${opts.patient} cleared`)
    })

  cmd
    .command('batches')
    .description('sealed batches and their shipping state (newest first)')
    .option('--limit <n>', 'how many', (v) => {
      const n = Number.parseInt(v, 10)
      if (!Number.isSafeInteger(n) || n < 1) throw new CareLedgerError('INVALID_ARGUMENT', `--limit must be a positive integer, got "${v}"`, { limit: v })
      return n
    }, 20)
    .option('--json', 'machine-readable output')
    .addOption(dataOption())
    .action(async (opts: { limit: number; json?: boolean; data?: string }) => {
      const rows = await withDb(opts.data, (db) =>
        db
          .prepare<[number], { batch_id: number; stream_id: string; seq: number; count: number; cid: string; sealed_at: number; synced_at: number | null; record_id: number | null; pruned_at: number | null; state: string | null; attempts: number | null; last_error: string | null }>(
            `SELECT b.batch_id, b.stream_id, b.seq, b.count, b.cid, b.sealed_at, b.synced_at, b.record_id, b.pruned_at, o.state, o.attempts, o.last_error
             FROM batches b LEFT JOIN outbox o USING (batch_id) ORDER BY b.batch_id DESC LIMIT ?`,
          )
          .all(opts.limit),
      )
      const stateOf = (r: (typeof rows)[number]): 'synced' | 'rejected' | 'pending' => (r.synced_at ? 'synced' : r.state === 'rejected' ? 'rejected' : 'pending')
      if (opts.json) {
        return out(
          JSON.stringify(
            rows.map((r) => ({
              batchId: r.batch_id,
              stream: r.stream_id,
              seq: r.seq,
              count: r.count,
              cid: r.cid,
              sealedAt: r.sealed_at,
              state: stateOf(r),
              syncedAt: r.synced_at,
              recordId: r.record_id,
              prunedAt: r.pruned_at,
              attempts: r.attempts ?? 0,
              lastError: r.last_error,
            })),
          ),
        )
      }
      for (const r of rows) {
        const s = stateOf(r)
        const state = s === 'synced' ? `synced as record ${r.record_id}` : s === 'rejected' ? `REJECTED, kept on the gateway: ${r.last_error ?? '(no reason recorded)'}` : 'waiting in the outbox'
        out(`${r.batch_id}\t${r.stream_id.slice(0, 12)}…#${r.seq}\t${r.count} readings\t${new Date(r.sealed_at).toISOString()}\t${state}`)
      }
    })
}
