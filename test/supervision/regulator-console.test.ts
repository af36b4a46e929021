/**
 * The console's regulator view in headless Chromium, end to end: a doctor files a correction with
 * `careledger supervision request` (re-sealed on their side, evidence sealed for role:regulator);
 * two regulators of a 2-of-3 policy (`careledger regulator setup`, sealed share files) open
 * GET /regulator in two tabs, open the evidence IN THE PAGE with their role:regulator key (old and
 * new readings side by side), and approve: EIP-712 signature by their wallet file and the FROST
 * rounds computed in the page from their share file. The cloud applies; `careledger chain verify`
 * passes. Every request the browser makes is recorded: no key, wallet or share file (nor its
 * secret, in any encoding) leaves the page, nothing is uploaded. Saves test-output/regulator-console.png.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { hexToBytes } from '@noble/hashes/utils.js'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Cloud } from '../../cloud/runtime.ts'
import { encodeMasterPublicKey, encodeUserKey } from '../../shared/crypto/abe/codec.ts'
import { decodeFrostShareFile } from '../../shared/crypto/frost-codec.ts'
import { openWithPassphrase } from '../../shared/crypto/sealed-secret.ts'
import type { BatchManifest } from '../../shared/protocol/manifest.ts'
import { contentDigest } from '../../shared/protocol/approval.ts'
import { NO_MANIFEST, signRequest } from '../../shared/protocol/supervision-request.ts'
import type { SupervisoryPolicy } from '../../shared/protocol/supervisory-policy.ts'
import { openBatch } from '../../clients/supervision.ts'
import { currentKey } from '../helpers/authority.ts'
import { batchBody, readings, registerTestGateway, sealTestBatch, signedPost, testAuthority, testAuthoritySecret, testStream } from '../helpers/cloud-batches.ts'
import { careledger, startTestCloud, tempDataDir } from '../helpers/cloud-process.ts'
import { expectNoneCarries, openBrowser, recordNetwork, screenshotPath, signIn, type TestBrowser } from '../helpers/browser.ts'
import { TEST_KEY_ENV } from '../helpers/test-passphrase.ts'
import { testWallet } from '../vectors/supervision.ts'

let data: ReturnType<typeof tempDataDir>
let cloud: Cloud
let browser: TestBrowser
let dir: string
const tokens = { admin: '', doctor: '', regulator: '' }
const wallets = [1, 2, 3].map(testWallet)
const requester = testWallet(9)
let network: ReturnType<typeof recordNetwork>
let recordId = 0

async function run(args: readonly string[], token: string): Promise<string> {
  const r = await careledger(args, { CARELEDGER_CLOUD_URL: cloud.url, CARELEDGER_TOKEN: token })
  if (r.code !== 0) throw new Error(`careledger ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`)
  return r.stdout
}
const api = async <T>(path: string): Promise<T> => (await fetch(`${cloud.url}${path}`, { headers: { authorization: `Bearer ${tokens.admin}` } })).json() as Promise<T>

beforeAll(async () => {
  data = tempDataDir('regulator-console')
  cloud = await startTestCloud(data.dir, { blockIntervalS: '3600', verifyIntervalS: '0' })
  tokens.admin = (await cloud.tokens.create('admin', 'ops')).token
  tokens.doctor = (await cloud.tokens.create('doctor', 'dr-house')).token
  tokens.regulator = (await cloud.tokens.create('regulator', 'authority-desk')).token
  const gw = await registerTestGateway(cloud)
  const monitor = testStream(gw, 'bed-03', 'P-3', 'role:doctor OR patient:{patient}')
  let prev: string | null = null
  for (let seq = 0; seq < 3; seq++) {
    const b = await sealTestBatch(monitor, seq, prev, { readings: readings(seq * 4, 4) })
    prev = b.commitment
    expect((await signedPost(cloud.url, gw, '/v1/batches', await batchBody(b))).res.status).toBe(201)
  }
  expect(cloud.sealNow()).not.toBeNull()
  const { records } = await api<{ records: { id: number; seq: number }[] }>('/v1/records?limit=10')
  recordId = records.find((r) => r.seq === 1)!.id

  dir = join(data.dir, 'people')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'doctor.key'), encodeUserKey(currentKey(testAuthoritySecret(), ['role:doctor'])), { mode: 0o600 })
  writeFileSync(join(dir, 'regulator.key'), encodeUserKey(currentKey(testAuthoritySecret(), ['role:regulator'])), { mode: 0o600 })
  writeFileSync(join(dir, 'authority.pub'), encodeMasterPublicKey(testAuthority()))
  wallets.forEach((w, i) => writeFileSync(join(dir, `wallet-${i + 1}`), w.privateKey + '\n', { mode: 0o600 }))
  writeFileSync(join(dir, 'requester-wallet'), requester.privateKey + '\n', { mode: 0o600 }) // the doctor signs requests
  browser = await openBrowser({ viewport: { width: 1280, height: 1300 } })
  network = recordNetwork(browser.context)
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await cloud?.stop()
  data?.cleanup()
})

/** A regulator's tab: token, passphrase of the sealed files, then the files. */
async function regulatorTab(i: number, committee: string): Promise<Page> {
  const page = await browser.context.newPage()
  await signIn(page, `${cloud.url}/regulator`, tokens.regulator)
  await expect.poll(() => page.textContent('#policy')).toMatch(/^2 of 3 regulators \(key generation dealer\)/)
  await page.fill('#passphrase', TEST_KEY_ENV.CARELEDGER_PASSPHRASE!)
  await page.setInputFiles('#key', join(dir, 'regulator.key'))
  await page.setInputFiles('#wallet', join(dir, `wallet-${i}`))
  await page.setInputFiles('#share', join(committee, `regulator-${i}.share`))
  await expect.poll(() => page.textContent('#file-status')).toMatch(new RegExp(`share: FROST share ${i} of 3 \\(threshold 2\\)`))
  expect(await page.textContent('#file-status')).toMatch(new RegExp(`wallet ${wallets[i - 1]!.address} \\(Regulator ${i}, regulator ${i} of the policy\\)`))
  expect(await page.textContent('#file-status')).toMatch(/key: attribute key with role:regulator/)
  return page
}

