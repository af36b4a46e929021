/**
 * An EVM JSON-RPC node on 127.0.0.1 in a process of its own (Hardhat 3's EDR, test/helpers/evm.ts),
 * so that bench:anchor measures the cloud's CPU apart from the EVM's. Prints {"url","chainId"} on
 * one line, then serves until SIGTERM.
 */
import { startTestEvm } from '../../test/helpers/evm.ts'

const evm = await startTestEvm({ chainId: 1337 })
process.stdout.write(`${JSON.stringify({ url: evm.url, chainId: evm.chainId })}\n`)
process.once('SIGTERM', () => void evm.close().then(() => process.exit(0)))
