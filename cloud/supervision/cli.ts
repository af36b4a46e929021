/**
 * The supervision commands (docs/security.md §Supervision):
 *
 *   careledger regulator setup --threshold k --of n --cloud-id <id> --regulator "Name=0xaddr"… --out <dir>
 *   careledger regulator review | approve <id> | sign <id> | reject <id> --reason …
 *   careledger supervision request correct <record> --readings fixed.json --reason … --wallet <file>
 *   careledger supervision request delete <record> --reason … --wallet <file>
 *   careledger supervision list | withdraw <id>
 *
 * Cloud URL and token: --url / --token, or CARELEDGER_CLOUD_URL / CARELEDGER_TOKEN. On the cloud's
 * own machine, `setup --install`, `review` and `list` also take --database postgres://… (the
 * deployment's shared PostgreSQL) or --data <dir> (its cloud.db) instead, like `cloud token`.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Command } from 'commander'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../../shared/errors.ts'
import { writeKeyFile } from '../../shared/cli/files.ts'
import { takeNonceFile, writeNonceFile, writeShareFile } from '../../shared/cli/frost-files.ts'
import { chameleonKeyGen, chameleonPublicKey, encodeChameleonPublicKey, encodeChameleonSecretKey } from '../../shared/crypto/chameleon.ts'
import { adaptAlone, thresholdAdaptCommit, thresholdAdaptSign } from '../../shared/crypto/chameleon-threshold.ts'
import { frostDeal } from '../../shared/crypto/frost.ts'
import { systemRng } from '../../shared/crypto/random.ts'
import { approvalTypedData, contentDigest, type Decision } from '../../shared/protocol/approval.ts'
import { manifestCommitment } from '../../shared/protocol/manifest.ts'
import { NO_MANIFEST, signRequest } from '../../shared/protocol/supervision-request.ts'
import { buildSupervisoryPolicy, parseSupervisoryPolicy, policyGroup, singleRegulatorPolicy, supervisoryPolicyId, type SupervisoryPolicy } from '../../shared/protocol/supervisory-policy.ts'
import type { BatchManifest } from '../../shared/protocol/manifest.ts'
import { checkRequester } from '../../clients/supervision-view.ts'
import { openBatch, openEvidence, resealCorrection, sealEvidence, type Evidence } from '../../clients/supervision.ts'
import { readAttributeKey, readAuthority, readShare, readTrapdoor, readWallet, REQUESTER_WALLET_ENV } from '../../clients/supervision-keys.ts'
import type { RequestStatus, RequestView } from './store.ts'
import { cloudDbPath, resolveCloudDataDir } from '../config.ts'

const out = (line: string): void => void process.stdout.write(line + '\n')

interface ApiOpts {
  url?: string
  token?: string
}

function api(o: ApiOpts) {
  const url = o.url ?? process.env.CARELEDGER_CLOUD_URL
  const token = o.token ?? process.env.CARELEDGER_TOKEN
  if (!url) throw new CareLedgerError('INVALID_ARGUMENT', 'which cloud? give --url <url> (or CARELEDGER_CLOUD_URL)', { field: 'url' })
  if (!token) throw new CareLedgerError('INVALID_ARGUMENT', 'an API token is needed: --token clt_… (or CARELEDGER_TOKEN)', { field: 'token' })
  return async <T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(new URL(path, url), {
      method,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).catch((e: Error) => {
      throw new CareLedgerError('INVALID_ARGUMENT', `cannot reach the cloud at ${url}: ${e.message}`, { reason: 'UNREACHABLE' })
    })
    if (path.endsWith('/envelope')) {
      if (!res.ok) throw new CareLedgerError('INVALID_ARGUMENT', `${method} ${path}: ${res.status} ${await res.text()}`, { status: res.status })
      return new Uint8Array(await res.arrayBuffer()) as T
    }
    const json = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string; details?: { reason?: string } } }
    if (!res.ok) {
      const reason = json.error?.details?.reason ?? json.error?.code ?? 'HTTP'
      throw new CareLedgerError('INVALID_ARGUMENT', `${method} ${path}: ${res.status} ${reason}: ${json.error?.message ?? ''}`, { status: res.status, reason })
    }
    return json as T
  }
}

const withApi = (c: Command): Command => c.option('--url <url>', 'the cloud (default CARELEDGER_CLOUD_URL)').option('--token <token>', 'your API token (default CARELEDGER_TOKEN)')

interface StoreOpts {
  database?: string
  data?: string
}

/** --database / --data: read (and install the policy) in the cloud's store directly instead of over the API. */
const withStore = (c: Command): Command =>
  c
    .option('--database <url>', "instead of --url: the deployment's shared PostgreSQL (postgres://…), as `cloud token --database`")
    .option('--data <dir>', "instead of --url: a SQLite cloud's data directory (its cloud.db)")

