/**
 * Anchoring settings: off by default; once an RPC URL is set, the chain id, contract and keystore
 * are required; every bad value is named by its flag or variable; the keystore's password comes
 * from the environment or a file, and a wrong one stops the cloud's start with a clear error.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Wallet, getAddress } from 'ethers'
import { loadCloudConfig } from '../../cloud/config.ts'
import { anchorPassword, explorerLink, loadAnchorWallet } from '../../cloud/anchor/config.ts'
import { startTestCloud, tempDataDir } from '../helpers/cloud-process.ts'
import { testKeystore } from '../helpers/evm.ts'

const tmp = tempDataDir('anchor-config')
afterAll(() => tmp.cleanup())
const ON = { CARELEDGER_ANCHOR_RPC_URL: 'http://127.0.0.1:8545', CARELEDGER_ANCHOR_CHAIN_ID: '11155111', CARELEDGER_ANCHOR_CONTRACT: '0x5fbdb2315678afecb367f032d93f642f64180aa3', CARELEDGER_ANCHOR_KEYSTORE: '/etc/careledger/anchor.json' }

describe('anchoring configuration', () => {
  it('is off by default', () => {
    const { config } = loadCloudConfig({}, {})
    expect(config.anchor).toMatchObject({ enabled: false, rpcUrl: null, schedule: '0 * * * *', confirmations: 12, pollMs: 15_000, backoffMaxMs: 300_000 })
  })

  it('with an RPC URL, needs the chain id, contract and keystore, naming each', () => {
    expect(() => loadCloudConfig({}, { CARELEDGER_ANCHOR_RPC_URL: 'https://rpc.example' })).toThrow(
      /CARELEDGER_ANCHOR_CHAIN_ID=null: is required when CARELEDGER_ANCHOR_RPC_URL is set.*CARELEDGER_ANCHOR_CONTRACT=null.*CARELEDGER_ANCHOR_KEYSTORE=null/,
    )
    const { config } = loadCloudConfig({}, ON)
    expect(config.anchor).toMatchObject({ enabled: true, chainId: 11155111, contract: '0x5FbDB2315678afecb367f032d93F642f64180aa3', explorerTxUrl: 'https://sepolia.etherscan.io/tx/{tx}' })
  })

  it('refuses bad values, naming the flag or variable', () => {
    expect(() => loadCloudConfig({ anchorSchedule: 'every hour' }, ON)).toThrow(/--anchor-schedule="every hour": must be a node-cron expression/)
    expect(() => loadCloudConfig({}, { ...ON, CARELEDGER_ANCHOR_CONTRACT: '0x1234' })).toThrow(/CARELEDGER_ANCHOR_CONTRACT="0x1234": must be an EVM address/)
    expect(() => loadCloudConfig({}, { ...ON, CARELEDGER_ANCHOR_CONTRACT: '0x5FbDB2315678afecb367f032d93F642f64180aA3' })).toThrow(/EIP-55 checksum/) // one letter's case wrong
    expect(loadCloudConfig({}, { ...ON, CARELEDGER_ANCHOR_CONTRACT: '0X5FBDB2315678AFECB367F032D93F642F64180AA3'.replace('0X', '0x') }).config.anchor.contract).toBe(getAddress(ON.CARELEDGER_ANCHOR_CONTRACT))
    expect(() => loadCloudConfig({}, { ...ON, CARELEDGER_ANCHOR_CONFIRMATIONS: '0' })).toThrow(/CARELEDGER_ANCHOR_CONFIRMATIONS="0"/)
    expect(() => loadCloudConfig({}, { ...ON, CARELEDGER_ANCHOR_EXPLORER_TX_URL: 'https://x.example/tx/' })).toThrow(/must be an http\(s\) URL template containing \{tx\}/)
    expect(() => loadCloudConfig({}, { ...ON, CARELEDGER_ANCHOR_EXPLORER_TX_URL: 'javascript:alert({tx})' })).toThrow(/CARELEDGER_ANCHOR_EXPLORER_TX_URL/)
  })

  it('is accepted on a PostgreSQL chain (the anchors are shared there: test/cloud/pg-anchoring.test.ts)', () => {
    expect(loadCloudConfig({ database: 'postgres://cl@db.example/careledger' }, ON).config.anchor.enabled).toBe(true)
    expect(loadCloudConfig({ database: 'postgres://cl@db.example/careledger' }, {}).config.anchor.enabled).toBe(false)
  })

  it('links transactions with the configured template, or a known explorer of the chain id, or not at all', () => {
    const tx = `0x${'ab'.repeat(32)}`
    expect(explorerLink(loadCloudConfig({}, { ...ON, CARELEDGER_ANCHOR_EXPLORER_TX_URL: 'https://scan.example/tx/{tx}?net=x' }).config.anchor.explorerTxUrl, tx)).toBe(`https://scan.example/tx/${tx}?net=x`)
    expect(loadCloudConfig({}, { ...ON, CARELEDGER_ANCHOR_CHAIN_ID: '31337' }).config.anchor.explorerTxUrl).toBeNull()
    expect(explorerLink('https://scan.example/tx/{tx}', '"><script>')).toBeNull()
  })

  it('reads the keystore password from the environment, else a file; a wrong one stops the cloud start', async () => {
    const pwFile = join(tmp.dir, 'pw')
    writeFileSync(pwFile, 'from a file\n', { mode: 0o600 })
    expect(anchorPassword({ passwordFile: pwFile }, {})).toBe('from a file')
    expect(anchorPassword({ passwordFile: pwFile }, { CARELEDGER_ANCHOR_KEYSTORE_PASSWORD: 'from env' })).toBe('from env')
    // else the cloud's key-file passphrase (one passphrase for all of the cloud's secrets), file before value
    expect(anchorPassword({ passwordFile: null }, { CARELEDGER_PASSPHRASE: 'the cloud passphrase' })).toBe('the cloud passphrase')
    expect(anchorPassword({ passwordFile: null }, { CARELEDGER_PASSPHRASE_FILE: pwFile, CARELEDGER_PASSPHRASE: 'value' })).toBe('from a file')
    expect(anchorPassword({ passwordFile: pwFile }, { CARELEDGER_PASSPHRASE: 'value' })).toBe('from a file')
    expect(() => anchorPassword({ passwordFile: null }, { CARELEDGER_PASSPHRASE: '' })).toThrow(/needs its password/)
    const w = Wallet.createRandom()
    const keystore = join(tmp.dir, 'anchor.json')
    writeFileSync(keystore, await testKeystore(new Wallet(w.privateKey), 'from a file'))
    expect((await loadAnchorWallet({ keystore, passwordFile: pwFile }, {})).address).toBe(w.address)
    writeFileSync(join(tmp.dir, 'not-a-keystore.json'), '{"hello":1}')
    await expect(loadAnchorWallet({ keystore: join(tmp.dir, 'not-a-keystore.json'), passwordFile: pwFile }, {})).rejects.toThrow(/is not an encrypted JSON keystore/)
    const flags = { anchorRpcUrl: 'http://127.0.0.1:9', anchorChainId: '31337', anchorContract: ON.CARELEDGER_ANCHOR_CONTRACT, anchorKeystore: keystore }
    await expect(startTestCloud(join(tmp.dir, 'cloud'), flags, { CARELEDGER_ANCHOR_KEYSTORE_PASSWORD: 'wrong' })).rejects.toThrow(`wrong password for the anchoring keystore ${keystore}`)
    // The right password: the cloud starts although nothing answers at the RPC URL.
    const cloud = await startTestCloud(join(tmp.dir, 'cloud'), flags, { CARELEDGER_ANCHOR_KEYSTORE_PASSWORD: 'from a file' })
    expect(await cloud.anchor!.status()).toMatchObject({ enabled: true, account: w.address })
    await cloud.stop()
  })
})
