/**
 * Supervision across two `careledger cloud start --database postgres://…` processes on one real
 * PostgreSQL (cloud/store/pg/supervision.ts), over HTTP, with tokens made once by
 * `careledger cloud token create --database …`:
 *
 *   - `regulator setup --install --database …` installs the policy for both processes; a deletion
 *     requested at A (signed by the requester's wallet) is pending at B and in `supervision list` /
 *     `regulator review --database …`; the regulators' EIP-712 approvals and FROST commitments
 *     go to B and A; an approval used at B is refused at A (REPLAYED);
 *   - the last signature share sent to both processes at the same moment applies the redaction
 *     exactly once: one redaction log entry, one `supervision_applied`, the record a tombstone;
 *   - the entry is committed by a sealed block (header v2 `redactions: {count: 1, head}`) and
 *     `careledger chain verify --database …` passes, judging the redaction as on SQLite;
 *   - the gateway's delete-batch instruction is delivered by either process (instructions live in
 *     the shared PostgreSQL, cloud/store/pg/instructions.ts), and its acknowledgement at one is
 *     seen at the other.
 */
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { usePostgres } from '../helpers/postgres.ts'
import { careledger, cli, json } from '../helpers/cloud-process.ts'
import { usePgClouds } from '../helpers/pg-clouds.ts'
import { batchBody, sealTestBatch, signedPost, testGateway, testStream } from '../helpers/cloud-batches.ts'
import { roundOne, roundTwo, signDecision, subjectOf, type Committee } from '../helpers/supervision.ts'
import { testWallet } from '../vectors/supervision.ts'
import { readShare } from '../../clients/supervision-keys.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { contentDigest } from '../../shared/protocol/approval.ts'
import { NO_MANIFEST, signRequest } from '../../shared/protocol/supervision-request.ts'
import { signRequest as signGatewayRequest } from '../../shared/protocol/request-signing.ts'
import { decodeTombstone } from '../../cloud/supervision/content.ts'
import type { RequestView } from '../../cloud/supervision/store.ts'
import type { SupervisoryPolicy } from '../../shared/protocol/supervisory-policy.ts'

const postgres = usePostgres()
const { temp, startPair } = usePgClouds(postgres.server)


const call = async (base: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> => {
  const res = await fetch(new URL(path, base), { method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) })
  return { status: res.status, body: await res.json() }
}

