/**
 * The anchoring contract: the committed ABI and bytecode are what solc-js compiles the committed
 * source to, and on an EVM (Hardhat 3's EDR, in process) it keeps the rules the cloud and
 * verifiers rely on — only the anchoring account writes, heights only go up, every anchor is an
 * event — and the code check tells this contract from any other.
 */
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Contract, ContractFactory, ZeroAddress, type Wallet } from 'ethers'
import { compileAnchorContract, formatArtifact } from '../../cloud/anchor/compile.ts'
import { ARTIFACT_FILE, SOURCE_FILE, anchorArtifact, anchorCalldata, anchorInterface, deployedCodeMismatch, describeAnchorRevert, parseAnchorLog } from '../../cloud/anchor/contract.ts'
import { startTestEvm, type TestEvm } from '../helpers/evm.ts'
import { deployAnchor } from './anchor-helpers.ts'
import { createHash } from 'node:crypto'

const hash = (c: string) => createHash('sha256').update(c).digest('hex')
const H = (n: number) => ({ height: n, blockHash: hash(`block ${n}`), recordsRoot: hash(`root ${n}`) })

describe('the committed artifact', () => {
  it('is exactly what solc-js compiles the committed source to (npm run anchor:compile)', async () => {
    const source = readFileSync(SOURCE_FILE, 'utf8')
    const fresh = await compileAnchorContract(source)
    expect(readFileSync(ARTIFACT_FILE, 'utf8')).toBe(formatArtifact(fresh))
    expect(anchorArtifact().sourceSha256).toBe(hash(source))
  })

  it('a changed source no longer matches it', async () => {
    const source = readFileSync(SOURCE_FILE, 'utf8').replace('if (anchored && height <= latestHeight)', 'if (anchored && height < latestHeight)')
    expect((await compileAnchorContract(source)).deployedBytecode).not.toBe(anchorArtifact().deployedBytecode)
  })
})

describe('the contract on an EVM', () => {
  let evm: TestEvm
  let anchorer: Wallet
  let stranger: Wallet
  let address: string
  let asAnchorer: Contract
  let asStranger: Contract

  beforeAll(async () => {
    evm = await startTestEvm()
    anchorer = await evm.fundedWallet()
    stranger = await evm.fundedWallet()
    address = await deployAnchor(evm, stranger, anchorer.address) // anyone may deploy it for the cloud's account
    asAnchorer = new Contract(address, anchorInterface(), anchorer.connect(evm.provider))
    asStranger = new Contract(address, anchorInterface(), stranger.connect(evm.provider))
  })
  afterAll(() => evm.close())

  const revertOf = async (p: Promise<unknown>): Promise<string | null> => {
    try {
      await p
      return null
    } catch (e) {
      return describeAnchorRevert((e as { data?: string }).data)
    }
  }

  it('stores the anchoring account and starts without an anchor', async () => {
    expect(await asStranger.getFunction('anchorer')()).toBe(anchorer.address)
    expect(await asStranger.getFunction('anchored')()).toBe(false)
    expect(deployedCodeMismatch(await evm.provider.getCode(address), anchorer.address)).toBeNull()
  })

  it('takes an anchor from the anchoring account (height 0 first), stores the height and emits Anchored', async () => {
    const tx = await asAnchorer.getFunction('anchor')(0, `0x${H(0).blockHash}`, `0x${H(0).recordsRoot}`)
    const receipt = await tx.wait()
    const ev = parseAnchorLog(receipt.logs[0])
    expect(ev).toMatchObject({ ...H(0), txHash: receipt.hash, evmBlock: receipt.blockNumber })
    expect(await asStranger.getFunction('anchored')()).toBe(true)
    expect(await asStranger.getFunction('latestHeight')()).toBe(0n)
    const tx5 = await anchorer.connect(evm.provider).sendTransaction({ to: address, data: anchorCalldata(H(5)) })
    expect((await tx5.wait())!.status).toBe(1)
    expect(await asStranger.getFunction('latestHeight')()).toBe(5n)
  })

  it('refuses an anchoring call from another account', async () => {
    expect(await revertOf(asStranger.getFunction('anchor')(9, `0x${H(9).blockHash}`, `0x${H(9).recordsRoot}`))).toBe(`NotAnchorer: ${stranger.address} is not this cloud's anchoring account`)
    // Also when sent without a gas estimate: the EVM executes it and reverts; nothing is stored or emitted.
    const sent = stranger.connect(evm.provider).sendTransaction({ to: address, data: anchorCalldata(H(9)), gasLimit: 100_000 })
    const err = (await sent.catch((e: unknown) => e)) as { error?: { data?: string } }
    expect(describeAnchorRevert(err.error?.data)).toBe(`NotAnchorer: ${stranger.address} is not this cloud's anchoring account`)
    expect(await asStranger.getFunction('latestHeight')()).toBe(5n)
    expect((await evm.provider.getLogs({ address, fromBlock: 0 })).map((l) => parseAnchorLog(l)!.height)).toEqual([0, 5])
  })

  it('refuses a height that does not increase', async () => {
    expect(await revertOf(asAnchorer.getFunction('anchor')(5, `0x${H(5).blockHash}`, `0x${H(5).recordsRoot}`))).toBe('HeightNotIncreasing: height 5 is not above the latest anchored height 5')
    expect(await revertOf(asAnchorer.getFunction('anchor')(4, `0x${H(4).blockHash}`, `0x${H(4).recordsRoot}`))).toBe('HeightNotIncreasing: height 4 is not above the latest anchored height 5')
  })

  it('refuses the zero address as anchoring account', async () => {
    const a = anchorArtifact()
    await expect(new ContractFactory(a.abi as never, a.bytecode, stranger.connect(evm.provider)).deploy(ZeroAddress)).rejects.toThrow()
  })

  it('the code check tells it from another account\'s contract, an account without code and other code', async () => {
    const code = await evm.provider.getCode(address)
    expect(deployedCodeMismatch(code, stranger.address)).toBe(`the contract's anchoring account is ${anchorer.address}, not ${stranger.address}`)
    expect(deployedCodeMismatch(await evm.provider.getCode(stranger.address), anchorer.address)).toBe('there is no contract at this address')
    const patched = `${code.slice(0, 20)}${code.slice(20, 22) === 'ff' ? '00' : 'ff'}${code.slice(22)}`
    expect(deployedCodeMismatch(patched, anchorer.address)).toMatch(/^the code differs from the CareLedger anchor contract at byte 9$/)
    expect(deployedCodeMismatch(`${code}00`, anchorer.address)).toMatch(/is not the CareLedger anchor contract/)
  })
})
