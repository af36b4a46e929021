/**
 * Worker thread of the store's bulk append (sync-pool.ts): admits uploads (schema, keys, gateway
 * signature) and commits record contents (chameleon hash), the CPU-heavy steps, for the main
 * thread's synchronous appendBatches. Answers each message on its port, in order, then counts it in its flag;
 * requests on its second port (mapAsync: the pipelined append's hashes) are answered there.
 */
import { workerData, type MessagePort } from 'node:worker_threads'
import { answered, attempt, claimChunk, fatal, serveAsync } from './sync-pool.ts'

const { port, asyncPort, flag, data } = workerData as { port: MessagePort; asyncPort: MessagePort; flag: Int32Array; data: { chameleonPublicKey: Uint8Array } }

try {
  const { admitBatch, admitBatches, commitRecord } = await import('./record.ts')
  const { chameleonPrepareHash, chameleonPrepareHashTables } = await import('../../shared/crypto/chameleon.ts')
  await chameleonPrepareHash(data.chameleonPublicKey) // this thread hashes many records: the native addon, else libsodium loaded before the first
  const ops: Record<string, (item: never) => unknown> = {
    prepare: () => attempt(() => chameleonPrepareHashTables(data.chameleonPublicKey)),
    admit: (input: Parameters<typeof admitBatch>[0]) => attempt(() => admitBatch(input)),
    commit: (fields: Parameters<typeof commitRecord>[1]) => attempt(() => commitRecord(data.chameleonPublicKey, fields)),
  }
  /** Ops computed a chunk at a time (messages posted with `whole: true`). */
  const wholeOps: Record<string, (items: never[]) => unknown[]> = {
    admitMany: (inputs: Parameters<typeof admitBatches>[0][number][]) => admitBatches(inputs),
  }
  /** How to compute `op` over a chunk: at once for a whole op, item by item otherwise; throws for an op this worker does not have. */
  const opOver = (op: string, whole: boolean): ((items: never[]) => unknown[]) => {
    const run = whole ? wholeOps[op] : ops[op] && ((items: never[]) => items.map(ops[op]!))
    if (!run) throw new Error(`unknown op ${op}`)
    return run
  }
  port.on('message', (msg: { op: string; items: never[]; claim?: Int32Array; whole?: boolean }) => {
    try {
      const run = opOver(msg.op, msg.whole === true)
      port.postMessage(claimChunk(msg) ? run(msg.items) : [])
      answered(flag)
    } catch {
      fatal(flag)
    }
  })
  // mapAsync / mapChunkAsync (the pipelined append's hashes, the bulk path's admission): the same
  // ops, answered with a promise on the caller's side.
  serveAsync(asyncPort, (op, items, whole) => opOver(op, whole)(items))
} catch {
  fatal(flag)
  serveAsync(asyncPort, () => {
    throw new Error('the append worker failed to start')
  })
}
