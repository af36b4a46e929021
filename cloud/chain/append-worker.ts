/**
 * Worker thread of the store's bulk append (sync-pool.ts): admits uploads (schema, keys, gateway
 * signature) and commits record contents (chameleon hash), the CPU-heavy steps, for the main
 * thread's synchronous appendBatches. Answers on its port, then raises its flag.
 */
import { workerData, type MessagePort } from 'node:worker_threads'
import { DONE, FATAL, attempt } from './sync-pool.ts'

const { port, flag, data } = workerData as { port: MessagePort; flag: Int32Array; data: { chameleonPublicKey: Uint8Array } }

try {
  const { admitBatch, commitRecord } = await import('./record.ts')
  const ops: Record<string, (item: never) => unknown> = {
    admit: (input: Parameters<typeof admitBatch>[0]) => attempt(() => admitBatch(input)),
    commit: (fields: Parameters<typeof commitRecord>[1]) => attempt(() => commitRecord(data.chameleonPublicKey, fields)),
  }
  port.on('message', (msg: { op: string; items: never[] }) => {
    const task = ops[msg.op]
    try {
      if (!task) throw new Error(`unknown op ${msg.op}`)
      port.postMessage(msg.items.map(task))
      Atomics.store(flag, 0, DONE)
    } catch {
      Atomics.store(flag, 0, FATAL)
    }
    Atomics.notify(flag, 0)
  })
} catch {
  Atomics.store(flag, 0, FATAL)
  Atomics.notify(flag, 0)
}
