/**
 * The anchoring commands as an operator and an auditor run them, as real processes against an EVM
 * RPC on 127.0.0.1 (Hardhat 3's EDR in this process): anchor-keygen, deploy-anchor, anchor,
 * anchors, and chain verify --anchors; with the errors a mistyped setting gets.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Wallet, isKeystoreJson } from 'ethers'
import { careledger, startTestCloud, tempDataDir } from '../helpers/cloud-process.ts'
import { startTestEvm, testKeystore, type TestEvm } from '../helpers/evm.ts'
import { deployedCodeMismatch } from '../../cloud/anchor/contract.ts'
import { PASSWORD, anchorEvents } from './anchor-helpers.ts'
import { TestGatewayKey, TestStream } from './chain-helpers.ts'

let evm: TestEvm
let tmp: ReturnType<typeof tempDataDir>
let keystore: string
let account: string
let contract: string
let cloudDir: string
const PW = { CARELEDGER_ANCHOR_KEYSTORE_PASSWORD: PASSWORD }
const connect = () => ['--anchor-rpc-url', evm.url, '--anchor-chain-id', String(evm.chainId), '--anchor-keystore', keystore]

beforeAll(async () => {
  evm = await startTestEvm({ intervalMs: 200 })
  tmp = tempDataDir('anchor-cli')
  keystore = join(tmp.dir, 'anchor-key.json')
  cloudDir = join(tmp.dir, 'cloud')
  // A chain of three blocks, made by a cloud without anchoring (off by default).
  const cloud = await startTestCloud(cloudDir, { blockIntervalS: '3600' })
  expect(cloud.anchor).toBeNull()
  const stream = new TestStream(new TestGatewayKey('anchor cli'), 'bed-01', 'cli patient')
  for (let h = 0; h < 3; h++) {
    cloud.chain.appendBatch(stream.batch(h))
    cloud.sealNow()
  }
  await cloud.stop()
})
afterAll(async () => {
  await evm.close()
  tmp.cleanup()
})

describe('careledger chain anchor-keygen, deploy-anchor, anchor, anchors, verify --anchors', () => {
  it('anchor-keygen writes an encrypted keystore (0600) and refuses to overwrite it', async () => {
    const r = await careledger(['chain', 'anchor-keygen', '-o', keystore], PW)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    account = /anchoring account (0x[0-9a-fA-F]{40})/.exec(r.stdout)![1]!
    expect(isKeystoreJson(readFileSync(keystore, 'utf8'))).toBe(true)
    expect(statSync(keystore).mode & 0o777).toBe(0o600)
    const again = await careledger(['chain', 'anchor-keygen', '-o', keystore], PW)
    expect(again.code).toBe(2)
    expect(again.stderr).toMatch(/exists \(use --force/)
    const noPassword = await careledger(['chain', 'anchor-keygen', '-o', join(tmp.dir, 'other.json')], { CARELEDGER_ANCHOR_KEYSTORE_PASSWORD: '' })
    expect(noPassword.stderr).toMatch(/needs its password: set CARELEDGER_ANCHOR_KEYSTORE_PASSWORD or CARELEDGER_ANCHOR_KEYSTORE_PASSWORD_FILE/)
    // The same account in a keystore with cheap scrypt for the commands below (each would otherwise
    // spend ethers' default scrypt, about a second of CPU, on decrypting it).
    const wallet = await Wallet.fromEncryptedJson(readFileSync(keystore, 'utf8'), PASSWORD)
    expect(wallet.address).toBe(account)
    writeFileSync(keystore, await testKeystore(new Wallet(wallet.privateKey), PASSWORD), { mode: 0o600 })
  }, 180_000)

  it('deploy-anchor refuses an unfunded account, a wrong password and a wrong chain id, then deploys the committed contract', async () => {
    const unfunded = await careledger(['chain', 'deploy-anchor', ...connect()], PW)
    expect(unfunded.code).toBe(2)
    expect(unfunded.stderr).toMatch(new RegExp(`the anchoring account ${account} has no funds for gas on chain ${evm.chainId}`))
    await evm.request('hardhat_setBalance', [account, '0x56bc75e2d63100000'])
    const wrongPw = await careledger(['chain', 'deploy-anchor', ...connect()], { CARELEDGER_ANCHOR_KEYSTORE_PASSWORD: 'not it' })
    expect(wrongPw.stderr).toMatch(/wrong password for the anchoring keystore/)
    const wrongChain = await careledger(['chain', 'deploy-anchor', ...connect(), '--anchor-chain-id', '1'], PW)
    expect(wrongChain.stderr).toMatch(new RegExp(`serves chain id ${evm.chainId}, not 1`))
    const badUrl = await careledger(['chain', 'deploy-anchor', ...connect(), '--anchor-rpc-url', 'ftp://x'], PW)
    expect(badUrl.stderr).toMatch(/--anchor-rpc-url="ftp:\/\/x": must be an http\(s\) URL/)

    const r = await careledger(['chain', 'deploy-anchor', ...connect(), '--json'], PW)
    expect(r.stderr).toBe('')
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({ anchorer: account, chainId: evm.chainId, contract: expect.stringMatching(/^0x[0-9a-fA-F]{40}$/) })
    contract = out.contract
    expect(deployedCodeMismatch(await evm.provider.getCode(contract), account)).toBeNull()
  }, 180_000)

  it('anchor publishes the newest block, waits for its confirmations, and is idempotent', async () => {
    const args = ['chain', 'anchor', '--data', cloudDir, ...connect(), '--anchor-contract', contract, '--anchor-confirmations', '3', '--anchor-poll-s', '0.2']
    const r = await careledger([...args, '--json'], PW)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({ outcome: 'confirmed', anchor: { height: 2, status: 'confirmed', txUrl: null } })
    expect(out.anchor.confirmations).toBeGreaterThanOrEqual(3)
    const again = await careledger(args, PW)
    expect(again.code).toBe(0)
    expect(again.stdout).toMatch(/block 2 is the newest and already anchored/)
    expect((await anchorEvents(evm, contract)).map((e) => e.height)).toEqual([2])
    const list = await careledger(['chain', 'anchors', '--data', cloudDir, '--json'])
    expect(JSON.parse(list.stdout)).toMatchObject([{ height: 2, status: 'confirmed', tx: out.anchor.tx }])
    const missing = await careledger(['chain', 'anchor', '--data', cloudDir, ...connect()], PW)
    expect(missing.stderr).toMatch(/anchor\.contract|CARELEDGER_ANCHOR_CONTRACT/)
  }, 180_000)

  it('chain verify --anchors passes on the anchored chain and fails, exit 1, once it is rolled back behind its anchor', async () => {
    // --skip-envelopes: this chain's records name made-up CIDs (no envelope blocks); the anchors are what is checked here.
    const verify = (extra: string[] = []) => careledger(['chain', 'verify', '--data', cloudDir, '--workers', '0', '--skip-envelopes', '--anchors', evm.url, '--anchor-contract', contract, '--anchor-account', account, ...extra])
    const ok = await verify()
    expect(ok.code).toBe(0)
    expect(ok.stdout).toMatch(/CareLedger chain verification: INTACT/)
    expect(ok.stdout).toMatch(/anchors: the chain matches every anchor and extends the latest/)
    expect(ok.stdout).toMatch(/latest {5}height 2/)
    const json = JSON.parse((await verify(['--json'])).stdout)
    expect(json).toMatchObject({ ok: true, anchors: { ok: true, anchors: 1 } })

    const stranger = await verify(['--anchor-account', '0x000000000000000000000000000000000000dEaD'])
    expect(stranger.code).toBe(1)
    expect(stranger.stdout).toMatch(/ANCHOR_CONTRACT .*anchoring account is 0x[0-9a-fA-F]{40}, not 0x000000000000000000000000000000000000dEaD/)
    const noAccount = await careledger(['chain', 'verify', '--data', cloudDir, '--anchors', evm.url, '--anchor-contract', contract])
    expect(noAccount.code).toBe(2)
    expect(noAccount.stderr).toMatch(/--anchors needs --anchor-account/)

    // A hand-edited record still fails the chain checks, though every anchor matches (anchors hold block hashes).
    const edit = new Database(join(cloudDir, 'cloud.db'))
    const original = (edit.prepare('SELECT opening FROM records WHERE id = 1').get() as { opening: Buffer }).opening
    const flipped = Buffer.from(original)
    flipped[5] = flipped[5]! ^ 1
    edit.prepare('UPDATE records SET opening = ? WHERE id = 1').run(flipped)
    const edited = await verify()
    expect(edited.code).toBe(1)
    expect(edited.stdout).toMatch(/NOT INTACT/)
    expect(edited.stdout).toMatch(/RECORD_OPENING/)
    expect(edited.stdout).toMatch(/anchors: the chain matches every anchor/)
    edit.prepare('UPDATE records SET opening = ? WHERE id = 1').run(original)
    edit.close()

    const sql = new Database(join(cloudDir, 'cloud.db'))
    sql.pragma('foreign_keys = OFF')
    sql.prepare('UPDATE records SET block_height = NULL WHERE block_height = 2').run()
    sql.prepare('DELETE FROM blocks WHERE height = 2').run()
    sql.close()
    const behind = await verify()
    expect(behind.code).toBe(1)
    expect(behind.stdout).toMatch(/CareLedger chain verification: INTACT/) // the database alone cannot tell
    expect(behind.stdout).toMatch(/ANCHOR_BEHIND +height 2 +the chain ends at height 1, behind its latest anchor at height 2/)
  }, 180_000)
})