describe('supervision across two cloud processes on one PostgreSQL', () => {
  it('request at A, approvals at B, the last share at both at once: applied once, committed by a block, chain verify --database passes', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const { url, dirA, a, b } = await startPair('supervision_two_clouds')

    const token = async (role: string, name: string): Promise<string> => JSON.parse(await cli(['cloud', 'token', 'create', '--role', role, '--name', name, '--json', '--database', url])).token
    const admin = await token('admin', 'ops')
    const doctor = await token('doctor', 'dr-ward')
    const regulator = await token('regulator', 'authority')

    // Four batches of one bed, uploaded to A and B in turn, sealed.
    const gw = testGateway()
    const invite = JSON.parse(await cli(['cloud', 'gateway', 'invite', '--name', 'ward-1', '--json', '--database', url])).token
    const reg = await fetch(`${a.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: invite, publicKey: bytesToHex(gw.publicKey), name: 'ward-1' }) })
    expect(reg.status).toBe(201)
    const stream = testStream(gw)
    let prev: Awaited<ReturnType<typeof sealTestBatch>> | null = null
    for (let seq = 0; seq < 4; seq++) {
      const batch: Awaited<ReturnType<typeof sealTestBatch>> = await sealTestBatch(stream, seq, prev?.commitment ?? null, prev ? { kem: prev.kem } : {})
      const { res } = await signedPost((seq % 2 ? b : a).url, gw, '/v1/batches', await batchBody(batch))
      expect(res.status).toBe(201)
      prev = batch
    }
    const sealed = async (): Promise<void> => {
      const deadline = Date.now() + 30_000
      while ((await json(fetch(`${b.url}/healthz`))).pendingRecords > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200))
    }
    await sealed()

    // The policy: 2 of 3 regulators sharing the development trapdoor, split and installed straight
    // into the shared database by `regulator setup --install --database` (no cloud URL, no token).
    const committeeDir = temp('sup-committee')
    const wallets = [1, 2, 3].map((i) => testWallet(i))
    const setup = await cli(['regulator', 'setup', '--threshold', '2', '--of', '3', '--cloud-id', 'pg-two-clouds', '--trapdoor', join(dirA, 'regulator', 'chameleon-secret.key'), '--out', committeeDir, '--install', '--database', url, ...wallets.flatMap((w, i) => ['--regulator', `Regulator ${i + 1}=${w.address}`])])
    expect(setup).toMatch(/2 of 3, key generation dealer[\s\S]*installed on the cloud/)
    const policy = JSON.parse(readFileSync(join(committeeDir, 'policy.json'), 'utf8')) as SupervisoryPolicy
    const c: Committee = { policy, regulators: wallets.map((wallet, i) => ({ index: i + 1, wallet, share: readShare(join(committeeDir, `regulator-${i + 1}.share`)).share })) }
    for (const p of [a, b]) expect((await call(p.url, regulator, 'GET', '/v1/supervision/policy')).body.policy).toEqual(policy)

    // A deletion of record 2, signed by the requester, filed at A.
    const target = 2
    const proof = await call(a.url, doctor, 'GET', `/v1/records/${target}/proof`)
    const message = { record: target, action: 'delete' as const, oldContent: contentDigest(hexToBytes(proof.body.record.content)), newManifest: NO_MANIFEST, reason: 'recorded on the wrong patient', nonce: 'ab'.repeat(32), issuedAt: Date.now() }
    const { signed, requestId } = await signRequest(c.policy, testWallet(9), message)
    const filed = await call(a.url, doctor, 'POST', '/v1/supervision/requests', { record: target, action: 'delete', reason: message.reason, requesterSignature: signed })
    expect(filed.status).toBe(201)
    expect(filed.body.request.id).toBe(requestId)
    // Filed at A, pending at B; a second request for the record is refused at B.
    let r: RequestView = (await call(b.url, regulator, 'GET', `/v1/supervision/requests/${requestId}`)).body.request
    expect(r.status).toBe('pending')
    const again = await call(b.url, doctor, 'POST', '/v1/supervision/requests', { record: target, action: 'delete', reason: 'again', requesterSignature: (await signRequest(c.policy, testWallet(9), { ...message, nonce: 'cd'.repeat(32) })).signed })
    expect(again.status).toBe(409)
    expect(again.body.error.details.reason).toBe('PENDING_REQUEST')
    // The command line reads the shared database too.
    expect(await cli(['supervision', 'list', '--status', 'pending', '--database', url])).toMatch(new RegExp(`^${requestId}  pending  +delete +record ${target} `))
    const review = JSON.parse(await cli(['regulator', 'review', '--json', '--database', url])) as { id: string; requesterCheck: { verified: boolean } }[]
    expect(review.map((x) => [x.id, x.requesterCheck.verified])).toEqual([[requestId, true]])

    // Approvals at B; the one of regulator 1 replayed at A is refused there.
    const approvals = await Promise.all([1, 2].map((i) => signDecision(c.policy, c.regulators[i - 1]!.wallet, subjectOf(r), 'approve', `checked by ${i}`)))
    for (const approval of approvals) expect((await call(b.url, regulator, 'POST', `/v1/supervision/requests/${requestId}/decisions`, approval)).status).toBe(200)
    const replayed = await call(a.url, regulator, 'POST', `/v1/supervision/requests/${requestId}/decisions`, approvals[0])
    expect(replayed.status).toBe(400)
    expect(replayed.body.error.details.reason).toBe('REPLAYED')

    // FROST round one: regulator 1 commits at A, regulator 2 at B; the signers are fixed for both.
    const rng = deterministicRng('pg supervision nonces')
    const n1 = roundOne(c.regulators[0]!, rng)
    const n2 = roundOne(c.regulators[1]!, rng)
    const hex = (x: { index: number; hiding: Uint8Array; binding: Uint8Array }) => ({ index: x.index, hiding: bytesToHex(x.hiding), binding: bytesToHex(x.binding) })
    expect((await call(a.url, regulator, 'POST', `/v1/supervision/requests/${requestId}/commitments`, hex(n1.commitment))).status).toBe(200)
    r = (await call(b.url, regulator, 'POST', `/v1/supervision/requests/${requestId}/commitments`, hex(n2.commitment))).body.request
    expect(r.signers).toEqual([1, 2])

    // Round two: regulator 1's share at B; regulator 2's (the last) at A and B at the same moment.
    const z1 = roundTwo(c, c.regulators[0]!, n1.nonces, r)
    const z2 = roundTwo(c, c.regulators[1]!, n2.nonces, r)
    const first = await call(b.url, regulator, 'POST', `/v1/supervision/requests/${requestId}/shares`, { index: z1.index, share: bytesToHex(z1.share) })
    expect(first.status).toBe(200)
    expect(first.body.request.status).toBe('pending')
    const last = { index: z2.index, share: bytesToHex(z2.share) }
    const both = await Promise.all([a, b].map((p) => call(p.url, regulator, 'POST', `/v1/supervision/requests/${requestId}/shares`, last)))
    // The one that applied answers its log entry; the other sees the request applied (or, arriving after, NOT_PENDING).
    const winners = both.filter((x) => x.status === 200 && x.body.entry !== null)
    expect(winners).toHaveLength(1)
    for (const x of both) {
      if (x.status === 200) expect(x.body.request.status).toBe('applied')
      else expect([x.status, x.body.error.details.reason]).toEqual([409, 'NOT_PENDING'])
    }
    const appliedLogs = [a, b].flatMap((p) => p.logs.filter((l) => l.event === 'supervision_applied'))
    expect(appliedLogs).toHaveLength(1)

    // One entry, the same at both; the record a tombstone, flagged redacted at both.
    const logA = (await call(a.url, admin, 'GET', '/v1/supervision/log')).body.entries
    const logB = (await call(b.url, admin, 'GET', '/v1/supervision/log')).body.entries
    expect(logA).toHaveLength(1)
    expect(logB).toEqual(logA)
    expect(logA[0]).toMatchObject({ seq: 1, record: target, entry: { requestId, action: 'delete', signers: [1, 2] } })
    for (const p of [a, b]) {
      const rec = (await call(p.url, doctor, 'GET', `/v1/records/${target}/proof`)).body.record
      expect(rec.redacted).toBe(true)
      expect(decodeTombstone(hexToBytes(rec.content))).toMatchObject({ id: target, request: requestId })
    }
    const listed = (await call(a.url, doctor, 'GET', '/v1/records')).body.records as { id: number; redacted: boolean }[]
    expect(listed.filter((x) => x.redacted).map((x) => x.id)).toEqual([target])

    // Committed by a sealed block (sealed in the applying transaction): header v2 with the log's state.
    const blocks = (await call(b.url, admin, 'GET', '/v1/blocks?limit=1000')).body.blocks as { height: number; redactions?: { count: number; head: string } }[]
    expect(blocks.at(-1)!.redactions).toEqual({ count: 1, head: logA[0].logHash })
    expect(blocks.filter((x) => x.redactions?.count === 1)).toHaveLength(1) // committed once: no later block re-commits a moved log

    // The gateway is told through whichever process it polls (instructions shared in PostgreSQL):
    // the delete-batch the applying process issued is delivered by both, acknowledged at one, and
    // the acknowledgement is seen (repeated) at the other.
    const gatewayCall = async (base: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: any }> => {
      const bytes = body === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(body))
      const headers: Record<string, string> = { ...signGatewayRequest(gw.secretKey, { method, path, body: bytes }), 'CareLedger-Gateway': gw.gatewayId, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }
      const res = await fetch(new URL(path, base), { method, headers, ...(body === undefined ? {} : { body: bytes }) })
      return { status: res.status, body: await res.json() }
    }
    const viaA = await gatewayCall(a.url, 'GET', '/v1/gateways/self/instructions')
    const viaB = await gatewayCall(b.url, 'GET', '/v1/gateways/self/instructions')
    expect(viaA.status).toBe(200)
    expect(viaA.body.instructions.map((x: { kind: string; args: { record: number } }) => [x.kind, x.args.record])).toEqual([['delete-batch', target]])
    expect(viaB.body.instructions).toEqual(viaA.body.instructions)
    const insId = viaA.body.instructions[0].id as number
    const acked = await gatewayCall(b.url, 'POST', `/v1/gateways/self/instructions/${insId}/ack`, { status: 'done' })
    expect([acked.status, acked.body.instruction.state, acked.body.repeated]).toEqual([200, 'done', false])
    const again2 = await gatewayCall(a.url, 'POST', `/v1/gateways/self/instructions/${insId}/ack`, { status: 'failed', detail: 'late' })
    expect([again2.status, again2.body.instruction.state, again2.body.repeated]).toEqual([200, 'done', true])
    for (const p of [a, b]) expect((await gatewayCall(p.url, 'GET', '/v1/gateways/self/instructions')).body.instructions).toEqual([])

    expect(await a.stop()).toEqual({ code: 0, signal: null })
    expect(await b.stop()).toEqual({ code: 0, signal: null })
    // The envelopes are rows of the shared database, checked from the same snapshot as the chain; a local
    // default data directory with a blockstore of its own (another chain's) is not taken for them.
    const elsewhere = temp('sup-other-data')
    mkdirSync(join(elsewhere, 'blocks'))
    const verify = await careledger(['chain', 'verify', '--database', url, '--chameleon-key', join(dirA, 'keys', 'chameleon-public.key'), '--signing-key', join(dirA, 'keys', 'cloud-signing.pub'), '--json'], { CARELEDGER_CLOUD_DATA: elsewhere })
    expect(verify.stderr).not.toMatch(/envelope/)
    const report = JSON.parse(verify.stdout)
    expect(report.envelopes.checked).toBeGreaterThanOrEqual(3) // every record but a deleted one's tombstone
    expect(report.failures).toEqual([])
    expect(report).toMatchObject({ ok: true, records: 4, redactionLog: { entries: 1, committed: 1, uncommitted: 0 } })
    const raced = [a, b].flatMap((p) => p.logs.filter((l) => l.event === 'supervision_apply_raced' || (l.event === 'supervision_refused' && l.reason === 'NOT_PENDING')).map((l) => l.event))
    console.log(`[pg-supervision] last share at both processes: statuses ${both.map((x) => x.status).join(', ')}; the loser ${raced.join(', ') || '(none logged)'}; ${blocks.length} blocks; chain verify ok`)
  }, 240_000)
})