/** Where requests and the policy are read: the store given by --database/--data, else the cloud's API. */
async function source(o: ApiOpts & StoreOpts): Promise<{ policy(): Promise<SupervisoryPolicy | null>; requests(status?: RequestStatus): Promise<RequestView[]>; setPolicy(p: SupervisoryPolicy): Promise<void>; close(): Promise<void> }> {
  if (o.database !== undefined || o.data !== undefined) {
    const { openSupervisionStore } = await import('./open.ts')
    const { store, close } = await openSupervisionStore(o.database ?? null, cloudDbPath(resolveCloudDataDir(o.data)))
    return { policy: () => store.policy(), requests: (status) => store.listRequests({ status }), setPolicy: async (p) => void (await store.setPolicy(p, 'careledger regulator setup')), close }
  }
  const call = api(o)
  return {
    policy: async () => {
      const { policy } = await call<{ policy: unknown }>('GET', '/v1/supervision/policy')
      return policy ? parseSupervisoryPolicy(policy) : null
    },
    requests: async (status) => (await call<{ requests: RequestView[] }>('GET', `/v1/supervision/requests${status ? `?status=${status}` : ''}`)).requests,
    setPolicy: async (policy) => void (await call('PUT', '/v1/supervision/policy', { policy })),
    close: async () => {},
  }
}

async function fromSource<T>(o: ApiOpts & StoreOpts, f: (s: Awaited<ReturnType<typeof source>>) => Promise<T>): Promise<T> {
  const s = await source(o)
  try {
    return await f(s)
  } finally {
    await s.close()
  }
}

const requirePolicy = (policy: SupervisoryPolicy | null): SupervisoryPolicy => {
  if (!policy) throw new CareLedgerError('INVALID_ARGUMENT', 'the cloud has no supervisory policy (careledger regulator setup … --install)', { reason: 'NO_POLICY' })
  return policy
}

async function policyOf(call: ReturnType<typeof api>): Promise<SupervisoryPolicy> {
  const { policy } = await call<{ policy: unknown }>('GET', '/v1/supervision/policy')
  return requirePolicy(policy ? parseSupervisoryPolicy(policy) : null)
}

async function getRequest(call: ReturnType<typeof api>, id: string): Promise<RequestView> {
  return (await call<{ request: RequestView }>('GET', `/v1/supervision/requests/${encodeURIComponent(id)}`)).request
}

// ---- the requester ---------------------------------------------------------------------------------

