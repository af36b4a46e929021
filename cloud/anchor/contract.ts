/**
 * The anchoring contract as the cloud and verifiers use it: the committed artifact
 * (contract/CareLedgerAnchor.json, compiled from contract/CareLedgerAnchor.sol by compile.ts),
 * its ABI encoding of `anchor(height, blockHash, recordsRoot)`, the `Anchored` event, its custom
 * errors, and the check that the code at an address is this contract with a given anchoring
 * account. Pure: no provider, no I/O beyond reading the artifact once.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Interface, getAddress, isAddress, zeroPadValue, type Log } from 'ethers'
import { CareLedgerError } from '../../shared/errors.ts'

export const SOURCE_FILE = fileURLToPath(new URL('./contract/CareLedgerAnchor.sol', import.meta.url))
export const ARTIFACT_FILE = fileURLToPath(new URL('./contract/CareLedgerAnchor.json', import.meta.url))

export interface AnchorArtifact {
  readonly contractName: string
  /** SHA-256 of the .sol source the artifact was compiled from. */
  readonly sourceSha256: string
  readonly compiler: { readonly version: string; readonly settings: object }
  readonly abi: readonly unknown[]
  /** 0x creation code (constructor(address anchorer) arguments follow it). */
  readonly bytecode: string
  /** 0x runtime code, immutables as zero bytes. */
  readonly deployedBytecode: string
  /** Byte ranges of the runtime code that hold the immutable `anchorer`. */
  readonly immutableReferences: readonly { readonly start: number; readonly length: number }[]
}

let artifact: AnchorArtifact | null = null
let iface: Interface | null = null

export const anchorArtifact = (): AnchorArtifact => (artifact ??= JSON.parse(readFileSync(ARTIFACT_FILE, 'utf8')) as AnchorArtifact)
export const anchorInterface = (): Interface => (iface ??= new Interface(anchorArtifact().abi as never))

const HEX32 = /^[0-9a-f]{64}$/

/** An anchor as the contract records it (hashes as 64 lower-case hex digits, no 0x). */
export interface AnchorPoint {
  readonly height: number
  readonly blockHash: string
  readonly recordsRoot: string
}

export function anchorCalldata(p: AnchorPoint): string {
  if (!Number.isSafeInteger(p.height) || p.height < 0) throw new CareLedgerError('INVALID_ARGUMENT', `anchor height must be a non-negative integer, got ${p.height}`, { height: p.height })
  for (const [name, v] of [['blockHash', p.blockHash], ['recordsRoot', p.recordsRoot]] as const) {
    if (!HEX32.test(v)) throw new CareLedgerError('INVALID_ARGUMENT', `${name} must be 64 lower-case hex digits, got ${JSON.stringify(v)}`, { [name]: v })
  }
  return anchorInterface().encodeFunctionData('anchor', [p.height, `0x${p.blockHash}`, `0x${p.recordsRoot}`])
}

/** One Anchored event with where it sits on the EVM chain. */
export interface AnchorEvent extends AnchorPoint {
  readonly txHash: string
  readonly evmBlock: number
  readonly evmBlockHash: string
  readonly logIndex: number
}

export const anchoredTopic = (): string => anchorInterface().getEvent('Anchored')!.topicHash

/** The Anchored event in a log, or null for any other log. */
export function parseAnchorLog(log: Pick<Log, 'topics' | 'data' | 'transactionHash' | 'blockNumber' | 'blockHash' | 'index'>): AnchorEvent | null {
  let parsed
  try {
    parsed = anchorInterface().parseLog({ topics: [...log.topics], data: log.data })
  } catch {
    return null
  }
  if (!parsed || parsed.name !== 'Anchored') return null
  return {
    height: Number(parsed.args[0] as bigint),
    blockHash: (parsed.args[1] as string).slice(2).toLowerCase(),
    recordsRoot: (parsed.args[2] as string).slice(2).toLowerCase(),
    txHash: log.transactionHash,
    evmBlock: log.blockNumber,
    evmBlockHash: log.blockHash,
    logIndex: log.index,
  }
}

/** A revert of the anchor contract in words (NotAnchorer, HeightNotIncreasing), or null if the data is not one of its errors. */
export function describeAnchorRevert(data: string | null | undefined): string | null {
  if (!data || data === '0x') return null
  try {
    const e = anchorInterface().parseError(data)
    if (!e) return null
    if (e.name === 'NotAnchorer') return `NotAnchorer: ${e.args[0]} is not this cloud's anchoring account`
    if (e.name === 'HeightNotIncreasing') return `HeightNotIncreasing: height ${e.args[0]} is not above the latest anchored height ${e.args[1]}`
    return e.name
  } catch {
    return null
  }
}

export function checkAddress(value: string, what: string): string {
  if (!isAddress(value)) throw new CareLedgerError('INVALID_ARGUMENT', `${what} must be an EVM address (0x and 40 hex digits), got ${JSON.stringify(value)}`, { value })
  return getAddress(value)
}

/**
 * Is `code` (from eth_getCode) this contract, deployed with `anchorer` as its anchoring account?
 * Compares every byte of the committed runtime code outside the immutable slots, and each
 * immutable slot against the address. Returns why not, or null when it is.
 */
export function deployedCodeMismatch(code: string, anchorer: string): string | null {
  const a = anchorArtifact()
  const want = Buffer.from(a.deployedBytecode.slice(2), 'hex')
  if (!/^0x[0-9a-fA-F]*$/.test(code)) return 'the node returned malformed code'
  const got = Buffer.from(code.slice(2), 'hex')
  if (got.length === 0) return 'there is no contract at this address'
  if (got.length !== want.length) return `the code (${got.length} bytes) is not the CareLedger anchor contract (${want.length} bytes)`
  const slot = Buffer.from(zeroPadValue(getAddress(anchorer), 32).slice(2), 'hex')
  const inSlot = new Uint8Array(want.length)
  for (const r of a.immutableReferences) {
    inSlot.fill(1, r.start, r.start + r.length)
    if (!got.subarray(r.start, r.start + r.length).equals(slot)) {
      const actual = getAddress(`0x${got.subarray(r.start + r.length - 20, r.start + r.length).toString('hex')}`)
      return `the contract's anchoring account is ${actual}, not ${getAddress(anchorer)}`
    }
  }
  for (let i = 0; i < want.length; i++) if (inSlot[i] === 0 && got[i] !== want[i]) return `the code differs from the CareLedger anchor contract at byte ${i}`
  return null
}