describe('regulator console in headless Chromium (2 of 3)', () => {
  it('request via the CLI → two regulators approve in the browser (evidence opened and FROST share computed in the page) → applied; chain verify passes; no key leaves the page', async () => {
    const committee = join(dir, 'committee')
    const trapdoor = join(data.dir, 'regulator', 'chameleon-secret.key')
    expect(existsSync(trapdoor)).toBe(true)
    await run(['regulator', 'setup', '--threshold', '2', '--of', '3', '--cloud-id', 'console-cloud', '--trapdoor', trapdoor, '--out', committee, '--install', ...wallets.flatMap((w, i) => ['--regulator', `Regulator ${i + 1}=${w.address}`])], tokens.admin)

    // The doctor's correction: the first reading's value + 1, re-sealed on their side.
    const detail = (await (await fetch(`${cloud.url}/v1/records/${recordId}`, { headers: { authorization: `Bearer ${tokens.doctor}` } })).json()) as { manifest: BatchManifest }
    const envelope = new Uint8Array(await (await fetch(`${cloud.url}/v1/records/${recordId}/envelope`, { headers: { authorization: `Bearer ${tokens.doctor}` } })).arrayBuffer())
    const old = openBatch(currentKey(testAuthoritySecret(), ['role:doctor']), envelope, detail.manifest)
    const fixed = old.map((r, i) => (i === 0 ? { ...r, value: (r.value ?? 0) + 1 } : r))
    writeFileSync(join(dir, 'fixed.json'), JSON.stringify(fixed))
    const out = await run(['supervision', 'request', 'correct', String(recordId), '--readings', join(dir, 'fixed.json'), '--reason', 'first reading mis-calibrated', '--key', join(dir, 'doctor.key'), '--authority', join(dir, 'authority.pub'), '--wallet', join(dir, 'requester-wallet')], tokens.doctor)
    const rid = /request ([0-9a-f]{64})/.exec(out)![1]!

    const [one, three] = [await regulatorTab(1, committee), await regulatorTab(3, committee)]
    // The evidence, opened in the page: reason, requester, record metadata, old and new side by side.
    const card = one.locator(`article.request[data-id="${rid}"]`)
    await expect.poll(() => card.textContent()).toMatch(/first reading mis-calibrated/)
    const text = (await card.textContent())!
    expect(text).toMatch(/Correct record \d+/)
    // Who asked: the requester's signature, verified in the page.
    expect(text).toContain(`requester${requester.address} — signature verified (filed with the token of dr-house (doctor))`)
    expect(await card.locator('dd.verified').count()).toBe(1)
    expect(text).toMatch(/stream[0-9a-f-]+ #1 — device bed-03, patient p-[0-9a-f]{24}/)
    const changed = await card.locator('table.readings tr.changed td').allTextContents()
    expect(changed.slice(3)).toEqual([`${old[0]!.value} ${old[0]!.unit}`, `${fixed[0]!.value} ${fixed[0]!.unit}`])
    expect(await card.locator('table.readings tbody tr').count()).toBe(old.length)
    await one.screenshot({ path: screenshotPath('regulator-console'), fullPage: true })

    await card.locator('input.comment').fill('checked against the device log')
    await card.locator('button.approve').click()
    await expect.poll(() => one.textContent('#message')).toMatch(/approved request .*your commitment is in/)
    const card3 = three.locator(`article.request[data-id="${rid}"]`)
    await card3.locator('button.approve').click()
    // Regulator 3's page signs at once (the signers are fixed by its commitment), regulator 1's on its next look.
    const status = async () => (await api<{ request: { status: string } }>(`/v1/supervision/requests/${rid}`)).request.status
    await expect.poll(status, { timeout: 60_000, interval: 500 }).toBe('applied')

    const { entries } = await api<{ entries: { record: number; entry: { requestId: string; signers: number[]; approvals: unknown[] } }[] }>('/v1/supervision/log')
    expect(entries.at(-1)).toMatchObject({ record: recordId, entry: { v: 2, requestId: rid, signers: [1, 3], request: { requester: requester.address } } })
    const v = await careledger(['chain', 'verify', '--data', data.dir, '--json', '--supervisory-policy', join(committee, 'policy.json')], {})
    expect(JSON.parse(v.stdout).failures).toEqual([])
    expect(v.code).toBe(0)

    // The network, as the browser saw it.
    const seen = network.seen()
    expect(seen.every((r) => r.origin === cloud.url)).toBe(true)
    const posts = seen.filter((r) => r.method !== 'GET')
    expect(new Set(posts.map((r) => `${r.method} ${r.path.replace(rid, '{id}')}`))).toEqual(new Set(['POST /v1/supervision/requests/{id}/decisions', 'POST /v1/supervision/requests/{id}/commitments', 'POST /v1/supervision/requests/{id}/shares']))
    expect(posts.every((r) => r.headers['content-type'] === 'application/json' && JSON.parse(r.body) !== null)).toBe(true) // no upload: JSON only
    const secrets: (Uint8Array | string)[] = [readFileSync(join(dir, 'regulator.key')), readFileSync(join(dir, 'wallet-1')), readFileSync(join(dir, 'wallet-3')), ...wallets.map((w) => w.privateKey.slice(2)), TEST_KEY_ENV.CARELEDGER_PASSPHRASE!]
    for (const i of [1, 3]) {
      const sealed = readFileSync(join(committee, `regulator-${i}.share`))
      secrets.push(sealed, decodeFrostShareFile(openWithPassphrase(sealed, TEST_KEY_ENV.CARELEDGER_PASSPHRASE!)).share.signingShare)
    }
    expectNoneCarries(seen, secrets)
    // (the check is not vacuous: a body holding the share bytes would be caught)
    expect(() => expectNoneCarries([{ ...seen[0]!, body: JSON.stringify({ x: Buffer.from(secrets.at(-1) as Uint8Array).toString('base64') }) }], secrets)).toThrow(/carries a secret/)
    expect(seen.filter((r) => r.method === 'GET').every((r) => r.body === '')).toBe(true)
  }, 240_000)

  it('the API refuses an unsigned or forged request, naming what is wrong; nothing is stored', async () => {
    const post = (body: unknown) => fetch(`${cloud.url}/v1/supervision/requests`, { method: 'POST', headers: { authorization: `Bearer ${tokens.doctor}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const count = async () => (await api<{ requests: unknown[] }>('/v1/supervision/requests')).requests.length
    const before = await count()
    const target = recordId + 1
    const unsigned = await post({ record: target, action: 'delete', reason: 'wrong patient' })
    expect(unsigned.status).toBe(400)
    expect(((await unsigned.json()) as { error: { message: string } }).error.message).toMatch(/^requesterSignature: required: the requester signs the request/)
    // Signed by another wallet in the requester's name.
    const { policy } = await api<{ policy: SupervisoryPolicy }>('/v1/supervision/policy')
    const proof = await api<{ record: { content: string } }>(`/v1/records/${target}/proof`)
    const m = { record: target, action: 'delete' as const, oldContent: contentDigest(hexToBytes(proof.record.content)), newManifest: NO_MANIFEST, reason: 'wrong patient', nonce: '11'.repeat(32), issuedAt: Date.now() }
    const { signed } = await signRequest(policy, testWallet(8), m)
    const forged = await post({ record: target, action: 'delete', reason: 'wrong patient', requesterSignature: { ...signed, requester: requester.address } })
    expect(forged.status).toBe(400)
    const body = ((await forged.json()) as { error: { message: string; details: { reason: string } } }).error
    expect(body.details.reason).toBe('FORGED_REQUEST')
    expect(body.message).toContain(`claims to be signed by ${requester.address}`)
    expect(await count()).toBe(before)
    const { refusals } = await api<{ refusals: { reason: string; operation: string }[] }>('/v1/supervision/refusals')
    expect(refusals[0]).toMatchObject({ operation: 'request', reason: 'FORGED_REQUEST' })
  })

  it('a regulator rejects in the browser with a reason: the signed rejection is recorded; without a reason the page refuses', async () => {
    const committee = join(dir, 'committee')
    const target = recordId + 1
    const out = await run(['supervision', 'request', 'delete', String(target), '--reason', 'recorded on the wrong patient', '--wallet', join(dir, 'requester-wallet')], tokens.doctor)
    const rid = /request ([0-9a-f]{64})/.exec(out)![1]!
    const two = await regulatorTab(2, committee)
    const card = two.locator(`article.request[data-id="${rid}"]`)
    await expect.poll(() => card.textContent()).toMatch(/Delete record \d+/)
    expect(await card.textContent()).toMatch(/no evidence attached/)
    await card.locator('button.reject').click()
    await expect.poll(() => two.textContent('#message')).toBe('a rejection needs a reason')
    await card.locator('input.comment').fill('no evidence attached: cannot judge')
    await card.locator('button.reject').click()
    await expect.poll(() => two.textContent('#message')).toMatch(/^rejected request .*; it is pending/)
    const { request } = await api<{ request: { status: string; decisions: { regulator: string; decision: string; comment: string }[] } }>(`/v1/supervision/requests/${rid}`)
    expect(request.decisions).toEqual([expect.objectContaining({ regulator: wallets[1]!.address, decision: 'reject', comment: 'no evidence attached: cannot judge' })])
    expect(request.status).toBe('pending') // 2 of 3: one rejection leaves approval possible
  })
})