export function supervisionCommand(): Command {
  const cmd = new Command('supervision').description('ask the regulators to correct or delete a record (k of n approve; the cloud never sees readings)')
  const request = cmd.command('request').description('make a signed request')
  const common = (c: Command) =>
    withApi(c)
      .requiredOption('--reason <text>', 'why (the regulators and the redaction log see it)')
      .option('--key <file>', 'your attribute key: opens the batch (and re-seals a correction)')
      .option('--authority <file>', "the authority's public key (authority setup): re-seals the batch and seals the evidence for regulators")
      .option('--wallet <file>', `your EVM private key file: signs the request (EIP-712; default ${REQUESTER_WALLET_ENV})`)
  common(request.command('correct <record>').description('replace the readings of a record by corrected ones (re-sealed here)'))
    .requiredOption('--readings <file>', 'the corrected batch: a JSON array of readings ({seq, ts, rx, type, unit, value})')
    .action(async (record: string, o: ApiOpts & { reason: string; key?: string; authority?: string; wallet?: string; readings: string }) => {
      if (!o.key || !o.authority) throw new CareLedgerError('INVALID_ARGUMENT', 'a correction is re-sealed here: --key <attribute key> and --authority <public key> are needed', { field: 'key' })
      await makeRequest(o, Number(record), 'correct', JSON.parse(readFileSync(o.readings, 'utf8')) as unknown[])
    })
  common(request.command('delete <record>').description('replace a record by a tombstone (stream, seq and link kept)')).action(async (record: string, o: ApiOpts & { reason: string; key?: string; authority?: string; wallet?: string }) => {
    await makeRequest(o, Number(record), 'delete', null)
  })
  withStore(withApi(cmd.command('list').description('requests (all, or --status)')))
    .option('--status <status>', 'pending, applied, rejected or withdrawn')
    .action(async (o: ApiOpts & StoreOpts & { status?: string }) => {
      if (o.status !== undefined && !['pending', 'applied', 'rejected', 'withdrawn'].includes(o.status)) throw new CareLedgerError('INVALID_ARGUMENT', '--status: expected pending, applied, rejected or withdrawn', { field: 'status' })
      const requests = await fromSource(o, (s) => s.requests(o.status as RequestStatus | undefined))
      for (const r of requests) out(`${r.id}  ${r.status.padEnd(9)}  ${r.action.padEnd(7)}  record ${r.record}  by ${r.requester}  approvals ${r.decisions.filter((d) => d.decision === 'approve').length}  "${r.reason}"`)
    })
  withApi(cmd.command('withdraw <id>').description('withdraw your pending request')).action(async (id: string, o: ApiOpts) => {
    const { request: r } = await api(o)<{ request: RequestView }>('POST', `/v1/supervision/requests/${id}/withdraw`, {})
    out(`request ${r.id}: ${r.status}`)
  })
  return cmd
}

async function makeRequest(o: ApiOpts & { reason: string; key?: string; authority?: string; wallet?: string }, record: number, action: 'correct' | 'delete', readings: unknown[] | null): Promise<void> {
  if (!Number.isSafeInteger(record) || record < 1) throw new CareLedgerError('INVALID_ARGUMENT', `record: ${record} is not a record id`, { field: 'record' })
  const wallet = readWallet(o.wallet, REQUESTER_WALLET_ENV)
  const call = api(o)
  const policy = await policyOf(call)
  const detail = await call<{ manifest: BatchManifest | null; cid: string }>('GET', `/v1/records/${record}`)
  const body: Record<string, unknown> = { record, action, reason: o.reason }
  let evidence: Evidence | null = null
  if (o.key && detail.manifest) {
    const key = readAttributeKey(o.key)
    const envelope = await call<Uint8Array>('GET', `/v1/records/${record}/envelope`)
    const old = openBatch(key, envelope, detail.manifest)
    let fresh: Evidence['new'] = null
    if (action === 'correct') {
      const mpk = readAuthority(o.authority!)
      const resealed = await resealCorrection(mpk, detail.manifest, readings!)
      body.manifest = resealed.manifest
      body.envelope = Buffer.from(resealed.envelope).toString('base64')
      fresh = openBatch(key, resealed.envelope, resealed.manifest) // what the regulators will approve, read back
    }
    evidence = { v: 1, record, action, reason: o.reason, requester: 'see request', manifest: detail.manifest, old, new: fresh }
  }
  if (evidence && o.authority) body.evidence = Buffer.from(sealEvidence(readAuthority(o.authority), evidence)).toString('base64')
  // The signature covers the content as read here, the new manifest and the reason (shared/protocol/supervision-request.ts).
  const { record: now } = await call<{ record: { content: string } }>('GET', `/v1/records/${record}/proof`)
  const message = { record, action, oldContent: contentDigest(hexToBytes(now.content)), newManifest: body.manifest ? manifestCommitment(body.manifest as BatchManifest) : NO_MANIFEST, reason: o.reason, nonce: bytesToHex(systemRng(32)), issuedAt: Date.now() }
  const { signed, requestId } = await signRequest(policy, wallet, message)
  body.requesterSignature = signed
  const { request: r } = await call<{ request: RequestView }>('POST', '/v1/supervision/requests', body)
  if (r.id !== requestId) throw new CareLedgerError('VERIFICATION_FAILED', `the cloud filed request ${r.id}, but you signed ${requestId}`, { reason: 'REQUEST_MISMATCH' })
  out(`request ${r.id}: ${action} of record ${record} is pending, signed by ${signed.requester} (${evidence ? 'evidence sealed for role:regulator' : 'no evidence attached'})`)
}

