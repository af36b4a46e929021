/**
 * Compiles cloud/anchor/contract/CareLedgerAnchor.sol offline with solc-js (npm `solc`, the
 * Solidity compiler built to WebAssembly: no download, no native toolchain) into the artifact the
 * cloud ships, CareLedgerAnchor.json. The cloud itself never compiles: `solc` is a development
 * dependency, used by `npm run anchor:compile` and by the test that the committed artifact is
 * exactly what this source compiles to.
 *
 * Settings: optimizer on (200 runs), EVM version `paris` — the last one without PUSH0 (Shanghai),
 * so the same bytecode deploys on every Ethereum-compatible chain, including those that have not
 * adopted Shanghai. The metadata hash stays in the bytecode, so block explorers can match the
 * deployed code to this source (Sourcify, "verify contract").
 *
 *   node cloud/anchor/compile.ts            rewrite CareLedgerAnchor.json
 *   node cloud/anchor/compile.ts --check    exit 1 if the committed artifact differs
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { ARTIFACT_FILE, SOURCE_FILE, type AnchorArtifact } from './contract.ts'

export const SOLC_VERSION = '0.8.37'
export const SOLC_SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'paris',
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object', 'evm.deployedBytecode.immutableReferences'] } },
} as const

const SOURCE_NAME = 'CareLedgerAnchor.sol'
const CONTRACT = 'CareLedgerAnchor'

interface SolcOutput {
  errors?: { severity: string; formattedMessage: string }[]
  contracts?: Record<string, Record<string, { abi: unknown[]; evm: { bytecode: { object: string }; deployedBytecode: { object: string; immutableReferences: Record<string, { start: number; length: number }[]> } } }>>
}

/** Compile the source; throws with the compiler's messages on any error. */
export async function compileAnchorContract(source: string = readFileSync(SOURCE_FILE, 'utf8')): Promise<AnchorArtifact> {
  const { default: solc } = (await import('solc')) as { default: { version(): string; compile(input: string): string } }
  const version = solc.version()
  if (!version.startsWith(`${SOLC_VERSION}+`)) throw new Error(`solc ${SOLC_VERSION} is pinned, but ${version} is installed (npm ci)`)
  const input = { language: 'Solidity', sources: { [SOURCE_NAME]: { content: source } }, settings: SOLC_SETTINGS }
  const out = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput
  const errors = (out.errors ?? []).filter((e) => e.severity === 'error')
  if (errors.length > 0) throw new Error(`solc: ${errors.map((e) => e.formattedMessage).join('\n')}`)
  const c = out.contracts?.[SOURCE_NAME]?.[CONTRACT]
  if (!c) throw new Error(`solc produced no ${CONTRACT}`)
  const immutables = Object.values(c.evm.deployedBytecode.immutableReferences).flat()
  return {
    contractName: CONTRACT,
    sourceSha256: createHash('sha256').update(source, 'utf8').digest('hex'),
    compiler: { version, settings: { optimizer: SOLC_SETTINGS.optimizer, evmVersion: SOLC_SETTINGS.evmVersion } },
    abi: c.abi,
    bytecode: `0x${c.evm.bytecode.object}`,
    deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
    immutableReferences: immutables,
  }
}

export const formatArtifact = (a: AnchorArtifact): string => `${JSON.stringify(a, null, 2)}\n`

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const fresh = formatArtifact(await compileAnchorContract())
  if (process.argv.includes('--check')) {
    const same = readFileSync(ARTIFACT_FILE, 'utf8') === fresh
    process.stdout.write(same ? `${ARTIFACT_FILE} matches the source\n` : `${ARTIFACT_FILE} does NOT match the source: run npm run anchor:compile\n`)
    process.exitCode = same ? 0 : 1
  } else {
    writeFileSync(ARTIFACT_FILE, fresh)
    process.stdout.write(`wrote ${ARTIFACT_FILE}\n`)
  }
}