// ---- the regulator ---------------------------------------------------------------------------------

/** FROST round one: fresh nonces kept (0600) for round two only, the commitment sent. */
async function commitRound(call: ReturnType<typeof api>, id: string, sharePath: string, noncesDir: string, request: RequestView): Promise<void> {
  const { share, group } = readShare(sharePath)
  const { nonces, commitment } = thresholdAdaptCommit(share, systemRng)
  const file = join(noncesDir, `${id}.nonces`)
  if (existsSync(file)) rmSync(file) // nonces of an abandoned session: never used again
  writeNonceFile(file, { label: id, nonces, groupKey: group.groupKey })
  await call('POST', `/v1/supervision/requests/${id}/commitments`, { index: commitment.index, hiding: bytesToHex(commitment.hiding), binding: bytesToHex(commitment.binding) })
  out(`round one: commitment of signer ${share.index} sent; run \`careledger regulator sign ${id}\` once ${request.signers ? 'now' : 'the signers are fixed'}`)
}

/** Adds setup, review, approve, sign and reject to `careledger regulator`. */
export function addRegulatorWorkflow(cmd: Command): Command {
  cmd
    .command('setup')
    .description('the supervisory policy: k of n regulators (trusted dealer: splits --trapdoor, or a fresh one, into n FROST shares) or 1 of 1 (the trapdoor file)')
    .requiredOption('--threshold <k>', 'approvals needed')
    .requiredOption('--of <n>', 'regulators')
    .requiredOption('--cloud-id <id>', 'the chain these approvals are for (part of every approval)')
    .requiredOption('--regulator <name=address...>', 'each regulator: display name = EVM address (their wallet), in index order')
    .requiredOption('-o, --out <dir>', 'where to write policy.json and the share files')
    .option('--trapdoor <file>', 'the existing chameleon secret key to split (its public key is the chain\'s); without: a fresh key pair')
    .option('--destroy-trapdoor', 'delete --trapdoor after splitting it (k ≥ 2): from then on nobody holds it whole')
    .option('--install', 'install the policy on the cloud: PUT over the API (--url, an admin token), or straight into its store (--database / --data)')
    .option('--url <url>')
    .option('--token <token>')
    .option('--database <url>', "with --install: the deployment's shared PostgreSQL (postgres://…)")
    .option('--data <dir>', "with --install: a SQLite cloud's data directory")
    .action(async (o: { threshold: string; of: string; cloudId: string; regulator: string[]; out: string; trapdoor?: string; destroyTrapdoor?: boolean; install?: boolean } & ApiOpts & StoreOpts) => {
      const k = Number(o.threshold)
      const n = Number(o.of)
      const regs = o.regulator.map((s) => {
        const at = s.lastIndexOf('=')
        if (at < 1) throw new CareLedgerError('INVALID_ARGUMENT', `--regulator ${JSON.stringify(s)}: expected "Name=0xaddress"`, { field: 'regulator' })
        return { name: s.slice(0, at), address: s.slice(at + 1) }
      })
      if (regs.length !== n) throw new CareLedgerError('INVALID_ARGUMENT', `--of ${n} but ${regs.length} --regulator given`, { field: 'regulator' })
      mkdirSync(o.out, { recursive: true })
      let trapdoor = o.trapdoor ? readTrapdoor(o.trapdoor) : null
      if (!trapdoor) {
        const pair = chameleonKeyGen()
        trapdoor = pair.secretKey
        if (n === 1) writeKeyFile(join(o.out, 'chameleon-secret.key'), encodeChameleonSecretKey(pair.secretKey), { secret: true })
      }
      const publicKey = chameleonPublicKey(trapdoor)
      writeKeyFile(join(o.out, 'chameleon-public.key'), encodeChameleonPublicKey(publicKey), { secret: false, force: true })
      let policy: SupervisoryPolicy
      if (n === 1) {
        if (k !== 1) throw new CareLedgerError('INVALID_ARGUMENT', 'one regulator means --threshold 1', { field: 'threshold' })
        policy = singleRegulatorPolicy({ cloud: o.cloudId, publicKey, regulator: regs[0]!, createdAt: Date.now() })
      } else {
        const deal = frostDeal(k, n, systemRng, trapdoor)
        policy = buildSupervisoryPolicy({ cloud: o.cloudId, group: deal.group, regulators: regs, keyGeneration: 'dealer', createdAt: Date.now() })
        deal.shares.forEach((s, i) => writeShareFile(join(o.out, `regulator-${i + 1}.share`), deal.group, s))
        trapdoor.fill(0)
        if (o.trapdoor && o.destroyTrapdoor) rmSync(o.trapdoor)
      }
      writeFileSync(join(o.out, 'policy.json'), JSON.stringify(policy, null, 2) + '\n')
      out(`supervisory policy ${bytesToHex(supervisoryPolicyId(policy))}: ${k} of ${n}, key generation ${policy.keyGeneration}; wrote ${join(o.out, 'policy.json')}`)
      if (n > 1) out(`hand regulator-<i>.share to regulator i only, then delete them here${o.trapdoor && !o.destroyTrapdoor ? `; destroy ${o.trapdoor}: nobody should hold the trapdoor whole` : ''}`)
      if (o.install) {
        await fromSource(o, (s) => s.setPolicy(policy))
        out('installed on the cloud')
      }
    })

  withStore(withApi(cmd.command('review').description('pending requests, with the evidence opened by your role:regulator key')))
    .option('--key <file>', 'your attribute key with role:regulator (opens the evidence)')
    .option('--json', 'print JSON')
    .action(async (o: ApiOpts & StoreOpts & { key?: string; json?: boolean }) => {
      const { requests, policy } = await fromSource(o, async (s) => ({ requests: await s.requests('pending'), policy: requirePolicy(await s.policy()) }))
      const key = o.key ? readAttributeKey(o.key) : null
      const rows = requests.map((r) => {
        let evidence: Evidence | { error: string } | null = null
        if (key && r.evidence) {
          try {
            evidence = openEvidence(key, hexToBytes(r.evidence), r.record, r.action)
          } catch (e) {
            evidence = { error: (e as Error).message }
          }
        }
        return { ...r, newContentBytes: undefined, evidence, requesterCheck: checkRequester(policy, r) }
      })
      if (o.json) return out(JSON.stringify(rows, null, 2))
      for (const r of rows) {
        out(`${r.id}  ${r.action} record ${r.record}  by ${r.requesterCheck.text}  "${r.reason}"  decisions: ${r.decisions.map((d) => `${d.regulator} ${d.decision}`).join(', ') || 'none'}`)
        const ev = r.evidence as Evidence | { error: string } | null
        if (ev && 'error' in ev) out(`  evidence: ${ev.error}`)
        else if (ev) {
          out(`  ${ev.manifest.stream}#${ev.manifest.seq}  patient ${ev.manifest.patient}  device ${ev.manifest.device}`)
          const fresh = new Map((ev.new ?? []).map((x) => [x.seq, x]))
          for (const old of ev.old) {
            const now = fresh.get(old.seq)
            out(`  reading ${old.seq}  ${old.type}  ${old.value ?? ''} ${old.unit}  →  ${ev.action === 'delete' ? '(deleted)' : now ? `${now.value ?? ''} ${now.unit}` : '(removed)'}`)
          }
        }
      }
    })

  const decide = async (id: string, o: ApiOpts & { wallet?: string; comment?: string }, decision: Decision) => {
    const call = api(o)
    const policy = await policyOf(call)
    const r = await getRequest(call, id)
    const wallet = readWallet(o.wallet)
    const t = approvalTypedData(policy, { requestId: r.id, record: r.record, action: r.action, oldContent: r.oldContent, newContent: r.newContent, decision, comment: o.comment ?? '' })
    const signature = await wallet.signTypedData(t.domain, t.types, t.message)
    const approval = { requestId: r.id, record: r.record, action: r.action, oldContent: r.oldContent, newContent: r.newContent, policy: bytesToHex(supervisoryPolicyId(policy)), regulator: wallet.address, decision, comment: o.comment ?? '', signature }
    return { call, policy, request: (await call<{ request: RequestView }>('POST', `/v1/supervision/requests/${id}/decisions`, approval)).request, wallet }
  }

  withApi(cmd.command('approve <id>').description('sign your approval (EIP-712) and, with --share, FROST round one; with --trapdoor (1 of 1), the new opening'))
    .option('--wallet <file>', 'your EVM private key file (default CARELEDGER_REGULATOR_WALLET)')
    .option('--comment <text>', 'a note for the record', '')
    .option('--share <file>', 'your FROST signing share (k of n)')
    .option('--nonces <dir>', 'where round one keeps your single-use nonces until `regulator sign`', '.careledger/regulator-nonces')
    .option('--trapdoor <file>', '1 of 1: the chameleon secret key')
    .action(async (id: string, o: ApiOpts & { wallet?: string; comment?: string; share?: string; nonces: string; trapdoor?: string }) => {
      const { call, request } = await decide(id, o, 'approve')
      out(`approved request ${id} (${request.decisions.filter((d) => d.decision === 'approve').length} approval(s))`)
      if (o.trapdoor) {
        const opening = adaptAlone(readTrapdoor(o.trapdoor), { hash: hexToBytes(request.hash), message: hexToBytes(request.newContentBytes) }, systemRng)
        const done = await call<{ request: RequestView }>('POST', `/v1/supervision/requests/${id}/opening`, { opening: bytesToHex(opening.R) + bytesToHex(opening.s) })
        out(`request ${id}: ${done.request.status}`)
      } else if (o.share) {
        await commitRound(call, id, o.share, o.nonces, request)
      }
    })

  withApi(cmd.command('commit <id>').description('FROST round one again (after `regulator restart`): fresh single-use nonces, their commitment to the cloud'))
    .requiredOption('--share <file>', 'your FROST signing share')
    .option('--nonces <dir>', 'where your nonces are kept until `regulator sign`', '.careledger/regulator-nonces')
    .action(async (id: string, o: ApiOpts & { share: string; nonces: string }) => {
      const call = api(o)
      await commitRound(call, id, o.share, o.nonces, await getRequest(call, id))
    })

  withApi(cmd.command('restart <id>').description('abandon the FROST session of a request (a wrong share, lost nonces): the signers commit again')).action(async (id: string, o: ApiOpts) => {
    await api(o)('POST', `/v1/supervision/requests/${id}/restart`, {})
    out(`request ${id}: FROST session restarted; each signer runs \`careledger regulator commit ${id}\``)
  })

  withApi(cmd.command('sign <id>').description('FROST round two: your signature share of the new opening (the k-th share applies the redaction)'))
    .requiredOption('--share <file>', 'your FROST signing share')
    .option('--nonces <dir>', 'where `approve --share` kept your nonces', '.careledger/regulator-nonces')
    .action(async (id: string, o: ApiOpts & { share: string; nonces: string }) => {
      const call = api(o)
      const policy = await policyOf(call)
      const r = await getRequest(call, id)
      if (!r.signers) throw new CareLedgerError('INVALID_ARGUMENT', `request ${id}: the signers are not fixed yet (${r.commitments.length} of ${policy.threshold} commitments)`, { reason: 'SIGNERS_NOT_FIXED' })
      const { share } = readShare(o.share)
      const file = join(o.nonces, `${id}.nonces`)
      if (!existsSync(file)) throw new CareLedgerError('INVALID_ARGUMENT', `no nonces for request ${id} in ${o.nonces} (run approve --share first)`, { field: 'nonces' })
      const { nonces } = takeNonceFile(file, id)
      const commitments = r.commitments.map((c) => ({ index: c.index, hiding: hexToBytes(c.hiding), binding: hexToBytes(c.binding) }))
      const z = thresholdAdaptSign(share, policyGroup(policy), nonces, commitments, { hash: hexToBytes(r.hash), message: hexToBytes(r.newContentBytes) })
      const done = await call<{ request: RequestView }>('POST', `/v1/supervision/requests/${id}/shares`, { index: z.index, share: bytesToHex(z.share) })
      out(`signature share of signer ${z.index} accepted; request ${id}: ${done.request.status}`)
    })

  withApi(cmd.command('reject <id>').description('sign your rejection (EIP-712)'))
    .requiredOption('--reason <text>', 'why (recorded with your signature)')
    .option('--wallet <file>', 'your EVM private key file (default CARELEDGER_REGULATOR_WALLET)')
    .action(async (id: string, o: ApiOpts & { wallet?: string; reason: string }) => {
      const { request } = await decide(id, { ...o, comment: o.reason }, 'reject')
      out(`rejected request ${id}; it is ${request.status}`)
    })
  return cmd
}
